// Statistical checks of the device model (docs/NOISE.md) over many simulated devices: every
// tolerance is K_SIGMA standard errors of the estimator for the sample size used, so a
// correct model fails with probability ~1e-6 per check, and the seeds are fixed anyway.

import { describe, expect, test } from "@jest/globals";
import { erf } from "../src/common/erf.js";
import { driftCompensation, effectiveWeights, programCrossbar, realizeDevices, type ChipSpec } from "../src/noise/chip.js";
import { conductanceMap, targetGMinus, targetGPlus } from "../src/noise/conductance.js";
import { driftFactor, HEALTHY, programmingSigma, STUCK_AT_GMAX, STUCK_AT_GMIN } from "../src/noise/device.js";
import { maxCurveError, transferCurve } from "../src/noise/periphery.js";
import { noiseOff, type NoiseModel } from "../src/noise/spec.js";

const K_SIGMA = 5;
/** xbar64's device: 16 levels per device, so L = 15, between 0.1 and 25 uS. */
const SPEC: ChipSpec = { gMinUs: 0.1, gMaxUs: 25, maxLevel: 15 };
const MAP = conductanceMap(SPEC.gMinUs, SPEC.gMaxUs, SPEC.maxLevel);

function model(patch: (m: NoiseModel) => void): NoiseModel {
  const m = noiseOff();
  patch(m);
  return m;
}

interface Moments {
  n: number;
  mean: number;
  variance: number;
  /** Fourth central moment (for the standard error of the variance). */
  m4: number;
}

function moments(xs: ArrayLike<number>): Moments {
  const n = xs.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i]!;
  const mean = s / n;
  let s2 = 0;
  let s4 = 0;
  for (let i = 0; i < n; i++) {
    const d = xs[i]! - mean;
    s2 += d * d;
    s4 += d * d * d * d;
  }
  return { n, mean, variance: s2 / (n - 1), m4: s4 / n };
}

const phi = (x: number): number => Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
const Phi = (x: number): number => 0.5 * (1 + erf(x / Math.SQRT2));

/** Mean and variance of max(0, X) for X ~ N(mu, sigma^2) (programmed conductances are clipped at 0). */
function rectifiedNormal(mu: number, sigma: number): { mean: number; variance: number } {
  if (sigma === 0) return { mean: Math.max(0, mu), variance: 0 };
  const a = mu / sigma;
  const mean = mu * Phi(a) + sigma * phi(a);
  const second = (mu * mu + sigma * sigma) * Phi(a) + mu * sigma * phi(a);
  return { mean, variance: second - mean * mean };
}

/** Every other device (positive devices: stride 2 from 0, negative: from 1). */
function devicesOf(all: Float64Array, sign: 0 | 1): Float64Array {
  const out = new Float64Array(all.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = all[2 * i + sign]!;
  return out;
}

describe("conductance mapping", () => {
  test("levels map to differential pairs and back exactly; zero weights sit on two gMin devices", () => {
    for (let q = -15; q <= 15; q++) {
      const gp = targetGPlus(MAP, q);
      const gm = targetGMinus(MAP, q);
      expect(Math.min(gp, gm)).toBe(SPEC.gMinUs);
      expect(Math.max(gp, gm)).toBeCloseTo(SPEC.gMinUs + (Math.abs(q) / 15) * (SPEC.gMaxUs - SPEC.gMinUs), 12);
      expect((gp - gm) * MAP.levelsPerUs).toBeCloseTo(q, 12);
    }
    expect([targetGPlus(MAP, 15), targetGMinus(MAP, -15)]).toEqual([SPEC.gMaxUs, SPEC.gMaxUs]);
  });
});

describe("programming noise", () => {
  // xbar64's coefficients, scaled up so that the clipping at 0 uS matters for gMin devices.
  const prog = { c0: 0.0088, c1: 0.0246, c2: -0.0032, scale: 2 };
  const N = 40000;

  test.each([0, 1, 5, 10, 15, -7])("devices of cells at level %i: mean and variance match the clipped Gaussian", (q) => {
    const levels = new Int16Array(N).fill(q);
    const dev = realizeDevices(levels, SPEC, model((m) => Object.assign(m.programming, prog)), 11, 3);
    for (const sign of [0, 1] as const) {
      const target = sign === 0 ? targetGPlus(MAP, q) : targetGMinus(MAP, q);
      const sigma = programmingSigma(prog, target, SPEC.gMaxUs);
      // sigma = scale * gMax * (c0 + c1 x + c2 x^2) with x = g/gMax, in uS
      const x = target / SPEC.gMaxUs;
      expect(sigma).toBeCloseTo(2 * 25 * (0.0088 + 0.0246 * x - 0.0032 * x * x), 12);
      const want = rectifiedNormal(target, sigma);
      const got = moments(devicesOf(dev.programmed, sign));
      expect(Math.abs(got.mean - want.mean)).toBeLessThan(K_SIGMA * Math.sqrt(want.variance / N));
      // Standard error of the sample variance: sqrt((m4 - var^2) / n).
      const seVar = Math.sqrt((got.m4 - want.variance ** 2) / N);
      expect(Math.abs(got.variance - want.variance)).toBeLessThan(K_SIGMA * seVar);
      // No device is negative; without drift, now = programmed.
      expect(Math.min(...devicesOf(dev.programmed, sign))).toBeGreaterThanOrEqual(0);
      expect(dev.now).toEqual(dev.programmed);
    }
  });

  test("zero weights are noisy too: their effective weights spread around 0", () => {
    const levels = new Int16Array(N);
    const dev = realizeDevices(levels, SPEC, model((m) => Object.assign(m.programming, prog)), 5, 0);
    const w = moments(effectiveWeights(dev.programmed, MAP));
    const one = rectifiedNormal(SPEC.gMinUs, programmingSigma(prog, SPEC.gMinUs, SPEC.gMaxUs));
    // g+ - g- of two independent devices: mean 0, variance 2 var(g), in levels^2.
    const want = 2 * one.variance * MAP.levelsPerUs ** 2;
    expect(Math.abs(w.mean)).toBeLessThan(K_SIGMA * Math.sqrt(want / N));
    expect(Math.abs(w.variance - want)).toBeLessThan(K_SIGMA * Math.sqrt((w.m4 - want * want) / N));
  });

  test("the programming draws do not depend on the noise level (common random numbers)", () => {
    const levels = Int16Array.from({ length: 1000 }, (_, i) => (i % 31) - 15);
    const lo = realizeDevices(levels, SPEC, model((m) => Object.assign(m.programming, { ...prog, scale: 0.001 })), 9, 1);
    const hi = realizeDevices(levels, SPEC, model((m) => Object.assign(m.programming, { ...prog, scale: 0.002 })), 9, 1);
    // Same normals, twice the sigma: the deviations double (no device is near 0 uS at these sigmas).
    for (let d = 0; d < 2000; d++) {
      const t = d % 2 === 0 ? targetGPlus(MAP, levels[d >> 1]!) : targetGMinus(MAP, levels[d >> 1]!);
      expect(hi.programmed[d]! - t).toBeCloseTo(2 * (lo.programmed[d]! - t), 10);
    }
  });
});

describe("stuck-at faults", () => {
  const N = 100000; // cells, i.e. 2N devices
  const pMin = 0.01;
  const pMax = 0.03;

  test("fault rates match, stuck devices hold gMin / gMax and ignore programming noise", () => {
    const levels = Int16Array.from({ length: N }, (_, i) => (i % 31) - 15);
    const m = model((x) => {
      x.faults = { stuckAtGMin: pMin, stuckAtGMax: pMax };
      Object.assign(x.programming, { c0: 0.01, c1: 0.01, c2: 0 });
    });
    const dev = realizeDevices(levels, SPEC, m, 21, 4);
    const count = (s: number): number => dev.state.reduce((a, v) => a + (v === s ? 1 : 0), 0);
    const n = 2 * N;
    for (const [state, p] of [
      [STUCK_AT_GMIN, pMin],
      [STUCK_AT_GMAX, pMax],
      [HEALTHY, 1 - pMin - pMax],
    ] as const) {
      expect(Math.abs(count(state) - n * p)).toBeLessThan(K_SIGMA * Math.sqrt(n * p * (1 - p)));
    }
    dev.state.forEach((s, d) => {
      if (s === STUCK_AT_GMIN) expect(dev.programmed[d]).toBe(SPEC.gMinUs);
      if (s === STUCK_AT_GMAX) expect(dev.programmed[d]).toBe(SPEC.gMaxUs);
    });
    // The two devices of a cell fail independently: both stuck at gMin in about pMin^2 of cells.
    let both = 0;
    for (let c = 0; c < N; c++) if (dev.state[2 * c] === STUCK_AT_GMIN && dev.state[2 * c + 1] === STUCK_AT_GMIN) both++;
    const p2 = pMin * pMin;
    expect(Math.abs(both - N * p2)).toBeLessThan(K_SIGMA * Math.sqrt(N * p2 * (1 - p2)));
  });
});

describe("drift", () => {
  const t0 = 20;

  test("a fixed exponent follows the power law exactly; no drift up to t0", () => {
    const levels = Int16Array.from({ length: 500 }, (_, i) => (i % 31) - 15);
    const nu = 0.06;
    for (const t of [5, 20, 60, 3600, 86400, 3.15e7]) {
      const m = model((x) => Object.assign(x.drift, { nu, t0Seconds: t0, tSeconds: t }));
      const dev = realizeDevices(levels, SPEC, m, 1, 0);
      const want = t > t0 ? Math.pow(t / t0, -nu) : 1;
      for (let d = 0; d < dev.now.length; d++) expect(dev.now[d]! / dev.programmed[d]!).toBeCloseTo(want, 12);
    }
    // log(g(t) / g0) against log(t / t0) is a line of slope -nu.
    const ts = [100, 1000, 1e4, 1e5];
    const logs = ts.map((t) => Math.log(driftFactor(t, t0, nu)));
    for (let i = 1; i < ts.length; i++) expect((logs[i]! - logs[i - 1]!) / Math.log(ts[i]! / ts[i - 1]!)).toBeCloseTo(-nu, 12);
  });

  test("device-to-device exponents: the mean drift factor matches E[(t/t0)^-nu], nu ~ N(mu, s)", () => {
    const N = 40000;
    const mu = 0.05;
    const s = 0.01; // 5 sigma from the clip at 0
    const levels = new Int16Array(N).fill(15);
    for (const t of [3600, 86400 * 365]) {
      const m = model((x) => Object.assign(x.drift, { nu: mu, nuSigma: s, t0Seconds: t0, tSeconds: t }));
      const dev = realizeDevices(levels, SPEC, m, 8, 2);
      const ratio = devicesOf(dev.now, 0).map((g, i) => g / dev.programmed[2 * i]!);
      const L = Math.log(t / t0);
      // lognormal: E = exp(-mu L + s^2 L^2 / 2), Var = E^2 (exp(s^2 L^2) - 1)
      const mean = Math.exp(-mu * L + (s * s * L * L) / 2);
      const sd = mean * Math.sqrt(Math.exp(s * s * L * L) - 1);
      expect(Math.abs(moments(ratio).mean - mean)).toBeLessThan(K_SIGMA * (sd / Math.sqrt(N)));
    }
  });

  test("global drift compensation restores the mean weight", () => {
    const N = 64 * 64;
    const levels = Int16Array.from({ length: N }, (_, i) => 1 + (i % 15)); // positive weights
    const image = { id: 0, rows: 64, cols: 64, levels };
    const base = (compensate: boolean, nuSigma: number): NoiseModel =>
      model((x) => Object.assign(x.drift, { nu: 0.05, nuSigma, t0Seconds: t0, tSeconds: 86400, compensate }));
    const q = moments(levels).mean;
    // Uniform exponent: drift is one factor, compensation undoes it exactly.
    const uniform = programCrossbar(image, SPEC, base(true, 0), 3);
    expect(uniform.driftScale).toBeCloseTo(Math.pow(86400 / t0, 0.05), 12);
    // (weights are stored as float32: 6e-8 relative)
    expect(moments(Float64Array.from(uniform.weight, (w) => w * uniform.driftScale)).mean).toBeCloseTo(q, 5);
    // Without compensation the mean shrinks by the drift factor.
    const raw = programCrossbar(image, SPEC, base(false, 0), 3);
    expect(raw.driftScale).toBe(1);
    expect(moments(raw.weight).mean / q).toBeCloseTo(Math.pow(86400 / t0, -0.05), 6);
    // Spread exponents: the mean |weight| is restored exactly, each weight only on average.
    const spread = programCrossbar(image, SPEC, base(true, 0.02), 3);
    const w = Float64Array.from(spread.weight, (v) => v * spread.driftScale);
    const m = moments(w);
    expect(m.mean).toBeCloseTo(q, 5);
    expect(m.variance).toBeGreaterThan(moments(levels).variance); // drift noise adds spread
  });

  test("driftCompensation is the ratio of summed |g+ - g-| (summed |weights|)", () => {
    // devices (g+, g-) per cell: weights 1, -2, 3 at t0 and 0.5, -1, 1.5 at t
    expect(driftCompensation(Float64Array.from([1, 0, 0, 2, 4, 1]), Float64Array.from([0.5, 0, 0, 1, 2, 0.5]))).toBe(2);
    expect(driftCompensation(Float64Array.from([1, 1]), Float64Array.from([0.5, 0.5]))).toBe(1);
  });
});

describe("DAC / ADC errors", () => {
  test("per-column ADC and per-row DAC offsets: mean 0, sigma as configured, fixed per chip seed", () => {
    const sigma = 0.01;
    const m = model((x) => {
      x.adc.offsetSigma = sigma;
      x.dac.offsetSigma = 2 * sigma;
    });
    const adc: number[] = [];
    const dac: number[] = [];
    for (let id = 0; id < 200; id++) {
      const chip = programCrossbar({ id, rows: 64, cols: 64, levels: new Int16Array(4096) }, SPEC, m, 4);
      adc.push(...chip.adcOffset!);
      dac.push(...chip.dacOffset!);
    }
    for (const [xs, s] of [
      [adc, sigma],
      [dac, 2 * sigma],
    ] as const) {
      const mo = moments(xs);
      expect(Math.abs(mo.mean)).toBeLessThan(K_SIGMA * (s / Math.sqrt(mo.n)));
      expect(Math.abs(mo.variance - s * s)).toBeLessThan(K_SIGMA * s * s * Math.sqrt(2 / (mo.n - 1)));
    }
    const again = programCrossbar({ id: 7, rows: 64, cols: 64, levels: new Int16Array(4096) }, SPEC, m, 4);
    expect(Array.from(again.adcOffset!)).toEqual(adc.slice(7 * 64, 8 * 64));
  });

  test("the transfer curve keeps 0 and full scale, is odd and monotonic, and its largest error is as documented", () => {
    for (const a of [-0.5, 0.1, 1, 4]) {
      expect(transferCurve(0, 2, a)).toBe(0);
      expect(transferCurve(2, 2, a)).toBeCloseTo(2, 12);
      expect(transferCurve(-2, 2, a)).toBeCloseTo(-2, 12);
      let worst = 0;
      let prev = -Infinity;
      let monotonic = true;
      let odd = true;
      for (let i = -1000; i <= 1000; i++) {
        const v = (2 * i) / 1000;
        const f = transferCurve(v, 2, a);
        monotonic &&= f > prev;
        odd &&= Math.abs(transferCurve(-v, 2, a) + f) < 1e-12;
        prev = f;
        worst = Math.max(worst, Math.abs(f - v) / 2);
      }
      expect([monotonic, odd]).toEqual([true, true]);
      expect(worst).toBeCloseTo(maxCurveError(a), 5);
    }
  });
});
