// The per-mode state scaling pass (src/passes/scale-states.ts): it must leave the float model
// unchanged (powers of two: bit for bit), follow its documented rule, be recorded on the S4D
// matmul, stay off float-weight targets, be idempotent, and do what it is for (fewer dB
// entries on level 0 after quantization).

import { describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { compile, loadModel, sequencesFromBatch } from "../src/pipeline.js";
import { readFloatNpy } from "../src/common/npy.js";
import { lower } from "../src/passes/lower.js";
import { RANGE_RATIO, chooseStateScale, scaleStates } from "../src/passes/scale-states.js";
import { residualRecurrence } from "../src/passes/residual.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import type { BlockMatrix, MatMulOp, Model } from "../src/ir/types.js";
import { makeRng, randomModel } from "./helpers/random-models.js";

const xbar64 = loadTarget("xbar64");
const FIX = "test/fixtures/onnx/";

function s4dMatmuls(m: Model): MatMulOp[] {
  return [...m.sections.step, ...m.sections.final].filter((o): o is MatMulOp => o.op === "matmul" && o.origin === "s4d");
}

const denseCache = new WeakMap<BlockMatrix, Float64Array>();
function entry(w: BlockMatrix, i: number, j: number): number {
  let d = denseCache.get(w);
  if (!d) {
    d = new Float64Array(w.rows * w.cols);
    for (const b of w.blocks) for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) d[(b.row + r) * w.cols + b.col + c] = b.data[r * b.cols + c]!;
    denseCache.set(w, d);
  }
  return d[i * w.cols + j]!;
}

function randomInputs(model: Model, seed: number, sequences: number, steps: number): Record<string, Float64Array[]>[] {
  const rng = makeRng(seed);
  return Array.from({ length: sequences }, () =>
    Object.fromEntries(model.inputs.map((inp) => [inp.name, Array.from({ length: steps }, () => Float64Array.from({ length: inp.size }, () => 2 * rng.normal()))])),
  );
}

/** Every output of both models on the same sequences: they must be bit-identical. */
function expectSameOutputs(a: Model, b: Model, seqs: Record<string, Float64Array[]>[]): void {
  for (const s of seqs) {
    const ra = evaluateSequence(a, s);
    const rb = evaluateSequence(b, s);
    expect(Object.keys(rb.step)).toEqual(Object.keys(ra.step));
    for (const k of Object.keys(ra.step)) ra.step[k]!.forEach((v, t) => expect(Array.from(rb.step[k]![t]!)).toEqual(Array.from(v)));
    for (const k of Object.keys(ra.final)) expect(Array.from(rb.final[k]!)).toEqual(Array.from(ra.final[k]!));
  }
}

describe("state scaling on a DSL-path model", () => {
  const model = randomModel(makeRng(7), { hidden: 6, modes: 8, layers: 2, outputs: "both", discretization: "zoh" });
  const lowered = lower(model);
  const before = structuredClone(lowered);
  const cal = randomInputs(lowered, 1, 4, 48);
  const scaled = scaleStates(lowered, xbar64, { calibration: cal });

  test("scales some modes by powers of two and records them", () => {
    const mms = s4dMatmuls(scaled);
    expect(mms.length).toBe(2);
    for (const mm of mms) {
      expect(mm.stateScale).toBeDefined();
      const stateLen = mm.weight.cols - 6;
      expect(mm.stateScale!.length).toBe(stateLen / 2);
      for (const c of mm.stateScale!) expect(Math.log2(c)).toBe(Math.round(Math.log2(c)));
    }
    expect(mms.some((mm) => mm.stateScale!.some((c) => c !== 1))).toBe(true);
  });

  test("is pure", () => {
    expect(lowered).toEqual(before);
  });

  test("leaves the float model unchanged, bit for bit (other inputs than the calibration)", () => {
    expectSameOutputs(lowered, scaled, randomInputs(lowered, 99, 3, 40));
  });

  test("only touches dB (times c), C (divided by c) and nothing else", () => {
    const [a] = s4dMatmuls(lowered);
    const [b] = s4dMatmuls(scaled);
    const S = a!.weight.cols - 6;
    const c = b!.stateScale!;
    for (let i = 0; i < a!.weight.rows; i++) {
      for (let j = 0; j < a!.weight.cols; j++) {
        const w = entry(a!.weight, i, j);
        const expected = i < S && j < S ? w : i >= S && j < S ? w * c[j >> 1]! : i < S ? w / c[i >> 1]! : w;
        expect(entry(b!.weight, i, j)).toBe(expected);
      }
    }
  });

  test("follows the rule: dB stays at or below dA in every column, the state range at or below RANGE_RATIO times the input range, and 2c would break one", () => {
    for (const [a, b] of s4dMatmuls(lowered).map((m, k) => [m, s4dMatmuls(scaled)[k]!] as const)) {
      const S = a.weight.cols - 6;
      // recompute the rule's inputs independently: column maxima and calibrated ranges
      const stateRange = new Float64Array(S);
      let inputRange = 0;
      const mmIndex = lowered.sections.step.indexOf(a);
      expect(mmIndex).toBeGreaterThanOrEqual(0);
      const probe: Model = { ...lowered, outputs: [...lowered.outputs, ...a.xs.map((x) => ({ name: `probe.${x}`, value: x, section: "step" as const }))] };
      for (const s of cal) {
        const r = evaluateSequence(probe, s);
        r.step[`probe.${a.xs[0]}`]!.forEach((v) => v.forEach((x, i) => (stateRange[i] = Math.max(stateRange[i]!, Math.abs(x)))));
        for (const x of a.xs.slice(1)) r.step[`probe.${x}`]!.forEach((v) => v.forEach((y) => (inputRange = Math.max(inputRange, Math.abs(y)))));
      }
      expect(chooseStateScale(a.weight, S, stateRange, inputRange)).toEqual(b.stateScale);
      b.stateScale!.forEach((c, k) => {
        let aMax = 0;
        let bMax = 0;
        for (const j of [2 * k, 2 * k + 1]) {
          for (let i = 0; i < S; i++) aMax = Math.max(aMax, Math.abs(entry(a.weight, i, j)));
          for (let h = 0; h < 6; h++) bMax = Math.max(bMax, Math.abs(entry(a.weight, S + h, j)));
          const dA = Math.max(Math.abs(entry(a.weight, 2 * k, j)), Math.abs(entry(a.weight, 2 * k + 1, j)));
          const dB = Math.max(...Array.from({ length: 6 }, (_, h) => Math.abs(entry(a.weight, S + h, j))));
          expect(c * dB).toBeLessThanOrEqual(dA);
        }
        const range = Math.max(stateRange[2 * k]!, stateRange[2 * k + 1]!);
        expect(c * range).toBeLessThanOrEqual(RANGE_RATIO * inputRange);
        // maximal: doubling breaks one of the two caps
        expect(2 * c * bMax > aMax || 2 * c * range > RANGE_RATIO * inputRange).toBe(true);
      });
    }
  });

  test("is the identity on an already scaled model", () => {
    expect(scaleStates(scaled, xbar64, { calibration: cal })).toEqual(scaled);
  });

  test("does nothing on float-weight targets", () => {
    const ideal = scaleStates(lowered, loadTarget("ideal"), { calibration: cal });
    expect(ideal).toEqual(lowered);
  });
});

describe("state scaling through the compiler on the ONNX Scan classifier", () => {
  const model = loadModel(`${FIX}scan_cls_op17.onnx`);
  const calNpy = readFloatNpy(`${FIX}digits_train64_rows.input.npy`);
  const cal = sequencesFromBatch(model, calNpy.data, calNpy.shape, "calibration").slice(0, 16);
  const on = compile(model, xbar64, { calibration: cal });
  const off = compile(model, xbar64, { calibration: cal, stateScaling: false });

  test("the ONNX-lifted S4D matmuls are scaled and the quantized IR records it", () => {
    const mms = s4dMatmuls(on.quantized);
    expect(mms.length).toBe(2);
    for (const mm of mms) expect(mm.stateScale!.some((c) => c !== 1)).toBe(true);
    for (const mm of s4dMatmuls(off.quantized)) expect(mm.stateScale).toBeUndefined();
  });

  test("the scaled lowered IR computes the same logits as the unscaled one, bit for bit", () => {
    const x = readFloatNpy(`${FIX}scan_cls_op17.input.npy`);
    const seqs = sequencesFromBatch(model, x.data, x.shape, "input").slice(0, 4);
    expectSameOutputs(off.lowered, on.lowered, seqs);
  });

  test("fewer dB entries round to level 0", () => {
    const level0 = (q: Model, low: Model): number => {
      let n = 0;
      s4dMatmuls(q).forEach((mm, k) => {
        const f = s4dMatmuls(low)[k]!;
        const S = mm.weight.cols - 8;
        for (let j = 0; j < S; j++) for (let i = S; i < mm.weight.rows; i++) if (entry(f.weight, i, j) !== 0 && entry(mm.weight, i, j) === 0) n++;
      });
      return n;
    };
    const lostOn = level0(on.quantized, on.lowered);
    const lostOff = level0(off.quantized, off.lowered);
    expect(lostOff).toBeGreaterThan(0);
    expect(lostOn).toBeLessThan(lostOff);
  });
});

describe("imssa-compile --no-state-scaling", () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ["dist/cli/compile.js", ...args], { encoding: "utf8" });
  const s4dScales = (json: string): Array<number[] | undefined> => {
    const m = JSON.parse(json) as Model;
    return s4dMatmuls(m).map((o) => o.stateScale);
  };

  test("the quantized IR records the scaling by default and has none with the flag", () => {
    if (!existsSync("dist/cli/compile.js")) throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
    const on = cli("examples/tiny.s4d", "--target", "xbar64", "--emit", "quantized-ir", "-q");
    const off = cli("examples/tiny.s4d", "--target", "xbar64", "--emit", "quantized-ir", "--no-state-scaling", "-q");
    expect(on.status).toBe(0);
    expect(off.status).toBe(0);
    const a = s4dScales(on.stdout);
    expect(a.length).toBeGreaterThan(0);
    for (const s of a) expect(s).toBeDefined();
    expect(a.some((s) => s!.some((c) => c !== 1))).toBe(true);
    expect(s4dScales(off.stdout).every((s) => s === undefined)).toBe(true);
  });
});

describe("state scaling of the residual recurrence form (src/passes/residual.ts)", () => {
  test("the dB cap counts the state block as dA (block + I), not as dA - I", () => {
    // One mode: dA = 0.98 + 0.05i, dB = 0.02 (re only), y column C entries; state range 1, u range 1.
    // Direct: wCap = max|dA col| / |dB| = 0.98 / 0.02 = 49; rCap = 2 * 1 / 1 = 2 -> c = 2.
    // With a tiny state range (0.01) rCap = 200, so wCap decides: c = 2^floor(log2 49) = 32,
    // and the residual form must give the same 32 (with the dA - I entries, 0.05 / 0.02 = 2.5 -> 2).
    const direct: BlockMatrix = { rows: 3, cols: 3, blocks: [{ row: 0, col: 0, rows: 2, cols: 2, data: [0.98, 0.05, -0.05, 0.98] }, { row: 2, col: 0, rows: 1, cols: 3, data: [0.02, 0, 0.5] }] };
    const residual: BlockMatrix = { rows: 3, cols: 3, blocks: [{ row: 0, col: 0, rows: 2, cols: 2, data: [0.98 - 1, 0.05, -0.05, 0.98 - 1] }, { row: 2, col: 0, rows: 1, cols: 3, data: [0.02, 0, 0.5] }] };
    expect(chooseStateScale(direct, 2, [0.01, 0.01], 1)).toEqual([32]);
    expect(chooseStateScale(residual, 2, [0.01, 0.01], 1, true)).toEqual([32]);
    expect(chooseStateScale(residual, 2, [0.01, 0.01], 1, false)).toEqual([2]);
  });

  test("a residual-form IR is scaled like its direct form, and its float outputs are unchanged bit for bit", () => {
    const model = randomModel(makeRng(9), { hidden: 4, modes: 6, layers: 2, outputs: "both", discretization: "zoh" });
    const lowered = lower(model);
    const cal = randomInputs(lowered, 2, 3, 32);
    const res = residualRecurrence(lowered);
    const scaledRes = scaleStates(res, xbar64, { calibration: cal });
    const scaledDirect = scaleStates(lowered, xbar64, { calibration: cal });
    const mmsRes = s4dMatmuls(scaledRes);
    const mmsDirect = s4dMatmuls(scaledDirect);
    expect(mmsRes.length).toBe(2);
    mmsRes.forEach((m, i) => {
      expect(m.residual).toBeDefined();
      expect(m.stateScale).toBeDefined();
      expect(m.stateScale).toEqual(mmsDirect[i]!.stateScale);
    });
    expectSameOutputs(res, scaledRes, randomInputs(lowered, 4, 2, 24));
  });
});
