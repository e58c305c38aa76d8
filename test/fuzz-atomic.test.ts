// Outputs are all-or-nothing: written through src/common/files.ts (temp file + rename),
// never partial on an error or an interrupt, and no temporary file is left behind. Also the
// exit codes of the CLIs (0 ok, 1 user error, 2 internal error, SIGINT as the signal).

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readBytes, tempPathFor, writeFileAtomic, writeFilesAtomic } from "../src/common/files.js";
import { resetLimits, setLimits } from "../src/common/limits.js";
import { compileDslSource } from "../src/frontend/dsl/index.js";
import { modelToJson } from "../src/ir/json.js";
import { userError } from "./helpers/user-error.js";

const ROOT = process.cwd();
let dir: string;
beforeAll(() => {
  if (!existsSync(join(ROOT, "dist/cli/compile.js"))) throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
  dir = mkdtempSync(join(tmpdir(), "imssa-atomic-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const temps = (d: string) => readdirSync(d).filter((f) => f.endsWith(".tmp"));

describe("writeFilesAtomic", () => {
  test("writes every file, through a temporary sibling that is gone afterwards", () => {
    const d = join(dir, "ok");
    mkdirSync(d);
    writeFilesAtomic([
      { file: join(d, "a.txt"), data: "alpha" },
      { file: join(d, "b.bin"), data: new Uint8Array([1, 2, 3]) },
    ]);
    expect(readFileSync(join(d, "a.txt"), "utf8")).toBe("alpha");
    expect([...readFileSync(join(d, "b.bin"))]).toEqual([1, 2, 3]);
    expect(tempPathFor(join(d, "a.txt"))).toBe(join(d, `.a.txt.${process.pid}.tmp`));
    expect(temps(d)).toEqual([]);
  });

  test("a failing output leaves no output at all: earlier files untouched, no temporary files", () => {
    const d = join(dir, "fail");
    mkdirSync(d);
    writeFileSync(join(d, "a.txt"), "old");
    const e = userError(() =>
      writeFilesAtomic([
        { file: join(d, "a.txt"), data: "new" },
        { file: join(d, "missing-dir", "b.txt"), data: "b" },
      ]),
    );
    expect(e.kind).toBe("io");
    expect(e.message).toContain("missing-dir");
    expect(readFileSync(join(d, "a.txt"), "utf8")).toBe("old");
    expect(temps(d).sort()).toEqual([]);
  });

  test("two outputs to one file are refused before anything is written", () => {
    const d = join(dir, "same");
    mkdirSync(d);
    const e = userError(() =>
      writeFilesAtomic([
        { file: join(d, "y.npy"), data: "a" },
        { file: join(d, ".", "y.npy"), data: "b" },
      ]),
    );
    expect(e.kind).toBe("usage");
    expect(readdirSync(d)).toEqual([]);
  });

  test("a destination name near the 255-byte limit still gets a valid temporary name", () => {
    const f = join(dir, "n".repeat(250));
    writeFileAtomic(f, "long");
    expect(readFileSync(f, "utf8")).toBe("long");
    expect(temps(dir)).toEqual([]);
  });

  test("a rename onto a directory fails cleanly and keeps the directory", () => {
    const d = join(dir, "isdir");
    mkdirSync(join(d, "out"), { recursive: true });
    const e = userError(() => writeFileAtomic(join(d, "out"), "x"));
    expect(e.kind).toBe("io");
    expect(temps(d)).toEqual([]);
  });
});

describe("readBytes", () => {
  test("refuses directories and devices before reading (a device would never end)", () => {
    expect(userError(() => readBytes(dir)).message).toContain("a directory");
    expect(userError(() => readBytes("/dev/zero")).message).toContain("a device");
    expect(userError(() => readBytes(join(dir, "nope"))).message).toContain("no such file");
  });

  test("refuses files above maxFileBytes before reading them", () => {
    const f = join(dir, "twenty.bin");
    writeFileSync(f, new Uint8Array(20));
    setLimits({ maxFileBytes: 19 });
    try {
      const e = userError(() => readBytes(f));
      expect(e.kind).toBe("resource");
      expect(e.message).toMatch(/20.*limit of 19.*IMSSA_MAX_FILE_BYTES/);
    } finally {
      resetLimits();
    }
    expect(readBytes(f).length).toBe(20);
  });
});

// ---- CLI processes ----------------------------------------------------------------------------

function cli(tool: string, args: string[], cwd = ROOT) {
  return spawnSync(process.execPath, [join(ROOT, `dist/cli/${tool}.js`), ...args], { encoding: "utf8", cwd });
}

describe("exit codes", () => {
  test("0 on success, 1 with one message on bad input and no output file, 2 never for bad input", () => {
    const out = join(dir, "exit-ok.json");
    const ok = cli("compile", ["examples/tiny.s4d", "--emit", "ir", "-o", out]);
    expect(ok.status).toBe(0);
    expect(existsSync(out)).toBe(true);

    const bad = join(dir, "bad.s4d");
    writeFileSync(bad, "model m { input u[1]; params init; repeat 1000000000000 { gelu; } }");
    const outBad = join(dir, "exit-bad.json");
    const r = cli("compile", [bad, "--emit", "ir", "-o", outBad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^imssa-compile: error: .*bad\.s4d:1:\d+: the number of layers .* limit of 10000/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(outBad)).toBe(false);
    expect(temps(dir)).toEqual([]);
  });

  test("--max-elements raises or lowers the element limit on every command", () => {
    const lowered = cli("compile", ["examples/tiny.s4d", "--emit", "ir", "--max-elements", "3"]);
    expect(lowered.status).toBe(1);
    expect(lowered.stderr).toMatch(/linear declares shape \[4, 1\] with 4 elements, more than the limit of 3/);
    const bad = cli("run", ["x.xbin", "--max-elements=lots"]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--max-elements: "lots" is not a positive integer');
  });

  test("a truncated .xbin is a user error for every tool that reads programs", () => {
    const f = join(dir, "trunc.xbin");
    writeFileSync(f, readFileSync(join(ROOT, "test/fixtures/xbin/sample-v1.xbin")).subarray(0, 100));
    for (const [tool, args] of [
      ["run", [f, "--input", "examples/tiny-input.npy", "-o", join(dir, "never.npy")]],
      ["disasm", [f, "-o", join(dir, "never.asm")]],
      ["report", [f, "-o", join(dir, "never.html")]],
    ] as const) {
      const r = cli(tool, [...args]);
      expect([tool, r.status]).toEqual([tool, 1]);
      expect(r.stderr).toContain("trunc.xbin");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(readdirSync(dir).filter((f) => f.startsWith("never") || f.endsWith(".tmp"))).toEqual([]);
  });
});

describe("SIGINT", () => {
  // A model whose IR is 6 MB of JSON: imssa-compile big.json --emit ir spends its time
  // parsing, validating and writing, so an interrupt can land in any phase.
  let big: string;
  let reference: string;
  beforeAll(() => {
    big = join(dir, "big.json");
    const src = "model big { input u[300]; output y; params init seed 3; linear(600); linear(300); }";
    writeFileSync(big, modelToJson(compileDslSource(src, join(dir, "big.s4d"))));
    const refOut = join(dir, "reference.json");
    expect(cli("compile", [big, "--emit", "ir", "-o", refOut]).status).toBe(0);
    reference = readFileSync(refOut, "utf8");
  });

  /** Runs the CLI and sends SIGINT after `delayMs`, or as soon as its temporary file appears. */
  function interrupted(outDir: string, when: number | "temp-file"): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    mkdirSync(outDir);
    const child = spawn(process.execPath, [join(ROOT, "dist/cli/compile.js"), big, "--emit", "ir", "-o", join(outDir, "out.json")], { stdio: "ignore" });
    const w =
      when === "temp-file"
        ? watch(outDir, (_ev, name) => {
            if (name?.endsWith(".tmp")) child.kill("SIGINT");
          })
        : undefined;
    const t = typeof when === "number" ? setTimeout(() => child.kill("SIGINT"), when) : undefined;
    return new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        w?.close();
        clearTimeout(t);
        resolve({ code, signal });
      }),
    );
  }

  test.each([50, 300, 800, "temp-file"] as const)("interrupt at %s: the output is complete or absent, no temporary file", async (when) => {
    const outDir = join(dir, `sigint-${when}`);
    const r = await interrupted(outDir, when);
    // Ended by the signal (a shell reports 130), or finished before it arrived.
    expect(r.signal === "SIGINT" || r.code === 0).toBe(true);
    expect(temps(outDir)).toEqual([]);
    const out = join(outDir, "out.json");
    if (existsSync(out)) expect(readFileSync(out, "utf8") === reference).toBe(true);
    // The temporary file existed when the signal was sent: the write was under way, and it
    // completes before the signal is taken (the handler is installed before the first byte).
    if (when === "temp-file") expect(existsSync(out)).toBe(true);
  });
});
