import { describe, expect, test } from "@jest/globals";
import { cdiv, cexpm1, complex } from "../src/common/complex.js";
import { UserError } from "../src/common/errors.js";
import { discretizeS4D } from "../src/common/s4d-math.js";
import type { S4DOp } from "../src/ir/types.js";

/** An H = 1, M = 1 s4d op with A = -exp(logAReal) + i*AImag. */
function op1(logAReal: number, AImag: number, dt: number, disc: "zoh" | "bilinear", B?: [number, number]): S4DOp {
  const t = (v: number) => ({ shape: [1, 1], data: [v] });
  const op: S4DOp = {
    op: "s4d",
    out: "y",
    x: "u",
    state: "s",
    channels: 1,
    modes: 1,
    discretization: disc,
    timescale: { kind: "dt", value: { shape: [1], data: [dt] } },
    logAReal: t(logAReal),
    AImag: t(AImag),
    C: { re: t(1), im: t(0) },
    D: { shape: [1], data: [0] },
  };
  if (B) op.B = { re: t(B[0]), im: t(B[1]) };
  return op;
}

function expectComplex(actual: { re: Float64Array; im: Float64Array }, i: number, re: number, im: number, digits = 15): void {
  expect(actual.re[i]).toBeCloseTo(re, digits);
  expect(actual.im[i]).toBeCloseTo(im, digits);
}

describe("discretizeS4D by hand (H = 1, M = 1)", () => {
  test("zoh, real A = -1/2, dt = 2: dA = e^-1, dB = (e^-1 - 1)/(-1/2) = 2(1 - e^-1)", () => {
    const { dA, dB } = discretizeS4D(op1(Math.log(0.5), 0, 2, "zoh"));
    expectComplex(dA, 0, 0.36787944117144233, 0);
    expectComplex(dB, 0, 1.2642411176571153, 0);
  });

  test("zoh, A = -ln 2 + i pi/2, dt = 1: dA = e^{-ln 2} e^{i pi/2} = i/2", () => {
    // dB = (i/2 - 1)/(-a + ib) with a = ln 2, b = pi/2. Multiplying by the conjugate (-a - ib):
    // (-1 + i/2)(-a - ib) = (a + b/2) + i(b - a/2), over a^2 + b^2.
    const a = Math.LN2;
    const b = Math.PI / 2;
    const { dA, dB } = discretizeS4D(op1(Math.log(a), b, 1, "zoh"));
    expectComplex(dA, 0, 0, 0.5);
    const den = a * a + b * b;
    expectComplex(dB, 0, (a + b / 2) / den, (b - a / 2) / den);
  });

  test("log_dt timescale: dt = exp(log_dt)", () => {
    const op: S4DOp = { ...op1(Math.log(0.5), 0, 1, "zoh"), timescale: { kind: "log_dt", value: { shape: [1], data: [Math.LN2] } } };
    const { dA } = discretizeS4D(op);
    expectComplex(dA, 0, Math.exp(-1), 0);
  });

  test("zoh with B = 1 + i scales dB by (1 + i)", () => {
    const { dB } = discretizeS4D(op1(Math.log(0.5), 0, 2, "zoh", [1, 1]));
    expectComplex(dB, 0, 1.2642411176571153, 1.2642411176571153);
  });

  test("zoh keeps full relative precision of dB for tiny dt*A (no exp(z) - 1 cancellation)", () => {
    // A = -1, dt = 1e-12: dB = (e^{-1e-12} - 1)/(-1) = 1e-12 - 5e-25 + ...; forming e^z - 1
    // directly would leave only about 4 correct digits.
    const { dB } = discretizeS4D(op1(0, 0, 1e-12, "zoh"));
    expect(Math.abs(dB.re[0]! - (1e-12 - 5e-25)) / 1e-12).toBeLessThan(1e-15);
  });

  test("bilinear, real A = -1/2, dt = 2: dA = (1 - 1/2)/(1 + 1/2) = 1/3, dB = 2/(3/2) = 4/3", () => {
    const { dA, dB } = discretizeS4D(op1(Math.log(0.5), 0, 2, "bilinear"));
    expectComplex(dA, 0, 1 / 3, 0);
    expectComplex(dB, 0, 4 / 3, 0);
  });

  test("bilinear, A = -2 + 2i, dt = 1: dA = i/(2 - i) = (-1 + 2i)/5, dB = 1/(2 - i) = (2 + i)/5", () => {
    const { dA, dB } = discretizeS4D(op1(Math.log(2), 2, 1, "bilinear"));
    expectComplex(dA, 0, -0.2, 0.4);
    expectComplex(dB, 0, 0.4, 0.2);
  });

  test("bilinear with B = 2 - i: dB = (2 - i)(2 + i)/5 = 1", () => {
    const { dB } = discretizeS4D(op1(Math.log(2), 2, 1, "bilinear", [2, -1]));
    expectComplex(dB, 0, 1, 0);
  });

  test("channel-major layout and per-channel dt (H = 2, M = 2), timescale given as dt", () => {
    const op: S4DOp = {
      ...op1(0, 0, 1, "zoh"),
      channels: 2,
      modes: 2,
      timescale: { kind: "dt", value: { shape: [2], data: [1, 2] } },
      logAReal: { shape: [2, 2], data: [0, Math.log(2), Math.log(3), Math.log(4)] },
      AImag: { shape: [2, 2], data: [0, 0, 0, 0] },
      C: { re: { shape: [2, 2], data: [1, 1, 1, 1] }, im: { shape: [2, 2], data: [0, 0, 0, 0] } },
      D: { shape: [2], data: [0, 0] },
    };
    const { dA } = discretizeS4D(op);
    // Entry (h, m) at h*M + m: A = -1, -2 (dt 1), -3, -4 (dt 2).
    [Math.exp(-1), Math.exp(-2), Math.exp(-6), Math.exp(-8)].forEach((v, i) => expectComplex(dA, i, v, 0));
  });

  test("wrong parameter sizes and non-positive dt are user errors", () => {
    const bad = { ...op1(0, 0, 1, "zoh"), modes: 2 };
    expect(() => discretizeS4D(bad)).toThrow(UserError);
    expect(() => discretizeS4D(bad)).toThrow(/logAReal must have 2 entries/);
    const negDt: S4DOp = { ...op1(0, 0, 1, "zoh"), timescale: { kind: "dt", value: { shape: [1], data: [-1] } } };
    expect(() => discretizeS4D(negDt)).toThrow(/dt = -1/);
  });
});

describe("complex helpers", () => {
  test("cdiv by Smith's algorithm handles huge denominators", () => {
    const q = cdiv(complex(1, 0), complex(1e300, 1e300));
    // 1/(1e300 (1 + i)) = (1 - i) 0.5e-300; the naive |b|^2 = 2e600 would overflow to Infinity.
    expect(q.re / 0.5e-300).toBeCloseTo(1, 14);
    expect(q.im / -0.5e-300).toBeCloseTo(1, 14);
  });

  test("cexpm1 matches exp(z) - 1 for moderate z and is accurate for tiny z", () => {
    const z = complex(0.3, -1.2);
    const e = cexpm1(z);
    expect(e.re).toBeCloseTo(Math.exp(0.3) * Math.cos(-1.2) - 1, 15);
    expect(e.im).toBeCloseTo(Math.exp(0.3) * Math.sin(-1.2), 15);
    const tiny = cexpm1(complex(1e-20, 2e-20));
    expect(tiny.re / 1e-20).toBeCloseTo(1, 15);
    expect(tiny.im / 2e-20).toBeCloseTo(1, 15);
  });
});
