// Per-tile instruction streams over symbolic buffers.
//
// Lowering names tile memory by buffers, which get addresses only after every instruction
// exists (allocate.ts needs each buffer's first and last use). So an instruction is recorded
// with its address fields as buffer offsets (a Ref per field) and patched later
// (emit-tiles.ts). Every instruction also records the debug symbol it is attributed to.

import { assert } from "../common/errors.js";
import type { Buffer } from "./allocate.js";
import { lengthChunks } from "./emit-runs.js";
import type { Instr, VecBinaryOp, VecUnaryOp } from "./isa.js";
import type { SectionName } from "./program.js";

/** A word address: offset `off` inside buffer `buf`. */
export interface Ref {
  buf: Buffer;
  off: number;
}

/** `r` moved `o` words further into its buffer. */
export const at = (r: Ref, o: number): Ref => ({ buf: r.buf, off: r.off + o });

/** An instruction whose address fields are patched once buffers have addresses. */
export interface PendingInstr {
  ins: Instr;
  patches: [field: string, ref: Ref][];
  /** Index into the symbol table. */
  symbol: number;
  /** Step section: the step delay (docs/ISA.md "Step delays", software-pipeline.ts); absent: 0. */
  delay?: number;
}

/** The debug symbol table: names of source ops / layers, each stored once. */
export class SymbolTable {
  readonly names: string[] = [];
  private readonly index = new Map<string, number>();

  intern(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
    }
    return i;
  }
}

export class InstrStreams {
  /** Per tile: every buffer created on it, in creation order. */
  readonly buffers: Buffer[][] = [];
  /** Per tile and section: the instructions in program order. */
  readonly code: Record<SectionName, PendingInstr[]>[] = [];
  /** Initial contents of constant buffers. */
  readonly constantData = new Map<Buffer, Float32Array>();
  readonly symbols = new SymbolTable();
  /** The section new instructions go to. */
  section: SectionName = "init";
  /** Per tile: instructions emitted so far over all sections, i.e. the next position. */
  private readonly nextPosition: number[] = [];
  private readonly zeroBlocks: (Buffer | undefined)[] = [];
  private nextBufferId = 0;
  private symbol = 0;

  tileCount(): number {
    return this.code.length;
  }

  ensureTile(tile: number): void {
    while (this.code.length <= tile) {
      this.code.push({ init: [], step: [], final: [] });
      this.buffers.push([]);
      this.nextPosition.push(0);
    }
  }

  /** Attributes the instructions emitted from now on to `name` in the symbol table. */
  attributeTo(name: string): void {
    this.symbol = this.symbols.intern(name);
  }

  buffer(tile: number, len: number, pinned = false): Buffer {
    this.ensureTile(tile);
    const b: Buffer = { id: this.nextBufferId++, tile, len, pinned, first: Number.POSITIVE_INFINITY, last: -1, addr: 0 };
    this.buffers[tile]!.push(b);
    return b;
  }

  /** The start of a new (unpinned) buffer of `len` words on `tile`. */
  scratch(tile: number, len: number): Ref {
    return { buf: this.buffer(tile, len), off: 0 };
  }

  /** A pinned buffer on `tile` that holds `data` from the start of every sequence. */
  constant(tile: number, data: Float32Array): Ref {
    const b = this.buffer(tile, data.length, true);
    this.constantData.set(b, data);
    return { buf: b, off: 0 };
  }

  /** A block of at least `len` zero words on `tile` (one per tile, never written). */
  zeroBlock(tile: number, len: number): Ref {
    this.ensureTile(tile);
    const z = (this.zeroBlocks[tile] ??= this.buffer(tile, 0, true));
    z.len = Math.max(z.len, len);
    return { buf: z, off: 0 };
  }

  isZeroBlock(b: Buffer): boolean {
    return this.zeroBlocks[b.tile] === b;
  }

  /**
   * Extends `buf`'s life to the last instruction emitted on its tile so far. The allocator
   * reuses words by instruction position; an input of one of several MVMs issued back to
   * back is read until that MVM ends, so its words must not go to a later MVM's output
   * (that would serialize the crossbars on a write-after-read hazard).
   */
  keepAlive(buf: Buffer): void {
    buf.last = Math.max(buf.last, this.nextPosition[buf.tile]! - 1);
  }

  /** Appends `ins` to `tile`'s stream; `refs` name the address fields to patch. */
  emit(tile: number, ins: Instr, refs: Record<string, Ref>): void {
    this.ensureTile(tile);
    const position = this.nextPosition[tile]!++;
    const patches: [string, Ref][] = [];
    for (const [field, ref] of Object.entries(refs)) {
      assert(ref.buf.tile === tile, `${ins.op} on tile ${tile} uses a buffer of tile ${ref.buf.tile}`);
      ref.buf.first = Math.min(ref.buf.first, position);
      ref.buf.last = Math.max(ref.buf.last, position);
      patches.push([field, ref]);
    }
    this.code[tile]![this.section].push({ ins, patches, symbol: this.symbol });
  }

  /**
   * vcopy instructions of `len` words from `src` to `dst`, attributed to `symbol`, not yet in
   * any stream (the caller places them; renumber() then recomputes buffer lives).
   */
  copyInstrs(tile: number, dst: Ref, src: Ref, len: number, symbol: number): PendingInstr[] {
    return lengthChunks(len).map(([o, n]) => ({
      ins: { op: "vcopy", dst: 0, a: 0, len: n },
      patches: [
        ["dst", at(dst, o)],
        ["a", at(src, o)],
      ],
      symbol,
    }));
  }

  /**
   * Recomputes every buffer's first and last use from the streams as they are now (after a
   * pass reordered them): positions run over the sections in run order, as in emit().
   * Buffers an MVM of the step section reads live to the end of that section (what
   * keepAlive did for the emitted order): an MVM reads its input for its whole duration, so a
   * later instruction writing those words would wait for it (a write-after-read stall).
   */
  renumber(): void {
    this.code.forEach((sections, tile) => {
      for (const b of this.buffers[tile]!) {
        b.first = Number.POSITIVE_INFINITY;
        b.last = -1;
      }
      let position = 0;
      for (const name of ["init", "step", "final"] as const)
        for (const p of sections[name]) {
          for (const [, ref] of p.patches) {
            ref.buf.first = Math.min(ref.buf.first, position);
            ref.buf.last = Math.max(ref.buf.last, position);
          }
          position++;
        }
      const stepEnd = sections.init.length + sections.step.length - 1;
      for (const p of sections.step) if (p.ins.op === "mvm") for (const [field, ref] of p.patches) if (field === "src") ref.buf.last = Math.max(ref.buf.last, stepEnd);
      this.nextPosition[tile] = position;
    });
  }

  binary(op: VecBinaryOp, tile: number, dst: Ref, a: Ref, b: Ref, len: number): void {
    for (const [o, n] of lengthChunks(len)) this.emit(tile, { op, dst: 0, a: 0, b: 0, len: n }, { dst: at(dst, o), a: at(a, o), b: at(b, o) });
  }

  unary(op: VecUnaryOp | "vdivsteps", tile: number, dst: Ref, a: Ref, len: number): void {
    for (const [o, n] of lengthChunks(len)) this.emit(tile, { op, dst: 0, a: 0, len: n }, { dst: at(dst, o), a: at(a, o) });
  }

  copy(tile: number, dst: Ref, src: Ref, len: number): void {
    this.unary("vcopy", tile, dst, src, len);
  }

  load(tile: number, dst: Ref, global: number, len: number): void {
    for (const [o, n] of lengthChunks(len)) this.emit(tile, { op: "load", dst: 0, global: global + o, len: n }, { dst: at(dst, o) });
  }

  store(tile: number, global: number, src: Ref, len: number): void {
    for (const [o, n] of lengthChunks(len)) this.emit(tile, { op: "store", src: 0, global: global + o, len: n }, { src: at(src, o) });
  }
}
