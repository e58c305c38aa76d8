// Shared process wrapper for every imssa-* command: user errors print one paragraph and exit 1;
// anything else is our bug: exit 2 with a request to report it (stack only with --debug).

import "../common/polyfill.js";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatDiagnostic, isUserError } from "../common/errors.js";

export const EXIT_OK = 0;
export const EXIT_USER_ERROR = 1;
export const EXIT_INTERNAL_ERROR = 2;

export function reportError(tool: string, e: unknown, debug: boolean): number {
  if (isUserError(e)) {
    for (const d of e.diagnostics) process.stderr.write(`${tool}: error: ${formatDiagnostic(d)}\n`);
    return EXIT_USER_ERROR;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`${tool}: internal error: ${msg}\nThis is a bug in imssa; please report it with the command line and input files.\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write("(run with --debug for a stack trace)\n");
  return EXIT_INTERNAL_ERROR;
}

/** Runs a CLI body and sets the exit code; `--debug` anywhere in argv enables stack traces. */
export async function runMain(tool: string, body: (argv: string[]) => Promise<void> | void): Promise<void> {
  const debug = process.argv.includes("--debug");
  try {
    await body(process.argv);
  } catch (e) {
    process.exitCode = reportError(tool, e, debug);
  }
}

/**
 * True when the module at `moduleUrl` is the process's entry point (the bin link may be a
 * symlink), so a CLI module imported by tests does not run itself.
 */
export function isEntryPoint(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === fileURLToPath(moduleUrl);
  } catch {
    return false;
  }
}
