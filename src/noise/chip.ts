// A programmed chip: one realization of the device-level randomness of a crossbar image
// (faults, programming noise, drift to the inference time, DAC/ADC offsets), turned into
// the arrays the noisy MVM reads (src/interp/crossbar.ts). Everything here is fixed for a
// chip and derived from the chip seed; per-MVM randomness lives in the MVM.

import { conductanceMap, effectiveLevel, targetGMinus, targetGPlus, type ConductanceMap } from "./conductance.js";
import { driftExponent, driftFactor, faultOf, HEALTHY, programmedConductance, programmingSigma, readVariance, STUCK_AT_GMAX, STUCK_AT_GMIN } from "./device.js";
import { partActive, type NoiseModel } from "./spec.js";
import { chipStream } from "./streams.js";

const abs = Math.abs;

/** What the chip model needs to know about the hardware. */
export interface ChipSpec {
  gMinUs: number;
  gMaxUs: number;
  /** L = deviceLevels - 1. */
  maxLevel: number;
}

/**
 * Every device of a cell array, two per cell (index 2c: positive, 2c+1: negative), in uS:
 * `programmed` at t0 (after faults and programming noise) and `now` at the inference time.
 */
export interface Devices {
  programmed: Float64Array;
  now: Float64Array;
  /** HEALTHY, STUCK_AT_GMIN or STUCK_AT_GMAX per device. */
  state: Uint8Array;
}

/**
 * Work arrays for realizing devices, reused from one crossbar to the next while a chip is
 * programmed (a digits-size chip has a million devices; fresh arrays per crossbar keep the
 * garbage collector busy for nothing).
 */
export class DeviceBuffers {
  private programmed = new Float64Array(0);
  private now = new Float64Array(0);
  private state = new Uint8Array(0);
  private normals = new Float64Array(0);

  /** Views of `devices` entries; contents are overwritten by the next call. */
  take(devices: number): { programmed: Float64Array; now: Float64Array; state: Uint8Array; normals: Float64Array } {
    if (this.programmed.length < devices) {
      this.programmed = new Float64Array(devices);
      this.now = new Float64Array(devices);
      this.state = new Uint8Array(devices);
      this.normals = new Float64Array(devices);
    }
    const state = this.state.subarray(0, devices);
    state.fill(0);
    return { programmed: this.programmed.subarray(0, devices), now: this.now.subarray(0, devices), state, normals: this.normals.subarray(0, devices) };
  }
}

/**
 * Realizes the devices of `levels` (row-major cells) for chip seed `seed`, crossbar
 * `crossbar`. With `buffers` the result lives in them (valid until their next use).
 */
export function realizeDevices(levels: ArrayLike<number>, spec: ChipSpec, model: NoiseModel, seed: number, crossbar: number, buffers = new DeviceBuffers()): Devices {
  const map = conductanceMap(spec.gMinUs, spec.gMaxUs, spec.maxLevel);
  const n = levels.length;
  const { programmed, now, state, normals } = buffers.take(2 * n);
  for (let c = 0; c < n; c++) {
    const q = levels[c]!;
    programmed[2 * c] = targetGPlus(map, q);
    programmed[2 * c + 1] = targetGMinus(map, q);
  }
  if (partActive(model, "faults")) {
    const s = chipStream(seed, crossbar, "faults");
    for (let d = 0; d < 2 * n; d++) state[d] = faultOf(model.faults, s.uniform());
  }
  if (partActive(model, "programming")) {
    // One normal per device, stuck or not, so the draws line up across parameter values.
    chipStream(seed, crossbar, "programming").fillNormals(normals);
    for (let d = 0; d < 2 * n; d++) {
      const g = programmed[d]!;
      programmed[d] = programmedConductance(g, programmingSigma(model.programming, g, spec.gMaxUs), normals[d]!);
    }
  }
  for (let d = 0; d < 2 * n; d++) {
    if (state[d] === STUCK_AT_GMIN) programmed[d] = spec.gMinUs;
    else if (state[d] === STUCK_AT_GMAX) programmed[d] = spec.gMaxUs;
  }
  now.set(programmed);
  if (partActive(model, "drift")) {
    const dr = model.drift;
    const spread = dr.nuSigma > 0;
    if (spread) chipStream(seed, crossbar, "drift").fillNormals(normals);
    const uniform = driftFactor(dr.tSeconds, dr.t0Seconds, dr.nu);
    for (let d = 0; d < 2 * n; d++) {
      const f = spread ? driftFactor(dr.tSeconds, dr.t0Seconds, driftExponent(dr, normals[d]!)) : uniform;
      // A stuck device's conductance is set by its defect, not by the amorphous phase that drifts.
      if (state[d] === HEALTHY) now[d] = programmed[d]! * f;
    }
  }
  return { programmed, now, state };
}

/** Effective weight levels of every cell: (g+ - g-) / (gMax - gMin) * L. */
export function effectiveWeights(devices: Float64Array, map: ConductanceMap): Float64Array {
  const n = devices.length / 2;
  const w = new Float64Array(n);
  for (let c = 0; c < n; c++) w[c] = effectiveLevel(map, devices[2 * c]!, devices[2 * c + 1]!);
  return w;
}

/**
 * Global drift compensation (aihwkit's GlobalDriftCompensation): one scale per crossbar,
 * measured once after drift as the ratio of the summed |weights| at t0 to the summed
 * |weights| at t (reading every row alone with unit input and summing |outputs| measures
 * exactly these sums; a weight is proportional to g+ - g-). Applied digitally to the
 * crossbar's ADC outputs.
 */
export function driftCompensation(programmed: Float64Array, now: Float64Array): number {
  let ref = 0;
  let cur = 0;
  for (let d = 0; d < programmed.length; d += 2) {
    ref += abs(programmed[d]! - programmed[d + 1]!);
    cur += abs(now[d]! - now[d + 1]!);
  }
  return cur > 0 && ref > 0 ? ref / cur : 1;
}

/**
 * The arrays of a programmed crossbar the noisy MVM reads; weights in levels, variances in
 * levels^2. Stored as float32: a relative rounding of 6e-8 is far below any device effect,
 * integer levels stay exact, and the MVM streams half the bytes.
 */
export interface ProgrammedCrossbar {
  rows: number;
  cols: number;
  /** Effective weight levels at the inference time, row-major. */
  weight: Float32Array;
  /** Per cell: read-noise variance of both devices together; null without read noise. */
  readVar: Float32Array | null;
  /** IR drop only: device conductances (in levels, i.e. g * L / (gMax - gMin)) and their read variances. */
  gPlus: Float32Array | null;
  gMinus: Float32Array | null;
  varPlus: Float32Array | null;
  varMinus: Float32Array | null;
  /** Static offsets relative to full scale: per row (DAC) and per column (ADC); null when off. */
  dacOffset: Float64Array | null;
  adcOffset: Float64Array | null;
  /** Digital output scale of global drift compensation (1 without). */
  driftScale: number;
  /** Levels per microsiemens, to turn wire resistances into level units. */
  levelsPerUs: number;
}

function offsets(n: number, sigma: number, seed: number, crossbar: number, purpose: "dac" | "adc"): Float64Array | null {
  if (!(sigma > 0)) return null;
  const s = chipStream(seed, crossbar, purpose);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * s.normal();
  return out;
}

/** Programs one crossbar image (rows x cols levels) into a chip realization. */
export function programCrossbar(
  image: { id: number; rows: number; cols: number; levels: ArrayLike<number> },
  spec: ChipSpec,
  model: NoiseModel,
  seed: number,
  buffers = new DeviceBuffers(),
): ProgrammedCrossbar {
  const map = conductanceMap(spec.gMinUs, spec.gMaxUs, spec.maxLevel);
  const dev = realizeDevices(image.levels, spec, model, seed, image.id, buffers);
  const driftScale = partActive(model, "drift") && model.drift.compensate ? driftCompensation(dev.programmed, dev.now) : 1;
  const n = image.rows * image.cols;
  const k = map.levelsPerUs;
  const weight = new Float32Array(n);
  for (let c = 0; c < n; c++) weight[c] = effectiveLevel(map, dev.now[2 * c]!, dev.now[2 * c + 1]!);
  const ir = partActive(model, "irDrop");
  let readVar: Float32Array | null = null;
  let varPlus: Float32Array | null = null;
  let varMinus: Float32Array | null = null;
  if (partActive(model, "read")) {
    const t = model.drift.tSeconds;
    const v = (d: number): number => readVariance(model.read, dev.now[d]!, dev.programmed[d]!, spec.gMaxUs, t) * k * k;
    readVar = new Float32Array(n);
    if (ir) {
      varPlus = new Float32Array(n);
      varMinus = new Float32Array(n);
    }
    for (let c = 0; c < n; c++) {
      const vp = v(2 * c);
      const vm = v(2 * c + 1);
      readVar[c] = vp + vm;
      if (varPlus && varMinus) {
        varPlus[c] = vp;
        varMinus[c] = vm;
      }
    }
  }
  let gPlus: Float32Array | null = null;
  let gMinus: Float32Array | null = null;
  if (ir) {
    gPlus = new Float32Array(n);
    gMinus = new Float32Array(n);
    for (let c = 0; c < n; c++) {
      gPlus[c] = dev.now[2 * c]! * k;
      gMinus[c] = dev.now[2 * c + 1]! * k;
    }
  }
  return {
    rows: image.rows,
    cols: image.cols,
    weight,
    readVar,
    gPlus,
    gMinus,
    varPlus,
    varMinus,
    dacOffset: partActive(model, "dac") ? offsets(image.rows, model.dac.offsetSigma, seed, image.id, "dac") : null,
    adcOffset: partActive(model, "adc") ? offsets(image.cols, model.adc.offsetSigma, seed, image.id, "adc") : null,
    driftScale,
    levelsPerUs: k,
  };
}
