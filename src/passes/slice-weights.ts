// Weight slicing: one matmul's weights stored on K device pairs per weight instead of one.
//
// A crossbar column holds integer levels q in [-L, L] times one digital scale s, so a weight
// is known to s / 2 = max|column| / (2L): on xbar64's 16-level devices (L = 15) that is 1/30
// of the column's largest weight, which is what limits a small float-trained classifier's
// argmax agreement (docs/QUANTIZATION.md "Weight slicing"). Slicing writes the rounding error
// of the first grid onto a second set of columns with its own, finer scale:
//
//   W ~ q0 * s0 + q1 * s1 + ... ,   q_k = round((W - sum_{i<k} q_i s_i) / s_k),   s_k = max|residual| / L
//
// per column, and the vector unit adds the K partial outputs (each read by its own ADC, with
// its own calibrated range). Each slice divides the error bound by about 2L: where every entry
// of a column rounded to nearest, s_{k+1} = max|residual| / L <= s_k / (2L) (an S4D mode repair
// moves an entry by a level, so its column gains less). The cost: K times the matmul's
// crossbar columns, K - 1 vector adds of its output length per evaluation, and the copies of
// the slices (docs/QUANTIZATION.md "Weight slicing" has figures).
//
// In the IR a sliced matmul is an ordinary matmul whose columns are the slices side by side
// (slice k at columns [k n, (k + 1) n)), its weights on the grids above, followed by `slice`
// ops and a chain of `add`s whose last result keeps the original name, so every consumer is
// unchanged. The ADC ranges are calibrated per column as for any matmul. Because the slices
// are separate columns with separate scales, nothing below quantization knows about slicing.
//
// S4D recurrences: the first slice is the stabilized grid of quant-s4d, and a mode whose summed
// slices land on spectral radius >= 1 keeps only the first slice's entries
// (dropUnstableRefinements), so the chip's recurrence stays stable whenever the unsliced one
// is. The sliced matmul is no longer the fused recurrence the backend packs per channel group
// (origin "dense"): it is tiled like any dense matrix, its state update added by the vector
// unit, so channel-group locality is traded for precision.
//
// Not sliced: layers with a requested level count (QAT grids are exact already) and matmuls
// whose weights the first grid reproduced (to 1e-9 of a level step); slicing stops early when
// a grid leaves nothing.

import { fail } from "../common/errors.js";
import type { BlockMatrix, MatMulOp, Op } from "../ir/types.js";
import type { NameSource } from "../ir/names.js";
import { dropUnstableRefinements, type StateBlock } from "./quant-s4d.js";
import { quantizeMatrix, type QuantizedMatrix } from "./quant-weights.js";

/** Keys of the quantized IR's `meta`: the slices asked for and how many matmuls got them. */
export const SLICES_META = "weightSlices";
export const SLICED_MATMULS_META = "slicedMatmuls";

/** Upper bound of `--weight-slices` (the schema's maximum of numerics.weightSlices). */
export const MAX_WEIGHT_SLICES = 4;

/** Whether k is a slice count the compiler takes: an integer from 1 to MAX_WEIGHT_SLICES. */
export function isWeightSliceCount(k: number): boolean {
  return Number.isInteger(k) && k >= 1 && k <= MAX_WEIGHT_SLICES;
}

/** The value of a `--weight-slices` flag. */
export function parseWeightSlices(value: string): number {
  const k = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!isWeightSliceCount(k)) fail("usage", `--weight-slices expects an integer from 1 to ${MAX_WEIGHT_SLICES} (device pairs per weight), found '${value}'`);
  return k;
}

export interface WeightSlices {
  /** The grids, first one first: same block layout as the matmul's weight. */
  parts: BlockMatrix[];
  colScales: Float64Array[];
}

/** W minus `part`, entry by entry (both in W's block layout). */
export function residualOf(w: BlockMatrix, part: BlockMatrix): BlockMatrix {
  return {
    rows: w.rows,
    cols: w.cols,
    blocks: w.blocks.map((b, k) => {
      const p = part.blocks[k]!.data;
      return { ...b, data: b.data.map((x, i) => x - p[i]!) };
    }),
  };
}

/**
 * What a grid left of a matrix (`rest`), with the columns whose residual is rounding noise set
 * to zero: every entry within 1e-9 of a level step of the column (`colScale`, the grid's).
 * Weights on a grid the quantizer did not recognize as exact come back with residuals of an
 * ulp, not worth crossbar columns and ADC conversions. Null when no column is left.
 */
export function withoutNegligibleColumns(rest: BlockMatrix, colScale: ArrayLike<number>): BlockMatrix | null {
  const open = new Uint8Array(rest.cols);
  for (const b of rest.blocks)
    for (let r = 0, e = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++, e++) if (Math.abs(b.data[e]!) > 1e-9 * colScale[b.col + c]!) open[b.col + c] = 1;
  if (!open.includes(1)) return null;
  return {
    rows: rest.rows,
    cols: rest.cols,
    blocks: rest.blocks.map((b) => ({ ...b, data: b.data.map((x, e) => (open[b.col + (e % b.cols)] ? x : 0)) })),
  };
}

/**
 * Up to `slices` grids for `float`, the first being `first` (quantizeMatrix's result, for an
 * S4D matrix already stabilized): each later grid rounds what the earlier ones left, on
 * `maxLevel` levels, in the columns where that is more than rounding noise. `s4d`: the state
 * block of an S4D matrix, whose modes must stay stable (dropUnstableRefinements).
 */
export function sliceWeights(float: BlockMatrix, first: QuantizedMatrix, slices: number, maxLevel: number, s4d: number | StateBlock | null): WeightSlices {
  const sliced: WeightSlices = { parts: [first.weight], colScales: [first.colScale] };
  for (let rest = residualOf(float, first.weight); sliced.parts.length < slices; ) {
    const open = withoutNegligibleColumns(rest, sliced.colScales[sliced.colScales.length - 1]!);
    if (open === null) break;
    const next = quantizeMatrix(open, maxLevel);
    sliced.parts.push(next.weight);
    sliced.colScales.push(next.colScale);
    rest = residualOf(rest, next.weight);
  }
  if (s4d !== null && sliced.parts.length > 1) dropUnstableRefinements(float, sliced.parts, s4d);
  return sliced;
}

/** The parts side by side: part k's block (r, c) at (r, c + k * cols). */
function sideBySide(parts: readonly BlockMatrix[]): BlockMatrix {
  const { rows, cols } = parts[0]!;
  return {
    rows,
    cols: cols * parts.length,
    blocks: parts.flatMap((p, k) => p.blocks.map((b) => ({ row: b.row, col: b.col + k * cols, rows: b.rows, cols: b.cols, data: b.data.slice() }))),
  };
}

export interface SlicedMatmul {
  ops: Op[];
  /** The new matmul (its `out` names the side-by-side result) and its column scales. */
  matmul: MatMulOp;
  colScale: number[];
}

/**
 * The ops replacing `op` when its weights are stored as `slices` (at least two parts): the
 * side-by-side matmul, one `slice` per part, and the adds whose last result is `op.out`.
 */
export function slicedMatmul(op: MatMulOp, slices: WeightSlices, names: NameSource): SlicedMatmul {
  const n = op.weight.cols;
  const k = slices.parts.length;
  const layer = op.layer !== undefined ? { layer: op.layer } : {};
  const matmul: MatMulOp = {
    op: "matmul",
    out: names.fresh(`${op.out}.slices`),
    ...layer,
    xs: op.xs.slice(),
    weight: sideBySide(slices.parts),
    // The bias is added digitally once, after the first slice's ADC.
    ...(op.bias ? { bias: [...op.bias, ...new Array<number>((k - 1) * n).fill(0)] } : {}),
    origin: "dense",
  };
  const ops: Op[] = [matmul];
  const parts = slices.parts.map((_, i) => {
    const out = names.fresh(`${op.out}.slice${i}`);
    ops.push({ op: "slice", out, ...layer, x: matmul.out, start: i * n, length: n });
    return out;
  });
  let acc = parts[0]!;
  for (let i = 1; i < k; i++) {
    const out = i === k - 1 ? op.out : names.fresh(`${op.out}.sum${i}`);
    ops.push({ op: "add", out, ...layer, a: acc, b: parts[i]! });
    acc = out;
  }
  const colScale: number[] = [];
  for (const s of slices.colScales) for (let j = 0; j < s.length; j++) colScale.push(s[j]!);
  return { ops, matmul, colScale };
}
