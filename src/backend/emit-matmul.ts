// Instructions for y = concat(xs) @ W (+ bias), the only op that runs on crossbars.
//
// Every tile holding pieces of the matmul computes partial sums into a buffer spanning its
// columns: one MVM per piece, straight into place (`acc` when the columns already hold a
// partial sum) or, when the piece's outputs are scattered or only partly written, into
// scratch followed by vcopy/vadd per segment. Partial sums travel to the home tile (the one
// the schedule placed the matmul on) and are added there; bias (or zero, for columns
// without any weight) comes last.

import { assert } from "../common/errors.js";
import type { MatMulOp } from "../ir/types.js";
import { mergeDiagonalRuns, rowSources, TileInputs, type InputVectors, type RowSources } from "./emit-gather.js";
import { consecutiveRuns, flagRuns, maximalRuns } from "./emit-runs.js";
import { wholeBuffer, type DistPart, type DistValue, type MemValue, type SectionValues, type Value } from "./emit-values.js";
import type { PlacedPiece } from "./schedule.js";
import { at, type InstrStreams, type Ref } from "./streams.js";

/** A tile's buffer of (partial) sums of some output columns, and which words hold one yet. */
export interface ColumnSums {
  tile: number;
  ref: Ref;
  /** Output column -> word of `ref`. */
  slot: (j: number) => number;
  written: Uint8Array;
  /** Words in slot order rather than column order (emit-recurrence.ts): adjacent words need not be adjacent columns. */
  bySlot?: boolean;
}

/** Partial sums of output columns `cols` (ascending), compact in `src` on tile `from`. */
interface PartialSums {
  from: number;
  src: Ref;
  cols: number[];
}

/**
 * `pieces`: the matmul's placed pieces; `home`: the tile that ends up holding y.
 * `owners` (schedule.ts columnOwners): the one tile computing each output column; each
 * tile then finishes its own columns (bias included) and y stays distributed.
 */
export function lowerMatmul(values: SectionValues, op: MatMulOp, pieces: readonly PlacedPiece[], home: number, owners: Int32Array | null = null): MemValue | DistValue {
  const streams = values.streams;
  const xs = op.xs.map((x) => values.resolve(x));
  const rows = rowSources(op, xs);
  const placed = pieces.filter((p) => p.piece.inRows.length > 0 && p.piece.outCols.length > 0);
  if (owners) return distributedMatmul(values, op, placed, xs, rows, owners);
  // The home tile sums into y itself.
  const y: ColumnSums = { tile: home, ref: streams.scratch(home, op.weight.cols), slot: (j) => j, written: new Uint8Array(op.weight.cols) };
  const partials: PartialSums[] = [];
  // Every tile's inputs first, so the transfers to other tiles do not wait behind MVMs.
  const tiles = tilesHomeLast(placed, home);
  const byTile = piecesByTile(placed);
  const inputs = new Map(tiles.map((t) => [t, new TileInputs(values, rows, t, xs, byTile.get(t) ?? [])]));
  for (const tile of tiles) {
    const mine = byTile.get(tile) ?? [];
    if (tile === home) {
      sumPieces(values, y, mine, inputs.get(tile)!);
      continue;
    }
    // Another tile sums into a compact buffer of just the columns it covers (ascending),
    // which then travels to the home tile as one message.
    const cols = [...new Set(mine.flatMap((p) => p.piece.outCols))].sort((a, b) => a - b);
    const index = new Map(cols.map((j, k) => [j, k]));
    const sums: ColumnSums = { tile, ref: streams.scratch(tile, cols.length), slot: (j) => index.get(j)!, written: new Uint8Array(cols.length) };
    sumPieces(values, sums, mine, inputs.get(tile)!);
    if (cols.length > 0) partials.push({ from: tile, src: sums.ref, cols });
  }
  addPartialSums(values, y, partials);
  addBias(streams, y, op.bias);
  return wholeBuffer(y.ref.buf);
}

/** Each tile sums and finishes the columns it holds; the result is a distributed value. */
function distributedMatmul(values: SectionValues, op: MatMulOp, placed: readonly PlacedPiece[], xs: readonly Value[], rows: RowSources, owners: Int32Array): DistValue {
  const streams = values.streams;
  const parts: DistPart[] = [];
  // One pass over the pieces and one over the columns, grouped by tile (a filter per tile
  // was quadratic in the tile count on large models). Every column has exactly one owner,
  // so one column -> word table serves all tiles.
  const byTile = piecesByTile(placed);
  const colsByTile = new Map<number, number[]>();
  const slotOf = new Int32Array(owners.length);
  for (let j = 0; j < owners.length; j++) {
    const t = owners[j]!;
    let cols = colsByTile.get(t);
    if (!cols) colsByTile.set(t, (cols = []));
    slotOf[j] = cols.length;
    cols.push(j);
  }
  const tiles = [...colsByTile.keys()].sort((a, b) => a - b);
  // Every tile's inputs first, so the transfers to other tiles do not wait behind MVMs.
  const inputs = new Map(tiles.map((t) => [t, new TileInputs(values, rows, t, xs, byTile.get(t) ?? [])]));
  for (const tile of tiles) {
    const mine = byTile.get(tile) ?? [];
    const cols = colsByTile.get(tile)!;
    const sums: ColumnSums = { tile, ref: streams.scratch(tile, cols.length), slot: (j) => slotOf[j]!, written: new Uint8Array(cols.length) };
    sumPieces(values, sums, mine, inputs.get(tile)!);
    addBias(streams, sums, op.bias ? cols.map((j) => op.bias![j]!) : undefined);
    for (const [k, j, n] of consecutiveRuns(cols)) parts.push({ off: j, mem: { kind: "mem", buf: sums.ref.buf, off: k, len: n } });
  }
  parts.sort((a, b) => a.off - b.off);
  return { kind: "dist", parts, off: 0, len: op.weight.cols };
}

/** `placed` grouped by tile, each group in the order of `placed`. */
function piecesByTile(placed: readonly PlacedPiece[]): Map<number, PlacedPiece[]> {
  const out = new Map<number, PlacedPiece[]>();
  for (const p of placed) {
    const list = out.get(p.tile);
    if (list) list.push(p);
    else out.set(p.tile, [p]);
  }
  return out;
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

/**
 * The MVMs of one tile's `pieces`, summed into `sums`, in three phases so the tile's
 * crossbars work in parallel: (1) every input vector is gathered, (2) the MVMs issue back
 * to back (each crossbar is its own unit), (3) the results that need a vector op are
 * copied or added into place. An MVM writes straight into `sums` (with `acc` onto an
 * earlier MVM's result) when its columns form one segment that no phase-3 op touches;
 * otherwise it writes scratch and phase 3 places it.
 */
export function sumPieces(values: SectionValues, sums: ColumnSums, pieces: readonly PlacedPiece[], inputs: InputVectors, force?: readonly (boolean | undefined)[]): void {
  const streams = values.streams;
  const { tile, ref: y, slot, written } = sums;
  // Outputs b-1 and b of a piece go to adjacent words (in column order: adjacent columns).
  const adjacent = (outCols: readonly number[], b: number): boolean => slot(outCols[b]!) === slot(outCols[b - 1]!) + 1 && (sums.bySlot === true || outCols[b] === outCols[b - 1]! + 1);
  const merged = mergeDiagonalRuns(pieces);
  const srcs = merged.map(({ piece }) => inputs.vectorFor(piece.inRows));
  // Phase 2. `written` holds what direct MVMs wrote; `deferred` marks columns a phase-3 op writes.
  const deferred = new Uint8Array(written.length);
  const later: { tmp: Ref; outCols: number[] }[] = [];
  merged.forEach(({ xbar, piece }, k) => {
    const { inRows, outCols } = piece;
    const mvm = (dst: Ref, acc: boolean): void =>
      streams.emit(tile, { op: "mvm", xbar, rowStart: piece.rowStart, rows: inRows.length, colStart: piece.colStart, cols: outCols.length, src: 0, dst: 0, acc }, { src: srcs[k]!, dst });
    // Segments of crossbar columns that map to consecutive outputs, all fresh or all written.
    const segments = maximalRuns(outCols.length, (b, start) => adjacent(outCols, b) && written[slot(outCols[b]!)] === written[slot(outCols[start]!)]);
    const j0 = slot(outCols[0]!);
    const fits = segments.length === 1 && !deferred.subarray(j0, j0 + outCols.length).includes(1);
    // `force` (emit-recurrence.ts) pins a piece's choice where it decides the rounding of a partial sum.
    if (force?.[k] ?? fits) {
      assert(fits, "a piece forced to write its sums in place cannot");
      mvm(at(y, j0), written[j0] === 1);
      written.fill(1, j0, j0 + outCols.length);
      return;
    }
    // One MVM into scratch plus a vector op per segment costs far less than an MVM per
    // segment (each pays the full DAC + integration time).
    const tmp = streams.scratch(tile, outCols.length);
    mvm(tmp, false);
    later.push({ tmp, outCols });
    for (const j of outCols) deferred[slot(j)] = 1;
  });
  for (const src of srcs) streams.keepAlive(src.buf);
  // Phase 3, in piece order. A merged diagonal run can read the same output column from
  // two crossbar columns; the second must add to what the first wrote, so the flags are
  // updated per run and re-read at its turn.
  for (const { tmp, outCols } of later) {
    for (const [b, n] of maximalRuns(outCols.length, (q) => adjacent(outCols, q))) {
      const j = slot(outCols[b]!);
      for (const [c, len, w] of flagRuns(written.subarray(j, j + n))) accumulate(streams, tile, at(y, j + c), at(tmp, b + c), len, w);
      written.fill(1, j, j + n);
    }
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
export function addBias(streams: InstrStreams, y: ColumnSums, bias: readonly number[] | undefined): void {
  const home = y.tile;
  const biasRef = bias ? streams.constant(home, Float32Array.from(bias)) : null;
  for (const [c, len, w] of flagRuns(y.written)) {
    if (w && !biasRef) continue;
    accumulate(streams, home, at(y.ref, c), biasRef ? at(biasRef, c) : streams.zeroBlock(home, len), len, w);
  }
}
