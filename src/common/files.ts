// File I/O with user-facing errors. Outputs are written to a temporary sibling and renamed,
// so an error or an interrupt never leaves a half-written file behind.

import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { UserError } from "./errors.js";

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
    default:
      return err.message ?? String(e);
  }
}

export function readBytes(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new UserError("io", `cannot read file: ${describeFsError(e)}`, { file });
  }
}

export function readText(file: string): string {
  return Buffer.from(readBytes(file)).toString("utf8");
}

/** Writes `data` to `file` atomically (temp file in the same directory, then rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new UserError("io", `cannot write file: ${describeFsError(e)}`, { file });
  }
}
