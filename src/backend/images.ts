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

/** The blocks of each matrix row (indices into blocks, ascending). */
function blocksByRow(op: MatMulOp): number[][] {
  const byRow: number[][] = Array.from({ length: op.weight.rows }, () => []);
  op.weight.blocks.forEach((b, k) => {
    for (let i = b.row; i < b.row + b.rows && i < op.weight.rows; i++) byRow[i]!.push(k);
  });
  return byRow;
}

/** Per matmul, computed on first use: its blocks per row, a column-position scratch and its nonzero count per column. */
class MatmulWeights {
  private readonly rows = new Map<MatMulOp, number[][]>();
  private readonly positions = new Map<MatMulOp, Int32Array>();
  private readonly nonzeros = new Map<MatMulOp, Int32Array>();

  blocksByRow(op: MatMulOp): number[][] {
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
      for (const b of op.weight.blocks) for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) if (b.data[r * b.cols + c] !== 0) n[b.col + c]!++;
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

/** Programs every planned crossbar (ascending id). */
export function buildImages(model: Model, plan: CrossbarPlan, target: Target, tileOf: Map<number, number>): CrossbarImage[] {
  const matmuls = matmulsByKey(model);
  const quantized = target.crossbar.numerics.kind === "quantized";
  const weights = new MatmulWeights();

  return [...plan.crossbars]
    .sort((a, b) => a.id - b.id)
    .map((xb) => {
      const { rows, cols } = plan;
      const image: CrossbarImage = {
        id: xb.id,
        tile: tileOf.get(xb.id)!,
        rows,
        cols,
        weights: quantized ? { kind: "levels", levels: new Int16Array(rows * cols) } : { kind: "float", values: new Float32Array(rows * cols) },
        inRange: new Float32Array(rows).fill(1),
        colScale: new Float32Array(cols).fill(1),
        outRange: new Float32Array(cols).fill(1),
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
 * Calls fn(a, b, w) for every nonzero w = W[inRows[a]][outCols[b]] of the piece, a ascending
 * (so per column b in ascending a). Walks the stored block entries of the piece's rows within
 * the piece's column span, never the piece's dense rectangle: an S4D piece is a few percent
 * nonzero, and looking up every cell of it dominated compile time on large models.
 * `negativeZeros`: also visit entries -0 (a float image stores the weight's sign bit).
 */
function forEachPieceNonzero(op: MatMulOp, piece: Piece, weights: MatmulWeights, fn: (a: number, b: number, w: number) => void, negativeZeros = false): void {
  const { inRows, outCols } = piece;
  if (outCols.length === 0) return;
  const pos = weights.columnPositions(op);
  const byRow = weights.blocksByRow(op);
  const blocks = op.weight.blocks;
  let lo = Infinity;
  let hi = -1;
  outCols.forEach((j, b) => {
    pos[j] = b;
    if (j < lo) lo = j;
    if (j > hi) hi = j;
  });
  try {
    inRows.forEach((i, a) => {
      for (const k of byRow[i]!) {
        const blk = blocks[k]!;
        const d = blk.data;
        const base = (i - blk.row) * blk.cols;
        const c0 = Math.max(0, lo - blk.col);
        const c1 = Math.min(blk.cols, hi + 1 - blk.col);
        for (let c = c0; c < c1; c++) {
          const w = d[base + c]!;
          if (w === 0 && !(negativeZeros && 1 / w < 0)) continue;
          const b = pos[blk.col + c]!;
          if (b >= 0) fn(a, b, w);
        }
      }
    });
  } finally {
    for (const j of outCols) pos[j] = -1;
  }
}

/** Float numerics: the cells hold the weights themselves (+0 stays as allocated); ranges stay unused. */
function placeFloatPiece(image: CrossbarImage, values: Float32Array, piece: Piece, op: MatMulOp, weights: MatmulWeights): void {
  forEachPieceNonzero(op, piece, weights, (a, b, w) => (values[(piece.rowStart + a) * image.cols + piece.colStart + b] = w), true);
}

/** Quantized numerics: integer levels, the piece's shared DAC range, per-column scale and ADC range. */
function placeQuantizedPiece(image: CrossbarImage, levels: Int16Array, piece: Piece, op: MatMulOp, weights: MatmulWeights, target: Target): void {
  const { inRows, outCols } = piece;
  const q = op.quant ?? fail("semantic", `matmul '${op.out}' has no quantization parameters, but target '${target.name}' has quantized crossbars; run the quantize pass`);
  if (q.colScale.length !== op.weight.cols || q.outRange.length !== op.weight.cols || q.inRange.length !== op.weight.rows)
    fail("semantic", `matmul '${op.out}': quantization vectors do not match the ${op.weight.rows}x${op.weight.cols} weight`);
  const limit = Math.min(q.maxLevel, maxWeightLevel(target)!);
  const pieceIn = Math.max(...inRows.map((i) => q.inRange[i]!));
  if (!(pieceIn > 0 && Number.isFinite(pieceIn))) fail("semantic", `matmul '${op.out}': input range ${pieceIn} is not a positive number`);
  inRows.forEach((_, a) => (image.inRange[piece.rowStart + a] = pieceIn));
  const nz = weights.nonzerosPerColumn(op);
  // Per piece column: its nonzeros and sum |W| (added in ascending row order).
  const pieceNz = new Int32Array(outCols.length);
  const absSum = new Float64Array(outCols.length);
  forEachPieceNonzero(op, piece, weights, (a, b, w) => {
    const i = inRows[a]!;
    const j = outCols[b]!;
    const cs = q.colScale[j]!;
    pieceNz[b]!++;
    absSum[b]! += Math.abs(w);
    const level = cs === 0 ? Number.NaN : w / cs;
    const lv = Math.round(level);
    if (!(Math.abs(level - lv) <= 1e-3)) fail("semantic", `matmul '${op.out}': weight W[${i}][${j}] = ${w} is not an integer multiple of its column scale ${cs}`);
    if (Math.abs(lv) > limit) fail("semantic", `matmul '${op.out}': weight level ${lv} at W[${i}][${j}] exceeds the allowed ±${limit}`);
    levels[(piece.rowStart + a) * image.cols + piece.colStart + b] = lv;
  });
  outCols.forEach((j, b) => {
    const col = piece.colStart + b;
    image.colScale[col] = q.colScale[j]! * pieceIn;
    const full = q.outRange[j]! > 0 ? q.outRange[j]! : 1;
    image.outRange[col] = pieceNz[b] === nz[j] || absSum[b] === 0 ? full : pieceIn * absSum[b]!;
  });
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
