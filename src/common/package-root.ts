// The package's top-level directory (holding targets/, ir/, grammar/), found by walking up
// from this module: it sits at a different depth in src/ (tests), dist/ (the CLI) and a
// benchmark build, so a fixed "../../" would break one of them.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

let cached: string | undefined;

export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "targets"))) return (cached = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error("internal error: cannot find the imssa package directory (with package.json and targets/) above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** URL of a directory or file inside the package, e.g. packageUrl("targets/"). */
export function packageUrl(relative: string): URL {
  return new URL(relative, pathToFileURL(`${packageRoot()}/`));
}
