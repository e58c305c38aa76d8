import { afterAll, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeProgramFile } from "../src/backend/container.js";
import { UserError } from "../src/common/errors.js";
import { readFloatNpy, writeNpy } from "../src/common/npy.js";
import { defaultFinalOutput, main } from "../src/cli/run.js";
import { loadTarget } from "../src/target/load.js";
import { ProgramBuilder } from "./helpers/program-builder.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "imssa-run-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** step: y = relu(W x) on a 2x2 quantized crossbar; final: mean of x over the steps. */
function writeProgram(name: string, outputs: { step: boolean; final: boolean }): string {
  const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 64, globalWords: 64 });
  b.input("x", 2, 0);
  if (outputs.step) b.stepOutput("y", 2, 8);
  if (outputs.final) b.finalOutput("mean", 2, 16);
  b.crossbar({ tile: 0, rows: 2, cols: 2, levels: [8, 0, 0, -8], inRange: [1, 1], colScale: [0.125, 0.125], outRange: [1, 1] });
  b.emit(0, "step", [
    { op: "load", dst: 0, global: 0, len: 2 },
    { op: "mvm", xbar: 0, rowStart: 0, rows: 2, colStart: 0, cols: 2, src: 0, dst: 4, acc: false },
    { op: "vrelu", dst: 4, a: 4, len: 2 },
    { op: "vadd", dst: 10, a: 10, b: 0, len: 2 },
    { op: "store", global: 8, src: 4, len: 2 },
  ], "dense");
  b.emit(0, "final", [
    { op: "vdivsteps", dst: 12, a: 10, len: 2 },
    { op: "store", global: 16, src: 12, len: 2 },
  ]);
  const file = join(dir, name);
  writeProgramFile(file, b.build());
  return file;
}

function writeInput(name: string, shape: number[], data: number[]): string {
  const file = join(dir, name);
  writeNpy(file, shape, Float32Array.from(data));
  return file;
}

async function run(...args: string[]): Promise<string> {
  let out = "";
  const spy = jest.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await main(["node", "imssa-run", ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

// x = [[0.5, 0.25], [-1, 0.5]]: W = diag(1, -1) on the crossbar (levels +-8, colScale 1/8),
// DAC codes round(0.5*127) = 64 etc.; values below are multiples of 1/127 after the ADC.
const X = [0.5, 0.25, -1, 0.5];

describe("imssa-run", () => {
  test("step and final outputs, report, report JSON and trace", async () => {
    const prog = writeProgram("both.xbin", { step: true, final: true });
    const x = writeInput("x.npy", [1, 2, 2], X);
    const y = join(dir, "y.npy");
    const text = await run(prog, "--input", x, "--output", y, "--report", "--report-json", join(dir, "r.json"), "--trace", join(dir, "t.json"));
    const ys = readFloatNpy(y);
    expect(ys.shape).toEqual([1, 2, 2]);
    // relu(W x): step 0 [64/127, relu(-32/127) = 0]; step 1 [relu(-1) = 0, relu(-64/127) = 0]
    expect(Array.from(ys.data)).toEqual([Math.fround(64 / 127), 0, 0, 0]);
    const fs = readFloatNpy(defaultFinalOutput(y));
    expect(fs.shape).toEqual([1, 2]);
    expect(Array.from(fs.data)).toEqual([Math.fround(-0.5 / 2), Math.fround(0.75 / 2)]);
    expect(text).toMatch(/step \(first\)/);
    expect(text).toMatch(/ADC saturations: 0 of 4 conversions/);
    expect(text).toMatch(/dense/);
    const report = JSON.parse(readFileSync(join(dir, "r.json"), "utf8")) as { steps: number; sections: { stepFirst: { cycles: number } } };
    expect(report.steps).toBe(2);
    expect(report.sections.stepFirst.cycles).toBeGreaterThan(0);
    const trace = JSON.parse(readFileSync(join(dir, "t.json"), "utf8")) as { traceEvents: { ph: string }[]; displayTimeUnit: string };
    expect(trace.displayTimeUnit).toBe("ns");
    expect(trace.traceEvents.some((e) => e.ph === "X")).toBe(true);
  });

  test("2-D input gives 2-D outputs; final-only programs write final outputs to --output", async () => {
    const prog = writeProgram("final.xbin", { step: false, final: true });
    const x = writeInput("x2.npy", [2, 2], X);
    const out = join(dir, "f.npy");
    await run(prog, "--input", x, "--output", out);
    const fs = readFloatNpy(out);
    expect(fs.shape).toEqual([2]);
    expect(Array.from(fs.data)).toEqual([Math.fround(-0.25), Math.fround(0.375)]);
  });

  test("an input size mismatch fails and writes no output", async () => {
    const prog = writeProgram("bad.xbin", { step: true, final: true });
    const x = writeInput("x3.npy", [1, 3], [1, 2, 3]);
    const out = join(dir, "never.npy");
    await expect(run(prog, "--input", x, "--output", out)).rejects.toThrow(UserError);
    await expect(run(prog, "--input", x, "--output", out)).rejects.toThrow(/3 features per step but the program's input "x" has 2/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(defaultFinalOutput(out))).toBe(false);
  });

  test("--final-output for a program without final outputs is a usage error", async () => {
    const prog = writeProgram("step.xbin", { step: true, final: false });
    const x = writeInput("x4.npy", [1, 2], [1, 2]);
    await expect(run(prog, "--input", x, "--final-output", join(dir, "z.npy"))).rejects.toThrow(/no final outputs/);
  });

  test("default final output name", () => {
    expect(defaultFinalOutput("out/y.npy")).toBe("out/y.final.npy");
    expect(defaultFinalOutput("y")).toBe("y.final.npy");
  });
});
