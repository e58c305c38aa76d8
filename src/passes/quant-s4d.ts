// S4D stability under weight quantization.
//
// The fused S4D matmul (lower-s4d) holds per mode a 2x2 block that maps the previous state
// [xr, xi] to the new one. Rounding its entries to the per-column level grid (quant-weights)
// moves the block's eigenvalues, and S4D modes decay slowly (|dA| = exp(-dt |Re A|), often
// above 0.99), so nearest rounding pushes a sizeable share of modes to |eigenvalue| >= 1: a
// model that is stable in float would grow without bound on the chip over long sequences.
// This module repairs such modes after per-column rounding.
//
// Which modes are repaired: those whose float block has spectral radius < 1 and whose
// rounded block has radius >= 1 (or a non-finite radius). The float block of lower-s4d is a
// scaled rotation, hence normal, so by Bauer-Fike every eigenvalue of the rounded block lies
// within ||E||_2 <= ||E||_F <= sqrt((s_re^2 + s_im^2) / 2) of a float eigenvalue (E: the
// rounding error, at most half a level spacing s per entry). Nearest rounding therefore
// never raises the radius by more than rounding can justify; the one thing it can break is
// the side of 1 the radius lies on, and that is what is checked. Modes already unstable in
// float are the model's behaviour and are left alone.
//
// The repair: the smallest number k of single-level steps toward zero (over the block's
// four levels) after which the radius is < 1. Among the candidates with k steps, the one
// closest to the float block (least squared weight error; by the bound above this also
// bounds how far the eigenvalues move), ties broken by a fixed enumeration order, so the
// result is deterministic. Steps toward zero keep every level in [-L, L], so the column
// scales (shared with the B row of the same columns) stay unchanged and QAT-exact weights
// elsewhere in the column are untouched. The search always ends: all four levels at zero
// give radius 0. In practice k = 1 (the off-diagonal level that was rounded up goes down).
//
// The guarantee is radius < 1 of the dequantized weights q * colScale in float64, i.e. of
// the weights the quantized IR holds. It is not a margin against device noise.

import { assert } from "../common/errors.js";
import type { BlockMatrix } from "../ir/types.js";

// Hot loops call these per mode and candidate; a module-level binding avoids a global
// `Math` lookup per call, which is slow inside vm contexts (jest runs tests in one).
const { abs, sqrt, round, min, sign } = Math;

/**
 * Spectral radius of the real 2x2 matrix [[a, b], [c, d]] (a matrix and its transpose share
 * eigenvalues, so the orientation does not matter).
 */
export function spectralRadius2(a: number, b: number, c: number, d: number): number {
  const half = (a + d) / 2;
  const det = a * d - b * c;
  const disc = half * half - det;
  // Complex pair: |lambda|^2 = lambda * conj(lambda) = det (det > half^2 >= 0 here).
  if (disc < 0) return sqrt(det);
  // Real pair half +- root: the larger magnitude is |half| + root.
  return abs(half) + sqrt(disc);
}

/** One repaired mode. Entry order of the 2x2 blocks: [re->re, re->im, im->re, im->im] (W[in][out]). */
export interface ModeRepair {
  /** Mode index within the matmul: state rows/cols 2*mode and 2*mode + 1. */
  mode: number;
  floatRadius: number;
  /** Radius after nearest rounding (>= 1). */
  roundedRadius: number;
  /** Radius after the repair (< 1). */
  radius: number;
  /** Levels after nearest rounding and after the repair. */
  roundedLevels: [number, number, number, number];
  levels: [number, number, number, number];
  /** Number of single-level steps: sum of |levels - roundedLevels|. */
  steps: number;
}

export interface S4DStabilization {
  /** Number of modes (2x2 blocks) checked. */
  modes: number;
  /** Modes whose float block already has radius >= 1 (left as rounded). */
  unstableInFloat: number;
  repairs: ModeRepair[];
}

/** Where the four entries of one mode block live: block index and data index, -1 if not stored. */
interface ModeEntries {
  block: Int32Array; // [4]
  index: Int32Array; // [4]
}

function locateModes(float: BlockMatrix, quantized: BlockMatrix, stateLen: number): ModeEntries[] {
  assert(float.blocks.length === quantized.blocks.length, "quantized S4D matrix must keep the block layout");
  const nModes = stateLen / 2;
  const modes: ModeEntries[] = Array.from({ length: nModes }, () => ({ block: new Int32Array(4).fill(-1), index: new Int32Array(4).fill(-1) }));
  float.blocks.forEach((b, k) => {
    if (b.row >= stateLen || b.col >= stateLen) return;
    for (let r = 0; r < b.rows && b.row + r < stateLen; r++) {
      const row = b.row + r;
      for (let c = 0; c < b.cols && b.col + c < stateLen; c++) {
        const col = b.col + c;
        const i = r * b.cols + c;
        const mode = row >> 1;
        if (col >> 1 !== mode) {
          // lower-s4d couples no two modes; a nonzero here would make the 2x2 analysis wrong.
          assert(b.data[i] === 0 && quantized.blocks[k]!.data[i] === 0, `S4D matmul couples state ${row} to state ${col}`);
          continue;
        }
        const e = (row & 1) * 2 + (col & 1);
        modes[mode]!.block[e] = k;
        modes[mode]!.index[e] = i;
      }
    }
  });
  return modes;
}

/**
 * The fewest steps toward zero over `levels` that make the block stable, least weight error
 * first among equals. Returns the new levels and the step count.
 */
function repairLevels(levels: number[], scale: number[], target: number[]): { levels: number[]; steps: number; radius: number } {
  const mag = levels.map(abs);
  const dir = levels.map(sign);
  const total = mag[0]! + mag[1]! + mag[2]! + mag[3]!;
  const cand = [0, 0, 0, 0];
  for (let k = 1; k <= total; k++) {
    let best: number[] | null = null;
    let bestErr = Infinity;
    let bestRadius = NaN;
    for (let d0 = 0; d0 <= min(k, mag[0]!); d0++) {
      for (let d1 = 0; d1 <= min(k - d0, mag[1]!); d1++) {
        for (let d2 = 0; d2 <= min(k - d0 - d1, mag[2]!); d2++) {
          const d3 = k - d0 - d1 - d2;
          if (d3 > mag[3]!) continue;
          cand[0] = levels[0]! - dir[0]! * d0;
          cand[1] = levels[1]! - dir[1]! * d1;
          cand[2] = levels[2]! - dir[2]! * d2;
          cand[3] = levels[3]! - dir[3]! * d3;
          const w0 = cand[0] * scale[0]!;
          const w1 = cand[1] * scale[1]!;
          const w2 = cand[2] * scale[2]!;
          const w3 = cand[3] * scale[3]!;
          const r = spectralRadius2(w0, w1, w2, w3);
          if (!(r < 1)) continue;
          const err = (w0 - target[0]!) ** 2 + (w1 - target[1]!) ** 2 + (w2 - target[2]!) ** 2 + (w3 - target[3]!) ** 2;
          if (err < bestErr) {
            bestErr = err;
            best = cand.slice();
            bestRadius = r;
          }
        }
      }
    }
    if (best !== null) return { levels: best, steps: k, radius: bestRadius };
  }
  // Unreachable: k = total sets every level to zero, radius 0.
  throw new Error("internal error: S4D mode repair found no stable block");
}

/**
 * Checks every mode block of a quantized fused S4D matrix and repairs, in place, the modes
 * that rounding made unstable (see the file comment).
 *
 * @param float     the matrix before quantization (lower-s4d layout)
 * @param quantized quantizeMatrix's result for it, modified in place
 * @param colScale  its column scales (unchanged)
 * @param stateLen  2 * channels * modes: rows and columns [0, stateLen) are the state
 * @param maxLevel  L of the level grid the matrix was quantized to
 */
export function stabilizeS4DModes(float: BlockMatrix, quantized: BlockMatrix, colScale: ArrayLike<number>, stateLen: number, maxLevel: number): S4DStabilization {
  assert(stateLen % 2 === 0 && stateLen <= float.rows && stateLen <= float.cols, `S4D state length ${stateLen} does not fit a ${float.rows}x${float.cols} matrix`);
  const modes = locateModes(float, quantized, stateLen);
  const result: S4DStabilization = { modes: modes.length, unstableInFloat: 0, repairs: [] };
  const f = [0, 0, 0, 0];
  const q = [0, 0, 0, 0];
  const s = [0, 0, 0, 0];
  modes.forEach((loc, mode) => {
    for (let e = 0; e < 4; e++) {
      const k = loc.block[e]!;
      s[e] = colScale[2 * mode + (e & 1)]!;
      if (k < 0) {
        f[e] = 0;
        q[e] = 0;
        continue;
      }
      f[e] = float.blocks[k]!.data[loc.index[e]!]!;
      q[e] = round(quantized.blocks[k]!.data[loc.index[e]!]! / s[e]!);
    }
    const floatRadius = spectralRadius2(f[0]!, f[1]!, f[2]!, f[3]!);
    if (!(floatRadius < 1)) {
      result.unstableInFloat++;
      return;
    }
    const roundedRadius = spectralRadius2(q[0]! * s[0]!, q[1]! * s[1]!, q[2]! * s[2]!, q[3]! * s[3]!);
    if (roundedRadius < 1) return;
    const fix = repairLevels(q, s, f);
    for (let e = 0; e < 4; e++) {
      assert(abs(fix.levels[e]!) <= maxLevel, "S4D mode repair left the level range");
      const k = loc.block[e]!;
      // Unchanged entries keep their bits (signed zeros included).
      if (k >= 0 && fix.levels[e] !== q[e]) quantized.blocks[k]!.data[loc.index[e]!] = fix.levels[e]! * s[e]!;
    }
    result.repairs.push({
      mode,
      floatRadius,
      roundedRadius,
      radius: fix.radius,
      roundedLevels: [q[0]!, q[1]!, q[2]!, q[3]!],
      levels: [fix.levels[0]!, fix.levels[1]!, fix.levels[2]!, fix.levels[3]!],
      steps: fix.steps,
    });
  });
  return result;
}
