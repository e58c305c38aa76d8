// The residual recurrence mapping (src/passes/residual.ts) and its stability rule
// (src/passes/quant-s4d.ts, residual form): the rewritten IR must compute the same function
// as the direct IR (reference evaluator), the state block must be found by dataflow at any
// place in the matrix, and the repair must keep I + q(dA - I) stable by the documented rule.

import { describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { compile, loadModel, sequencesFromBatch } from "../src/pipeline.js";
import { readFloatNpy } from "../src/common/npy.js";
import { isUserError } from "../src/common/errors.js";
import { lower } from "../src/passes/lower.js";
import { recurrenceSites, residualRecurrence } from "../src/passes/residual.js";
import { spectralRadius2, stabilizeS4DModes } from "../src/passes/quant-s4d.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { checkModel } from "../src/ir/validate.js";
import { loadTarget } from "../src/target/load.js";
import type { BlockMatrix, MatMulOp, Model } from "../src/ir/types.js";
import { makeRng, randomModel } from "./helpers/random-models.js";

const FIX = "test/fixtures/onnx/";
/** float32 unit roundoff. */
const EPS32 = 2 ** -24;

function entry(w: BlockMatrix, i: number, j: number): number {
  for (const b of w.blocks) if (i >= b.row && i < b.row + b.rows && j >= b.col && j < b.col + b.cols) return b.data[(i - b.row) * b.cols + (j - b.col)]!;
  return 0;
}

function randomInputs(model: Model, seed: number, sequences: number, steps: number): Record<string, Float64Array[]>[] {
  const rng = makeRng(seed);
  return Array.from({ length: sequences }, () =>
    Object.fromEntries(model.inputs.map((inp) => [inp.name, Array.from({ length: steps }, () => Float64Array.from({ length: inp.size }, () => 2 * rng.normal()))])),
  );
}

/**
 * Every output of both models agrees to float32 rounding. The two forms differ only in how
 * x_k is summed (dA x vs (dA - 1) x + x, both in float64), a few float64 roundings per step;
 * with stable modes those errors do not grow, so an error of even one float32 unit of the
 * output's magnitude would mean a wrong rewrite, not rounding.
 */
function expectSameFunction(a: Model, b: Model, seqs: Record<string, Float64Array[]>[]): void {
  for (const s of seqs) {
    const ra = evaluateSequence(a, s);
    const rb = evaluateSequence(b, s);
    const pairs: Array<[Float64Array, Float64Array]> = [];
    for (const k of Object.keys(ra.step)) ra.step[k]!.forEach((v, t) => pairs.push([v, rb.step[k]![t]!]));
    for (const k of Object.keys(ra.final)) pairs.push([ra.final[k]!, rb.final[k]!]);
    expect(pairs.length).toBeGreaterThan(0);
    for (const [va, vb] of pairs) {
      const scale = Math.max(1, ...Array.from(va, Math.abs));
      va.forEach((x, i) => expect(Math.abs(vb[i]! - x)).toBeLessThanOrEqual(EPS32 * scale));
    }
  }
}

describe("residual rewrite on lower-s4d's layout", () => {
  const model = randomModel(makeRng(11), { hidden: 4, modes: 6, layers: 2, outputs: "both", discretization: "zoh" });
  const direct = lower(model);
  const before = structuredClone(direct);
  const residual = residualRecurrence(direct);

  test("pure, valid, and the same function as the direct form", () => {
    expect(direct).toEqual(before);
    checkModel(residual, "residual");
    expectSameFunction(direct, residual, randomInputs(direct, 3, 3, 40));
  });

  test("the state block loses exactly I; u rows and y columns are untouched; the mapping is recorded", () => {
    const sites = recurrenceSites(direct);
    expect(sites.length).toBe(2);
    for (const s of sites) {
      const d = direct.sections.step[s.index] as MatMulOp;
      const r = residual.sections.step.find((o) => o.out === d.out) as MatMulOp;
      expect(r.residual).toEqual({ row: 0, col: 0, length: s.length });
      for (let i = 0; i < d.weight.rows; i++)
        for (let j = 0; j < d.weight.cols; j++) {
          const inBlock = i < s.length && j < s.length;
          expect(entry(r.weight, i, j)).toBe(entry(d.weight, i, j) - (inBlock && i === j ? 1 : 0));
        }
    }
    // one add per recurrence, reading the increment and the previous state
    const adds = residual.sections.step.filter((o) => o.op === "add" && o.out.endsWith(".next"));
    expect(adds.length).toBeGreaterThanOrEqual(2);
  });

  test("idempotent: the residual IR has no sites left", () => {
    expect(recurrenceSites(residual)).toEqual([]);
    expect(residualRecurrence(residual)).toEqual(residual);
  });
});

describe("residual rewrite finds the state block by dataflow", () => {
  // A hand-built recurrence with the state as the SECOND operand and its next value in the
  // MIDDLE of the result (as a k-step unrolled matrix may have): rows [u (2); x (4)],
  // cols [y0 (1); x' (4); y1 (1)], one rotation-like 2x2 block per mode.
  const a = [0.9, 0.3, -0.3, 0.9, 0.8, -0.1, 0.1, 0.8];
  const blocks: BlockMatrix["blocks"] = [
    { row: 0, col: 0, rows: 2, cols: 6, data: [0.5, 0.1, 0.2, 0.3, 0.4, -0.2, 0.6, -0.1, 0.05, 0.2, 0.1, 0.3] },
    { row: 2, col: 0, rows: 4, cols: 1, data: [0.2, -0.4, 0.1, 0.3] },
    { row: 2, col: 1, rows: 2, cols: 2, data: a.slice(0, 4) },
    { row: 4, col: 3, rows: 2, cols: 2, data: a.slice(4, 8) },
    { row: 2, col: 5, rows: 4, cols: 1, data: [0.3, 0.1, -0.2, 0.5] },
  ];
  const model: Model = {
    irVersion: 1,
    name: "offsets",
    level: "lowered",
    inputs: [{ name: "u", size: 2 }],
    outputs: [
      { name: "y0", value: "y0", section: "step" },
      { name: "y1", value: "y1", section: "step" },
    ],
    state: [{ name: "S", size: 4 }],
    sections: {
      step: [
        { op: "state_read", out: "prev", state: "S" },
        { op: "matmul", out: "mm", xs: ["u", "prev"], weight: { rows: 6, cols: 6, blocks }, origin: "s4d" },
        { op: "slice", out: "y0", x: "mm", start: 0, length: 1 },
        { op: "slice", out: "next", x: "mm", start: 1, length: 4 },
        { op: "slice", out: "y1", x: "mm", start: 5, length: 1 },
        { op: "state_write", out: "w", state: "S", x: "next" },
      ],
      final: [],
    },
  };

  test("the block at rows [2, 6) x cols [1, 5) loses I, nothing else changes, same function", () => {
    checkModel(model, "offsets");
    const [site] = recurrenceSites(model);
    expect(site).toMatchObject({ row: 2, col: 1, length: 4 });
    const r = residualRecurrence(model);
    checkModel(r, "offsets residual");
    const mm = r.sections.step.find((o) => o.out === "mm") as MatMulOp;
    expect(mm.residual).toEqual({ row: 2, col: 1, length: 4 });
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++) {
        const onDiagonal = i >= 2 && j >= 1 && j < 5 && i - 2 === j - 1;
        expect(entry(mm.weight, i, j)).toBe(entry({ rows: 6, cols: 6, blocks }, i, j) - (onDiagonal ? 1 : 0));
      }
    // x_k keeps its name (the state_write is unchanged); the slice now yields the increment
    const add = r.sections.step.find((o) => o.out === "next");
    expect(add).toMatchObject({ op: "add", b: "prev" });
    expectSameFunction(model, r, randomInputs(model, 5, 2, 30));
  });
});

describe("residual form on the ONNX classifier", () => {
  const model = loadModel(`${FIX}scan_cls_op17.onnx`);
  test("direct and residual lowered IR give the same logits (float reference)", () => {
    const r = residualRecurrence(model);
    expect(recurrenceSites(model).length).toBe(2);
    const x = readFloatNpy(`${FIX}scan_cls_op17.input.npy`);
    const seqs = sequencesFromBatch(model, x.data.subarray(0, 4 * 64 * 2), [4, 64, 2], "input");
    expectSameFunction(model, r, seqs);
  });

  test("the compiled residual IR holds the mapping and stable modes on xbar64", () => {
    const { quantized, lowered } = compile(model, loadTarget("xbar64"), { recurrence: "residual" });
    const mms = quantized.sections.step.filter((o): o is MatMulOp => o.op === "matmul" && o.origin === "s4d");
    expect(mms.length).toBe(2);
    for (const mm of mms) {
      expect(mm.residual).toEqual({ row: 0, col: 0, length: 64 });
      expect(lowered.sections.step.find((o) => o.out === mm.out)).toMatchObject({ residual: mm.residual });
      // every mode of I + W (the chip's transition) has radius < 1
      for (let k = 0; k < 32; k++) {
        const r = spectralRadius2(1 + entry(mm.weight, 2 * k, 2 * k), entry(mm.weight, 2 * k, 2 * k + 1), entry(mm.weight, 2 * k + 1, 2 * k), 1 + entry(mm.weight, 2 * k + 1, 2 * k + 1));
        expect(r).toBeLessThan(1);
      }
    }
  });
});

describe("residual stability repair (quant-s4d.ts), numbers derived by hand", () => {
  // One mode, column scale s = 0.01 in both state columns, L = 15.
  // dA = 0.996 + 0.026i: |dA|^2 = 0.992016 + 0.000676 = 0.992692, radius 0.99634 < 1.
  // dA - I entries [re->re, re->im, im->re, im->im] = [-0.004, 0.026, -0.026, -0.004].
  // Nearest levels: round(-0.4) = -0, round(2.6) = 3, round(-2.6) = -3, -0, so
  // I + q s = [[1, 0.03], [-0.03, 1]]: radius sqrt(1 + 0.0009) = 1.00045 >= 1 (unstable).
  // Direct-form steps toward zero cannot help (the diagonal levels are 0; the off-diagonal
  // ones toward 0 keep a unit diagonal, radius >= 1). One step in the residual rule:
  //   d0 = -1: [[0.99, 0.03], [-0.03, 1]]: det = 0.99 + 0.0009 = 0.9909, half = 0.995,
  //            half^2 = 0.990025 < det: complex pair, radius sqrt(0.9909) = 0.99544 < 1,
  //            error (0.006)^2 + (0.004)^2 + (0.004)^2 + (0.004)^2 = 8.4e-5;
  //   d3 = -1: the mirror image, the same error; d0 comes first in the order: it wins.
  //   Off-diagonal steps alone keep the unit diagonal: radius >= 1.
  const s = 0.01;
  const f = [-0.004, 0.026, -0.026, -0.004];
  const float: BlockMatrix = { rows: 3, cols: 3, blocks: [{ row: 0, col: 0, rows: 2, cols: 2, data: f }, { row: 2, col: 0, rows: 1, cols: 2, data: [0.15, 0.05] }] };
  const quantized = (): BlockMatrix => ({
    rows: 3,
    cols: 3,
    blocks: [
      { row: 0, col: 0, rows: 2, cols: 2, data: f.map((v) => Math.round(v / s) * s) },
      { row: 2, col: 0, rows: 1, cols: 2, data: [0.15, 0.05] },
    ],
  });

  test("the hand-derived repair: one step on the first diagonal level", () => {
    const q = quantized();
    expect(q.blocks[0]!.data.map((v) => Math.round(v / s))).toEqual([-0, 3, -3, -0]);
    const res = stabilizeS4DModes(float, q, [s, s, 1], { row: 0, col: 0, length: 2, residual: true }, 15);
    expect(res.repairs.length).toBe(1);
    const r = res.repairs[0]!;
    expect(r.roundedLevels.map((v) => v + 0)).toEqual([0, 3, -3, 0]);
    expect(r.levels.map((v) => v + 0)).toEqual([-1, 3, -3, 0]);
    expect(r.steps).toBe(1);
    expect(r.roundedRadius).toBeCloseTo(Math.sqrt(1.0009), 12);
    expect(r.radius).toBeCloseTo(Math.sqrt(0.9909), 12);
    expect(r.floatRadius).toBeCloseTo(Math.sqrt(0.992692), 12);
    expect(q.blocks[0]!.data).toEqual([-1 * s, 3 * s, -3 * s, -0]);
    // the B row is untouched
    expect(q.blocks[1]!.data).toEqual([0.15, 0.05]);
  });

  test("the same levels read as the direct form are not repaired the residual way", () => {
    // As a direct block [[0, .03], [-.03, 0]] has radius 0.03: nothing to repair.
    const q = quantized();
    const res = stabilizeS4DModes(float, q, [s, s, 1], 2, 15);
    expect(res.repairs).toEqual([]);
    expect(res.unstableInFloat).toBe(0);
  });

  test("a column scale of 2 or more leaves no stable diagonal level: a user error", () => {
    // s = 2.5: levels of dA - I = -0.004 / 2.5 round to 0, the block is I: radius 1; the
    // nearest diagonal level to -1/s = -0.4 is 0 (|1 + l s| >= 1 for every integer l).
    const big = 2.5;
    const q: BlockMatrix = { rows: 2, cols: 2, blocks: [{ row: 0, col: 0, rows: 2, cols: 2, data: [0, 0, 0, 0] }] };
    const fl: BlockMatrix = { rows: 2, cols: 2, blocks: [{ row: 0, col: 0, rows: 2, cols: 2, data: [-0.004, 0, 0, -0.004] }] };
    let err: unknown;
    try {
      stabilizeS4DModes(fl, q, [big, big], { row: 0, col: 0, length: 2, residual: true }, 15);
    } catch (e) {
      err = e;
    }
    expect(isUserError(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/--recurrence direct/);
  });
});

describe("imssa-compile --recurrence", () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ["dist/cli/compile.js", ...args], { encoding: "utf8" });
  const records = (json: string) => (JSON.parse(json) as Model).sections.step.flatMap((o) => (o.op === "matmul" && o.origin === "s4d" ? [o.residual] : []));

  test("residual (the default) records the mapping, direct does not, anything else is a usage error", () => {
    if (!existsSync("dist/cli/compile.js")) throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
    const res = cli("examples/tiny.s4d", "--emit", "lowered-ir", "-q");
    const direct = cli("examples/tiny.s4d", "--emit", "lowered-ir", "--recurrence", "direct", "-q");
    expect(res.status).toBe(0);
    expect(direct.status).toBe(0);
    const r = records(res.stdout);
    expect(r.length).toBe(1);
    // tiny.s4d: H = 4 channels, N = 8 (M = 4 complex modes): 2 * 4 * 4 = 32 state words
    expect(r[0]).toEqual({ row: 0, col: 0, length: 32 });
    expect(records(direct.stdout)).toEqual([undefined]);
    const bad = cli("examples/tiny.s4d", "--recurrence", "delta", "-q");
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--recurrence/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});
