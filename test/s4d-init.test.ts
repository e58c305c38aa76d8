import { describe, expect, test } from "@jest/globals";
import { Rng, hashSeed } from "../src/common/rng.js";
import { initS4D, s4dImag } from "../src/frontend/s4d-init.js";

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}
function variance(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i]! - m) ** 2;
  return s / xs.length;
}

describe("Rng", () => {
  test("xoshiro128** core matches the reference output for state (1, 2, 3, 4)", () => {
    const r = Rng.fromState([1, 2, 3, 4]);
    expect(Array.from({ length: 6 }, () => r.nextUint32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  test("uniform lies in [0, 1) with mean 1/2 and variance 1/12", () => {
    const r = new Rng(123);
    const xs = Float64Array.from({ length: 200_000 }, () => r.uniform());
    expect(xs.reduce((a, b) => Math.min(a, b))).toBeGreaterThanOrEqual(0);
    expect(xs.reduce((a, b) => Math.max(a, b))).toBeLessThan(1);
    expect(mean(xs)).toBeCloseTo(0.5, 2);
    expect(variance(xs)).toBeCloseTo(1 / 12, 3);
  });

  test("Box-Muller normals have mean 0, variance 1 and normal tails", () => {
    const r = new Rng(7);
    const xs = Float64Array.from({ length: 200_000 }, () => r.normal());
    expect(mean(xs)).toBeCloseTo(0, 2);
    expect(variance(xs)).toBeCloseTo(1, 1.5);
    // P(|z| > 2) = 4.55% for a standard normal.
    const tail = xs.filter((x) => Math.abs(x) > 2).length / xs.length;
    expect(tail).toBeGreaterThan(0.042);
    expect(tail).toBeLessThan(0.049);
  });

  test("streams are deterministic per (seed, name) and differ otherwise", () => {
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.nextUint32());
    expect(draw(Rng.forName(42, "encoder"))).toEqual(draw(Rng.forName(42, "encoder")));
    expect(draw(Rng.forName(42, "encoder"))).not.toEqual(draw(Rng.forName(43, "encoder")));
    expect(draw(Rng.forName(42, "encoder"))).not.toEqual(draw(Rng.forName(42, "decoder")));
    expect(hashSeed(1, "a")).not.toBe(hashSeed(1 + 2 ** 32, "a"));
  });
});

describe("S4D initialisation", () => {
  test("S4D-Lin: A = -1/2 + i pi n for every channel", () => {
    const p = initS4D({ H: 3, N: 8, dtMin: 0.001, dtMax: 0.1, init: "lin" }, new Rng(0));
    expect(p.AImag).toHaveLength(12);
    for (let h = 0; h < 3; h++) {
      for (let n = 0; n < 4; n++) {
        expect(p.AImag[h * 4 + n]).toBeCloseTo(Math.PI * n, 6);
        expect(-Math.exp(p.logAReal[h * 4 + n]!)).toBeCloseTo(-0.5, 7);
      }
    }
  });

  test("S4D-Inv: A_imag = (N/pi)(N/(2n+1) - 1)", () => {
    // N = 8 worked by hand: 56/pi, 40/(3 pi), 24/(5 pi), 8/(7 pi).
    const expected = [56 / Math.PI, 40 / (3 * Math.PI), 24 / (5 * Math.PI), 8 / (7 * Math.PI)];
    expect([0, 1, 2, 3].map((n) => s4dImag("inv", 8, n))).toEqual(expected.map((v) => expect.closeTo(v, 12)));
    const p = initS4D({ H: 2, N: 8, dtMin: 0.001, dtMax: 0.1, init: "inv" }, new Rng(0));
    expect(Array.from(p.AImag)).toEqual([...expected, ...expected].map((v) => expect.closeTo(v, 5)));
    // The last eigenvalue of S4D-Inv is the slowest and stays positive.
    expect(s4dImag("inv", 64, 31)).toBeGreaterThan(0);
  });

  test("log_dt ~ U[log dt_min, log dt_max), C ~ CN(0, 1), D ~ N(0, 1)", () => {
    const H = 4000;
    const N = 16;
    const p = initS4D({ H, N, dtMin: 0.001, dtMax: 0.1, init: "lin" }, new Rng(5));
    const lo = Math.log(0.001);
    const hi = Math.log(0.1);
    expect(Math.min(...p.logDt)).toBeGreaterThanOrEqual(Math.fround(lo));
    expect(Math.max(...p.logDt)).toBeLessThanOrEqual(Math.fround(hi));
    expect(mean(p.logDt)).toBeCloseTo((lo + hi) / 2, 1);
    expect(variance(p.logDt)).toBeCloseTo((hi - lo) ** 2 / 12, 1);
    // torch.randn(cfloat): real and imaginary parts each have variance 1/2.
    expect(variance(p.CRe)).toBeCloseTo(0.5, 1.5);
    expect(variance(p.CIm)).toBeCloseTo(0.5, 1.5);
    expect(mean(p.CRe)).toBeCloseTo(0, 1.5);
    expect(variance(p.D)).toBeCloseTo(1, 1);
    expect(mean(p.D)).toBeCloseTo(0, 1);
  });

  test("values are float32, deterministic for a seed and different across seeds", () => {
    const opts = { H: 8, N: 16, dtMin: 0.01, dtMax: 0.5, init: "inv" as const };
    const a = initS4D(opts, Rng.forName(3, "s4_layers.0"));
    const b = initS4D(opts, Rng.forName(3, "s4_layers.0"));
    const c = initS4D(opts, Rng.forName(4, "s4_layers.0"));
    expect(b).toEqual(a);
    expect(c.CRe).not.toEqual(a.CRe);
    expect(c.AImag).toEqual(a.AImag);
    for (const arr of Object.values(a) as Float64Array[]) for (const v of arr) expect(v).toBe(Math.fround(v));
  });
});
