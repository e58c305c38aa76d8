// The input side of a matmul on one tile: which words of which operand feed each weight
// row, the local copies of the operands a tile's pieces read, and the contiguous input
// vector each MVM drives its crossbar rows from.

import { fail } from "../common/errors.js";
import type { MatMulOp } from "../ir/types.js";
import { maximalRuns } from "./emit-runs.js";
import { refOf, sliceOf, type SectionValues, type Value } from "./emit-values.js";
import type { PlacedPiece } from "./schedule.js";
import { at, type Ref } from "./streams.js";

/** Weight row i reads word `offset[i]` of operand `operand[i]` (rows = concat(xs)). */
export interface RowSources {
  operand: Int32Array;
  offset: Int32Array;
}

export function rowSources(op: MatMulOp, xs: readonly Value[]): RowSources {
  const R = op.weight.rows;
  const operand = new Int32Array(R);
  const offset = new Int32Array(R);
  let total = 0;
  xs.forEach((x, k) => {
    for (let i = 0; i < x.len && total + i < R; i++) {
      operand[total + i] = k;
      offset[total + i] = i;
    }
    total += x.len;
  });
  if (total !== R) fail("semantic", `matmul '${op.out}': inputs have total length ${total} but the weight has ${R} rows`);
  return { operand, offset };
}

/** A local copy of words [lo, hi] of one matmul operand. */
interface OperandCopy {
  ref: Ref;
  lo: number;
  hi: number;
}

/** Where the MVMs of one tile find the input vector of a piece (emit-matmul.ts sumPieces). */
export interface InputVectors {
  vectorFor(inRows: readonly number[]): Ref;
}

/** The inputs of one matmul's MVMs on one tile. */
export class TileInputs implements InputVectors {
  private readonly operands = new Map<number, OperandCopy[]>();
  /** Gathered input vectors, by their row list. */
  private readonly gathered = new Map<string, Ref>();

  /**
   * Copies to `tile`, per operand, the span of words its `pieces` read: one load or
   * transfer per operand and tile, however many crossbars the tile has.
   */
  constructor(
    private readonly values: SectionValues,
    private readonly rows: RowSources,
    private readonly tile: number,
    xs: readonly Value[],
    pieces: readonly PlacedPiece[],
  ) {
    const spans = new Map<number, [lo: number, hi: number][]>();
    // A distributed operand of which this tile holds a part is copied per part (the words
    // of a part another tile holds travel only when some row here reads them); any other
    // operand as one span (a remote distributed one is received into one buffer, so the
    // MVMs read it in place). Per operand: the part holding a word, or 0 for one span.
    const partOf = xs.map((x) => partLookup(x, tile));
    for (const { piece } of pieces) {
      for (const i of piece.inRows) {
        const k = rows.operand[i]!;
        const word = rows.offset[i]!;
        const part = partOf[k]!(word);
        const list = spans.get(k) ?? [];
        const [lo, hi] = list[part] ?? [word, word];
        list[part] = [Math.min(lo, word), Math.max(hi, word)];
        spans.set(k, list);
      }
    }
    for (const [k, list] of spans)
      this.operands.set(
        k,
        list.filter((span) => span !== undefined).map(([lo, hi]) => ({ ref: refOf(values.local(sliceOf(xs[k]!, lo, hi - lo + 1), tile)), lo, hi })),
      );
  }

  /**
   * Address of the input vector for weight rows `inRows`: in place when they are one
   * contiguous run of one operand; otherwise gathered with vcopy runs (once per row list).
   */
  vectorFor(inRows: readonly number[]): Ref {
    const { operand } = this.rows;
    const runList = maximalRuns(
      inRows.length,
      (a, start) => inRows[a] === inRows[a - 1]! + 1 && operand[inRows[a]!] === operand[inRows[start]!] && this.copyOf(inRows[a]!) === this.copyOf(inRows[start]!),
    );
    if (runList.length === 1) return this.rowAddress(inRows[0]!);
    const key = inRows.join(",");
    const cached = this.gathered.get(key);
    if (cached) return cached;
    const streams = this.values.streams;
    const buf = streams.scratch(this.tile, inRows.length);
    for (const [a, n] of runList) streams.copy(this.tile, at(buf, a), this.rowAddress(inRows[a]!), n);
    this.gathered.set(key, buf);
    return buf;
  }

  private copyOf(i: number): OperandCopy {
    const word = this.rows.offset[i]!;
    return this.operands.get(this.rows.operand[i]!)!.find((copy) => copy.lo <= word && word <= copy.hi)!;
  }

  /** Address of the local copy of weight row `i`'s input word (a row some piece given to the constructor reads). */
  rowAddress(i: number): Ref {
    const c = this.copyOf(i);
    return at(c.ref, this.rows.offset[i]! - c.lo);
  }
}

/**
 * For TileInputs: word -> index of the first part of `x` holding it (-1 if none) when `x` is
 * distributed with a part on `tile`, else always 0. Rows are read mostly in order, so the
 * last part found is tried first; when the parts are disjoint (as DistValue promises) it is
 * then the only, hence the first, part holding the word. Otherwise, or on a miss, the parts
 * are searched in order, as a plain findIndex would.
 */
function partLookup(x: Value, tile: number): (word: number) => number {
  if (x.kind !== "dist" || !x.parts.some((p) => p.mem.buf.tile === tile)) return () => 0;
  const { parts, off } = x;
  let disjoint = true;
  for (let p = 1; p < parts.length; p++) if (parts[p - 1]!.off + parts[p - 1]!.mem.len > parts[p]!.off) disjoint = false;
  let last = -1;
  return (word) => {
    const at = off + word;
    if (disjoint && last >= 0) {
      const p = parts[last]!;
      if (p.off <= at && at < p.off + p.mem.len) return last;
    }
    const found = parts.findIndex((p) => p.off <= at && at < p.off + p.mem.len);
    if (found >= 0) last = found;
    return found;
  };
}

/**
 * Pieces of one matmul that follow each other along a crossbar's diagonal (the next starts
 * at the row and column where the previous ends) merge into one piece: the cells between
 * them hold no weight, so one MVM over the union computes all of them at once.
 */
export function mergeDiagonalRuns(pieces: readonly PlacedPiece[]): PlacedPiece[] {
  const out: PlacedPiece[] = [];
  const byXbar = new Map<number, PlacedPiece[]>();
  for (const p of pieces) byXbar.set(p.xbar, [...(byXbar.get(p.xbar) ?? []), p]);
  for (const list of byXbar.values()) {
    const sorted = [...list].sort((a, b) => a.piece.rowStart - b.piece.rowStart);
    for (const p of sorted) {
      const q = p.piece;
      const last: PlacedPiece | undefined = out[out.length - 1];
      const prev = last && last.xbar === p.xbar ? last.piece : null;
      if (prev && q.rowStart === prev.rowStart + prev.inRows.length && q.colStart === prev.colStart + prev.outCols.length)
        out[out.length - 1] = { xbar: p.xbar, tile: p.tile, piece: { ...prev, inRows: [...prev.inRows, ...q.inRows], outCols: [...prev.outCols, ...q.outCols] } };
      else out.push(p);
    }
  }
  return out;
}
