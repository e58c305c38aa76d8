// Per-device physics of the noise model (docs/NOISE.md), conductances in microsiemens.
// Modelled on IBM aihwkit's PCM inference model (PCMLikeNoiseModel): programming noise with
// a conductance-dependent sigma, power-law drift and 1/f read noise; written from its
// documented equations.

import type { NoiseModel } from "./spec.js";

const max = Math.max;
const min = Math.min;
const pow = Math.pow;
const sqrt = Math.sqrt;
const log = Math.log;

/**
 * Programming noise sigma (uS) of a device programmed to target g:
 * scale * gMax * max(0, c0 + c1 (g/gMax) + c2 (g/gMax)^2). aihwkit fits the same polynomial
 * in uS for gMax = 25 uS (0.26348 + 1.9650 x - 1.1731 x^2); here the coefficients are
 * relative to gMax, so one set works for any device range.
 */
export function programmingSigma(p: NoiseModel["programming"], gUs: number, gMaxUs: number): number {
  const x = gUs / gMaxUs;
  return p.scale * gMaxUs * max(0, p.c0 + p.c1 * x + p.c2 * x * x);
}

/** A programmed conductance from its target, sigma and a standard normal z; never negative. */
export function programmedConductance(targetUs: number, sigmaUs: number, z: number): number {
  return max(0, targetUs + sigmaUs * z);
}

/** A device's drift exponent from the mean, the spread and a standard normal z; never negative. */
export function driftExponent(d: NoiseModel["drift"], z: number): number {
  return max(0, d.nu + d.nuSigma * z);
}

/** Conductance factor (t/t0)^-nu after t seconds; 1 up to t0 (g_P is the conductance at t0). */
export function driftFactor(tSeconds: number, t0Seconds: number, nu: number): number {
  return tSeconds > t0Seconds ? pow(tSeconds / t0Seconds, -nu) : 1;
}

/**
 * 1/f read-noise sigma (uS) of a device that holds g now and was programmed to gP:
 * g * Qs * sqrt(ln((t + tRead) / (2 tRead))), Qs = min(flickerQs / max((gP/gMax)^0.65, 1e-3), 0.2)
 * (aihwkit's fit of the 1/f noise amplitude of PCM; the square root integrates S = Qs^2/f
 * over the band 1/t .. 1/(2 tRead)).
 */
export function flickerSigma(r: NoiseModel["read"], gNowUs: number, gProgrammedUs: number, gMaxUs: number, tSeconds: number): number {
  if (r.flickerQs <= 0) return 0;
  const band = log((tSeconds + r.tReadSeconds) / (2 * r.tReadSeconds));
  if (!(band > 0)) return 0;
  const qs = min(r.flickerQs / max(pow(gProgrammedUs / gMaxUs, 0.65), 1e-3), 0.2);
  return gNowUs * qs * sqrt(band);
}

/** Total read-noise variance (uS^2) of one device per MVM: white and 1/f parts add in variance. */
export function readVariance(r: NoiseModel["read"], gNowUs: number, gProgrammedUs: number, gMaxUs: number, tSeconds: number): number {
  const white = r.sigma * gMaxUs;
  const flicker = flickerSigma(r, gNowUs, gProgrammedUs, gMaxUs, tSeconds);
  return white * white + flicker * flicker;
}

/** Device state codes of a realized chip. */
export const HEALTHY = 0;
export const STUCK_AT_GMIN = 1;
export const STUCK_AT_GMAX = 2;

/** Stuck-at state of a device from one uniform draw u in [0, 1). */
export function faultOf(f: NoiseModel["faults"], u: number): number {
  if (u < f.stuckAtGMin) return STUCK_AT_GMIN;
  if (u < f.stuckAtGMin + f.stuckAtGMax) return STUCK_AT_GMAX;
  return HEALTHY;
}
