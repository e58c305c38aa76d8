// Seeded randomness of a noisy run, split so that results are reproducible and parameter
// sweeps are smooth:
//
// - "chip" streams (from --seed): everything fixed once a chip is programmed. One
//   independent stream per crossbar and per purpose (programming noise, faults, drift
//   exponents, DAC and ADC offsets), so turning one effect on or scaling it never shifts the
//   random numbers of another, and a crossbar's devices do not depend on the others.
// - "read" streams (from --read-seed, default --seed): the draws of every MVM (read noise,
//   output noise), again one stream per crossbar and purpose.
//
// Every stream draws a fixed number of values per device (or per column and MVM) whatever
// the parameter values, so a sweep over, say, programming.scale reuses the same standard
// normals at every point (common random numbers): the curve shows the effect of the
// parameter, not a fresh chip per point.

import { hashSeed, Rng } from "../common/rng.js";

export type ChipPurpose = "programming" | "faults" | "drift" | "dac" | "adc";
export type ReadPurpose = "read" | "output";

const sqrt = Math.sqrt;
const log = Math.log;
const cos = Math.cos;
const sin = Math.sin;
const TWO_PI = 2 * Math.PI;
const TWO_POW_M32 = 2 ** -32;

/** Uniforms and standard normals from one xoshiro128** stream (Box-Muller, pairs kept). */
export class NoiseStream {
  private spare = 0;
  private hasSpare = false;

  constructor(private readonly rng: Rng) {}

  uniform(): number {
    return this.rng.uniform();
  }

  /**
   * Fills `out` with standard normals (Box-Muller on 32-bit uniforms: half the generator
   * calls of normal(), for the millions of device draws of a large chip). Independent of the
   * normal() pair state.
   */
  fillNormals(out: Float64Array): void {
    const rng = this.rng;
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      const u1 = (rng.nextUint32() + 1) * TWO_POW_M32; // (0, 1]: finite logarithm
      const u2 = rng.nextUint32() * TWO_POW_M32;
      const r = sqrt(-2 * log(u1));
      out[i] = r * cos(TWO_PI * u2);
      if (i + 1 < n) out[i + 1] = r * sin(TWO_PI * u2);
    }
  }

  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    const u1 = 1 - this.rng.uniform(); // (0, 1]: finite logarithm
    const u2 = this.rng.uniform();
    const r = sqrt(-2 * log(u1));
    this.spare = r * sin(TWO_PI * u2);
    this.hasSpare = true;
    return r * cos(TWO_PI * u2);
  }
}

export function chipStream(seed: number, crossbar: number, purpose: ChipPurpose): NoiseStream {
  return new NoiseStream(new Rng(hashSeed(seed, `imssa/noise/chip/${purpose}/${crossbar}`)));
}

export function readStream(seed: number, crossbar: number, purpose: ReadPurpose): NoiseStream {
  return new NoiseStream(new Rng(hashSeed(seed, `imssa/noise/read/${purpose}/${crossbar}`)));
}
