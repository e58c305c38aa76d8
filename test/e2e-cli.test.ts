// The CLIs as users run them (built by `npm test` / `npm ci` into dist/): exit codes,
// messages without stack traces, and no output file when something fails.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readNpy, writeNpy } from "../src/common/npy.js";

let dir: string;
beforeAll(() => {
  if (!existsSync("dist/cli/compile.js")) throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
  dir = mkdtempSync(join(tmpdir(), "imssa-e2e-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(tool: "compile" | "run" | "verify" | "disasm", ...args: string[]) {
  const r = spawnSync(process.execPath, [`dist/cli/${tool}.js`, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const noStack = (text: string): void => expect(text).not.toMatch(/^\s+at .+\(.*:\d+:\d+\)$/m);

describe("the README's main job", () => {
  test("compile digits for xbar64, disassemble, run with a report", () => {
    const xbin = join(dir, "digits.xbin");
    const c = cli("compile", "examples/digits.s4d", "--target", "xbar64", "-o", xbin);
    expect(c.code).toBe(0);
    // Channel groups per tile (docs/SCHEDULE.md) cost 15 crossbars over the densest packing
    // and save the network transfer of every state word each step.
    expect(c.err).toMatch(/crossbars\s+154 used, 256 available/);
    expect(c.err).toMatch(/lower bound\s+136 summed per matrix \(used x1\.132\)/);
    // The packer alone stays within 5% of the bound (issue #3).
    const dense = cli("compile", "examples/digits.s4d", "--target", "xbar64", "--no-group-channels", "-o", join(dir, "digits-dense.xbin"));
    expect(dense.code).toBe(0);
    expect(dense.err).toMatch(/crossbars\s+139 used, 256 available/);
    expect(dense.err).toMatch(/lower bound\s+136 summed per matrix \(used x1\.022\)/);
    const d = cli("disasm", xbin);
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/\bmvm\b/);
    expect(d.out).toMatch(/s4_layers\.0/);
    const out = join(dir, "logits.npy");
    const r = cli("run", xbin, "--input", "examples/digits-input.npy", "--output", out, "--report");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/cycles/);
    expect(r.out).toMatch(/energy/);
    expect(readNpy(out).shape).toEqual([8, 10]);
  });

  test("the same for the ideal target, and imssa-verify passes there", () => {
    const xbin = join(dir, "digits-ideal.xbin");
    expect(cli("compile", "examples/digits.s4d", "--target", "ideal", "-o", xbin, "-q").code).toBe(0);
    expect(cli("disasm", xbin).code).toBe(0);
    const v = cli("verify", "examples/digits.s4d", "--target", "ideal", "--input", "examples/digits-input.npy");
    expect(v.code).toBe(0);
    expect(v.out).toMatch(/verification passed/);
  });

  test("imssa-verify exits 3 when the error exceeds the tolerance", () => {
    const v = cli("verify", "examples/tiny.s4d", "--target", "xbar64", "--input", "examples/tiny-input.npy", "--tolerance", "0");
    expect(v.code).toBe(3);
    expect(v.out).toMatch(/EXCEEDS BOUND/);
  });

  test("--emit ir round-trips: compiling the IR gives the same program bytes", () => {
    const ir = join(dir, "digits.ir.json");
    expect(cli("compile", "examples/digits.s4d", "--emit", "ir", "-o", ir).code).toBe(0);
    const a = join(dir, "a.xbin");
    const b = join(dir, "b.xbin");
    expect(cli("compile", "examples/digits.s4d", "-q", "-o", a).code).toBe(0);
    expect(cli("compile", ir, "-q", "-o", b).code).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
  });

  test("--compare prints one row per target", () => {
    const c = cli("compile", "examples/tiny.s4d", "--compare", "xbar64,xbar128,./examples/targets/xbar32-adc4.json");
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^xbar64\s+64x64\s+\d+/m);
    expect(c.out).toMatch(/^xbar128\s+128x128\s+\d+/m);
    expect(c.out).toMatch(/^xbar32-adc4\s+32x32\s+\d+/m);
  });

  test("an ONNX step graph compiles and runs; a bad --state pair is a usage error", () => {
    const xbin = join(dir, "tiny-onnx.xbin");
    expect(cli("compile", "test/fixtures/onnx/tiny_zoh_op13.onnx", "-q", "-o", xbin).code).toBe(0);
    const r = cli("run", xbin, "--input", "test/fixtures/onnx/tiny_zoh_op13.input.npy", "--output", join(dir, "y.npy"));
    expect(r.code).toBe(0);
    expect(readNpy(join(dir, "y.npy")).shape).toEqual([2, 16, 1]);
    const bad = cli("compile", "test/fixtures/onnx/tiny_zoh_op13.onnx", "--state", "s0_in", "-o", join(dir, "never.xbin"));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/--state expects IN:OUT/);
    noStack(bad.err);
    expect(existsSync(join(dir, "never.xbin"))).toBe(false);
  });

  test("--list-targets names the shipped targets", () => {
    const l = cli("compile", "--list-targets");
    expect(l.code).toBe(0);
    expect(l.out).toMatch(/^xbar64\s+\S/m);
    expect(l.out).toMatch(/^ideal\s+\S/m);
  });
});

describe("bad input: exit 1, one clear message, no stack, no output file", () => {
  test("malformed DSL reports file:line:col", () => {
    const src = join(dir, "bad.s4d");
    writeFileSync(src, "model bad {\n  input u[1];\n  params init seed 1;\n  linear(4) oops;\n}\n");
    const out = join(dir, "bad.xbin");
    const c = cli("compile", src, "-o", out);
    expect(c.code).toBe(1);
    expect(c.err).toContain(`${src}:4:`);
    noStack(c.err);
    expect(existsSync(out)).toBe(false);
  });

  test("unknown target lists the available ones", () => {
    const c = cli("compile", "examples/tiny.s4d", "--target", "xbar65", "-o", join(dir, "t.xbin"));
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/xbar64/);
    noStack(c.err);
  });

  test("a corrupted .xbin is rejected by imssa-run and imssa-disasm", () => {
    const xbin = join(dir, "tiny.xbin");
    expect(cli("compile", "examples/tiny.s4d", "-q", "-o", xbin).code).toBe(0);
    const bytes = readFileSync(xbin);
    bytes[Math.floor(bytes.length / 2)] ^= 0x10;
    const bad = join(dir, "corrupt.xbin");
    writeFileSync(bad, bytes);
    const out = join(dir, "never.npy");
    const r = cli("run", bad, "--input", "examples/tiny-input.npy", "--output", out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/checksum/i);
    noStack(r.err);
    expect(existsSync(out)).toBe(false);
    expect(cli("disasm", bad).code).toBe(1);
  });

  test("an input of the wrong width is named with both sizes", () => {
    const xbin = join(dir, "tiny2.xbin");
    expect(cli("compile", "examples/tiny.s4d", "-q", "-o", xbin).code).toBe(0);
    const x = join(dir, "wide.npy");
    writeNpy(x, [1, 4, 3], new Float32Array(12));
    const out = join(dir, "never2.npy");
    const r = cli("run", xbin, "--input", x, "--output", out);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${x}: input has 3 features per step but the program's input "u" has 1`);
    noStack(r.err);
    expect(existsSync(out)).toBe(false);
  });

  test("a .npy that is not one is a format error naming the file", () => {
    const x = join(dir, "junk.npy");
    writeFileSync(x, "not numpy");
    const v = cli("verify", "examples/tiny.s4d", "--input", x);
    expect(v.code).toBe(1);
    expect(v.err).toContain(x);
    noStack(v.err);
  });
});
