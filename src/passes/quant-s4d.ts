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
//
// Residual form (src/passes/residual.ts): the crossbar holds Q = dA - I and the vector unit
// adds the previous state, so the chip's per-mode transition is exactly I + q(Q): the add is
// digital (no rounding to levels), and the state a mode keeps from one step to the next is
// (I + q(Q)) x. The mode stays bounded iff that block has radius < 1, so that is what is
// checked (float radius of I + Q = dA, rounded radius of I + q * s). The direct rule's steps
// toward zero would be wrong here: Q's diagonal is Re dA - 1 < 0, and moving it toward zero
// moves the eigenvalue toward 1. The residual repair therefore takes single-level steps in
// either direction, with every level kept in [-L, L] (so column scales stay unchanged), the
// fewest steps first, least squared weight error among equals, ties to the first candidate in
// a fixed order (entries 0..3 outermost first, each step from -k to k). The Bauer-Fike bound
// above holds unchanged (I + Q is dA, normal; E is Q's rounding error). The search is
// bounded: the block with zero off-diagonals and each diagonal level nearest -1/s has
// radius max |1 + l s| < 1 whenever s < 2 (one level smaller than twice the identity), and
// it is that many steps away; if even it is unstable (s >= 2: a column whose largest entry
// is at least 2L, e.g. a huge unscaled dB), quantization stops with an error naming the
// mode and suggesting `--recurrence direct`.

import { UserError, assert } from "../common/errors.js";
import type { BlockMatrix } from "../ir/types.js";

// Hot loops call these per mode and candidate; a module-level binding avoids a global
// `Math` lookup per call, which is slow inside vm contexts (jest runs tests in one).
const { abs, sqrt, round, min, max, sign } = Math;

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

function locateModes(float: BlockMatrix, quantized: BlockMatrix, at: StateBlock): ModeEntries[] {
  assert(float.blocks.length === quantized.blocks.length, "quantized S4D matrix must keep the block layout");
  const { row: row0, col: col0, length: stateLen } = at;
  const nModes = stateLen / 2;
  const modes: ModeEntries[] = Array.from({ length: nModes }, () => ({ block: new Int32Array(4).fill(-1), index: new Int32Array(4).fill(-1) }));
  float.blocks.forEach((b, k) => {
    if (b.row >= row0 + stateLen || b.col >= col0 + stateLen || b.row + b.rows <= row0 || b.col + b.cols <= col0) return;
    for (let r = 0; r < b.rows; r++) {
      const row = b.row + r - row0;
      if (row < 0 || row >= stateLen) continue;
      for (let c = 0; c < b.cols; c++) {
        const col = b.col + c - col0;
        if (col < 0 || col >= stateLen) continue;
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
 * The best stable candidate of one search round: radius < 1 of the 2x2 block the chip
 * applies (the weights, plus I on the diagonal in the residual form), least squared weight
 * error among those.
 */
class StableChoice {
  levels: number[] | null = null;
  radius = NaN;
  private err = Infinity;
  constructor(
    private readonly scale: number[],
    private readonly target: number[],
    /** 1 in the residual form (the block is I + W), else 0. */
    private readonly diagonal: number,
  ) {}
  consider(cand: number[]): void {
    const { scale, target } = this;
    const w0 = cand[0]! * scale[0]!;
    const w1 = cand[1]! * scale[1]!;
    const w2 = cand[2]! * scale[2]!;
    const w3 = cand[3]! * scale[3]!;
    const r = spectralRadius2(this.diagonal + w0, w1, w2, this.diagonal + w3);
    if (!(r < 1)) return;
    const err = (w0 - target[0]!) ** 2 + (w1 - target[1]!) ** 2 + (w2 - target[2]!) ** 2 + (w3 - target[3]!) ** 2;
    if (err < this.err) {
      this.err = err;
      this.levels = cand.slice();
      this.radius = r;
    }
  }
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
    const choice = new StableChoice(scale, target, 0);
    for (let d0 = 0; d0 <= min(k, mag[0]!); d0++) {
      for (let d1 = 0; d1 <= min(k - d0, mag[1]!); d1++) {
        for (let d2 = 0; d2 <= min(k - d0 - d1, mag[2]!); d2++) {
          const d3 = k - d0 - d1 - d2;
          if (d3 > mag[3]!) continue;
          cand[0] = levels[0]! - dir[0]! * d0;
          cand[1] = levels[1]! - dir[1]! * d1;
          cand[2] = levels[2]! - dir[2]! * d2;
          cand[3] = levels[3]! - dir[3]! * d3;
          choice.consider(cand);
        }
      }
    }
    if (choice.levels !== null) return { levels: choice.levels, steps: k, radius: choice.radius };
  }
  // Unreachable: k = total sets every level to zero, radius 0.
  throw new Error("internal error: S4D mode repair found no stable block");
}

/** Single-level steps in either direction, levels within [-L, L] (residual form; see the file comment). */
function repairResidualLevels(levels: number[], scale: number[], target: number[], movable: boolean[], maxLevel: number, maxSteps: number): { levels: number[]; steps: number; radius: number } | null {
  const cand = [0, 0, 0, 0];
  const d = [0, 0, 0, 0];
  for (let k = 1; k <= maxSteps; k++) {
    const choice = new StableChoice(scale, target, 1);
    const visit = (e: number, left: number): void => {
      if (e === 3) {
        for (const last of left === 0 ? [0] : movable[3] ? [-left, left] : []) {
          d[3] = last;
          let ok = true;
          for (let i = 0; i < 4; i++) {
            cand[i] = levels[i]! + d[i]!;
            if (abs(cand[i]!) > maxLevel) ok = false;
          }
          if (ok) choice.consider(cand);
        }
        return;
      }
      const span = movable[e] ? left : 0;
      for (let v = -span; v <= span; v++) {
        d[e] = v;
        visit(e + 1, left - abs(v));
      }
    };
    visit(0, k);
    if (choice.levels !== null) return { levels: choice.levels, steps: k, radius: choice.radius };
  }
  return null;
}

/**
 * Residual form: the stable block with zero off-diagonal levels and each diagonal level
 * nearest -1/s (radius max |1 + l s|), and its distance in single-level steps; null if even
 * that block is not stable (see the file comment).
 */
function residualFallback(levels: number[], scale: number[], movable: boolean[], maxLevel: number): number | null {
  const diag = (e: number) => (movable[e] ? max(-maxLevel, min(maxLevel, round(-1 / scale[e]!))) : 0);
  const l0 = diag(0);
  const l3 = diag(3);
  if (!(spectralRadius2(1 + l0 * scale[0]!, 0, 0, 1 + l3 * scale[3]!) < 1)) return null;
  return abs(l0 - levels[0]!) + abs(levels[1]!) + abs(levels[2]!) + abs(l3 - levels[3]!);
}

/** Where the state->next-state block of an S4D matmul lies, and in which form. */
export interface StateBlock {
  /** First weight row and column of the block (0, 0 for lower-s4d's direct layout). */
  row: number;
  col: number;
  /** State length (rows and columns of the block). */
  length: number;
  /** True for the residual form: the block holds dA - I and the chip adds the identity digitally. */
  residual: boolean;
}

/**
 * Checks every mode block of a quantized fused S4D matrix and repairs, in place, the modes
 * that rounding made unstable (see the file comment).
 *
 * @param float     the matrix before quantization (lower-s4d layout, or its residual form)
 * @param quantized quantizeMatrix's result for it, modified in place
 * @param colScale  its column scales (unchanged)
 * @param at        the state length (direct form at rows and columns [0, length)), or the block's place and form
 * @param maxLevel  L of the level grid the matrix was quantized to
 */
export function stabilizeS4DModes(float: BlockMatrix, quantized: BlockMatrix, colScale: ArrayLike<number>, at: number | StateBlock, maxLevel: number): S4DStabilization {
  const block: StateBlock = typeof at === "number" ? { row: 0, col: 0, length: at, residual: false } : at;
  const stateLen = block.length;
  assert(stateLen % 2 === 0 && block.row + stateLen <= float.rows && block.col + stateLen <= float.cols, `S4D state block of length ${stateLen} at (${block.row}, ${block.col}) does not fit a ${float.rows}x${float.cols} matrix`);
  const modes = locateModes(float, quantized, block);
  // The digital identity of the residual form, added to the diagonal entries 0 and 3.
  const id = block.residual ? 1 : 0;
  const result: S4DStabilization = { modes: modes.length, unstableInFloat: 0, repairs: [] };
  const f = [0, 0, 0, 0];
  const q = [0, 0, 0, 0];
  const s = [0, 0, 0, 0];
  modes.forEach((loc, mode) => {
    for (let e = 0; e < 4; e++) {
      const k = loc.block[e]!;
      s[e] = colScale[block.col + 2 * mode + (e & 1)]!;
      if (k < 0) {
        f[e] = 0;
        q[e] = 0;
        continue;
      }
      f[e] = float.blocks[k]!.data[loc.index[e]!]!;
      q[e] = round(quantized.blocks[k]!.data[loc.index[e]!]! / s[e]!);
    }
    const floatRadius = spectralRadius2(id + f[0]!, f[1]!, f[2]!, id + f[3]!);
    if (!(floatRadius < 1)) {
      result.unstableInFloat++;
      return;
    }
    const roundedRadius = spectralRadius2(id + q[0]! * s[0]!, q[1]! * s[1]!, q[2]! * s[2]!, id + q[3]! * s[3]!);
    if (roundedRadius < 1) return;
    let fix: { levels: number[]; steps: number; radius: number } | null;
    if (block.residual) {
      // Entries the matrix does not store stay zero.
      const movable = [0, 1, 2, 3].map((e) => loc.block[e]! >= 0);
      const bound = residualFallback(q, s, movable, maxLevel);
      fix = bound === null ? null : repairResidualLevels(q, s, f, movable, maxLevel, bound);
      if (fix === null)
        throw new UserError(
          "resource",
          `S4D mode ${mode} cannot be kept stable in the residual recurrence form: its column scales (${s[0]!.toPrecision(3)}, ${s[3]!.toPrecision(3)}) leave no weight level between 0 and -2 for the diagonal of dA - I; compile with --recurrence direct`,
        );
    } else fix = repairLevels(q, s, f);
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

/**
 * Weight slicing (src/passes/slice-weights.ts) stores a fused S4D matrix as a sum of parts on
 * separate crossbar columns: parts[0] is the stabilized level grid of `float`, the later parts
 * round what the earlier ones left. Their sum lies closer to the float block than parts[0]
 * alone, and so can again land on radius >= 1 for a mode whose float radius is just below 1.
 * For such a mode the later parts' entries of that mode are set to zero (in place), which
 * leaves parts[0], stable by stabilizeS4DModes. Returns the modes treated so.
 */
export function dropUnstableRefinements(float: BlockMatrix, parts: readonly BlockMatrix[], at: number | StateBlock): number[] {
  const block: StateBlock = typeof at === "number" ? { row: 0, col: 0, length: at, residual: false } : at;
  const id = block.residual ? 1 : 0;
  const dropped: number[] = [];
  const modes = locateModes(float, parts[0]!, block);
  const f = [0, 0, 0, 0];
  const sum = [0, 0, 0, 0];
  modes.forEach((loc, mode) => {
    for (let e = 0; e < 4; e++) {
      const k = loc.block[e]!;
      f[e] = k < 0 ? 0 : float.blocks[k]!.data[loc.index[e]!]!;
      sum[e] = 0;
      if (k >= 0) for (const p of parts) sum[e] += p.blocks[k]!.data[loc.index[e]!]!;
    }
    if (!(spectralRadius2(id + f[0]!, f[1]!, f[2]!, id + f[3]!) < 1)) return;
    if (spectralRadius2(id + sum[0]!, sum[1]!, sum[2]!, id + sum[3]!) < 1) return;
    dropped.push(mode);
    for (let e = 0; e < 4; e++) {
      const k = loc.block[e]!;
      if (k >= 0) for (let p = 1; p < parts.length; p++) parts[p]!.blocks[k]!.data[loc.index[e]!] = 0;
    }
  });
  return dropped;
}
