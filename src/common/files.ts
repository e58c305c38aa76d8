// File I/O with user-facing errors.
//
// Reading: only regular files (a device such as /dev/zero or a FIFO would never end or
// block), at most limits().maxFileBytes, checked before a byte is read.
//
// Writing: every output goes to a temporary sibling ".<name>.<pid>.tmp" and is renamed over
// the destination, so readers never see half a file and an error leaves the old file (or
// none). Commands write only after all computing succeeded. An interrupt (SIGINT, SIGTERM,
// SIGHUP) before the first write uses the default action: the process ends and nothing was
// written. From the first write on, a handler is installed: the signal is taken after the
// synchronous write in progress, every temporary file still registered is removed, and the
// signal is raised again with its default action, so the process still ends "killed by
// SIGINT" (shells report exit status 130) and leaves either complete outputs or none.

import { readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UserError } from "./errors.js";
import { checkLimit } from "./limits.js";

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    case "ENOTDIR":
      return "a path component is not a directory";
    case "ENOSPC":
      return "no space left on the device";
    case "EROFS":
      return "read-only file system";
    case "ERR_FS_FILE_TOO_LARGE":
      return "the file is too large to read";
    default:
      return err.message ?? String(e);
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a pipe (FIFO)";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

export function readBytes(file: string): Uint8Array {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    throw new UserError("io", `cannot read file: ${describeFsError(e)}`, { file });
  }
  if (!st.isFile()) throw new UserError("io", `cannot read file: it is ${kindOf(st)}, expected a regular file`, { file });
  checkLimit("maxFileBytes", st.size, `file size in bytes`, { file });
  try {
    return readFileSync(file);
  } catch (e) {
    throw new UserError("io", `cannot read file: ${describeFsError(e)}`, { file });
  }
}

export function readText(file: string): string {
  return Buffer.from(readBytes(file)).toString("utf8");
}

// ---- atomic writes ---------------------------------------------------------------------------

/** Temporary files written but not yet renamed; an interrupt removes them. */
const pending = new Set<string>();
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
let guarded = false;

function removePending(): void {
  for (const tmp of pending) rmSync(tmp, { force: true });
  pending.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  removePending();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  // Default action again: the process ends by the signal, as it would have without us.
  process.kill(process.pid, signal);
}

/** Installs the interrupt handler once, at the first write (see the header comment). */
function guardInterrupts(): void {
  if (guarded) return;
  guarded = true;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on("exit", removePending);
}

/**
 * Lets an interrupt that arrived during an output write take effect before the process
 * exits. Node queues the signal until the synchronous write is done and delivers it a few
 * milliseconds later, after a normal exit would already have dropped it; a command that
 * wrote files awaits this at the end (src/cli/main.ts). No-op when nothing was written.
 */
export async function settleInterrupts(): Promise<void> {
  if (guarded) await new Promise((resolve) => setTimeout(resolve, 30));
}

/** The temporary sibling an output is written to before the rename. */
export function tempPathFor(file: string): string {
  // Shortened so a destination name near the 255-byte limit still has a valid temp name.
  return join(dirname(file), `.${basename(file).slice(0, 200)}.${process.pid}.tmp`);
}

export interface OutputFile {
  file: string;
  data: string | Uint8Array;
}

/**
 * Writes several outputs as one step: all temporary files first, then the renames. If any
 * write fails, no destination is touched and every temporary file is removed.
 */
export function writeFilesAtomic(outputs: readonly OutputFile[]): void {
  const seen = new Set<string>();
  for (const { file } of outputs) {
    const key = resolve(file);
    if (seen.has(key)) throw new UserError("usage", `two outputs would be written to the same file`, { file });
    seen.add(key);
  }
  guardInterrupts();
  const temps: string[] = [];
  try {
    for (const { file, data } of outputs) {
      const tmp = tempPathFor(file);
      pending.add(tmp);
      temps.push(tmp);
      try {
        writeFileSync(tmp, data);
      } catch (e) {
        throw new UserError("io", `cannot write file: ${describeFsError(e)}`, { file });
      }
    }
    outputs.forEach(({ file }, i) => {
      try {
        renameSync(temps[i]!, file);
      } catch (e) {
        throw new UserError("io", `cannot write file: ${describeFsError(e)}`, { file });
      }
      pending.delete(temps[i]!);
    });
  } finally {
    for (const tmp of temps) {
      if (pending.delete(tmp)) rmSync(tmp, { force: true });
    }
  }
}

/** Writes `data` to `file` atomically (temp file in the same directory, then rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  writeFilesAtomic([{ file, data }]);
}
