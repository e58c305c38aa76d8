// A distributed S4D recurrence whose state is stored in the order its crossbars read it.
//
// Why: a channel group's MVMs read [state words of channel c, u_c] (and, for the small
// remainder pieces the splitter leaves, a few scattered state words). With the state in
// index order and u in a received buffer, every MVM needed its input vector gathered with a
// few `vcopy` per piece, and every result placed and then copied into the state: on digits
// (xbar64) about 135 copies per step on the busiest tile, whose vector unit was the bound
// of the whole pipeline (docs/SCHEDULE.md).
//
// Here each tile T that owns columns of the recurrence matmul keeps one pinned **arena**:
// a word per slot, where a slot is a weight row the tile's pieces read (a state word, or an
// input word u) or an output column the tile owns. Slots are numbered in the order the
// tile's MVMs read their rows (largest pieces first), and the state's next value (column
// start + i) uses the same slot as the state word it replaces (row off + i), so
//   - a piece whose rows got consecutive slots reads its input vector in place (most do),
//   - an output column that is not state (y_c) takes the slot of the input row at the same
//     crossbar position when that row is not state either (u_c), so a channel's piece
//     writes [new state, y_c] where it reads [state, u_c],
//   - the MVMs sum straight into the arena (an MVM reads all its inputs before it writes,
//     docs/TIMING.md), so after the matmul the arena holds the new state and the state
//     write emits nothing; a piece that reads words another MVM of the step writes reads a
//     copy taken before any MVM issues,
//   - per step, the input words are copied from the received u into their slots (one word
//     per channel) and y is compacted out of the arena (one word per channel).
// The arithmetic is the one of emit-matmul.ts sumPieces (same pieces, same order of partial
// sums, the same in-place or placed choice wherever it changes a rounding: sameRounding);
// only the addresses differ, so the numbers are bit-identical to the plain layout.
//
// It applies when the state is read only by that matmul and its next value (a slice of the
// matmul's result) only written back to the state; otherwise emit-layout.ts keeps the
// plain layout.
//
// The residual form (src/passes/residual.ts: the slice is the increment dA x + B u - x, and
// an `add` of it and the state read gives the next state) is fused too. Its MVMs must not
// overwrite the state words they read, since the add needs them after the matmul, so the
// arena doubles: the lower half holds the rows as above, the upper half the columns, in
// the order the pieces write them (largest first), so every piece whose columns no other
// piece shares sums in place and no piece reads words another MVM writes. (Mirroring the
// lower half instead put a piece's columns where its rows are; the residual plan has pieces
// of 63 rows and 64 columns, whose sums then had to be placed and copied: digits on xbar64
// took 135 instead of 123 cycles per step.) After the matmul, one `vadd` per run of state
// words whose slots are consecutive in both halves adds the increment to the state in
// place, in the IR's operand order (the interpreter's float32 add of the same two words,
// so the numbers are those of the unfused residual program), and the state write again
// emits nothing.

import type { Model, MatMulOp, Op } from "../ir/types.js";
import type { Buffer } from "./allocate.js";
import { mergeDiagonalRuns, rowSources, TileInputs, type InputVectors } from "./emit-gather.js";
import { addBias, sumPieces, type ColumnSums } from "./emit-matmul.js";
import { maximalRuns } from "./emit-runs.js";
import type { DistPart, DistValue, SectionValues } from "./emit-values.js";
import { operandsOf } from "../ir/operands.js";
import { valueSizes } from "../ir/sizes.js";
import { columnOwners, valueKey, type PlacedPiece } from "./schedule.js";
import { at, InstrStreams, type Ref } from "./streams.js";

/** One tile's part of a fused recurrence. */
export interface FusedTile {
  tile: number;
  /** Pinned: the state words (and the input words of the current step) by slot. */
  arena: Buffer;
  /** Weight row -> slot, for every row the tile's pieces read. */
  rowSlot: Map<number, number>;
  /** Output column -> slot, for every column the tile owns. */
  colSlot: Map<number, number>;
  slots: number;
  /** Per merged piece (emit-gather.ts mergeDiagonalRuns): whether sumPieces writes its sums in place (sameRounding). */
  force: boolean[];
}

/** The residual form's add of increment and state (file comment). */
export interface ResidualAdd {
  /** The add's result name (the next state). */
  out: string;
  /** Whether the increment is the add's first operand (`a`); the state is the other. */
  incrementFirst: boolean;
}

export interface FusedRecurrence {
  /** The recurrence matmul's result name. */
  matmul: string;
  /** State word i is weight row rowOff + i and output column colOff + i. */
  rowOff: number;
  colOff: number;
  size: number;
  /** Output column -> owning tile (schedule.ts columnOwners). */
  owners: Int32Array;
  tiles: Map<number, FusedTile>;
  /** Set for the residual form: each tile's upper arena half holds the columns. */
  residual?: ResidualAdd;
}

/** Names the ops of `ops` read (as operands or as the state they write). */
function readers(ops: readonly Op[], name: string): Op[] {
  return ops.filter((o) => operandsOf(o).includes(name) || (o.op === "state_write" && o.x === name));
}

/**
 * The fused layout of state `state` (file comment), or null when it does not apply: the
 * state must be read only as one operand of a distributed recurrence matmul, and written
 * only from a slice of that matmul's result whose columns line up with the operand's rows.
 */
export function fuseRecurrence(model: Model, state: string, size: number, pieces: Map<string, PlacedPiece[]>, streams: InstrStreams): FusedRecurrence | null {
  const step = model.sections.step;
  const finalOps = model.sections.final;
  const outputs = new Set(model.outputs.map((o) => o.value));
  const reads = step.filter((o) => o.op === "state_read" && o.state === state);
  const writes = step.filter((o) => o.op === "state_write" && o.state === state);
  if (reads.length !== 1 || writes.length !== 1 || finalOps.some((o) => o.op === "state_read" && o.state === state)) return null;
  const read = reads[0]!;
  const write = writes[0]!;
  if (write.op !== "state_write") return null;
  // Direct form: state_write(slice(matmul)); residual form: state_write(add(slice(matmul), state_read)).
  const next = step.find((o) => o.out === write.x);
  const add = next?.op === "add" && (next.a === read.out) !== (next.b === read.out) ? next : undefined;
  const slice = add ? step.find((o) => o.out === (add.a === read.out ? add.b : add.a)) : next;
  if (!slice || slice.op !== "slice" || slice.length !== size) return null;
  const mm = step.find((o): o is MatMulOp => o.op === "matmul" && o.out === slice.x);
  if (!mm) return null;
  // Only the matmul (and the residual add) reads the state, only the state write (through
  // the add) reads its next value; none of them is a model output or read after the last step.
  const stepReaders = readers(step, read.out);
  const stateReaders = add ? [mm, add] : [mm];
  if (stepReaders.length !== stateReaders.length || stateReaders.some((o) => !stepReaders.includes(o)) || mm.xs.filter((x) => x === read.out).length !== 1) return null;
  const sliceReaders = readers(step, slice.out);
  if (sliceReaders.length !== 1 || sliceReaders[0] !== (add ?? write)) return null;
  if (add) {
    const addReaders = readers(step, add.out);
    if (addReaders.length !== 1 || addReaders[0] !== write) return null;
  }
  for (const n of [read.out, slice.out, ...(add ? [add.out] : [])]) if (outputs.has(n) || readers(finalOps, n).length > 0) return null;
  const placed = (pieces.get(valueKey("step", mm.out)) ?? []).filter((p) => p.piece.inRows.length > 0 && p.piece.outCols.length > 0);
  const owners = columnOwners(mm, placed);
  if (!owners) return null;
  // Row offset of the state operand.
  const sizes = operandLengths(model, mm);
  if (!sizes) return null;
  const k = mm.xs.indexOf(read.out);
  const rowOff = sizes.slice(0, k).reduce((a, b) => a + b, 0);
  const colOff = slice.start;
  const isStateRow = (i: number): boolean => i >= rowOff && i < rowOff + size;
  const isStateCol = (j: number): boolean => j >= colOff && j < colOff + size;

  const byTile = new Map<number, PlacedPiece[]>();
  for (const p of placed) byTile.set(p.tile, [...(byTile.get(p.tile) ?? []), p]);
  const colsOf = new Map<number, number[]>();
  owners.forEach((t, j) => colsOf.set(t, [...(colsOf.get(t) ?? []), j]));
  const tiles = new Map<number, FusedTile>();
  for (const [tile, cols] of [...colsOf.entries()].sort((a, b) => a[0] - b[0])) {
    const mine = byTile.get(tile) ?? [];
    // Every state word a piece here reads must be computed here.
    for (const p of mine) for (const i of p.piece.inRows) if (isStateRow(i) && owners[i - rowOff + colOff] !== tile) return null;
    const rowSlot = new Map<number, number>();
    const colSlot = new Map<number, number>();
    /** Slots whose column side is taken (a state word, or an output column sharing an input row's slot). */
    const colTaken = new Set<number>();
    let slots = 0;
    const stateSlot = (i: number): number => {
      // State word i: row rowOff + i and column colOff + i share one slot.
      let s = rowSlot.get(rowOff + i);
      if (s === undefined) {
        s = slots++;
        rowSlot.set(rowOff + i, s);
        colSlot.set(colOff + i, s);
        colTaken.add(s);
      }
      return s;
    };
    // Larger pieces first: they get their rows (and columns) in consecutive slots.
    const merged = mergeDiagonalRuns(mine)
      .map((p, n) => ({ p, n }))
      .sort((a, b) => b.p.piece.inRows.length - a.p.piece.inRows.length || a.n - b.n)
      .map(({ p }) => p.piece);
    for (const { inRows, outCols } of merged) {
      for (const i of inRows) {
        if (isStateRow(i)) stateSlot(i - rowOff);
        else if (!rowSlot.has(i)) rowSlot.set(i, slots++);
      }
      outCols.forEach((j, pos) => {
        if (isStateCol(j)) return void stateSlot(j - colOff);
        if (colSlot.has(j)) return;
        // An output that is not state takes the slot of the input row at its crossbar
        // position when that row is not state either (y_c where u_c is read).
        const row = inRows[pos];
        const shared = row !== undefined && !isStateRow(row) ? rowSlot.get(row) : undefined;
        const s = shared !== undefined && !colTaken.has(shared) ? shared : slots++;
        colSlot.set(j, s);
        colTaken.add(s);
      });
    }
    // Owned columns no piece writes (bias or zero only), state words included.
    for (const j of cols) {
      if (isStateCol(j)) stateSlot(j - colOff);
      else if (!colSlot.has(j)) {
        colSlot.set(j, slots);
        colTaken.add(slots++);
      }
    }
    // Residual form: the columns go to the upper half (file comment), each piece's in the
    // order it writes them, so its sums land in place wherever no other piece shares them.
    if (add) {
      colSlot.clear();
      for (const { outCols } of merged) for (const j of outCols) if (!colSlot.has(j)) colSlot.set(j, slots++);
      for (const j of cols) if (!colSlot.has(j)) colSlot.set(j, slots++);
    }
    const force = sameRounding(mergeDiagonalRuns(mine).map((p) => p.piece.outCols), cols, colSlot, slots);
    if (!force) return null;
    tiles.set(tile, { tile, arena: streams.buffer(tile, slots, true), rowSlot, colSlot, slots, force });
  }
  const residual = add ? { out: add.out, incrementFirst: add.a === slice.out } : undefined;
  return { matmul: mm.out, rowOff, colOff, size, owners, tiles, ...(residual ? { residual } : {}) };
}

/**
 * The residual-form adds that fuseRecurrence will fuse, each with the slice (the increment)
 * it adds: add name -> slice name. The layout's choices do not depend on buffer addresses,
 * so it is tried on throwaway streams.
 */
export function fusedResidualAdds(model: Model, pieces: Map<string, PlacedPiece[]>): Map<string, string> {
  const out = new Map<string, string>();
  for (const st of model.state) {
    const f = fuseRecurrence(model, st.name, st.size, pieces, new InstrStreams());
    if (!f?.residual) continue;
    const add = model.sections.step.find((o) => o.out === f.residual!.out);
    if (add?.op === "add") out.set(add.out, f.residual.incrementFirst ? add.a : add.b);
  }
  return out;
}

/**
 * The model as op placement (schedule.ts placeOps) should see it when `adds` are fused:
 * without them, each state written from its increment slice, i.e. shaped as the direct
 * form. A fused add emits one vector add on every channel-group tile and no transfer, so it
 * belongs to no tile; placed as an ordinary add it would take a spare tile (a stage of its
 * own) away from the ops after the recurrence, and chain their tiles into a loop that set
 * the interval of overlapped steps (digits, xbar64: 352 cycles per step instead of 102).
 */
export function placementView(model: Model, adds: ReadonlyMap<string, string>): Model {
  const step = model.sections.step
    .filter((o) => !adds.has(o.out))
    .map((o) => (o.op === "state_write" && adds.has(o.x) ? { ...o, x: adds.get(o.x)! } : o));
  return { ...model, sections: { ...model.sections, step } };
}

/**
 * Which pieces write their sums in place (emit-matmul.ts sumPieces, phase 2), given the
 * word of each column and whether adjacent words must also be adjacent columns: the
 * sumPieces rule, replayed without emitting. `decide(k, fits, direct)` may overrule the
 * rule for piece k (`direct`: the choices so far); null when it forces a piece in place
 * that cannot be.
 */
function inPlace(
  outCols: readonly number[][],
  slot: (j: number) => number,
  words: number,
  byColumn: boolean,
  decide: (k: number, fits: boolean, direct: readonly boolean[]) => boolean = (_, fits) => fits,
): boolean[] | null {
  const written = new Uint8Array(words);
  const deferred = new Uint8Array(words);
  const out: boolean[] = [];
  for (const [k, cols] of outCols.entries()) {
    const adjacent = (b: number): boolean => slot(cols[b]!) === slot(cols[b - 1]!) + 1 && (!byColumn || cols[b] === cols[b - 1]! + 1);
    const segments = maximalRuns(cols.length, (b, start) => adjacent(b) && written[slot(cols[b]!)] === written[slot(cols[start]!)]);
    const j0 = slot(cols[0]!);
    const fits = segments.length === 1 && !deferred.subarray(j0, j0 + cols.length).includes(1);
    const direct = decide(k, fits, out);
    if (direct && !fits) return null;
    if (direct) written.fill(1, j0, j0 + cols.length);
    else for (const j of cols) deferred[slot(j)] = 1;
    out.push(direct);
  }
  return out;
}

/**
 * The choices that keep every sum rounded as in the plain layout (columns in index order,
 * emit-matmul.ts distributedMatmul). A column summed from several MVMs is rounded
 * differently when an MVM adds onto it in place (`acc`: one rounding of old + new) than
 * when its result is placed and added by the vector unit (two roundings). So:
 *   - a column one MVM writes: any choice;
 *   - a column two MVMs write, neither in place onto the other in the plain layout (the
 *     sum of the two rounded results, in either order): at most one of them in place;
 *   - any other column (an in-place add, or three or more MVMs): its MVMs keep their plain
 *     choices, so the order and rounding of the adds stay the same.
 * Null when the new layout cannot honour them.
 */
function sameRounding(outCols: readonly number[][], cols: readonly number[], colSlot: ReadonlyMap<number, number>, slots: number): boolean[] | null {
  const rank = new Map(cols.map((j, k) => [j, k]));
  const plain = inPlace(outCols, (j) => rank.get(j)!, cols.length, true)!;
  const writers = new Map<number, number[]>();
  outCols.forEach((list, k) => list.forEach((j) => writers.set(j, [...(writers.get(j) ?? []), k])));
  const pinned = new Set<number>();
  /** Per piece: the other writer of each column it shares with exactly one other MVM (both placed in the plain layout). */
  const partners = outCols.map(() => new Set<number>());
  for (const ks of writers.values()) {
    if (ks.length === 1) continue;
    if (ks.length === 2 && !(plain[ks[0]!] && plain[ks[1]!])) {
      partners[ks[0]!]!.add(ks[1]!);
      partners[ks[1]!]!.add(ks[0]!);
    } else for (const k of ks) pinned.add(k);
  }
  return inPlace(
    outCols,
    (j) => colSlot.get(j)!,
    slots,
    false,
    (k, fits, direct) => {
      if (pinned.has(k)) return plain[k]!;
      // Not in place when a partner is (or, pinned, will be): that would be an in-place add.
      for (const q of partners[k]!) if ((q < k && direct[q]) || (q > k && pinned.has(q) && plain[q])) return false;
      return fits;
    },
  );
}

/** Lengths of the matmul's operands in order (null when one is unknown). */
function operandLengths(model: Model, mm: MatMulOp): number[] | null {
  // Every value's length (src/ir/sizes.ts); unrolled programs read several step values.
  const len = valueSizes(model).step;
  const known = mm.xs.map((x) => len.get(x));
  return known.every((n) => n !== undefined) ? (known as number[]) : null;
}

/** Runs [word, count, tile] of state words owned by one tile at consecutive state slots. */
function stateRuns(f: FusedRecurrence): [number, number, FusedTile][] {
  // State word i's slot is its row's (the same as its column's in the direct form).
  const slotOf = (i: number): number => f.tiles.get(f.owners[f.colOff + i]!)!.rowSlot.get(f.rowOff + i)!;
  return maximalRuns(f.size, (i, start) => f.owners[f.colOff + i] === f.owners[f.colOff + start] && slotOf(i) === slotOf(start) + (i - start)).map(([o, n]) => [
    o,
    n,
    f.tiles.get(f.owners[f.colOff + o]!)!,
  ]);
}

/** The state's words as a distributed value over the arenas (for a state_read; the matmul reads the arenas directly). */
export function fusedStateValue(f: FusedRecurrence): DistValue {
  const parts: DistPart[] = stateRuns(f).map(([o, n, t]) => ({ off: o, mem: { kind: "mem", buf: t.arena, off: t.rowSlot.get(f.rowOff + o)!, len: n } }));
  return { kind: "dist", parts, off: 0, len: f.size };
}

/**
 * The residual form's add (file comment): on each tile, one `vadd` per run of state words
 * whose increments (upper arena half, where the matmul summed them) and states (lower half)
 * both sit in consecutive slots, written over the state: about one per channel and
 * crossbar boundary. Returns the next state, which the state write then finds in place.
 */
export function lowerResidualAdd(values: SectionValues, f: FusedRecurrence): DistValue {
  const r = f.residual!;
  for (const t of f.tiles.values()) {
    const arena: Ref = { buf: t.arena, off: 0 };
    // [state slot, increment slot] per state word of this tile, in increment order.
    const pairs: [number, number][] = [];
    for (const [j, s] of t.colSlot) if (j >= f.colOff && j < f.colOff + f.size) pairs.push([t.rowSlot.get(f.rowOff + j - f.colOff)!, s]);
    pairs.sort((a, b) => a[1] - b[1]);
    const next = (b: number, c: number): boolean => pairs[b]![c] === pairs[b - 1]![c]! + 1;
    for (const [k, n] of maximalRuns(pairs.length, (b) => next(b, 0) && next(b, 1))) {
      const state = at(arena, pairs[k]![0]);
      const increment = at(arena, pairs[k]![1]);
      values.streams.binary("vadd", t.tile, state, r.incrementFirst ? increment : state, r.incrementFirst ? state : increment, n);
    }
  }
  return fusedStateValue(f);
}

/** Input vectors read from the arena: in place when a piece's rows have consecutive slots. */
class ArenaInputs implements InputVectors {
  private readonly gathered = new Map<string, Ref>();
  /** Row lists (joined) that must not be read in place: another MVM writes some of their words. */
  private readonly snapshot = new Set<string>();

  /** `merged`: the tile's merged pieces in sumPieces order; `direct`: which of them write the arena in place. */
  constructor(
    private readonly streams: InstrStreams,
    private readonly t: FusedTile,
    merged: readonly { inRows: number[]; outCols: number[] }[],
    direct: readonly boolean[],
  ) {
    const writer = new Map<number, number>();
    merged.forEach((p, k) => direct[k] && p.outCols.forEach((j) => writer.set(t.colSlot.get(j)!, k)));
    merged.forEach((p, k) => {
      if (p.inRows.some((i) => (writer.get(t.rowSlot.get(i)!) ?? k) !== k)) this.snapshot.add(p.inRows.join(","));
    });
  }

  vectorFor(inRows: readonly number[]): Ref {
    const slot = (a: number): number => this.t.rowSlot.get(inRows[a]!)!;
    const runs = maximalRuns(inRows.length, (a) => slot(a) === slot(a - 1) + 1);
    const arena: Ref = { buf: this.t.arena, off: 0 };
    // In place unless another MVM of this step writes some of these words: that MVM would
    // change them before this one reads them (or wait for it). A gathered copy is taken
    // before any MVM issues, so it holds the old values.
    if (runs.length === 1 && !this.snapshot.has(inRows.join(","))) return at(arena, slot(0));
    const key = inRows.join(",");
    const cached = this.gathered.get(key);
    if (cached) return cached;
    const buf = this.streams.scratch(this.t.tile, inRows.length);
    for (const [a, n] of runs) this.streams.copy(this.t.tile, at(buf, a), at(arena, slot(a)), n);
    this.gathered.set(key, buf);
    return buf;
  }
}

/**
 * The recurrence matmul in the fused layout: per tile, the step's input words into their
 * arena slots, the MVMs summed into the arena by slot (sumPieces), the bias, and y compacted out of
 * it. Returns the distributed result (state columns in the arena, the others compacted).
 */
export function lowerFusedMatmul(values: SectionValues, op: MatMulOp, pieces: readonly PlacedPiece[], f: FusedRecurrence): DistValue {
  const streams = values.streams;
  const xs = op.xs.map((x) => values.resolve(x));
  const rows = rowSources(op, xs);
  const placed = pieces.filter((p) => p.piece.inRows.length > 0 && p.piece.outCols.length > 0);
  const isStateRow = (i: number): boolean => i >= f.rowOff && i < f.rowOff + f.size;
  const isStateCol = (j: number): boolean => j >= f.colOff && j < f.colOff + f.size;
  const tiles = [...f.tiles.values()];
  // Every tile's input words first (one receive or load per operand and tile), so the
  // transfers to other tiles do not wait behind MVMs.
  const inputs = new Map(
    tiles.map((t) => {
      const other = placed.filter((p) => p.tile === t.tile).map((p) => ({ ...p, piece: { ...p.piece, inRows: p.piece.inRows.filter((i) => !isStateRow(i)) } }));
      return [t.tile, new TileInputs(values, rows, t.tile, xs, other)];
    }),
  );
  const parts: DistPart[] = [];
  for (const t of tiles) {
    const arena: Ref = { buf: t.arena, off: 0 };
    const local = inputs.get(t.tile)!;
    // The step's input words into their slots, a copy per run of consecutive rows with consecutive slots and words.
    const inRows = [...t.rowSlot.keys()].filter((i) => !isStateRow(i)).sort((a, b) => t.rowSlot.get(a)! - t.rowSlot.get(b)!);
    for (const [a, n] of maximalRuns(inRows.length, (b) => {
      const prev = local.rowAddress(inRows[b - 1]!);
      const cur = local.rowAddress(inRows[b]!);
      return t.rowSlot.get(inRows[b]!) === t.rowSlot.get(inRows[b - 1]!)! + 1 && cur.buf === prev.buf && cur.off === prev.off + 1;
    }))
      streams.copy(t.tile, at(arena, t.rowSlot.get(inRows[a]!)!), local.rowAddress(inRows[a]!), n);
    const mine = placed.filter((p) => p.tile === t.tile);
    // The sums go straight into the arena: it holds the new state (residual form: the
    // increment, in the upper half) once the matmul is done, so the state write needs no copy. Every word's first contribution overwrites it (MVMs
    // read the old words first: in place only where no other MVM writes, ArenaInputs).
    const sums: ColumnSums = { tile: t.tile, ref: arena, slot: (j) => t.colSlot.get(j)!, written: new Uint8Array(t.slots), bySlot: true };
    const merged = mergeDiagonalRuns(mine).map((p) => p.piece);
    sumPieces(values, sums, mine, new ArenaInputs(streams, t, merged, t.force), t.force);
    // Slots that are no owned column (input words only) take no bias and no zero fill.
    const owned = new Uint8Array(t.slots);
    for (const s of t.colSlot.values()) owned[s] = 1;
    owned.forEach((o, s) => o === 0 && (sums.written[s] = 1));
    const bias = op.bias ? new Array<number>(t.slots).fill(0) : undefined;
    if (bias) for (const [j, s] of t.colSlot) bias[s] = op.bias![j]!;
    addBias(streams, sums, bias);
    // The result's parts: state columns in the arena; the other owned columns compacted, in column order.
    const cols = [...t.colSlot.keys()].sort((a, b) => a - b);
    const state = cols.filter(isStateCol);
    const slotRun = (list: number[]) => (b: number, start: number) => list[b] === list[b - 1]! + 1 && t.colSlot.get(list[b]!) === t.colSlot.get(list[start]!)! + (b - start);
    for (const [b, n] of maximalRuns(state.length, slotRun(state))) parts.push({ off: state[b]!, mem: { kind: "mem", buf: sums.ref.buf, off: t.colSlot.get(state[b]!)!, len: n } });
    const other = cols.filter((j) => !isStateCol(j));
    if (other.length > 0) {
      const compact = streams.scratch(t.tile, other.length);
      for (const [b, n] of maximalRuns(other.length, (c) => t.colSlot.get(other[c]!) === t.colSlot.get(other[c - 1]!)! + 1)) streams.copy(t.tile, at(compact, b), at(sums.ref, t.colSlot.get(other[b]!)!), n);
      for (const [b, n] of maximalRuns(other.length, (c) => other[c] === other[c - 1]! + 1)) parts.push({ off: other[b]!, mem: { kind: "mem", buf: compact.buf, off: b, len: n } });
    }
  }
  parts.sort((a, b) => a.off - b.off);
  return { kind: "dist", parts, off: 0, len: op.weight.cols };
}

