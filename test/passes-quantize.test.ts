import { describe, expect, test } from "@jest/globals";
import { UserError } from "../src/common/errors.js";
import type { MatMulOp, Model } from "../src/ir/types.js";
import { modelToJson } from "../src/ir/json.js";
import { checkModel, validateModel } from "../src/ir/validate.js";
import { defaultCalibration, DEFAULT_SEQUENCES, DEFAULT_STEPS } from "../src/passes/calibrate.js";
import { lower } from "../src/passes/lower.js";
import { quantize, RANGE_MARGIN } from "../src/passes/quantize.js";
import { quantizeMatrix } from "../src/passes/quant-weights.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import { makeRng, randomInputs, randomModel, type Rng } from "./helpers/random-models.js";
import { denseOf, linearModel } from "./helpers/linear-model.js";

const xbar = loadTarget("xbar64");
const ideal = loadTarget("ideal");

function matmuls(m: Model): Array<{ op: MatMulOp; section: "step" | "final" }> {
  const out: Array<{ op: MatMulOp; section: "step" | "final" }> = [];
  for (const section of ["step", "final"] as const) for (const op of m.sections[section]) if (op.op === "matmul") out.push({ op, section });
  return out;
}

/** Dense W[i][j] of a matmul's weights. */
function dense(op: MatMulOp): Float64Array {
  return denseOf(op.weight);
}

/** How far dense row-major weights are from integer multiples of their column scale, and the largest level. */
function levelStats(w: Float64Array, colScale: number[]): { offGrid: number; topLevel: number } {
  let offGrid = 0;
  let topLevel = 0;
  w.forEach((v, idx) => {
    const level = v / colScale[idx % colScale.length]!;
    offGrid = Math.max(offGrid, Math.abs(level - Math.round(level)));
    topLevel = Math.max(topLevel, Math.abs(Math.round(level)));
  });
  return { offGrid, topLevel };
}

/** W[o][i] = t * s_o with t uniform on {-k..k} and a random positive scale per output. */
function gridWeights(rng: Rng, nOut: number, nIn: number, k: number): number[] {
  const scales = Array.from({ length: nOut }, () => Math.exp(rng.normal()) * 0.05);
  const w: number[] = [];
  for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) w.push(rng.int(-k, k) * scales[o]!);
  return w;
}

/** Per matmul, the abs-max of inputs and pre-bias outputs seen while evaluating `m` on `seqs`. */
function observedRanges(m: Model, seqs: Record<string, Float64Array[]>[]): Map<string, { inMax: number; outMax: Float64Array }> {
  const res = new Map<string, { inMax: number; outMax: Float64Array }>();
  const probeOutputs = [...m.outputs];
  for (const { op, section } of matmuls(m)) {
    res.set(`${section}:${op.out}`, { inMax: 0, outMax: new Float64Array(op.weight.cols) });
    if (section === "final") {
      op.xs.forEach((x, k) => probeOutputs.push({ name: `probe.${op.out}.${k}`, value: x, section: "final" }));
      probeOutputs.push({ name: `probe.${op.out}.y`, value: op.out, section: "final" });
    }
  }
  const see = (op: MatMulOp, section: string, xs: Float64Array[], y: Float64Array): void => {
    const r = res.get(`${section}:${op.out}`)!;
    for (const x of xs) for (const v of x) r.inMax = Math.max(r.inMax, Math.abs(v));
    y.forEach((v, j) => (r.outMax[j] = Math.max(r.outMax[j]!, Math.abs(v - (op.bias?.[j] ?? 0)))));
  };
  const probed = { ...m, outputs: probeOutputs };
  for (const seq of seqs) {
    const out = evaluateSequence(probed, seq, {
      onStep: (_t, values) => {
        for (const { op, section } of matmuls(m)) if (section === "step") see(op, section, op.xs.map((x) => values.get(x)!), values.get(op.out)!);
      },
    });
    for (const { op, section } of matmuls(m)) {
      if (section === "final") see(op, section, op.xs.map((_, k) => out.final[`probe.${op.out}.${k}`]!), out.final[`probe.${op.out}.y`]!);
    }
  }
  return res;
}

describe("weight quantization", () => {
  test("ternary and k-level QAT weights are represented exactly", () => {
    const rng = makeRng(11);
    const cases: Array<{ k: number; levels?: number; maxLevel: number }> = [
      { k: 1, levels: 3, maxLevel: 1 },
      { k: 1, maxLevel: 15 }, // ternary on the full 16-level device
      { k: 3, levels: 7, maxLevel: 3 },
      { k: 3, maxLevel: 15 },
      { k: 7, levels: 15, maxLevel: 7 },
      { k: 15, maxLevel: 15 },
    ];
    for (const { k, levels, maxLevel } of cases) {
      const nOut = 40;
      const nIn = 50;
      const w = gridWeights(rng, nOut, nIn, k);
      const lowered = lower(linearModel(w, nOut, nIn, levels));
      const q = quantize(lowered, xbar, null);
      checkModel(q, "quantized");
      const mm = matmuls(q)[0]!.op;
      expect(mm.quant!.maxLevel).toBe(maxLevel);
      const before = dense(matmuls(lowered)[0]!.op);
      const after = dense(mm);
      expect(Array.from(after)).toEqual(Array.from(before)); // bit-exact
      // ... and still a valid level representation.
      const { offGrid, topLevel } = levelStats(after, mm.quant!.colScale);
      expect(offGrid).toBeLessThan(1e-9);
      expect(topLevel).toBeLessThanOrEqual(maxLevel);
    }
  });

  test("float weights: integer levels in range, error at most half a level spacing", () => {
    const rng = makeRng(12);
    for (const L of [1, 3, 15]) {
      const nOut = 33;
      const nIn = 70;
      const w = Array.from({ length: nOut * nIn }, () => rng.normal() * (rng.next() < 0.1 ? 5 : 1));
      const lowered = lower(linearModel(w, nOut, nIn, L === 15 ? undefined : 2 * L + 1));
      const mm = matmuls(quantize(lowered, xbar, null))[0]!.op;
      const before = dense(matmuls(lowered)[0]!.op);
      const after = dense(mm);
      const { offGrid, topLevel } = levelStats(after, mm.quant!.colScale);
      expect(offGrid).toBeLessThan(1e-9);
      expect(topLevel).toBe(L);
      let worstRatio = 0;
      after.forEach((v, idx) => (worstRatio = Math.max(worstRatio, Math.abs(v - before[idx]!) / mm.quant!.colScale[idx % nOut]!)));
      expect(worstRatio).toBeLessThanOrEqual(0.5 + 1e-12);
      expect(worstRatio).toBeGreaterThan(0.3); // really quantized, not passed through
    }
  });

  test("quantizeMatrix leaves block layout intact and handles all-zero columns", () => {
    const m = {
      rows: 3,
      cols: 3,
      blocks: [
        { row: 0, col: 0, rows: 2, cols: 2, data: [0.5, 0, -0.25, 0] },
        { row: 2, col: 2, rows: 1, cols: 1, data: [3] },
      ],
    };
    const q = quantizeMatrix(m, 15);
    expect(q.weight.blocks.map((b) => [b.row, b.col, b.rows, b.cols])).toEqual([
      [0, 0, 2, 2],
      [2, 2, 1, 1],
    ]);
    expect(q.weight.blocks[0]!.data).toEqual([0.5, 0, -0.25, 0]);
    expect(q.colScale[1]).toBe(1);
    expect(q.exactColumns).toBe(3);
  });
});

describe("quantize", () => {
  test("quantized linear stays within the error its weight levels imply", () => {
    const rng = makeRng(13);
    const nOut = 20;
    const nIn = 30;
    const w = Array.from({ length: nOut * nIn }, () => rng.normal());
    const model = linearModel(w, nOut, nIn);
    const lowered = lower(model);
    const q = quantize(lowered, xbar, null);
    const scale = matmuls(q)[0]!.op.quant!.colScale;
    const inputs = randomInputs(rng, model, 10);
    const a = evaluateSequence(lowered, inputs).step["y"]!;
    const b = evaluateSequence(q, inputs).step["y"]!;
    a.forEach((ya, t) => {
      const x = inputs["x"]![t]!;
      const l1 = x.reduce((s, v) => s + Math.abs(v), 0);
      ya.forEach((v, j) => expect(Math.abs(v - b[t]![j]!)).toBeLessThanOrEqual((l1 * scale[j]!) / 2 + 1e-12));
    });
  });

  test("ranges cover the calibration data with the documented margin, one DAC range per matmul", () => {
    const rng = makeRng(14);
    const model = randomModel(rng, { outputs: "both", layers: 2 });
    const lowered = lower(model);
    const calib = [randomInputs(rng, model, 30, 2), randomInputs(rng, model, 17, 0.5)];
    const q = quantize(lowered, xbar, calib);
    checkModel(q, "quantized");
    expect(q.level).toBe("quantized");
    const seen = observedRanges(q, calib);
    const mms = matmuls(q);
    expect(mms.some((m) => m.section === "final")).toBe(true);
    for (const { op, section } of mms) {
      const quant = op.quant!;
      const obs = seen.get(`${section}:${op.out}`)!;
      expect(quant.calibration).toBe("inputs");
      expect(quant.inRange).toHaveLength(op.weight.rows);
      expect(new Set(quant.inRange).size).toBe(1);
      expect(quant.inRange[0]!).toBeGreaterThanOrEqual(obs.inMax);
      expect(quant.inRange[0]!).toBeCloseTo(obs.inMax * RANGE_MARGIN, 12);
      obs.outMax.forEach((v, j) => {
        expect(quant.outRange[j]!).toBeGreaterThanOrEqual(v);
        if (v > 0) expect(quant.outRange[j]! / (v * RANGE_MARGIN)).toBeCloseTo(1, 12);
      });
    }
  });

  test("without calibration data the seeded default distribution is used", () => {
    const rng = makeRng(15);
    const model = randomModel(rng, { outputs: "final", layers: 1 });
    const lowered = lower(model);
    const q1 = quantize(lowered, xbar, null);
    const q2 = quantize(lowered, xbar, null);
    expect(JSON.stringify(q1)).toBe(JSON.stringify(q2));
    const defaults = defaultCalibration(lowered);
    expect(defaults).toHaveLength(DEFAULT_SEQUENCES);
    expect(defaults[0]!["input"]).toHaveLength(DEFAULT_STEPS);
    const seen = observedRanges(q1, defaults);
    for (const { op, section } of matmuls(q1)) {
      expect(op.quant!.calibration).toBe("default");
      expect(op.quant!.inRange[0]!).toBeCloseTo(seen.get(`${section}:${op.out}`)!.inMax * RANGE_MARGIN, 12);
    }
  });

  test("float targets keep exact weights (maxLevel 0) unless the layer asks for levels", () => {
    const rng = makeRng(16);
    const model = randomModel(rng, { outputs: "both", layers: 1 });
    const lowered = lower(model);
    const q = quantize(lowered, ideal, null);
    checkModel(q, "quantized");
    matmuls(q).forEach(({ op }, k) => {
      expect(op.quant!.maxLevel).toBe(0);
      expect(op.quant!.colScale.every((s) => s === 1)).toBe(true);
      expect(op.weight).toEqual(matmuls(lowered)[k]!.op.weight);
    });
    const w = Array.from({ length: 12 }, () => rng.normal());
    const ternary = matmuls(quantize(lower(linearModel(w, 3, 4, 3)), ideal, null))[0]!.op;
    expect(ternary.quant!.maxLevel).toBe(1);
    dense(ternary).forEach((v, idx) => expect([-1, 0, 1]).toContain(Math.round(v / ternary.quant!.colScale[idx % 3]!)));
  });

  test("the input IR is not modified", () => {
    const lowered = lower(randomModel(makeRng(17), { outputs: "both" }));
    const before = JSON.stringify(lowered);
    quantize(lowered, xbar, null);
    expect(JSON.stringify(lowered)).toBe(before);
  });

  test("asking for more levels than the device has is a resource error", () => {
    const w = Array.from({ length: 6 }, (_, i) => i - 2.5);
    const lowered = lower(linearModel(w, 2, 3, 33));
    expect(() => quantize(lowered, xbar, null)).toThrow(UserError);
    try {
      quantize(lowered, xbar, null);
    } catch (e) {
      expect((e as UserError).kind).toBe("resource");
      expect((e as UserError).message).toMatch(/33 weight levels.*31/);
    }
    expect(() => quantize(lowered, xbar, [])).toThrow(UserError);
  });

  test("lowered and quantized IR (with level requests) pass the IR schema after a JSON round trip", () => {
    const model = randomModel(makeRng(18), { outputs: "both", layers: 1 });
    for (const op of model.sections.step) if (op.op === "linear") op.quant = { levels: 3 };
    const lowered = lower(model);
    const quantized = quantize(lowered, xbar, null);
    for (const m of [lowered, quantized]) {
      const back = validateModel(JSON.parse(modelToJson(m)), m.level);
      expect(back.level).toBe(m.level);
    }
    // The recorded request survives the round trip and still drives quantization.
    const again = quantize(validateModel(JSON.parse(modelToJson(lowered)), "lowered"), xbar, null);
    expect(matmuls(again).filter((m) => m.op.quant!.maxLevel === 1).length).toBeGreaterThan(0);
  });
});
