// Shared process wrapper for every imssa-* command. Exit codes (README "Exit codes"):
//   0 success; 1 user error (one paragraph naming file and place); 2 internal error (a bug
//   in imssa: a request to report it, the stack only with --debug); 3 imssa-verify's failed
//   comparison. An interrupt (Ctrl-C) ends the process by SIGINT (shells show 130) and
//   leaves no partial output (src/common/files.ts).
// Resource limits (src/common/limits.ts) can be raised with `--max-elements N` on any command.

import "../common/polyfill.js";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatDiagnostic, isUserError, UserError } from "../common/errors.js";
import { settleInterrupts } from "../common/files.js";
import { parseLimit, setLimits } from "../common/limits.js";

export const EXIT_OK = 0;
export const EXIT_USER_ERROR = 1;
export const EXIT_INTERNAL_ERROR = 2;

export function reportError(tool: string, e: unknown, debug: boolean): number {
  if (isUserError(e)) {
    for (const d of e.diagnostics) process.stderr.write(`${tool}: error: ${formatDiagnostic(d)}\n`);
    return EXIT_USER_ERROR;
  }
  // assert() messages already start with "internal error: "; say it once.
  const msg = (e instanceof Error ? e.message : String(e)).replace(/^internal error: /, "");
  process.stderr.write(`${tool}: internal error: ${msg}\nThis is a bug in imssa; please report it with the command line and input files.\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write("(run with --debug for a stack trace)\n");
  return EXIT_INTERNAL_ERROR;
}

/** Conventional status of a process ended by SIGINT (128 + 2), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/**
 * Takes the options every command shares out of argv: `--max-elements N` (or
 * `--max-elements=N`) raises the element limit of src/common/limits.ts. Returns the rest.
 */
export function takeCommonOptions(argv: readonly string[]): string[] {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "--max-elements" || a.startsWith("--max-elements=")) {
      const value = a === "--max-elements" ? argv[++i] : a.slice("--max-elements=".length);
      if (value === undefined) throw new UserError("usage", "--max-elements needs a value (a positive integer)");
      setLimits({ maxElements: parseLimit(value, "--max-elements") });
      continue;
    }
    rest.push(a);
  }
  return rest;
}

/** Runs a CLI body and sets the exit code; `--debug` anywhere in argv enables stack traces. */
export async function runMain(tool: string, body: (argv: string[]) => Promise<void> | void): Promise<void> {
  const debug = process.argv.includes("--debug");
  try {
    await body(takeCommonOptions(process.argv));
  } catch (e) {
    process.exitCode = reportError(tool, e, debug);
  }
  // An interrupt that arrived during a (synchronous) output write is still queued: let it
  // arrive, so Ctrl-C ends the process by SIGINT (status 130) instead of being dropped.
  await settleInterrupts();
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
