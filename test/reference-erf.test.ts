import { describe, expect, test } from "@jest/globals";
import { erf, erfc, gelu } from "../src/common/erf.js";
import { makeRng } from "./helpers/random-models.js";

// Independent high-precision reference: the Taylor series of erf evaluated in binary fixed
// point with BigInt, with enough guard bits to absorb the alternating series' cancellation
// (terms grow to about e^{x^2}) and to resolve erfc = 1 - erf where it is tiny.

/** floor(2^bits * atan(1/n)) by the alternating series. */
function atanInv(n: bigint, bits: bigint): bigint {
  const one = 1n << bits;
  let power = one / n; // 1/n^(2k+1)
  let sum = power;
  const n2 = n * n;
  for (let k = 1n; power !== 0n; k++) {
    power /= n2;
    sum += (k % 2n === 0n ? 1n : -1n) * (power / (2n * k + 1n));
  }
  return sum;
}

function isqrt(a: bigint): bigint {
  if (a < 2n) return a;
  let x = 1n << BigInt(Math.ceil(a.toString(2).length / 2));
  for (;;) {
    const y = (x + a / x) / 2n;
    if (y >= x) return x;
    x = y;
  }
}

/** 2/sqrt(pi) scaled by 2^bits. */
function twoOverSqrtPi(bits: bigint): bigint {
  const pi = 16n * atanInv(5n, bits + 16n) - 4n * atanInv(239n, bits + 16n); // scaled 2^(bits+16)
  const sqrtPi = isqrt(pi << (bits + 16n)); // sqrt(pi) * 2^(bits+16)
  return (2n << (2n * bits + 16n)) / sqrtPi;
}

/** The double x exactly as a fixed-point integer scaled by 2^bits (x must need no more bits). */
function fixed(x: number, bits: bigint): bigint {
  if (x === 0) return 0n;
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, Math.abs(x));
  const hi = v.getUint32(0);
  const exp = (hi >>> 20) & 0x7ff;
  const mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(v.getUint32(4));
  const m = exp === 0 ? mant : mant | (1n << 52n);
  const shift = BigInt(exp === 0 ? -1074 : exp - 1075) + bits;
  if (shift < 0n) throw new Error("test value needs more fraction bits");
  return (x < 0 ? -1n : 1n) * (m << shift);
}

/** big / 2^bits as the nearest double (ignoring double rounding below 1e-20 relative). */
function toDouble(big: bigint, bits: bigint): number {
  const len = BigInt(big < 0n ? (-big).toString(2).length : big.toString(2).length);
  const s = len > 100n ? len - 100n : 0n;
  let v = Number(big >> s);
  let e = Number(s - bits);
  while (e < -500) {
    v *= 2 ** -500;
    e += 500;
  }
  return v * 2 ** e;
}

/** erf of the fixed-point argument X (scaled 2^bits), scaled 2^bits. */
function erfFixed(X: bigint, bits: bigint): bigint {
  const X2 = X * X;
  const scale2 = 1n << (2n * bits);
  let power = X; // (-1)^n x^(2n+1)/n!, scaled 2^bits
  let sum = X;
  for (let n = 1n; power !== 0n; n++) {
    power = -(power * X2) / (scale2 * n);
    sum += power / (2n * n + 1n);
  }
  return (sum * twoOverSqrtPi(bits)) >> bits;
}

function guardBits(x: number): bigint {
  return BigInt(200 + Math.ceil(3 * x * x));
}

/** [erf(x), erfc(x)] to far beyond double precision. */
function erfReference(x: number): [number, number] {
  const bits = guardBits(x);
  const e = erfFixed(fixed(x, bits), bits);
  return [toDouble(e, bits), toDouble((1n << bits) - e, bits)];
}

/** GELU(x) = 0.5 x erfc(-x / sqrt 2), with x / sqrt 2 formed in fixed point. */
function geluReference(x: number): number {
  const bits = guardBits(x);
  const X = fixed(x, bits);
  const invSqrt2 = isqrt(1n << (2n * bits - 1n)); // 2^bits / sqrt 2
  const erfc = (1n << bits) - erfFixed(-((X * invSqrt2) >> bits), bits);
  return toDouble((X * erfc) >> (bits + 1n), bits);
}

function rel(actual: number, expected: number): number {
  return expected === 0 ? Math.abs(actual) : Math.abs(actual - expected) / Math.abs(expected);
}

describe("erf / erfc against a 200+-bit reference", () => {
  const rng = makeRng(2024);
  // Grid of k/64 plus random points; all have few enough fraction bits for the fixed-point conversion.
  const grid = Array.from({ length: 6 * 64 + 1 }, (_, k) => k / 64);
  const randomPoints = Array.from({ length: 300 }, () => rng.uniform(1e-3, 6));
  const points = [...grid, ...randomPoints].flatMap((x) => [x, -x]);

  test("erf relative error < 1e-15 on [-6, 6]", () => {
    let worst = 0;
    for (const x of points) {
      const [e] = erfReference(x);
      worst = Math.max(worst, rel(erf(x), e));
    }
    console.log(`erf max relative error on [-6, 6]: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-15);
  });

  test("erfc relative error < 1.5e-15 on [-6, 26], including the tiny tail", () => {
    const tail = Array.from({ length: 40 }, () => rng.uniform(6, 26));
    let worst = 0;
    for (const x of [...points, ...tail]) {
      const [, c] = erfReference(x);
      worst = Math.max(worst, rel(erfc(x), c));
    }
    console.log(`erfc max relative error on [-6, 26]: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1.5e-15);
  });

  test("gelu relative error < 2e-15 on [-12, 6]", () => {
    const xs = [...Array.from({ length: 18 * 16 + 1 }, (_, k) => -12 + k / 16), ...Array.from({ length: 200 }, () => rng.uniform(-12, 6))];
    let worst = 0;
    for (const x of xs) worst = Math.max(worst, rel(gelu(x), geluReference(x)));
    console.log(`gelu max relative error on [-12, 6]: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(2e-15);
  });

  test("the reference itself matches published values", () => {
    // 40-digit values (Abramowitz & Stegun table 7.1 / mpmath).
    expect(rel(erfReference(1)[0], 0.8427007929497148693412206350826)).toBeLessThan(1e-16);
    expect(rel(erfReference(2)[1], 0.004677734981047265837930743632747)).toBeLessThan(1e-16);
  });
});

describe("erf / erfc / gelu known values", () => {
  test.each([
    [0.5, 0.5204998778130465376827466538919645287364, 0.4795001221869534623172533461080354712635],
    [1, 0.8427007929497148693412206350826092592961, 0.1572992070502851306587793649173907407039],
    [2, 0.9953222650189527341620692563672529286109, 0.004677734981047265837930743632747071389108],
    [3, 0.9999779095030014145586272238704176796201, 0.00002209049699858544137277612958232037984771],
    [5, 0.9999999999984625402055719651498116565146, 1.537459794428034850188343485383378890118e-12],
    [10, 1, 2.088487583762544757000786294957788611561e-45],
  ])("x = %f", (x, e, c) => {
    expect(rel(erf(x), e)).toBeLessThan(1e-15);
    expect(rel(erfc(x), c)).toBeLessThan(1e-15);
    expect(rel(erf(-x), -e)).toBeLessThan(1e-15);
    expect(rel(erfc(-x), 2 - c)).toBeLessThan(1e-15);
  });

  test("special values", () => {
    expect(erf(0)).toBe(0);
    expect(erfc(0)).toBe(1);
    expect(erf(Infinity)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
    expect(erfc(Infinity)).toBe(0);
    expect(erfc(-Infinity)).toBe(2);
    expect(erf(NaN)).toBeNaN();
    expect(erfc(NaN)).toBeNaN();
    // Tiny arguments: erf(x) = 2x/sqrt(pi) to first order.
    expect(rel(erf(1e-300), 1.1283791670955126e-300)).toBeLessThan(1e-15);
  });

  test.each([
    [1, 0.84134474606854294859],
    [-1, -0.15865525393145705141],
    [3, 2.9959503059051097164],
    [-0.5, -0.15426876936299344818],
    [0.5, 0.34573123063700655182],
    // Deep negative tail: 0.5 x (1 + erf(x/sqrt 2)) would cancel to 0 here.
    [-10, -7.619853024160526066e-23],
  ])("gelu(%f) (exact erf form)", (x, g) => {
    expect(rel(gelu(x), g)).toBeLessThan(2e-15);
  });

  test("gelu at 0 and infinities", () => {
    expect(gelu(0)).toBe(0);
    expect(gelu(Infinity)).toBe(Infinity);
    expect(gelu(-Infinity)).toBe(-0);
  });
});
