import { describe, expect, test } from "@jest/globals";
import { convolveS4D, evaluateConvolutionForm, s4dKernel } from "../src/reference/convolution.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import type { S4DOp } from "../src/ir/types.js";
import { makeRng, randomInputs, randomModel, randomS4DOp, singleS4DModel } from "./helpers/random-models.js";

/** max |a - b| over all vectors, divided by max |a| (the output scale). */
function relativeMaxError(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  expect(b.length).toBe(a.length);
  let err = 0;
  let scale = 0;
  a.forEach((v, t) => {
    expect(b[t]!.length).toBe(v.length);
    v.forEach((x, i) => {
      err = Math.max(err, Math.abs(x - b[t]![i]!));
      scale = Math.max(scale, Math.abs(x));
    });
  });
  expect(scale).toBeGreaterThan(0);
  return err / scale;
}

// Worst step-vs-convolution error seen by this file, printed at the end for the report.
let worst = 0;

describe("S4D convolution form vs recurrent step form", () => {
  const discs = ["zoh", "bilinear"] as const;
  test.each(discs.flatMap((d) => [1, 2, 3, 4, 5, 6].map((seed) => [d, seed] as const)))("single s4d op, %s, seed %i", (disc, seed) => {
    const rng = makeRng(1000 + seed);
    const op = randomS4DOp(rng, { discretization: disc, channels: rng.int(1, 8), modes: rng.int(1, 16) });
    const model = singleS4DModel(op);
    const T = rng.int(64, 200);
    const inputs = randomInputs(rng, model, T);
    const stepForm = evaluateSequence(model, inputs).step["y"]!;
    const convForm = convolveS4D(op, inputs["u"]!);
    const e = relativeMaxError(stepForm, convForm);
    worst = Math.max(worst, e);
    expect(e).toBeLessThanOrEqual(1e-9);
  });

  test.each(discs.flatMap((d) => [11, 12, 13, 14, 15].map((seed) => [d, seed] as const)))("random network, %s, seed %i", (disc, seed) => {
    const rng = makeRng(seed);
    const model = randomModel(rng, { discretization: disc, outputs: "both", layers: 2 });
    const T = rng.int(64, 200);
    const inputs = randomInputs(rng, model, T);
    const a = evaluateSequence(model, inputs);
    const b = evaluateConvolutionForm(model, inputs);
    const e = Math.max(relativeMaxError(a.step["y"]!, b.step["y"]!), relativeMaxError([a.final["logits"]!], [b.final["logits"]!]));
    worst = Math.max(worst, e);
    expect(e).toBeLessThanOrEqual(1e-9);
  });

  test("the check is sensitive: a perturbed dt is detected", () => {
    const rng = makeRng(77);
    const op = randomS4DOp(rng, { discretization: "zoh", channels: 3, modes: 4, timescale: "dt" });
    const inputs = randomInputs(rng, singleS4DModel(op), 100);
    const perturbed: S4DOp = { ...op, timescale: { kind: "dt", value: { shape: [3], data: op.timescale.value.data.map((v) => v * (1 + 1e-6)) } } };
    const e = relativeMaxError(evaluateSequence(singleS4DModel(op), inputs).step["y"]!, convolveS4D(perturbed, inputs["u"]!));
    expect(e).toBeGreaterThan(1e-9);
  });

  test("report", () => {
    console.log(`max relative step-vs-convolution error: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-9);
  });
});

describe("S4D kernel by hand", () => {
  // H = 1, M = 1, A = -1/2 (logAReal = log 1/2, AImag = 0), dt = 2, C = 1, B = 1.
  const op: S4DOp = {
    op: "s4d",
    out: "y",
    x: "u",
    state: "s",
    channels: 1,
    modes: 1,
    discretization: "zoh",
    timescale: { kind: "dt", value: { shape: [1], data: [2] } },
    logAReal: { shape: [1, 1], data: [Math.log(0.5)] },
    AImag: { shape: [1, 1], data: [0] },
    C: { re: { shape: [1, 1], data: [1] }, im: { shape: [1, 1], data: [0] } },
    D: { shape: [1], data: [0.5] },
  };

  test("zoh: K_l = 2 C dB dA^l with dA = e^-1, dB = 2(1 - e^-1)", () => {
    const e = Math.exp(-1);
    const K = s4dKernel(op, 3);
    const dB = 2 * (1 - e);
    expect(K[0]).toBeCloseTo(2 * dB, 14); // 2.5284822353142306
    expect(K[1]).toBeCloseTo(2 * dB * e, 14); // 0.9301776...
    expect(K[2]).toBeCloseTo(2 * dB * e * e, 14);
  });

  test("bilinear: dA = (1 - 1/2)/(1 + 1/2) = 1/3, dB = 2/(3/2) = 4/3", () => {
    const K = s4dKernel({ ...op, discretization: "bilinear" }, 3);
    expect(K[0]).toBeCloseTo(8 / 3, 14);
    expect(K[1]).toBeCloseTo(8 / 9, 14);
    expect(K[2]).toBeCloseTo(8 / 27, 14);
  });

  test("bilinear with an oscillating mode: A = -2 + 2i, dt = 1 gives dA = (-1 + 2i)/5, dB = (2 + i)/5", () => {
    // z = -2 + 2i, 1 + z/2 = i, 1 - z/2 = 2 - i; dA = i/(2 - i) = (-1 + 2i)/5, dB = 1/(2 - i) = (2 + i)/5.
    // K_l = 2 Re(dB dA^l): K_0 = 0.8, K_1 = 2 Re((2+i)(-1+2i)/25) = 2 Re((-4 + 3i)/25) = -0.32.
    const osc: S4DOp = {
      ...op,
      discretization: "bilinear",
      timescale: { kind: "log_dt", value: { shape: [1], data: [0] } },
      logAReal: { shape: [1, 1], data: [Math.log(2)] },
      AImag: { shape: [1, 1], data: [2] },
    };
    const K = s4dKernel(osc, 3);
    expect(K[0]).toBeCloseTo(0.8, 14);
    expect(K[1]).toBeCloseTo(-0.32, 14);
    // K_2 = 2 Re((2+i)(-1+2i)^2/125) = 2 Re((2+i)(-3-4i)/125) = 2 Re((-2 - 11i)/125) = -0.032
    expect(K[2]).toBeCloseTo(-0.032, 14);
  });

  test("convolution with D: u = [1, 0, 2]", () => {
    const e = Math.exp(-1);
    const dB = 2 * (1 - e);
    const y = convolveS4D(op, [[1], [0], [2]].map((v) => Float64Array.from(v)));
    expect(y[0]![0]).toBeCloseTo(2 * dB + 0.5, 14);
    expect(y[1]![0]).toBeCloseTo(2 * dB * e, 14);
    expect(y[2]![0]).toBeCloseTo(2 * dB * e * e + 2 * (2 * dB) + 0.5 * 2, 14);
  });

  test("convolution form rejects lowered ops", () => {
    const model = singleS4DModel(op);
    model.sections.step.push({ op: "slice", out: "z", x: "y", start: 0, length: 1 });
    expect(() => evaluateConvolutionForm(model, { u: [Float64Array.of(1)] })).toThrow(/model-level ops only/);
  });
});
