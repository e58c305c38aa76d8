import { describe, expect, test } from "@jest/globals";
import { UserError } from "../src/common/errors.js";
import type { Model, Op, S4DOp } from "../src/ir/types.js";
import { ReferenceEvaluator, evaluateBatch, evaluateSequence, evaluateSequenceWith } from "../src/reference/evaluate.js";
import { makeRng, randomInputs, randomModel, randomS4DOp, singleS4DModel } from "./helpers/random-models.js";

const seq = (...steps: number[][]) => steps.map((s) => Float64Array.from(s));
const tensor = (shape: number[], data: number[]) => ({ shape, data });

/** A model with one input "x" of `size`, the given ops and outputs, at the lowered level. */
function model(size: number, step: Op[], outputs: Model["outputs"], final: Op[] = [], state: Model["state"] = [], level: Model["level"] = "lowered"): Model {
  return { irVersion: 1, name: "t", level, inputs: [{ name: "x", size }], outputs, state, sections: { step, final } };
}

/** Evaluates one step of `op` applied to input x and returns its value. */
function once(op: Op, x: number[], level: Model["level"] = "lowered"): number[] {
  const m = model(x.length, [op], [{ name: "o", value: op.out, section: "step" }], [], [], level);
  return Array.from(evaluateSequence(m, { x: [Float64Array.from(x)] }).step["o"]![0]!);
}

function expectClose(actual: ArrayLike<number>, expected: number[], digits = 14): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((v, i) => expect(actual[i]).toBeCloseTo(v, digits));
}

describe("every op kind on a hand-computed example", () => {
  test("linear: W = [[1, 2], [3, 4]], b = [0.5, -1], x = [1, -1] -> [-0.5, -2]", () => {
    const op: Op = { op: "linear", out: "y", x: "x", weight: tensor([2, 2], [1, 2, 3, 4]), bias: tensor([2], [0.5, -1]) };
    expectClose(once(op, [1, -1], "model"), [-0.5, -2]);
  });

  test("linear without bias, non-square: W [1, 3] = [[1, 1, 1]] sums", () => {
    const op: Op = { op: "linear", out: "y", x: "x", weight: tensor([1, 3], [1, 1, 1]) };
    expectClose(once(op, [1, 2, 3.5], "model"), [6.5]);
  });

  test("layernorm: x = [1, 2, 3, 4], mean 2.5, biased var 1.25, eps 2.75 -> sqrt(4) = 2", () => {
    // z = (x - 2.5)/2 = [-0.75, -0.25, 0.25, 0.75]; y = z*gamma + beta.
    const op: Op = { op: "layernorm", out: "y", x: "x", gamma: tensor([4], [1, 1, 2, 2]), beta: tensor([4], [0, 1, 0, 1]), eps: 2.75 };
    expectClose(once(op, [1, 2, 3, 4], "model"), [-0.75, 0.75, 0.5, 2.5]);
  });

  test("normalize: the same without gamma/beta", () => {
    expectClose(once({ op: "normalize", out: "y", x: "x", eps: 2.75 }, [1, 2, 3, 4]), [-0.75, -0.25, 0.25, 0.75]);
  });

  test("gelu (exact erf form): gelu(1) = Phi(1) = 0.8413447460685429, gelu(-1) = -Phi(-1)", () => {
    expectClose(once({ op: "gelu", out: "y", x: "x" }, [1, -1, 0]), [0.8413447460685429, -0.15865525393145705, 0], 15);
  });

  test("sigmoid: s(0) = 1/2, s(ln 3) = 3/4, s(-ln 3) = 1/4", () => {
    expectClose(once({ op: "sigmoid", out: "y", x: "x" }, [0, Math.log(3), -Math.log(3)]), [0.5, 0.75, 0.25], 15);
  });

  test("tanh: tanh(ln 2) = (2 - 1/2)/(2 + 1/2) = 0.6", () => {
    expectClose(once({ op: "tanh", out: "y", x: "x" }, [Math.log(2), 0]), [0.6, 0], 15);
  });

  test("relu", () => {
    expectClose(once({ op: "relu", out: "y", x: "x" }, [-2, 0, 3]), [0, 0, 3]);
  });

  test("glu: [1, 2 | 0, ln 3] -> [1 * 1/2, 2 * 3/4]", () => {
    expectClose(once({ op: "glu", out: "y", x: "x" }, [1, 2, 0, Math.log(3)]), [0.5, 1.5], 15);
  });

  test("add and mul (elementwise)", () => {
    const step: Op[] = [
      { op: "add", out: "s", a: "x", b: "x" },
      { op: "mul", out: "p", a: "x", b: "s" },
    ];
    const r = evaluateSequence(
      model(2, step, [
        { name: "s", value: "s", section: "step" },
        { name: "p", value: "p", section: "step" },
      ]),
      { x: seq([1, -3]) },
    );
    expectClose(r.step["s"]![0]!, [2, -6]);
    expectClose(r.step["p"]![0]!, [2, 18]);
  });

  test("matmul: block matrix in crossbar orientation over concatenated inputs, plus bias", () => {
    // xs = [x (2), z (1)] -> rows 3; block (0,0) 2x1 = [1, 2]^T; block (2,1) 1x1 = [3]; bias [0.5, 0.25].
    // x = [1, 2], z = [3]: y0 = 1*1 + 2*2 + 0.5 = 5.5, y1 = 3*3 + 0.25 = 9.25.
    const step: Op[] = [
      { op: "slice", out: "z", x: "x", start: 2, length: 1 },
      { op: "slice", out: "xy", x: "x", start: 0, length: 2 },
      {
        op: "matmul",
        out: "y",
        xs: ["xy", "z"],
        origin: "dense",
        bias: [0.5, 0.25],
        weight: {
          rows: 3,
          cols: 2,
          blocks: [
            { row: 0, col: 0, rows: 2, cols: 1, data: [1, 2] },
            { row: 2, col: 1, rows: 1, cols: 1, data: [3] },
          ],
        },
      },
    ];
    const r = evaluateSequence(model(3, step, [{ name: "y", value: "y", section: "step" }]), { x: seq([1, 2, 3]) });
    expectClose(r.step["y"]![0]!, [5.5, 9.25]);
  });

  test("matmul at the quantized level uses the (dequantized) weights as they are", () => {
    const op: Op = {
      op: "matmul",
      out: "y",
      xs: ["x"],
      origin: "dense",
      weight: { rows: 2, cols: 2, blocks: [{ row: 0, col: 0, rows: 2, cols: 2, data: [0.5, -0.5, 1, 0] }] },
      quant: { maxLevel: 1, colScale: [1, 0.5], inRange: [1, 1], outRange: [4, 4], calibration: "default" },
    };
    // y0 = 2*0.5 + 3*1 = 4, y1 = 2*(-0.5) + 3*0 = -1 (no clipping to inRange/outRange here).
    expectClose(once(op, [2, 3], "quantized"), [4, -1]);
  });

  test("slice, concat, affine", () => {
    const step: Op[] = [
      { op: "slice", out: "a", x: "x", start: 1, length: 2 },
      { op: "concat", out: "c", xs: ["a", "x"] },
      { op: "affine", out: "f", x: "c", scale: [1, 2, 3, 4, 5], shift: [0, 0, 0, 0, 1] },
    ];
    const r = evaluateSequence(model(3, step, [{ name: "f", value: "f", section: "step" }]), { x: seq([10, 20, 30]) });
    // c = [20, 30, 10, 20, 30]; f = c * scale + shift.
    expectClose(r.step["f"]![0]!, [20, 60, 30, 80, 151]);
  });

  test("state_read / state_write, meanpool and div_steps: a running sum", () => {
    // s_t = state at the start of step t, n_t = s_t + x_t, written for step t+1.
    // x = 1, 2, 3: s = 0, 1, 3; n = 1, 3, 6. final: state_read -> 6, div_steps -> 6/3 = 2,
    // meanpool(n) = (1 + 3 + 6)/3 = 10/3.
    const step: Op[] = [
      { op: "state_write", out: "w", state: "acc", x: "n" } as Op,
    ];
    const m = model(
      1,
      [{ op: "state_read", out: "s", state: "acc" }, { op: "add", out: "n", a: "s", b: "x" }, ...step],
      [
        { name: "s", value: "s", section: "step" },
        { name: "n", value: "n", section: "step" },
        { name: "total", value: "total", section: "final" },
        { name: "mean", value: "mean", section: "final" },
        { name: "pooled", value: "pooled", section: "final" },
      ],
      [
        { op: "state_read", out: "total", state: "acc" },
        { op: "div_steps", out: "mean", x: "total" },
        { op: "meanpool", out: "pooled", x: "n" },
      ],
      [{ name: "acc", size: 1 }],
    );
    const r = evaluateSequence(m, { x: seq([1], [2], [3]) });
    expect(r.step["s"]!.map((v) => v[0])).toEqual([0, 1, 3]);
    expect(r.step["n"]!.map((v) => v[0])).toEqual([1, 3, 6]);
    expectClose(r.final["total"]!, [6]);
    expectClose(r.final["mean"]!, [2]);
    expectClose(r.final["pooled"]!, [10 / 3]);
  });

  test("state_read sees the start-of-step value even after a state_write in the same step", () => {
    const m = model(
      1,
      [
        { op: "state_write", out: "w", state: "s", x: "x" },
        { op: "state_read", out: "r", state: "s" },
      ],
      [{ name: "r", value: "r", section: "step" }],
      [],
      [{ name: "s", size: 1 }],
    );
    const r = evaluateSequence(m, { x: seq([5], [7], [9]) });
    expect(r.step["r"]!.map((v) => v[0])).toEqual([0, 5, 7]);
  });

  test("s4d step form by hand: H = 1, M = 1, zoh, A = -1/2, dt = 2, C = 1, D = 1/2, u = [1, 0, 2]", () => {
    // dA = e^-1, dB = 2(1 - e^-1) (see reference-s4d-math.test.ts).
    // x1 = dB,            y1 = 2 dB + 1/2                 = 3.0284822353142306
    // x2 = dA dB,         y2 = 2 e^-1 dB                  = 0.9301776...
    // x3 = dA^2 dB + 2 dB, y3 = 2 (e^-2 dB + 2 dB) + 1
    const e = Math.exp(-1);
    const dB = 2 * (1 - e);
    const op: S4DOp = {
      op: "s4d",
      out: "y",
      x: "u",
      state: "st",
      channels: 1,
      modes: 1,
      discretization: "zoh",
      timescale: { kind: "dt", value: tensor([1], [2]) },
      logAReal: tensor([1, 1], [Math.log(0.5)]),
      AImag: tensor([1, 1], [0]),
      C: { re: tensor([1, 1], [1]), im: tensor([1, 1], [0]) },
      D: tensor([1], [0.5]),
    };
    const states: number[][] = [];
    const m = singleS4DModel(op);
    m.outputs.push({ name: "fs", value: "fs", section: "final" });
    m.sections.final.push({ op: "state_read", out: "fs", state: "st" });
    const r = evaluateSequence(m, { u: seq([1], [0], [2]) }, { onStep: (_t, v) => states.push(Array.from(v.get("y")!)) });
    expectClose(
      r.step["y"]!.map((v) => v[0]!),
      [2 * dB + 0.5, 2 * e * dB, 2 * (e * e * dB + 2 * dB) + 1],
    );
    expect(states).toEqual(r.step["y"]!.map((v) => Array.from(v)));
    // The final state is [Re, Im] of x3.
    expectClose(r.final["fs"]!, [e * e * dB + 2 * dB, 0]);
  });

  test("s4d with a complex mode: the state holds [Re, Im] per (channel, mode)", () => {
    // Bilinear, A = -2 + 2i, dt = 1: dA = (-1 + 2i)/5, dB = (2 + i)/5 (reference-s4d-math.test.ts).
    // C = i, D = 0. u = [1, 1]: x1 = dB = 0.4 + 0.2i, y1 = 2 Re(i x1) = -2 Im x1 = -0.4.
    // x2 = dA x1 + dB = (-0.2 + 0.4i)(0.4 + 0.2i) + 0.4 + 0.2i = (-0.16 + 0.12i) + 0.4 + 0.2i = 0.24 + 0.32i
    // y2 = -2 * 0.32 = -0.64.
    const op: S4DOp = {
      op: "s4d",
      out: "y",
      x: "u",
      state: "st",
      channels: 1,
      modes: 1,
      discretization: "bilinear",
      timescale: { kind: "log_dt", value: tensor([1], [0]) },
      logAReal: tensor([1, 1], [Math.log(2)]),
      AImag: tensor([1, 1], [2]),
      C: { re: tensor([1, 1], [0]), im: tensor([1, 1], [1]) },
      D: tensor([1], [0]),
    };
    const m = singleS4DModel(op);
    m.outputs.push({ name: "fs", value: "fs", section: "final" });
    m.sections.final.push({ op: "state_read", out: "fs", state: "st" });
    const r = evaluateSequence(m, { u: seq([1], [1]) });
    expectClose(
      r.step["y"]!.map((v) => v[0]!),
      [-0.4, -0.64],
    );
    expectClose(r.final["fs"]!, [0.24, 0.32]);
  });
});

describe("sequences and batches", () => {
  test("state resets to zero for every sequence (compiled evaluator reused)", () => {
    const rng = makeRng(5);
    const m = randomModel(rng, { outputs: "both" });
    const ev = new ReferenceEvaluator(m);
    const a = randomInputs(rng, m, 40);
    const b = randomInputs(rng, m, 25);
    const first = evaluateSequenceWith(ev, a);
    evaluateSequenceWith(ev, b);
    const again = evaluateSequenceWith(ev, a);
    expect(again).toEqual(first);
    expect(evaluateSequence(m, a)).toEqual(first);
  });

  test("evaluateBatch matches per-sequence evaluation, layout [B, T, d]", () => {
    const rng = makeRng(6);
    const m = randomModel(rng, { outputs: "both", inputSize: 3, outputSize: 2 });
    const B = 3;
    const T = 17;
    const seqs = Array.from({ length: B }, () => randomInputs(rng, m, T));
    const batch = new Float64Array(B * T * 3);
    seqs.forEach((s, b) => s["input"]!.forEach((v, t) => batch.set(v, (b * T + t) * 3)));
    const r = evaluateBatch(m, batch, B, T);
    expect(r.stepWidth).toBe(2);
    expect(r.finalWidth).toBe(2);
    seqs.forEach((s, b) => {
      const one = evaluateSequence(m, s);
      one.step["y"]!.forEach((v, t) => expect(Array.from(r.step!.subarray((b * T + t) * 2, (b * T + t + 1) * 2))).toEqual(Array.from(v)));
      expect(Array.from(r.final!.subarray(b * 2, b * 2 + 2))).toEqual(Array.from(one.final["logits"]!));
    });
  });

  test("evaluateBatch: sections without outputs give null", () => {
    const rng = makeRng(7);
    const m = randomModel(rng, { outputs: "step" });
    const r = evaluateBatch(m, new Float64Array(2 * 4 * m.inputs[0]!.size), 2, 4);
    expect(r.final).toBeNull();
    expect(r.finalWidth).toBe(0);
    expect(r.step).not.toBeNull();
  });

  test("meanpool equals the mean of the step values (T = 1 and T = 50)", () => {
    const rng = makeRng(8);
    const m = randomModel(rng, { outputs: "both", layers: 1 });
    // Expose the pooled value as an output to compare with the mean of the per-step values.
    const pooled = (m.sections.final[0] as { x: string }).x;
    m.outputs.push({ name: "pool", value: "pool.out", section: "final" });
    for (const T of [1, 50]) {
      const rows: Float64Array[] = [];
      const r = evaluateSequence(m, randomInputs(rng, m, T), { onStep: (_t, v) => rows.push(v.get(pooled)!) });
      const mean = rows[0]!.map((_, i) => rows.reduce((s, v) => s + v[i]!, 0) / T);
      expectClose(r.final["pool"]!, Array.from(mean));
    }
  });

  test("H = 64, N = 64, 2 layers, T = 64 evaluates quickly", () => {
    const rng = makeRng(9);
    const m = randomModel(rng, { hidden: 64, modes: 32, layers: 2, inputSize: 16, outputSize: 10, outputs: "both" });
    const B = 8;
    const T = 64;
    const batch = Float64Array.from({ length: B * T * 16 }, () => rng.normal());
    const t0 = performance.now();
    const r = evaluateBatch(m, batch, B, T);
    const ms = performance.now() - t0;
    console.log(`reference: H=64 N=64 2 layers, B=${B} x T=${T} in ${ms.toFixed(1)} ms`);
    expect(r.step!.every(Number.isFinite)).toBe(true);
    // About 0.4 s alone and 2 s beside other suites on a 2-core machine; the bound catches
    // gross regressions (recompiling per step, per-step allocation in inner loops), not noise.
    expect(ms).toBeLessThan(10000);
  });
});

describe("errors", () => {
  const base = () => model(2, [{ op: "relu", out: "y", x: "x" }], [{ name: "y", value: "y", section: "step" }]);

  const cases: Array<[string, (m: Model) => void, RegExp]> = [
    ["unknown operand", (m) => ((m.sections.step[0] as { x: string }).x = "nope"), /unknown value "nope"/],
    ["use before definition", (m) => m.sections.step.unshift({ op: "tanh", out: "t", x: "y" }), /"y" is used before it is defined/],
    ["duplicate definition", (m) => m.sections.step.push({ op: "relu", out: "y", x: "x" }), /"y" is defined twice/],
    ["meanpool in the step section", (m) => m.sections.step.push({ op: "meanpool", out: "p", x: "y" }), /meanpool is only allowed in the final section/],
    ["div_steps in the step section", (m) => m.sections.step.push({ op: "div_steps", out: "p", x: "y" }), /div_steps is only allowed/],
    ["step value read in final", (m) => m.sections.final.push({ op: "relu", out: "f", x: "y" }), /only through meanpool/],
    ["length mismatch in add", (m) => m.sections.step.push({ op: "slice", out: "a", x: "x", start: 0, length: 1 }, { op: "add", out: "b", a: "a", b: "x" }), /operand lengths differ/],
    ["slice out of range", (m) => m.sections.step.push({ op: "slice", out: "a", x: "x", start: 1, length: 2 }), /outside "x"/],
    ["odd glu", (m) => m.sections.step.push({ op: "slice", out: "a", x: "x", start: 0, length: 1 }, { op: "glu", out: "g", x: "a" }), /even-length/],
    ["unknown state", (m) => m.sections.step.push({ op: "state_read", out: "s", state: "zz" }), /unknown state "zz"/],
    [
      "state written twice",
      (m) => {
        m.state.push({ name: "s", size: 2 });
        m.sections.step.push({ op: "state_write", out: "w1", state: "s", x: "x" }, { op: "state_write", out: "w2", state: "s", x: "y" });
      },
      /written twice/,
    ],
    ["output of a missing value", (m) => m.outputs.push({ name: "z", value: "zz", section: "final" }), /not a value of the final section/],
    [
      "matmul block outside the matrix",
      (m) => m.sections.step.push({ op: "matmul", out: "mm", xs: ["x"], origin: "dense", weight: { rows: 2, cols: 1, blocks: [{ row: 1, col: 0, rows: 2, cols: 1, data: [1, 1] }] } }),
      /does not fit/,
    ],
    ["linear weight/input mismatch", (m) => m.sections.step.push({ op: "linear", out: "l", x: "x", weight: tensor([1, 3], [1, 2, 3]) }), /expects 3 inputs/],
  ];
  test.each(cases)("%s", (_name, mutate, message) => {
    const m = base();
    mutate(m);
    let err: unknown;
    try {
      evaluateSequence(m, { x: seq([1, 2]) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).kind).toBe("semantic");
    expect((err as UserError).message).toMatch(message);
    expect((err as UserError).diagnostics[0]!.location?.path).toMatch(/^\/(sections|outputs|state|inputs)/);
  });

  test("bad inputs are usage errors", () => {
    const m = base();
    expect(() => evaluateSequence(m, { x: seq([1, 2, 3]) })).toThrow(/step 0 has length 3, expected 2/);
    expect(() => evaluateSequence(m, { x: [] })).toThrow(/at least one step/);
    expect(() => evaluateSequence(m, {})).toThrow(/missing values for input "x"/);
    expect(() => evaluateSequence(m, { x: seq([1, 2]), y: seq([1]) })).toThrow(/"y" is not an input/);
    expect(() => evaluateBatch(m, new Float64Array(5), 1, 2)).toThrow(/expected B\*T\*d/);
  });

  test("an s4d op with a wrongly sized state is rejected", () => {
    const op = randomS4DOp(makeRng(3), { channels: 2, modes: 3 });
    const m = singleS4DModel(op);
    m.state[0]!.size = 5;
    expect(() => new ReferenceEvaluator(m)).toThrow(/must have size 2\*H\*M = 12/);
  });

  test("value sizes are computed for every value", () => {
    const m = randomModel(makeRng(4), { inputSize: 3, hidden: 5, layers: 1, outputs: "both", outputSize: 2 });
    const ev = new ReferenceEvaluator(m);
    expect(ev.stepSizes.get("input")).toBe(3);
    expect(ev.stepSizes.get("layers.0.proj.out")).toBe(10);
    expect(ev.stepSizes.get("layers.0.glu.out")).toBe(5);
    expect(ev.finalSizes.get("head.out")).toBe(2);
  });
});
