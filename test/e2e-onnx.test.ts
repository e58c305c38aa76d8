// ONNX models end to end: PyTorch export -> imssa-compile -> interpreter, checked against
// ONNX Runtime on the same graph (ideal target: float32 rounding) and against the bound
// imssa-verify derives (xbar64).

import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readFloatNpy } from "../src/common/npy.js";
import { runProgram } from "../src/interp/run.js";
import { compile, loadModel, sequencesFromBatch } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import { compareArrays } from "../src/verify/metrics.js";
import { verifyModel } from "../src/verify/index.js";
import { run, runSteps, session } from "./helpers/ort.js";

const DIR = join(process.cwd(), "test/fixtures/onnx");

interface Fixture {
  name: string;
  file: string;
  expect: "accept" | "reject";
  form: "step" | "scan";
  input: string;
  output: string;
  states: Array<{ in: string; out: string; shape: Array<number | string> }>;
  data: { input: string };
}

const fixtures: Fixture[] = (JSON.parse(readFileSync(join(DIR, "fixtures.json"), "utf8")).fixtures as Fixture[]).filter((f) => f.expect === "accept");

/** ONNX Runtime's output `fx.output` for inputs x [B, T, d]: [B, T, w] for step graphs, as the graph gives it for Scan graphs. */
async function ortOutput(fx: Fixture, x: Float32Array, B: number, T: number, d: number): Promise<Float32Array> {
  const bytes = readFileSync(join(DIR, fx.file));
  if (fx.form === "step") {
    const states = fx.states.map((s) => ({ in: s.in, out: s.out, shape: s.shape.slice(1) as number[] }));
    return (await runSteps(bytes, fx.input, states, x, B, T, d))[fx.output]!.data;
  }
  return (await run(await session(bytes), { [fx.input]: { shape: [B, T, d], data: x } }))[fx.output]!.data;
}

/** The interpreter's values of output `name`, laid out like ORT's (step: [B, T, w]; final: [B, w]). */
function interpreterOutput(fx: Fixture, target: string, x: Float32Array, shape: [number, number, number]): Float32Array {
  const model = loadModel(join(DIR, fx.file));
  const { program } = compile(model, loadTarget(target), { calibration: sequencesFromBatch(model, x, shape, fx.data.input) });
  const r = runProgram(program, x, shape);
  const isStep = program.io.stepOutputs.some((o) => o.name === fx.output);
  const bufs = isStep ? program.io.stepOutputs : program.io.finalOutputs;
  const data = (isStep ? r.step : r.final)!;
  const total = bufs.reduce((s, b) => s + b.size, 0);
  let offset = 0;
  for (const b of bufs) {
    if (b.name === fx.output) {
      const rows = data.length / total;
      const out = new Float32Array(rows * b.size);
      for (let i = 0; i < rows; i++) out.set(data.subarray(i * total + offset, i * total + offset + b.size), i * b.size);
      return out;
    }
    offset += b.size;
  }
  throw new Error(`program has no output ${fx.output}`);
}

describe("ideal target: interpreter matches ONNX Runtime", () => {
  test.each(fixtures.map((f) => [f.name, f] as const))("%s", async (_name, fx) => {
    const x = readFloatNpy(join(DIR, fx.data.input));
    const shape = x.shape as [number, number, number];
    const expected = await ortOutput(fx, x.data, ...shape);
    const actual = interpreterOutput(fx, "ideal", x.data, shape);
    expect(compareArrays(actual, expected).relativeMaxError).toBeLessThanOrEqual(1e-4);
  });
});

/** At most `n` sequences of a [B, T, d] batch: the noise-model bound costs several evaluations per sequence. */
function firstSequences(x: { shape: number[]; data: Float32Array }, n: number): { shape: number[]; data: Float32Array } {
  const [B, T, d] = x.shape as [number, number, number];
  const b = Math.min(B, n);
  return { shape: [b, T, d], data: x.data.subarray(0, b * T * d) };
}

describe("xbar64: within the bound imssa-verify documents", () => {
  test.each(fixtures.map((f) => [f.name, f] as const))("%s", (_name, fx) => {
    const model = loadModel(join(DIR, fx.file));
    const x = firstSequences(readFloatNpy(join(DIR, fx.data.input)), 4);
    const calibration = sequencesFromBatch(model, x.data, x.shape, fx.data.input);
    const r = verifyModel(model, loadTarget("xbar64"), x.data, x.shape, { calibration, inputFile: fx.data.input });
    expect(r.boundMethod).toBe("quantization-noise");
    for (const o of r.outputs) expect(o.maxAbsError).toBeLessThanOrEqual(o.bound);
  });
});
