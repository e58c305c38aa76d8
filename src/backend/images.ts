// Crossbar images: what every planned crossbar is programmed with (program.ts,
// CrossbarImage, has the MVM semantics they feed).
//
// Quantized numerics: levels q = W / colScale (checked to be integers); the rows of one
// piece share one DAC range (the largest inRange of its rows) because the image folds the
// row range into the column scale; a column's ADC range is the calibrated outRange when the
// piece holds all nonzero weights of that column, else the worst case inRange * sum |W|
// over the piece's rows (partial sums never saturate).

import { assert, fail } from "../common/errors.js";
import type { CrossbarPlan, Piece } from "../ir/plan.js";
import type { MatMulOp, Model } from "../ir/types.js";
import { maxWeightLevel, type Target } from "../target/types.js";
import { SECTION_NAMES, type CrossbarImage, type CrossbarPiece, type PlanBounds, type TileProgram } from "./program.js";
import { IR_SECTIONS, valueKey } from "./schedule.js";

/**
 * The blocks of each matrix row, as compressed rows: the blocks holding row i are
 * `index[start[i]] .. index[start[i + 1] - 1]`, ascending. Two typed arrays instead of an
 * array per row (an S4D matrix has tens of thousands of rows).
 */
interface RowBlocks {
  start: Int32Array;
  index: Int32Array;
}

function blocksByRow(op: MatMulOp): RowBlocks {
  const nRows = op.weight.rows;
  const blocks = op.weight.blocks;
  const start = new Int32Array(nRows + 1);
  for (const b of blocks) for (let i = b.row; i < b.row + b.rows && i < nRows; i++) start[i + 1]!++;
  for (let i = 0; i < nRows; i++) start[i + 1]! += start[i]!;
  const index = new Int32Array(start[nRows]!);
  const fill = start.slice(0, nRows);
  blocks.forEach((b, k) => {
    for (let i = b.row; i < b.row + b.rows && i < nRows; i++) index[fill[i]!++] = k;
  });
  return { start, index };
}

/**
 * The nonzeros of one piece, as parallel lists: piece row a, piece column b and weight w
 * of entry e < count. Reused from piece to piece (working buffers, grown on demand), so
 * placing a piece allocates nothing per weight.
 */
class PieceEntries {
  count = 0;
  a = new Int32Array(1024);
  b = new Int32Array(1024);
  w = new Float64Array(1024);

  push(a: number, b: number, w: number): void {
    if (this.count === this.a.length) this.grow();
    const e = this.count++;
    this.a[e] = a;
    this.b[e] = b;
    this.w[e] = w;
  }

  private grow(): void {
    const n = 2 * this.a.length;
    const a = new Int32Array(n);
    const b = new Int32Array(n);
    const w = new Float64Array(n);
    a.set(this.a);
    b.set(this.b);
    w.set(this.w);
    this.a = a;
    this.b = b;
    this.w = w;
  }
}

/** Per matmul, computed on first use: its blocks per row, a column-position scratch and its nonzero count per column. */
class MatmulWeights {
  private readonly rows = new Map<MatMulOp, RowBlocks>();
  private readonly positions = new Map<MatMulOp, Int32Array>();
  private readonly nonzeros = new Map<MatMulOp, Int32Array>();
  /** Working buffers of the piece being placed. */
  readonly entries = new PieceEntries();

  blocksByRow(op: MatMulOp): RowBlocks {
    let r = this.rows.get(op);
    if (!r) this.rows.set(op, (r = blocksByRow(op)));
    return r;
  }

  /** -1 per matrix column; callers set entries while they use it and restore them to -1. */
  columnPositions(op: MatMulOp): Int32Array {
    let p = this.positions.get(op);
    if (!p) this.positions.set(op, (p = new Int32Array(op.weight.cols).fill(-1)));
    return p;
  }

  nonzerosPerColumn(op: MatMulOp): Int32Array {
    let n = this.nonzeros.get(op);
    if (!n) {
      n = new Int32Array(op.weight.cols);
      for (const b of op.weight.blocks) {
        const d = b.data;
        for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) if (d[r * b.cols + c] !== 0) n[b.col + c]!++;
      }
      this.nonzeros.set(op, n);
    }
    return n;
  }
}

function matmulsByKey(model: Model): Map<string, MatMulOp> {
  const matmuls = new Map<string, MatMulOp>();
  for (const sec of IR_SECTIONS) for (const op of model.sections[sec]) if (op.op === "matmul") matmuls.set(valueKey(sec, op.out), op);
  return matmuls;
}

/**
 * Programs every planned crossbar (ascending id). The images' arrays are views into a few
 * program-wide buffers, one region per crossbar, instead of arrays of their own: thousands
 * of separate 128 KiB weight arrays (a 256 x 256 crossbar each) made the garbage collector
 * run full collections again and again as their external memory added up.
 */
export function buildImages(model: Model, plan: CrossbarPlan, target: Target, tileOf: Map<number, number>): CrossbarImage[] {
  const matmuls = matmulsByKey(model);
  const quantized = target.crossbar.numerics.kind === "quantized";
  const weights = new MatmulWeights();
  const { rows, cols } = plan;
  const n = plan.crossbars.length;
  const cells = rows * cols;
  const levelStore = quantized ? new Int16Array(n * cells) : null;
  const valueStore = quantized ? null : new Float32Array(n * cells);
  // inRange, colScale, outRange of crossbar k: rows + 2 cols words from k * (rows + 2 cols); all start at 1.
  const rangeWords = rows + 2 * cols;
  const rangeStore = new Float32Array(n * rangeWords).fill(1);

  return [...plan.crossbars]
    .sort((a, b) => a.id - b.id)
    .map((xb, k) => {
      const r0 = k * rangeWords;
      const image: CrossbarImage = {
        id: xb.id,
        tile: tileOf.get(xb.id)!,
        rows,
        cols,
        weights: levelStore ? { kind: "levels", levels: levelStore.subarray(k * cells, (k + 1) * cells) } : { kind: "float", values: valueStore!.subarray(k * cells, (k + 1) * cells) },
        inRange: rangeStore.subarray(r0, r0 + rows),
        colScale: rangeStore.subarray(r0 + rows, r0 + rows + cols),
        outRange: rangeStore.subarray(r0 + rows + cols, r0 + rangeWords),
      };
      for (const piece of xb.pieces) {
        const op = matmuls.get(valueKey(piece.section, piece.op));
        if (!op) fail("semantic", `crossbar plan: piece on crossbar ${xb.id} refers to unknown matmul '${piece.op}' in section ${piece.section}`);
        checkPiece(image, piece, op);
        if (image.weights.kind === "float") placeFloatPiece(image, image.weights.values, piece, op, weights);
        else placeQuantizedPiece(image, image.weights.levels, piece, op, weights, target);
      }
      return image;
    });
}

function checkPiece(image: CrossbarImage, piece: Piece, op: MatMulOp): void {
  const { inRows, outCols } = piece;
  if (piece.rowStart + inRows.length > image.rows || piece.colStart + outCols.length > image.cols)
    fail("semantic", `crossbar plan: a piece of '${op.out}' does not fit crossbar ${image.id} (${image.rows}x${image.cols})`);
  if (inRows.some((i) => i < 0 || i >= op.weight.rows) || outCols.some((j) => j < 0 || j >= op.weight.cols))
    fail("semantic", `crossbar plan: a piece of '${op.out}' on crossbar ${image.id} indexes outside the ${op.weight.rows}x${op.weight.cols} weight`);
}

/**
 * Collects into `weights.entries` every nonzero w = W[inRows[a]][outCols[b]] of the piece,
 * a ascending (so per column b in ascending a). Walks the stored block entries of the
 * piece's rows within the piece's column span, never the piece's dense rectangle: an S4D
 * piece is a few percent nonzero, and looking up every cell of it dominated compile time
 * on large models. `negativeZeros`: also collect entries -0 (a float image stores the
 * weight's sign bit).
 */
function pieceNonzeros(op: MatMulOp, piece: Piece, weights: MatmulWeights, negativeZeros: boolean): PieceEntries {
  const { inRows, outCols } = piece;
  const out = weights.entries;
  out.count = 0;
  if (outCols.length === 0) return out;
  const pos = weights.columnPositions(op);
  const { start, index } = weights.blocksByRow(op);
  const blocks = op.weight.blocks;
  let lo = Infinity;
  let hi = -1;
  for (let b = 0; b < outCols.length; b++) {
    const j = outCols[b]!;
    pos[j] = b;
    if (j < lo) lo = j;
    if (j > hi) hi = j;
  }
  try {
    for (let a = 0; a < inRows.length; a++) {
      const i = inRows[a]!;
      for (let t = start[i]!; t < start[i + 1]!; t++) {
        const blk = blocks[index[t]!]!;
        const d = blk.data;
        const base = (i - blk.row) * blk.cols;
        const c0 = Math.max(0, lo - blk.col);
        const c1 = Math.min(blk.cols, hi + 1 - blk.col);
        for (let c = c0; c < c1; c++) {
          const w = d[base + c]!;
          if (w === 0 && !(negativeZeros && 1 / w < 0)) continue;
          const b = pos[blk.col + c]!;
          if (b >= 0) out.push(a, b, w);
        }
      }
    }
  } finally {
    for (const j of outCols) pos[j] = -1;
  }
  return out;
}

/** Float numerics: the cells hold the weights themselves (+0 stays as allocated); ranges stay unused. */
function placeFloatPiece(image: CrossbarImage, values: Float32Array, piece: Piece, op: MatMulOp, weights: MatmulWeights): void {
  const e = pieceNonzeros(op, piece, weights, true);
  for (let k = 0; k < e.count; k++) values[(piece.rowStart + e.a[k]!) * image.cols + piece.colStart + e.b[k]!] = e.w[k]!;
}

/** Quantized numerics: integer levels, the piece's shared DAC range, per-column scale and ADC range. */
function placeQuantizedPiece(image: CrossbarImage, levels: Int16Array, piece: Piece, op: MatMulOp, weights: MatmulWeights, target: Target): void {
  const { inRows, outCols } = piece;
  const q = op.quant ?? fail("semantic", `matmul '${op.out}' has no quantization parameters, but target '${target.name}' has quantized crossbars; run the quantize pass`);
  if (q.colScale.length !== op.weight.cols || q.outRange.length !== op.weight.cols || q.inRange.length !== op.weight.rows)
    fail("semantic", `matmul '${op.out}': quantization vectors do not match the ${op.weight.rows}x${op.weight.cols} weight`);
  const limit = Math.min(q.maxLevel, maxWeightLevel(target)!);
  let pieceIn = -Infinity;
  for (const i of inRows) pieceIn = Math.max(pieceIn, q.inRange[i]!);
  if (!(pieceIn > 0 && Number.isFinite(pieceIn))) fail("semantic", `matmul '${op.out}': input range ${pieceIn} is not a positive number`);
  image.inRange.fill(pieceIn, piece.rowStart, piece.rowStart + inRows.length);
  const nz = weights.nonzerosPerColumn(op);
  // Per piece column: its scale, its nonzeros and sum |W| (added in ascending row order).
  const scale = Float64Array.from(outCols, (j) => q.colScale[j]!);
  const pieceNz = new Int32Array(outCols.length);
  const absSum = new Float64Array(outCols.length);
  const e = pieceNonzeros(op, piece, weights, false);
  for (let k = 0; k < e.count; k++) {
    const a = e.a[k]!;
    const b = e.b[k]!;
    const w = e.w[k]!;
    const cs = scale[b]!;
    pieceNz[b]!++;
    absSum[b]! += Math.abs(w);
    const level = cs === 0 ? Number.NaN : w / cs;
    const lv = Math.round(level);
    if (!(Math.abs(level - lv) <= 1e-3)) fail("semantic", `matmul '${op.out}': weight W[${inRows[a]}][${outCols[b]}] = ${w} is not an integer multiple of its column scale ${cs}`);
    if (Math.abs(lv) > limit) fail("semantic", `matmul '${op.out}': weight level ${lv} at W[${inRows[a]}][${outCols[b]}] exceeds the allowed ±${limit}`);
    levels[(piece.rowStart + a) * image.cols + piece.colStart + b] = lv;
  }
  for (let b = 0; b < outCols.length; b++) {
    const j = outCols[b]!;
    const col = piece.colStart + b;
    image.colScale[col] = q.colScale[j]! * pieceIn;
    const full = q.outRange[j]! > 0 ? q.outRange[j]! : 1;
    image.outRange[col] = pieceNz[b] === nz[j] || absSum[b] === 0 ? full : pieceIn * absSum[b]!;
  }
}

// ---- the layout record (CrossbarImage.pieces, Program.bounds) ----------------------------

interface MvmRect {
  rowStart: number;
  rowEnd: number;
  colStart: number;
  colEnd: number;
  symbol: number;
}

/**
 * The debug symbol of a piece is the one its mvm instructions carry, found in the emitted
 * code rather than re-derived from the op, so the layout and the instruction stream always
 * name a matmul alike. An mvm drives a piece when its rectangle contains the piece's (one
 * mvm may drive a diagonal run of pieces of the same matmul; pieces of other matmuls share
 * no row or column with them, so no other mvm contains them).
 */
function mvmRectsByCrossbar(tiles: readonly TileProgram[]): Map<number, MvmRect[]> {
  const out = new Map<number, MvmRect[]>();
  for (const tile of tiles)
    for (const name of SECTION_NAMES) {
      const { code, symbols } = tile.sections[name];
      code.forEach((ins, pc) => {
        if (ins.op !== "mvm") return;
        const list = out.get(ins.xbar) ?? [];
        list.push({ rowStart: ins.rowStart, rowEnd: ins.rowStart + ins.rows, colStart: ins.colStart, colEnd: ins.colStart + ins.cols, symbol: symbols[pc]! });
        out.set(ins.xbar, list);
      });
    }
  return out;
}

/** Every image with the plan's pieces on it, their layers and debug symbols (for reports). */
export function withPieces(images: readonly CrossbarImage[], plan: CrossbarPlan, model: Model, tiles: readonly TileProgram[]): CrossbarImage[] {
  const matmuls = matmulsByKey(model);
  const rects = mvmRectsByCrossbar(tiles);
  const planned = new Map(plan.crossbars.map((xb) => [xb.id, xb.pieces]));
  return images.map((image) => {
    const pieces = (planned.get(image.id) ?? []).map((piece): CrossbarPiece => {
      const layer = matmuls.get(valueKey(piece.section, piece.op))?.layer;
      const rowEnd = piece.rowStart + piece.inRows.length;
      const colEnd = piece.colStart + piece.outCols.length;
      const driver = (rects.get(image.id) ?? []).find((r) => r.rowStart <= piece.rowStart && r.rowEnd >= rowEnd && r.colStart <= piece.colStart && r.colEnd >= colEnd);
      assert(driver !== undefined, `crossbar ${image.id}: no mvm drives the piece of '${piece.op}' at rows ${piece.rowStart}+${piece.inRows.length}, columns ${piece.colStart}+${piece.outCols.length}`);
      return { ...piece, ...(layer !== undefined ? { layer } : {}), symbol: driver.symbol };
    });
    return { ...image, pieces };
  });
}

export function planBounds(plan: CrossbarPlan): PlanBounds {
  return { lowerBound: plan.lowerBound, perMatrix: plan.perMatrix.map((m) => ({ ...m })) };
}
