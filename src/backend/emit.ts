// The emitter: a lowered/quantized model + its crossbar plan -> a Program.
//
// Pipeline inside: schedule (op order, crossbar and op tiles; schedule.ts) -> lower every op
// to instructions over symbolic buffers (this file) -> give buffers addresses (allocate.ts)
// -> patch addresses into the instructions -> crossbar images.
//
// Value transport: a value lives in the memory of the tile that computed it. A tile that
// needs another tile's value receives a copy (send/recv; one copy per section and tile).
// Model inputs live in global memory and are loaded by each tile that reads them.

import { assert, fail } from "../common/errors.js";
import { sha256Hex } from "../common/json.js";
import type { CrossbarPlan } from "../ir/plan.js";
import { valueSizes } from "../ir/sizes.js";
import type { MatMulOp, Model, Op } from "../ir/types.js";
import { targetToJson } from "../target/load.js";
import { maxWeightLevel, type Target } from "../target/types.js";
import { allocateTile, type Buffer } from "./allocate.js";
import { fieldRangeError, MAX_LEN, MAX_LOCAL_ADDRESS, type Instr, type VecBinaryOp, type VecUnaryOp } from "./isa.js";
import { FORMAT_VERSION, SECTION_NAMES, type CrossbarImage, type IoBuffer, type Program, type Section, type SectionName, type TileProgram } from "./program.js";
import {
  assignCrossbarTiles,
  IR_SECTIONS,
  orderSection,
  piecesByMatmul,
  placeOps,
  valueKey,
  type IrSection,
  type Placement,
  type PlacedPiece,
} from "./schedule.js";

export interface EmitOptions {
  compilerVersion?: string;
}

// ---------------------------------------------------------------------------------------
// Instruction streams over symbolic buffers

/** A word address: offset `off` inside buffer `buf`. */
interface Ref {
  buf: Buffer;
  off: number;
}

const at = (r: Ref, o: number): Ref => ({ buf: r.buf, off: r.off + o });

/** An instruction whose address fields are patched once buffers have addresses. */
interface Pending {
  ins: Instr;
  patches: [field: string, ref: Ref][];
  symbol: number;
}

/** Chunks of at most MAX_LEN elements: vector ops longer than a len field are split. */
function chunks(len: number): [offset: number, n: number][] {
  const out: [number, number][] = [];
  for (let o = 0; o < len; o += MAX_LEN) out.push([o, Math.min(MAX_LEN, len - o)]);
  return out;
}

class Streams {
  readonly buffers: Buffer[][] = [];
  readonly code: Record<SectionName, Pending[]>[] = [];
  private readonly pos: number[] = [];
  readonly constData = new Map<Buffer, Float32Array>();
  private readonly zeros: (Buffer | undefined)[] = [];
  private readonly tags = new Map<string, number>();
  private nextId = 0;
  section: SectionName = "init";
  symbol = 0;

  tileCount(): number {
    return this.code.length;
  }

  ensureTile(tile: number): void {
    while (this.code.length <= tile) {
      this.code.push({ init: [], step: [], final: [] });
      this.buffers.push([]);
      this.pos.push(0);
    }
  }

  buffer(tile: number, len: number, pinned = false): Buffer {
    this.ensureTile(tile);
    const b: Buffer = { id: this.nextId++, tile, len, pinned, first: Number.POSITIVE_INFINITY, last: -1, addr: 0 };
    this.buffers[tile]!.push(b);
    return b;
  }

  constant(tile: number, data: Float32Array): Ref {
    const b = this.buffer(tile, data.length, true);
    this.constData.set(b, data);
    return { buf: b, off: 0 };
  }

  /** A block of at least `len` zero words on `tile` (one per tile, never written). */
  zeroBlock(tile: number, len: number): Ref {
    this.ensureTile(tile);
    const z = (this.zeros[tile] ??= this.buffer(tile, 0, true));
    z.len = Math.max(z.len, len);
    return { buf: z, off: 0 };
  }

  zeroBuffers(): Buffer[] {
    return this.zeros.filter((z): z is Buffer => z !== undefined);
  }

  emit(tile: number, ins: Instr, refs: Record<string, Ref>): void {
    this.ensureTile(tile);
    const p = this.pos[tile]!++;
    const patches: [string, Ref][] = [];
    for (const [field, ref] of Object.entries(refs)) {
      assert(ref.buf.tile === tile, `${ins.op} on tile ${tile} uses a buffer of tile ${ref.buf.tile}`);
      ref.buf.first = Math.min(ref.buf.first, p);
      ref.buf.last = Math.max(ref.buf.last, p);
      patches.push([field, ref]);
    }
    this.code[tile]![this.section].push({ ins, patches, symbol: this.symbol });
  }

  vbin(op: VecBinaryOp, tile: number, dst: Ref, a: Ref, b: Ref, len: number): void {
    for (const [o, n] of chunks(len)) this.emit(tile, { op, dst: 0, a: 0, b: 0, len: n }, { dst: at(dst, o), a: at(a, o), b: at(b, o) });
  }

  vun(op: VecUnaryOp | "vdivsteps", tile: number, dst: Ref, a: Ref, len: number): void {
    for (const [o, n] of chunks(len)) this.emit(tile, { op, dst: 0, a: 0, len: n }, { dst: at(dst, o), a: at(a, o) });
  }

  load(tile: number, dst: Ref, global: number, len: number): void {
    for (const [o, n] of chunks(len)) this.emit(tile, { op: "load", dst: 0, global: global + o, len: n }, { dst: at(dst, o) });
  }

  store(tile: number, global: number, src: Ref, len: number): void {
    for (const [o, n] of chunks(len)) this.emit(tile, { op: "store", src: 0, global: global + o, len: n }, { src: at(src, o) });
  }

  /** send on `from` + matching recv on `to`; tags are unique per (from, to) and section. */
  transfer(from: number, src: Ref, to: number, dst: Ref, len: number): void {
    assert(from !== to, "transfer to the same tile");
    for (const [o, n] of chunks(len)) {
      const key = `${this.section}:${from}>${to}`;
      const tag = this.tags.get(key) ?? 0;
      if (tag > MAX_LEN) fail("resource", `more than ${MAX_LEN + 1} transfers from tile ${from} to tile ${to} in section ${this.section}`);
      this.tags.set(key, tag + 1);
      this.emit(from, { op: "send", peer: to, src: 0, len: n, tag }, { src: at(src, o) });
      this.emit(to, { op: "recv", peer: from, dst: 0, len: n, tag }, { dst: at(dst, o) });
    }
  }
}

// ---------------------------------------------------------------------------------------
// Values

type Value =
  | { kind: "mem"; buf: Buffer; off: number; len: number }
  /** A model input (or a slice of one): in global memory, loadable by any tile. */
  | { kind: "input"; io: IoBuffer; off: number; len: number };

const refOf = (v: Value & { kind: "mem" }): Ref => ({ buf: v.buf, off: v.off });
const sub = (v: Value, off: number, len: number): Value => ({ ...v, off: v.off + off, len });

function opSymbol(op: Op): string {
  return op.layer ? `${op.layer} (${op.out}: ${op.op})` : `${op.out}: ${op.op}`;
}

// ---------------------------------------------------------------------------------------
// Lowering of one section

interface Shared {
  model: Model;
  s: Streams;
  placement: Placement;
  pieces: Map<string, PlacedPiece[]>;
  states: Map<string, Ref>;
  inputs: Map<string, IoBuffer>;
  outputs: Map<string, IoBuffer>;
  stepEnv: Map<string, Value>;
  intern: (symbol: string) => number;
}

class SectionLowering {
  readonly env = new Map<string, Value>();
  /** Per tile and input: the loaded copy. */
  private readonly copies = new Map<string, Value & { kind: "mem" }>();
  /** Per tile and source buffer: received copies of word ranges (`from` = first source word). */
  private readonly remote = new Map<string, { from: number; copy: Value & { kind: "mem" } }[]>();

  constructor(
    private readonly g: Shared,
    private readonly section: IrSection,
  ) {}

  private get s(): Streams {
    return this.g.s;
  }

  private resolve(name: string): Value {
    const own = this.env.get(name);
    if (own) return own;
    if (this.section === "final") {
      const v = this.g.stepEnv.get(name);
      // A step value read after the last step must survive the whole step section.
      if (v) {
        if (v.kind === "mem") v.buf.pinned = true;
        return v;
      }
    }
    const io = this.g.inputs.get(name);
    if (io) return { kind: "input", io, off: 0, len: io.size };
    return fail("semantic", `${this.section} section: value '${name}' is used but never defined`);
  }

  /** `v` in the memory of `tile` (loaded or received once per section and tile). */
  private local(v: Value, tile: number): Value & { kind: "mem" } {
    if (v.kind === "mem" && v.buf.tile === tile) return v;
    if (v.kind === "input") {
      const key = `${tile}|input:${v.io.name}`;
      let whole = this.copies.get(key);
      if (!whole) {
        const buf = this.s.buffer(tile, v.io.size);
        this.s.load(tile, { buf, off: 0 }, v.io.addr, v.io.size);
        whole = { kind: "mem", buf, off: 0, len: v.io.size };
        this.copies.set(key, whole);
      }
      return { ...whole, off: v.off, len: v.len };
    }
    // Reuse any copy on this tile that covers the requested words.
    const key = `${tile}|${v.buf.id}`;
    const have = this.remote.get(key) ?? [];
    const cover = have.find((c) => c.from <= v.off && v.off + v.len <= c.from + c.copy.len);
    if (cover) return { ...cover.copy, off: cover.copy.off + v.off - cover.from, len: v.len };
    const buf = this.s.buffer(tile, v.len);
    this.s.transfer(v.buf.tile, refOf(v), tile, { buf, off: 0 }, v.len);
    const copy: Value & { kind: "mem" } = { kind: "mem", buf, off: 0, len: v.len };
    this.remote.set(key, [...have, { from: v.off, copy }]);
    return copy;
  }

  /** Writes `v` to `dst` on `tile`: a local copy, a load, or a transfer straight into place. */
  private into(v: Value, tile: number, dst: Ref): void {
    if (v.kind === "input") this.s.load(tile, dst, v.io.addr + v.off, v.len);
    else if (v.buf.tile === tile) this.s.vun("vcopy", tile, dst, refOf(v), v.len);
    else this.s.transfer(v.buf.tile, refOf(v), tile, dst, v.len);
  }

  run(): void {
    const ops = this.g.model.sections[this.section];
    const defined = new Set(ops.map((o) => o.out));
    const outputs = this.g.model.outputs.filter((o) => o.section === this.section);
    for (const op of orderSection(ops)) {
      this.s.symbol = this.g.intern(opSymbol(op));
      const tile = this.g.placement.opTile.get(valueKey(this.section, op.out)) ?? 0;
      const v = this.lowerOp(op, tile);
      if (v) this.env.set(op.out, v);
      // Store outputs as soon as they exist, so their buffers need not live to the end.
      for (const out of outputs) {
        if (out.value !== op.out || op.op === "state_write") continue;
        this.s.symbol = this.g.intern(`output ${out.name}`);
        this.store(out.name, out.value);
      }
    }
    for (const out of outputs) {
      if (defined.has(out.value)) continue;
      this.s.symbol = this.g.intern(`output ${out.name}`);
      this.store(out.name, out.value);
    }
  }

  private store(outName: string, value: string): void {
    const io = this.g.outputs.get(outName)!;
    const v = this.resolve(value);
    const m = v.kind === "mem" ? v : this.local(v, 0);
    this.s.store(m.buf.tile, io.addr, refOf(m), m.len);
  }

  private lowerOp(op: Op, tile: number): Value | null {
    const s = this.s;
    const fresh = (len: number): Value & { kind: "mem" } => ({ kind: "mem", buf: s.buffer(tile, len), off: 0, len });
    switch (op.op) {
      case "matmul":
        return this.lowerMatmul(op, tile);
      case "slice": {
        const x = this.resolve(op.x);
        if (op.start < 0 || op.start + op.length > x.len) fail("semantic", `slice '${op.out}' [${op.start}, ${op.start + op.length}) is outside '${op.x}' (length ${x.len})`);
        return sub(x, op.start, op.length);
      }
      case "concat": {
        const parts = op.xs.map((x) => this.resolve(x));
        const out = fresh(parts.reduce((n, p) => n + p.len, 0));
        let o = 0;
        for (const p of parts) {
          this.into(p, tile, at(refOf(out), o));
          o += p.len;
        }
        return out;
      }
      case "affine": {
        const x = this.local(this.resolve(op.x), tile);
        const out = fresh(x.len);
        // vaffine reads [scale(len), shift(len)] per chunk.
        const table = new Float32Array(2 * x.len);
        for (const [o, n] of chunks(x.len)) {
          table.set(op.scale.slice(o, o + n), 2 * o);
          table.set(op.shift.slice(o, o + n), 2 * o + n);
        }
        const c = s.constant(tile, table);
        for (const [o, n] of chunks(x.len)) s.emit(tile, { op: "vaffine", dst: 0, a: 0, c: 0, len: n }, { dst: at(refOf(out), o), a: at(refOf(x), o), c: at(c, 2 * o) });
        return out;
      }
      case "normalize": {
        const x = this.local(this.resolve(op.x), tile);
        if (x.len > MAX_LEN) fail("resource", `normalize '${op.out}' over ${x.len} elements exceeds the ISA vector length limit ${MAX_LEN}`);
        const out = fresh(x.len);
        if (x.len > 0) s.emit(tile, { op: "vnorm", dst: 0, a: 0, len: x.len, imm: Math.fround(op.eps) }, { dst: refOf(out), a: refOf(x) });
        return out;
      }
      case "gelu":
      case "sigmoid":
      case "tanh":
      case "relu": {
        const x = this.local(this.resolve(op.x), tile);
        const out = fresh(x.len);
        const code: Record<typeof op.op, VecUnaryOp> = { gelu: "vgelu", sigmoid: "vsigmoid", tanh: "vtanh", relu: "vrelu" };
        s.vun(code[op.op], tile, refOf(out), refOf(x), x.len);
        return out;
      }
      case "glu": {
        const x = this.local(this.resolve(op.x), tile);
        const half = x.len / 2;
        if (half > MAX_LEN) fail("resource", `glu '${op.out}' over ${x.len} elements exceeds the ISA vector length limit ${MAX_LEN}`);
        const out = fresh(half);
        if (half > 0) s.emit(tile, { op: "vglu", dst: 0, a: 0, len: half }, { dst: refOf(out), a: refOf(x) });
        return out;
      }
      case "add":
      case "mul": {
        const a = this.local(this.resolve(op.a), tile);
        const b = this.local(this.resolve(op.b), tile);
        if (a.len !== b.len) fail("semantic", `${op.op} '${op.out}': operands have lengths ${a.len} and ${b.len}`);
        const out = fresh(a.len);
        s.vbin(op.op === "add" ? "vadd" : "vmul", tile, refOf(out), refOf(a), refOf(b), a.len);
        return out;
      }
      case "div_steps": {
        const x = this.local(this.resolve(op.x), tile);
        const out = fresh(x.len);
        s.vun("vdivsteps", tile, refOf(out), refOf(x), x.len);
        return out;
      }
      case "state_read": {
        const ref = this.stateRef(op.state);
        return { kind: "mem", buf: ref.buf, off: 0, len: ref.buf.len };
      }
      case "state_write": {
        const ref = this.stateRef(op.state);
        const x = this.local(this.resolve(op.x), ref.buf.tile);
        if (x.len !== ref.buf.len) fail("semantic", `state_write '${op.out}': '${op.x}' has length ${x.len}, state '${op.state}' has ${ref.buf.len}`);
        if (x.buf !== ref.buf || x.off !== 0) s.vun("vcopy", ref.buf.tile, ref, refOf(x), x.len);
        return null;
      }
      default:
        return fail("unsupported", `op '${op.out}' (${op.op}) is not a lowered op; run the lowering pass before emission`);
    }
  }

  private stateRef(name: string): Ref {
    return this.g.states.get(name) ?? fail("semantic", `unknown state '${name}'`);
  }

  /**
   * y = concat(xs) @ W (+ bias). Each tile holding pieces computes its partial sums into a
   * buffer spanning its columns: one MVM per piece, straight into place (`acc` when the
   * columns already hold a partial sum) or, when the piece's outputs are scattered or only
   * partly written, into scratch followed by vcopy/vadd per segment. Partial sums travel to
   * the home tile and are added there; bias (or zero, for columns without any weight) last.
   */
  private lowerMatmul(op: MatMulOp, home: number): Value {
    const s = this.s;
    const R = op.weight.rows;
    const C = op.weight.cols;
    const xs = op.xs.map((x) => this.resolve(x));
    const rowPart = new Int32Array(R);
    const rowOff = new Int32Array(R);
    let total = 0;
    xs.forEach((x, k) => {
      for (let i = 0; i < x.len && total + i < R; i++) {
        rowPart[total + i] = k;
        rowOff[total + i] = i;
      }
      total += x.len;
    });
    if (total !== R) fail("semantic", `matmul '${op.out}': inputs have total length ${total} but the weight has ${R} rows`);

    const placed = (this.g.pieces.get(valueKey(this.section, op.out)) ?? []).filter((p) => p.piece.inRows.length > 0 && p.piece.outCols.length > 0);
    const tiles = [...new Set(placed.map((p) => p.tile))].sort((a, b) => (a === home ? 1 : b === home ? -1 : a - b));
    if (!tiles.includes(home)) tiles.push(home);
    const yH: Ref = { buf: s.buffer(home, C), off: 0 };
    const writtenH = new Uint8Array(C);
    const partials: { from: number; src: Ref; cols: number[] }[] = [];

    for (const tile of tiles) {
      const mine = placed.filter((p) => p.tile === tile);
      const isHome = tile === home;
      // The home tile sums into y itself; another tile into a compact buffer of just the
      // columns it covers (ascending), which then travels to the home tile as one message.
      const cols = isHome ? null : [...new Set(mine.flatMap((p) => p.piece.outCols))].sort((a, b) => a - b);
      const index = cols ? new Map(cols.map((j, k) => [j, k])) : null;
      const pos = (j: number): number => (index ? index.get(j)! : j);
      const y: Ref = isHome ? yH : { buf: s.buffer(tile, cols!.length), off: 0 };
      const written = isHome ? writtenH : new Uint8Array(cols!.length);
      const gathered = new Map<string, Ref>();
      const operands = this.operandCopies(mine, xs, rowPart, rowOff, tile);
      for (const { xbar, piece } of mergeDiagonalRuns(mine)) {
        const { inRows, outCols } = piece;
        const src = this.pieceInput(inRows, operands, rowPart, rowOff, tile, gathered);
        // Segments of crossbar columns that map to consecutive outputs, all fresh or all written.
        const segs: [b0: number, b1: number][] = [];
        let b0 = 0;
        for (let b = 1; b <= outCols.length; b++) {
          if (b < outCols.length && outCols[b] === outCols[b - 1]! + 1 && written[pos(outCols[b]!)] === written[pos(outCols[b0]!)]) continue;
          segs.push([b0, b]);
          b0 = b;
        }
        const mvm = (dst: Ref, acc: boolean): void =>
          s.emit(tile, { op: "mvm", xbar, rowStart: piece.rowStart, rows: inRows.length, colStart: piece.colStart, cols: outCols.length, src: 0, dst: 0, acc }, { src, dst });
        if (segs.length === 1) mvm(at(y, pos(outCols[0]!)), written[pos(outCols[0]!)] === 1);
        else {
          // One MVM into scratch plus a vector op per segment costs far less than an MVM per
          // segment (each pays the full DAC + integration time).
          const tmp: Ref = { buf: s.buffer(tile, outCols.length), off: 0 };
          mvm(tmp, false);
          for (const [a, b] of segs) {
            const dst = at(y, pos(outCols[a]!));
            if (written[pos(outCols[a]!)] === 1) s.vbin("vadd", tile, dst, dst, at(tmp, a), b - a);
            else s.vun("vcopy", tile, dst, at(tmp, a), b - a);
          }
        }
        for (const j of outCols) written[pos(j)] = 1;
      }
      if (cols && cols.length > 0) partials.push({ from: tile, src: y, cols });
    }

    for (const p of partials) {
      const colRuns = consecutiveRuns(p.cols);
      const [, j0, n0] = colRuns[0]!;
      if (colRuns.length === 1 && writtenH.subarray(j0, j0 + n0).every((w) => w === 0)) {
        s.transfer(p.from, p.src, home, at(yH, j0), n0);
        writtenH.fill(1, j0, j0 + n0);
        continue;
      }
      const tmp: Ref = { buf: s.buffer(home, p.cols.length), off: 0 };
      s.transfer(p.from, p.src, home, tmp, p.cols.length);
      for (const [k, j, n] of colRuns) {
        for (const [c, len, w] of runs(writtenH.subarray(j, j + n))) {
          if (w) s.vbin("vadd", home, at(yH, j + c), at(yH, j + c), at(tmp, k + c), len);
          else s.vun("vcopy", home, at(yH, j + c), at(tmp, k + c), len);
        }
        writtenH.fill(1, j, j + n);
      }
    }

    const bias = op.bias ? s.constant(home, Float32Array.from(op.bias)) : null;
    for (const [c, len, w] of runs(writtenH)) {
      if (w && bias) s.vbin("vadd", home, at(yH, c), at(yH, c), at(bias, c), len);
      else if (!w) s.vun("vcopy", home, at(yH, c), bias ? at(bias, c) : s.zeroBlock(home, len), len);
    }
    return { kind: "mem", buf: yH.buf, off: 0, len: C };
  }

  /**
   * Per matmul operand, a copy on `tile` of the span of rows the tile's pieces read (one
   * load or transfer per operand and tile, however many crossbars the tile has).
   */
  private operandCopies(pieces: readonly PlacedPiece[], xs: Value[], rowPart: Int32Array, rowOff: Int32Array, tile: number): Map<number, OperandCopy> {
    const spans = new Map<number, [lo: number, hi: number]>();
    for (const { piece } of pieces) {
      for (const i of piece.inRows) {
        const k = rowPart[i]!;
        const [lo, hi] = spans.get(k) ?? [rowOff[i]!, rowOff[i]!];
        spans.set(k, [Math.min(lo, rowOff[i]!), Math.max(hi, rowOff[i]!)]);
      }
    }
    const out = new Map<number, OperandCopy>();
    for (const [k, [lo, hi]] of spans) out.set(k, { ref: refOf(this.local(sub(xs[k]!, lo, hi - lo + 1), tile)), lo });
    return out;
  }

  /**
   * Address of a piece's input rows on `tile`: in place when they are one contiguous run of
   * one operand; otherwise gathered with vcopy runs (once per tile and row list).
   */
  private pieceInput(inRows: number[], operands: Map<number, OperandCopy>, rowPart: Int32Array, rowOff: Int32Array, tile: number, gathered: Map<string, Ref>): Ref {
    const runList: [a0: number, n: number][] = [];
    let a0 = 0;
    for (let a = 1; a <= inRows.length; a++) {
      if (a < inRows.length && inRows[a] === inRows[a - 1]! + 1 && rowPart[inRows[a]!] === rowPart[inRows[a0]!]) continue;
      runList.push([a0, a - a0]);
      a0 = a;
    }
    const rowAddr = (i: number): Ref => {
      const c = operands.get(rowPart[i]!)!;
      return at(c.ref, rowOff[i]! - c.lo);
    };
    if (runList.length === 1) return rowAddr(inRows[0]!);
    const key = inRows.join(",");
    const cached = gathered.get(key);
    if (cached) return cached;
    const buf: Ref = { buf: this.s.buffer(tile, inRows.length), off: 0 };
    for (const [a, n] of runList) this.s.vun("vcopy", tile, at(buf, a), rowAddr(inRows[a]!), n);
    gathered.set(key, buf);
    return buf;
  }
}

/** A local copy of rows [lo, ...) of one matmul operand. */
interface OperandCopy {
  ref: Ref;
  lo: number;
}

/**
 * Pieces of one matmul that follow each other along a crossbar's diagonal (the next starts
 * at the row and column where the previous ends) merge into one piece: the cells between
 * them hold no weight, so one MVM over the union computes all of them at once.
 */
function mergeDiagonalRuns(pieces: readonly PlacedPiece[]): PlacedPiece[] {
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

/** Maximal runs of consecutive values in an ascending list: [index, first value, length]. */
function consecutiveRuns(sorted: readonly number[]): [number, number, number][] {
  const out: [number, number, number][] = [];
  let k0 = 0;
  for (let k = 1; k <= sorted.length; k++) {
    if (k < sorted.length && sorted[k] === sorted[k - 1]! + 1) continue;
    out.push([k0, sorted[k0]!, k - k0]);
    k0 = k;
  }
  return out;
}

/** Maximal runs of equal flags: [start, length, flag]. */
function runs(flags: Uint8Array): [number, number, boolean][] {
  const out: [number, number, boolean][] = [];
  let start = 0;
  for (let i = 1; i <= flags.length; i++) {
    if (i < flags.length && flags[i] === flags[start]) continue;
    if (flags.length > 0) out.push([start, i - start, flags[start] === 1]);
    start = i;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Crossbar images

/** Reads W[i][j] of a block matrix; rows index their blocks once. */
function weightReader(op: MatMulOp): (i: number, j: number) => number {
  const byRow: number[][] = Array.from({ length: op.weight.rows }, () => []);
  op.weight.blocks.forEach((b, k) => {
    for (let i = b.row; i < b.row + b.rows && i < op.weight.rows; i++) byRow[i]!.push(k);
  });
  return (i, j) => {
    for (const k of byRow[i]!) {
      const b = op.weight.blocks[k]!;
      if (j >= b.col && j < b.col + b.cols) return b.data[(i - b.row) * b.cols + (j - b.col)]!;
    }
    return 0;
  };
}

/**
 * Programs every planned crossbar. Quantized numerics: levels q = W / colScale (checked to
 * be integers); the rows of one piece share one DAC range (the largest inRange of its rows)
 * because the image folds the row range into the column scale; a column's ADC range is the
 * calibrated outRange when the piece holds all nonzero weights of that column, else the
 * worst case inRange * sum |W| over the piece's rows (partial sums never saturate).
 */
function buildImages(model: Model, plan: CrossbarPlan, target: Target, tileOf: Map<number, number>): CrossbarImage[] {
  const matmuls = new Map<string, MatMulOp>();
  for (const sec of IR_SECTIONS) for (const op of model.sections[sec]) if (op.op === "matmul") matmuls.set(valueKey(sec, op.out), op);
  const quantized = target.crossbar.numerics.kind === "quantized";
  const maxLevel = maxWeightLevel(target);
  const readers = new Map<MatMulOp, (i: number, j: number) => number>();
  const colNonzeros = new Map<MatMulOp, Int32Array>();
  const nonzerosPerColumn = (op: MatMulOp): Int32Array => {
    let n = colNonzeros.get(op);
    if (!n) {
      n = new Int32Array(op.weight.cols);
      for (const b of op.weight.blocks) for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) if (b.data[r * b.cols + c] !== 0) n[b.col + c]!++;
      colNonzeros.set(op, n);
    }
    return n;
  };

  const images: CrossbarImage[] = [];
  for (const xb of [...plan.crossbars].sort((a, b) => a.id - b.id)) {
    const rows = plan.rows;
    const cols = plan.cols;
    const levels = quantized ? new Int16Array(rows * cols) : null;
    const values = quantized ? null : new Float32Array(rows * cols);
    const inRange = new Float32Array(rows).fill(1);
    const colScale = new Float32Array(cols).fill(1);
    const outRange = new Float32Array(cols).fill(1);
    for (const piece of xb.pieces) {
      const op = matmuls.get(valueKey(piece.section, piece.op));
      if (!op) fail("semantic", `crossbar plan: piece on crossbar ${xb.id} refers to unknown matmul '${piece.op}' in section ${piece.section}`);
      const { inRows, outCols } = piece;
      if (piece.rowStart + inRows.length > rows || piece.colStart + outCols.length > cols)
        fail("semantic", `crossbar plan: a piece of '${op.out}' does not fit crossbar ${xb.id} (${rows}x${cols})`);
      if (inRows.some((i) => i < 0 || i >= op.weight.rows) || outCols.some((j) => j < 0 || j >= op.weight.cols))
        fail("semantic", `crossbar plan: a piece of '${op.out}' on crossbar ${xb.id} indexes outside the ${op.weight.rows}x${op.weight.cols} weight`);
      let W = readers.get(op);
      if (!W) readers.set(op, (W = weightReader(op)));
      if (!quantized) {
        inRows.forEach((i, a) => outCols.forEach((j, b) => (values![(piece.rowStart + a) * cols + piece.colStart + b] = W!(i, j))));
        continue;
      }
      const q = op.quant ?? fail("semantic", `matmul '${op.out}' has no quantization parameters, but target '${target.name}' has quantized crossbars; run the quantize pass`);
      if (q.colScale.length !== op.weight.cols || q.outRange.length !== op.weight.cols || q.inRange.length !== op.weight.rows)
        fail("semantic", `matmul '${op.out}': quantization vectors do not match the ${op.weight.rows}x${op.weight.cols} weight`);
      const limit = Math.min(q.maxLevel, maxLevel!);
      const pieceIn = Math.max(...inRows.map((i) => q.inRange[i]!));
      if (!(pieceIn > 0 && Number.isFinite(pieceIn))) fail("semantic", `matmul '${op.out}': input range ${pieceIn} is not a positive number`);
      inRows.forEach((_, a) => (inRange[piece.rowStart + a] = pieceIn));
      const nz = nonzerosPerColumn(op);
      outCols.forEach((j, b) => {
        const cs = q.colScale[j]!;
        let pieceNz = 0;
        let absSum = 0;
        inRows.forEach((i, a) => {
          const w = W!(i, j);
          if (w === 0) return;
          pieceNz++;
          absSum += Math.abs(w);
          const level = cs === 0 ? Number.NaN : w / cs;
          const lv = Math.round(level);
          if (!(Math.abs(level - lv) <= 1e-3)) fail("semantic", `matmul '${op.out}': weight W[${i}][${j}] = ${w} is not an integer multiple of its column scale ${cs}`);
          if (Math.abs(lv) > limit) fail("semantic", `matmul '${op.out}': weight level ${lv} at W[${i}][${j}] exceeds the allowed ±${limit}`);
          levels![(piece.rowStart + a) * cols + piece.colStart + b] = lv;
        });
        const col = piece.colStart + b;
        colScale[col] = cs * pieceIn;
        const full = q.outRange[j]! > 0 ? q.outRange[j]! : 1;
        outRange[col] = pieceNz === nz[j] || absSum === 0 ? full : pieceIn * absSum;
      });
    }
    images.push({
      id: xb.id,
      tile: tileOf.get(xb.id)!,
      rows,
      cols,
      weights: levels ? { kind: "levels", levels } : { kind: "float", values: values! },
      inRange,
      colScale,
      outRange,
    });
  }
  return images;
}

// ---------------------------------------------------------------------------------------
// Program assembly

function globalLayout(model: Model): { inputs: IoBuffer[]; stepOutputs: IoBuffer[]; finalOutputs: IoBuffer[]; globalWords: number } {
  const sizes = valueSizes(model);
  let addr = 0;
  const place = (name: string, size: number): IoBuffer => {
    const io = { name, size, addr };
    addr += size;
    return io;
  };
  const inputs = model.inputs.map((i) => place(i.name, i.size));
  const outSize = (o: Model["outputs"][number]): number =>
    (o.section === "final" ? (sizes.final.get(o.value) ?? sizes.step.get(o.value)) : sizes.step.get(o.value)) ??
    fail("semantic", `output '${o.name}' names value '${o.value}', which the ${o.section} section does not define`);
  const stepOutputs = model.outputs.filter((o) => o.section === "step").map((o) => place(o.name, outSize(o)));
  const finalOutputs = model.outputs.filter((o) => o.section === "final").map((o) => place(o.name, outSize(o)));
  if (addr > 0xffffffff) fail("resource", `the model's inputs and outputs need ${addr} words of global memory, more than 32-bit addresses reach`);
  return { inputs, stepOutputs, finalOutputs, globalWords: addr };
}

function targetRecord(target: Target): Program["target"] {
  const json = targetToJson(target);
  return { name: target.name, sha256: sha256Hex(json), json };
}

/** Compiles a lowered (float targets) or quantized model with its crossbar plan to a Program. */
export function emitProgram(model: Model, plan: CrossbarPlan, target: Target, opts: EmitOptions = {}): Program {
  if (model.level === "model") fail("semantic", `model '${model.name}' is not lowered; run the lowering pass before emission`);
  if (plan.rows !== target.crossbar.rows || plan.cols !== target.crossbar.cols)
    fail("semantic", `the crossbar plan is for ${plan.rows}x${plan.cols} crossbars but target '${target.name}' has ${target.crossbar.rows}x${target.crossbar.cols}`);
  for (const xb of plan.crossbars) if (!(Number.isInteger(xb.id) && xb.id >= 0 && xb.id <= MAX_LOCAL_ADDRESS)) fail("resource", `crossbar id ${xb.id} does not fit the ISA's 16-bit crossbar field`);

  const tileOf = assignCrossbarTiles(plan, model, target);
  const pieces = piecesByMatmul(plan, tileOf);
  const placement = placeOps(model, pieces);
  const layout = globalLayout(model);

  const s = new Streams();
  s.ensureTile(0);
  for (const t of tileOf.values()) s.ensureTile(t);
  const symbols: string[] = [];
  const symbolIndex = new Map<string, number>();
  const intern = (name: string): number => {
    let i = symbolIndex.get(name);
    if (i === undefined) {
      i = symbols.length;
      symbols.push(name);
      symbolIndex.set(name, i);
    }
    return i;
  };
  const states = new Map<string, Ref>();
  for (const st of model.state) states.set(st.name, { buf: s.buffer(placement.stateTile.get(st.name) ?? 0, st.size, true), off: 0 });

  const shared: Shared = {
    model,
    s,
    placement,
    pieces,
    states,
    inputs: new Map(layout.inputs.map((io) => [io.name, io])),
    outputs: new Map([...layout.stepOutputs, ...layout.finalOutputs].map((io) => [io.name, io])),
    stepEnv: new Map(),
    intern,
  };
  // `init` stays empty: constants and zeroed state come with the sequence reset.
  s.section = "step";
  const step = new SectionLowering(shared, "step");
  step.run();
  shared.stepEnv = step.env;
  s.section = "final";
  new SectionLowering(shared, "final").run();

  const memoryLimit = Math.min(target.tiles.memoryWords, MAX_LOCAL_ADDRESS + 1);
  const maxTiles = target.tiles.count === "unlimited" ? Number.POSITIVE_INFINITY : target.tiles.count;
  if (s.tileCount() > maxTiles) fail("resource", `the program needs ${s.tileCount()} tiles but target '${target.name}' has ${maxTiles}`);
  const tiles: TileProgram[] = [];
  for (let t = 0; t < s.tileCount(); t++) {
    const used = allocateTile(s.buffers[t]!);
    if (used > memoryLimit)
      fail("resource", `tile ${t} needs ${used} words of local memory but target '${target.name}' has ${memoryLimit}; use a target with more memory or more tiles`);
    const constants: TileProgram["constants"] = [];
    for (const b of s.buffers[t]!) {
      const data = s.constData.get(b) ?? (s.zeroBuffers().includes(b) ? new Float32Array(b.len) : null);
      if (data && data.length > 0) constants.push({ addr: b.addr, data });
    }
    const sections = {} as Record<SectionName, Section>;
    for (const name of SECTION_NAMES) {
      const code: Instr[] = [];
      const syms: number[] = [];
      for (const p of s.code[t]![name]) {
        const ins = { ...p.ins } as Instr;
        for (const [field, ref] of p.patches) (ins as unknown as Record<string, number>)[field] = ref.buf.addr + ref.off;
        const err = fieldRangeError(ins);
        if (err) fail("resource", `tile ${t} ${name} section (${symbols[p.symbol]}): ${err}`);
        code.push(ins);
        syms.push(p.symbol);
      }
      sections[name] = { code, symbols: syms };
    }
    tiles.push({ memoryWords: used, constants, sections });
  }

  return {
    formatVersion: FORMAT_VERSION,
    compilerVersion: opts.compilerVersion ?? "unknown",
    modelName: model.name,
    target: targetRecord(target),
    io: layout,
    crossbars: buildImages(model, plan, target, tileOf),
    tiles,
    symbols,
  };
}
