import { describe, expect, test } from "@jest/globals";
import { UserError } from "../src/common/errors.js";
import type { MatMulOp, Model } from "../src/ir/types.js";
import { checkModel } from "../src/ir/validate.js";
import { lower } from "../src/passes/lower.js";
import { requestedLevels } from "../src/passes/quant-request.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { makeRng, randomInputs, randomModel, randomS4DOp, singleS4DModel } from "./helpers/random-models.js";

/** Largest |a - b| over all step and final outputs of two evaluations. */
function maxOutputDiff(a: Model, b: Model, inputs: Record<string, Float64Array[]>): number {
  const ra = evaluateSequence(a, inputs);
  const rb = evaluateSequence(b, inputs);
  let worst = 0;
  let compared = 0;
  for (const name of Object.keys(ra.step)) {
    ra.step[name]!.forEach((v, t) => {
      const w = rb.step[name]![t]!;
      expect(w.length).toBe(v.length);
      for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w[i]!));
      compared += v.length;
    });
  }
  for (const name of Object.keys(ra.final)) {
    const v = ra.final[name]!;
    const w = rb.final[name]!;
    expect(w.length).toBe(v.length);
    for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w[i]!));
    compared += v.length;
  }
  expect(compared).toBeGreaterThan(0);
  return worst;
}

function matmuls(m: Model): MatMulOp[] {
  return [...m.sections.step, ...m.sections.final].filter((o): o is MatMulOp => o.op === "matmul");
}

describe("lower", () => {
  for (const discretization of ["zoh", "bilinear"] as const) {
    for (const outputs of ["both", "final", "step"] as const) {
      test(`random networks, ${discretization}, outputs ${outputs}: lowered IR matches the model IR to 1e-9`, () => {
        for (let seed = 1; seed <= 6; seed++) {
          const rng = makeRng(seed * 101 + (discretization === "zoh" ? 0 : 7) + outputs.length);
          const model = randomModel(rng, { discretization, outputs });
          const before = JSON.stringify(model);
          const lowered = lower(model);
          expect(JSON.stringify(model)).toBe(before); // pure
          expect(lowered.level).toBe("lowered");
          checkModel(lowered, "lowered");
          const inputs = randomInputs(rng, model, rng.int(1, 40));
          expect(maxOutputDiff(model, lowered, inputs)).toBeLessThanOrEqual(1e-9);
        }
      });
    }
  }

  test("one fused matmul per s4d layer, blocks hold only the structural nonzeros", () => {
    const rng = makeRng(5);
    const op = randomS4DOp(rng, { channels: 5, modes: 7, discretization: "zoh", withB: true });
    const lowered = lower(singleS4DModel(op));
    const mms = matmuls(lowered);
    expect(mms).toHaveLength(1);
    const mm = mms[0]!;
    const H = 5;
    const M = 7;
    expect(mm.origin).toBe("s4d");
    expect(mm.weight.rows).toBe(2 * H * M + H);
    expect(mm.weight.cols).toBe(2 * H * M + H);
    // 2x2 rotation per mode, B row and C column per channel, and D: 8M + 1 entries per channel.
    const stored = mm.weight.blocks.reduce((n, b) => n + b.data.length, 0);
    expect(stored).toBe(H * (8 * M + 1));
    // The state is read, fed through the matmul, written back.
    expect(lowered.sections.step.map((o) => o.op)).toEqual(["state_read", "matmul", "slice", "state_write", "slice"]);
  });

  test("large S4D (H=8, M=32) with long sequences matches to 1e-9", () => {
    const rng = makeRng(77);
    for (const discretization of ["zoh", "bilinear"] as const) {
      const op = randomS4DOp(rng, { channels: 8, modes: 32, discretization });
      const model = singleS4DModel(op);
      const lowered = lower(model);
      checkModel(lowered, "lowered");
      expect(maxOutputDiff(model, lowered, randomInputs(rng, model, 200))).toBeLessThanOrEqual(1e-9);
    }
  });

  test("layernorm becomes normalize + affine and meanpool an accumulator state", () => {
    const model = randomModel(makeRng(9), { norm: "post", outputs: "final", layers: 1 });
    const lowered = lower(model);
    const kinds = new Set([...lowered.sections.step, ...lowered.sections.final].map((o) => o.op));
    for (const k of ["layernorm", "meanpool", "s4d", "linear"]) expect(kinds.has(k as never)).toBe(false);
    for (const k of ["normalize", "affine", "div_steps", "state_read", "state_write", "matmul"]) expect(kinds.has(k as never)).toBe(true);
    expect(lowered.state.length).toBe(model.state.length + 1);
    expect(lowered.sections.final.map((o) => o.op)).toEqual(["state_read", "div_steps", "matmul"]);
  });

  test("a linear weight is transposed to crossbar orientation", () => {
    const model: Model = {
      irVersion: 1,
      name: "lin",
      level: "model",
      inputs: [{ name: "x", size: 3 }],
      outputs: [{ name: "y", value: "y", section: "step" }],
      state: [],
      sections: {
        step: [{ op: "linear", out: "y", x: "x", weight: { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, bias: { shape: [2], data: [0.5, -0.5] } }],
        final: [],
      },
    };
    const mm = matmuls(lower(model))[0]!;
    expect(mm.origin).toBe("dense");
    expect(mm.weight).toEqual({ rows: 3, cols: 2, blocks: [{ row: 0, col: 0, rows: 3, cols: 2, data: [1, 4, 2, 5, 3, 6] }] });
    expect(mm.bias).toEqual([0.5, -0.5]);
  });

  test("quant level requests are carried to the matmuls", () => {
    const rng = makeRng(3);
    const model = randomModel(rng, { layers: 1, outputs: "both" });
    for (const op of model.sections.step) if (op.op === "linear" || op.op === "s4d") op.quant = { levels: 3 };
    const lowered = lower(model);
    const steps = matmuls({ ...lowered, sections: { step: lowered.sections.step, final: [] } });
    expect(steps.length).toBeGreaterThan(0);
    for (const mm of steps) expect(requestedLevels(lowered, "step", mm.out)).toBe(3);
    expect(requestedLevels(lowered, "final", "head.out")).toBeUndefined();
  });

  test("even level counts and non-model IR are user errors", () => {
    const model = randomModel(makeRng(4), { layers: 1 });
    const lin = model.sections.step.find((o) => o.op === "linear")!;
    if (lin.op === "linear") lin.quant = { levels: 4 };
    expect(() => lower(model)).toThrow(UserError);
    const ok = randomModel(makeRng(4), { layers: 1 });
    expect(() => lower(lower(ok))).toThrow(/level "model"/);
  });
});
