// End to end, in process: DSL example -> compile -> .xbin bytes -> interpreter, checked
// against the float64 reference evaluator of the model-level IR.

import { describe, expect, test } from "@jest/globals";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import { Rng } from "../src/common/rng.js";
import { runProgram } from "../src/interp/run.js";
import type { Model } from "../src/ir/types.js";
import { compile, loadModel, sequencesFromBatch } from "../src/pipeline.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import type { Target } from "../src/target/types.js";
import { errorBounds } from "../src/verify/bound.js";
import { compareArrays } from "../src/verify/metrics.js";
import { verifyModel } from "../src/verify/index.js";

/** Seeded smooth inputs [B, T, d] in roughly [-1, 1]. */
function inputs(B: number, T: number, d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const rand = (): number => rng.uniform();
  const x = new Float32Array(B * T * d);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < d; i++) {
      let v = 0;
      for (let t = 0; t < T; t++) x[(b * T + t) * d + i] = v = 0.8 * v + 0.6 * (rand() - 0.5);
    }
  return x;
}

/** The model-level reference laid out like the interpreter's output of `section`. */
function referenceLayout(model: Model, x: Float32Array, shape: [number, number, number], section: "step" | "final"): Float64Array {
  const seqs = sequencesFromBatch(model, x, shape, "<test>");
  const parts: number[] = [];
  for (const seq of seqs) {
    const r = evaluateSequence(model, seq);
    const outs = model.outputs.filter((o) => o.section === section);
    if (section === "final") for (const o of outs) parts.push(...r.final[o.name]!);
    else for (let t = 0; t < shape[1]; t++) for (const o of outs) parts.push(...r.step[o.name]![t]!);
  }
  return Float64Array.from(parts);
}

function runViaBytes(model: Model, target: Target, x: Float32Array, shape: [number, number, number]) {
  const { program } = compile(model, target);
  // Through the container, as imssa-run sees it.
  const loaded = decodeProgram(encodeProgram(program), "<memory>");
  return runProgram(loaded, x, shape);
}

const EXAMPLES = ["digits", "tiny", "trend", "ternary"] as const;

describe("ideal target matches the float reference to float32 rounding", () => {
  test.each(EXAMPLES)("%s", (name) => {
    const model = loadModel(`examples/${name}.s4d`);
    const d = model.inputs[0]!.size;
    const shape: [number, number, number] = [2, name === "digits" ? 24 : 32, d];
    const x = inputs(...shape, 11);
    const run = runViaBytes(model, loadTarget("ideal"), x, shape);
    const section = run.step ? "step" : "final";
    const actual = (run.step ?? run.final)!;
    const ref = referenceLayout(model, x, shape, section);
    const m = compareArrays(actual, ref);
    if (name === "ternary") {
      // Ternary annotations quantize weights even on a float target; the bound includes that.
      const r = verifyModel(model, loadTarget("ideal"), x, shape, { calibration: null, inputFile: "<test>" });
      expect(r.pass).toBe(true);
      expect(r.boundMethod).toBe("float32+weight-levels");
    } else {
      expect(m.relativeMaxError).toBeLessThanOrEqual(1e-5);
    }
  });
});

describe("xbar64 stays within the bound its quantization implies", () => {
  test.each(EXAMPLES)("%s", (name) => {
    const model = loadModel(`examples/${name}.s4d`);
    const shape: [number, number, number] = [2, name === "digits" ? 24 : 32, model.inputs[0]!.size];
    const r = verifyModel(model, loadTarget("xbar64"), inputs(...shape, 5), shape, { calibration: null, inputFile: "<test>" });
    expect(r.boundMethod).toBe("quantization-noise");
    for (const o of r.outputs) {
      expect(o.maxAbsError).toBeLessThanOrEqual(o.bound);
      // The chip is not exact: a zero error would mean quantization was skipped.
      expect(o.maxAbsError).toBeGreaterThan(0);
    }
  });
});

describe("the verification bound follows the converters' resolution", () => {
  test("12-bit DAC/ADC and 256-level devices give a much tighter bound than xbar64", () => {
    const model = loadModel("examples/tiny.s4d");
    const shape: [number, number, number] = [2, 32, 1];
    const x = inputs(...shape, 3);
    const seqs = sequencesFromBatch(model, x, shape, "<test>");
    const reference = seqs.map((s) => evaluateSequence(model, s));
    const coarse = loadTarget("xbar64");
    const fine: Target = { ...coarse, crossbar: { ...coarse.crossbar, numerics: { kind: "quantized", deviceLevels: 256, dacBits: 12, adcBits: 12 } } };
    const bound = (t: Target): number => {
      const c = compile(model, t);
      return errorBounds(c.quantized, c.plan, c.program, t, seqs, reference).step["y"]!;
    };
    const bCoarse = bound(coarse);
    const bFine = bound(fine);
    expect(bFine).toBeLessThan(bCoarse / 4);
    // And the fine chip really is that accurate.
    const run = runProgram(compile(model, fine).program, x, shape);
    expect(compareArrays(run.step!, referenceLayout(model, x, shape, "step")).maxAbsError).toBeLessThanOrEqual(bFine);
  });
});

describe("determinism", () => {
  test("same model and inputs give bit-identical programs and outputs", () => {
    const target = loadTarget("xbar64");
    const a = compile(loadModel("examples/digits.s4d"), target).program;
    const b = compile(loadModel("examples/digits.s4d"), target).program;
    expect(Buffer.from(encodeProgram(a)).equals(Buffer.from(encodeProgram(b)))).toBe(true);
    const shape: [number, number, number] = [3, 16, 1];
    const x = inputs(...shape, 9);
    const r1 = runProgram(a, x, shape).final!;
    const r2 = runProgram(b, x, shape).final!;
    expect(Buffer.from(r1.buffer).equals(Buffer.from(r2.buffer))).toBe(true);
  });
});
