// The noise model a run simulates: the target's `noise` blocks (src/target/types.ts
// NoiseSpec) with every optional field filled in, so the simulator never branches on
// "absent". A block whose parameters have no effect (all zero) counts as off, which is
// also what "off" is: the all-defaults model.

import type { NoiseSpec } from "../target/types.js";

export interface NoiseModel {
  programming: { c0: number; c1: number; c2: number; scale: number };
  read: { sigma: number; flickerQs: number; tReadSeconds: number };
  drift: { nu: number; nuSigma: number; t0Seconds: number; tSeconds: number; compensate: boolean };
  output: { sigma: number };
  faults: { stuckAtGMin: number; stuckAtGMax: number };
  irDrop: { wireOhms: number };
  dac: { offsetSigma: number; nonlinearity: number };
  adc: { offsetSigma: number; nonlinearity: number };
}

export type NoisePart = keyof NoiseModel;
export const NOISE_PARTS: readonly NoisePart[] = ["programming", "read", "drift", "output", "faults", "irDrop", "dac", "adc"];

/** aihwkit's PCM reference time and read pulse width; one hour is its usual inference time. */
export const DEFAULT_T0_SECONDS = 20;
export const DEFAULT_T_READ_SECONDS = 250e-9;
export const DEFAULT_INFERENCE_SECONDS = 3600;

/** Every part present with no effect. */
export function noiseOff(): NoiseModel {
  return {
    programming: { c0: 0, c1: 0, c2: 0, scale: 1 },
    read: { sigma: 0, flickerQs: 0, tReadSeconds: DEFAULT_T_READ_SECONDS },
    drift: { nu: 0, nuSigma: 0, t0Seconds: DEFAULT_T0_SECONDS, tSeconds: DEFAULT_INFERENCE_SECONDS, compensate: false },
    output: { sigma: 0 },
    faults: { stuckAtGMin: 0, stuckAtGMax: 0 },
    irDrop: { wireOhms: 0 },
    dac: { offsetSigma: 0, nonlinearity: 0 },
    adc: { offsetSigma: 0, nonlinearity: 0 },
  };
}

/** The target's noise blocks over the defaults. */
export function noiseFromTarget(spec: NoiseSpec): NoiseModel {
  const m = noiseOff();
  if (spec.programming) Object.assign(m.programming, spec.programming);
  if (spec.read) Object.assign(m.read, spec.read);
  if (spec.drift) Object.assign(m.drift, spec.drift);
  if (spec.output) Object.assign(m.output, spec.output);
  if (spec.faults) Object.assign(m.faults, spec.faults);
  if (spec.irDrop) Object.assign(m.irDrop, spec.irDrop);
  if (spec.dac) Object.assign(m.dac, spec.dac);
  if (spec.adc) Object.assign(m.adc, spec.adc);
  return m;
}

/** Whether a part changes anything (a drift that starts after the inference time does not). */
export function partActive(m: NoiseModel, part: NoisePart): boolean {
  switch (part) {
    case "programming": {
      const p = m.programming;
      return p.scale > 0 && (p.c0 !== 0 || p.c1 !== 0 || p.c2 !== 0);
    }
    case "read":
      return m.read.sigma > 0 || m.read.flickerQs > 0;
    case "drift":
      return (m.drift.nu > 0 || m.drift.nuSigma > 0) && m.drift.tSeconds > m.drift.t0Seconds;
    case "output":
      return m.output.sigma > 0;
    case "faults":
      return m.faults.stuckAtGMin > 0 || m.faults.stuckAtGMax > 0;
    case "irDrop":
      return m.irDrop.wireOhms > 0;
    case "dac":
      return m.dac.offsetSigma > 0 || m.dac.nonlinearity !== 0;
    case "adc":
      return m.adc.offsetSigma > 0 || m.adc.nonlinearity !== 0;
  }
}

export function activeParts(m: NoiseModel): NoisePart[] {
  return NOISE_PARTS.filter((p) => partActive(m, p));
}

/** True when the model changes any result; false runs take the exact noise-free path. */
export function noiseActive(m: NoiseModel): boolean {
  return activeParts(m).length > 0;
}

/** A noise model plus the seeds of its two random streams (see src/noise/streams.ts). */
export interface NoiseConfig {
  model: NoiseModel;
  /** Seeds the chip: programming noise, faults, drift exponents, DAC/ADC offsets. */
  seed: number;
  /** Seeds the per-MVM draws (read and output noise); defaults to `seed`. */
  readSeed?: number;
}

/** One line per active part, for reports and --help. */
export function describeNoise(m: NoiseModel): string[] {
  const out: string[] = [];
  for (const part of activeParts(m)) {
    switch (part) {
      case "programming": {
        const p = m.programming;
        const term = (c: number, x: string): string => `${c < 0 ? "-" : "+"} ${Math.abs(c)}${x}`;
        out.push(`programming noise sigma = ${p.scale === 1 ? "" : `${p.scale} * `}gMax * (${p.c0} ${term(p.c1, " g/gMax")} ${term(p.c2, " (g/gMax)^2")})`);
        break;
      }
      case "read":
        out.push(`read noise sigma = ${m.read.sigma} gMax per MVM${m.read.flickerQs > 0 ? ` + 1/f (Qs ${m.read.flickerQs}, tRead ${m.read.tReadSeconds} s)` : ""}`);
        break;
      case "drift": {
        const d = m.drift;
        out.push(`drift nu = ${d.nu}${d.nuSigma > 0 ? ` ± ${d.nuSigma}` : ""}, t0 = ${d.t0Seconds} s, t = ${d.tSeconds} s, ${d.compensate ? "with" : "without"} global drift compensation`);
        break;
      }
      case "output":
        out.push(`output noise sigma = ${m.output.sigma} of ADC full scale`);
        break;
      case "faults":
        out.push(`stuck-at faults: ${m.faults.stuckAtGMin} at gMin, ${m.faults.stuckAtGMax} at gMax`);
        break;
      case "irDrop":
        out.push(`IR drop: ${m.irDrop.wireOhms} ohm per wire segment`);
        break;
      case "dac":
        out.push(`DAC offset sigma ${m.dac.offsetSigma} of full scale, nonlinearity ${m.dac.nonlinearity}`);
        break;
      case "adc":
        out.push(`ADC offset sigma ${m.adc.offsetSigma} of full scale, nonlinearity ${m.adc.nonlinearity}`);
        break;
    }
  }
  return out;
}
