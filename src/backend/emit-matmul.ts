// Instructions for y = concat(xs) @ W (+ bias), the only op that runs on crossbars.
//
// Every tile holding pieces of the matmul computes partial sums into a buffer spanning its
// columns: one MVM per piece, straight into place (`acc` when the columns already hold a
// partial sum) or, when the piece's outputs are scattered or only partly written, into
// scratch followed by vcopy/vadd per segment. Partial sums travel to the home tile (the one
// the schedule placed the matmul on) and are added there; bias (or zero, for columns
// without any weight) comes last.

import type { MatMulOp } from "../ir/types.js";
import { mergeDiagonalRuns, rowSources, TileInputs, type RowSources } from "./emit-gather.js";
import { consecutiveRuns, flagRuns, maximalRuns } from "./emit-runs.js";
import { wholeBuffer, type MemValue, type SectionValues, type Value } from "./emit-values.js";
import type { PlacedPiece } from "./schedule.js";
import { at, type InstrStreams, type Ref } from "./streams.js";

/** A tile's buffer of (partial) sums of some output columns, and which words hold one yet. */
interface ColumnSums {
  tile: number;
  ref: Ref;
  /** Output column -> word of `ref`. */
  slot: (j: number) => number;
  written: Uint8Array;
}

/** Partial sums of output columns `cols` (ascending), compact in `src` on tile `from`. */
interface PartialSums {
  from: number;
  src: Ref;
  cols: number[];
}

/** `pieces`: the matmul's placed pieces; `home`: the tile that ends up holding y. */
export function lowerMatmul(values: SectionValues, op: MatMulOp, pieces: readonly PlacedPiece[], home: number): MemValue {
  const streams = values.streams;
  const xs = op.xs.map((x) => values.resolve(x));
  const rows = rowSources(op, xs);
  const placed = pieces.filter((p) => p.piece.inRows.length > 0 && p.piece.outCols.length > 0);
  // The home tile sums into y itself.
  const y: ColumnSums = { tile: home, ref: streams.scratch(home, op.weight.cols), slot: (j) => j, written: new Uint8Array(op.weight.cols) };
  const partials: PartialSums[] = [];
  for (const tile of tilesHomeLast(placed, home)) {
    const mine = placed.filter((p) => p.tile === tile);
    if (tile === home) {
      sumPieces(values, y, mine, xs, rows);
      continue;
    }
    // Another tile sums into a compact buffer of just the columns it covers (ascending),
    // which then travels to the home tile as one message.
    const cols = [...new Set(mine.flatMap((p) => p.piece.outCols))].sort((a, b) => a - b);
    const index = new Map(cols.map((j, k) => [j, k]));
    const sums: ColumnSums = { tile, ref: streams.scratch(tile, cols.length), slot: (j) => index.get(j)!, written: new Uint8Array(cols.length) };
    sumPieces(values, sums, mine, xs, rows);
    if (cols.length > 0) partials.push({ from: tile, src: sums.ref, cols });
  }
  addPartialSums(values, y, partials);
  addBias(streams, y, op.bias);
  return wholeBuffer(y.ref.buf);
}

/** The tiles holding pieces in ascending order, then the home tile (whether it holds pieces or not). */
function tilesHomeLast(placed: readonly PlacedPiece[], home: number): number[] {
  const tiles = [...new Set(placed.map((p) => p.tile))].sort((a, b) => (a === home ? 1 : b === home ? -1 : a - b));
  if (!tiles.includes(home)) tiles.push(home);
  return tiles;
}

/** dst = src, or dst += src when dst already holds a (partial) sum. */
function accumulate(streams: InstrStreams, tile: number, dst: Ref, src: Ref, len: number, onto: boolean): void {
  if (onto) streams.binary("vadd", tile, dst, dst, src, len);
  else streams.copy(tile, dst, src, len);
}

/** The MVMs of one tile's `pieces`, summed into `sums`. */
function sumPieces(values: SectionValues, sums: ColumnSums, pieces: readonly PlacedPiece[], xs: readonly Value[], rows: RowSources): void {
  const streams = values.streams;
  const { tile, ref: y, slot, written } = sums;
  const inputs = new TileInputs(values, rows, tile, xs, pieces);
  for (const { xbar, piece } of mergeDiagonalRuns(pieces)) {
    const { inRows, outCols } = piece;
    const src = inputs.vectorFor(inRows);
    // Segments of crossbar columns that map to consecutive outputs, all fresh or all written.
    const segments = maximalRuns(outCols.length, (b, start) => outCols[b] === outCols[b - 1]! + 1 && written[slot(outCols[b]!)] === written[slot(outCols[start]!)]);
    const mvm = (dst: Ref, acc: boolean): void =>
      streams.emit(tile, { op: "mvm", xbar, rowStart: piece.rowStart, rows: inRows.length, colStart: piece.colStart, cols: outCols.length, src: 0, dst: 0, acc }, { src, dst });
    if (segments.length === 1) mvm(at(y, slot(outCols[0]!)), written[slot(outCols[0]!)] === 1);
    else {
      // One MVM into scratch plus a vector op per segment costs far less than an MVM per
      // segment (each pays the full DAC + integration time).
      const tmp = streams.scratch(tile, outCols.length);
      mvm(tmp, false);
      for (const [b, n] of segments) {
        const j = slot(outCols[b]!);
        accumulate(streams, tile, at(y, j), at(tmp, b), n, written[j] === 1);
      }
    }
    for (const j of outCols) written[slot(j)] = 1;
  }
}

/** Brings other tiles' partial sums to the home tile and adds them into y. */
function addPartialSums(values: SectionValues, y: ColumnSums, partials: readonly PartialSums[]): void {
  const streams = values.streams;
  const home = y.tile;
  for (const p of partials) {
    const colRuns = consecutiveRuns(p.cols);
    const [, j0, n0] = colRuns[0]!;
    // One run of columns that hold nothing yet: receive straight into place.
    if (colRuns.length === 1 && y.written.subarray(j0, j0 + n0).every((w) => w === 0)) {
      values.transfers.send(p.from, p.src, home, at(y.ref, j0), n0);
      y.written.fill(1, j0, j0 + n0);
      continue;
    }
    const tmp = streams.scratch(home, p.cols.length);
    values.transfers.send(p.from, p.src, home, tmp, p.cols.length);
    for (const [k, j, n] of colRuns) {
      for (const [c, len, w] of flagRuns(y.written.subarray(j, j + n))) accumulate(streams, home, at(y.ref, j + c), at(tmp, k + c), len, w);
      y.written.fill(1, j, j + n);
    }
  }
}

/** Adds the bias; columns no piece wrote (no weight at all) become the bias, or zero. */
function addBias(streams: InstrStreams, y: ColumnSums, bias: readonly number[] | undefined): void {
  const home = y.tile;
  const biasRef = bias ? streams.constant(home, Float32Array.from(bias)) : null;
  for (const [c, len, w] of flagRuns(y.written)) {
    if (w && !biasRef) continue;
    accumulate(streams, home, at(y.ref, c), biasRef ? at(biasRef, c) : streams.zeroBlock(home, len), len, w);
  }
}
