// Where IR values live while a section is lowered, and how a tile gets hold of one.
//
// A value lives in the memory of the tile that computed it. A tile that needs another
// tile's value receives a copy (send/recv), once per section and tile for the same words.
// Model inputs live in global memory and are loaded by each tile that reads them.

import { fail } from "../common/errors.js";
import type { Buffer } from "./allocate.js";
import type { Transfers } from "./emit-transfer.js";
import type { IoBuffer } from "./program.js";
import type { IrSection } from "./schedule.js";
import type { InstrStreams, Ref } from "./streams.js";

/** A value (or a slice of one) in the local memory of `buf.tile`. */
export type MemValue = { kind: "mem"; buf: Buffer; off: number; len: number };
/** A model input (or a slice of one): in global memory, loadable by any tile. */
export type InputValue = { kind: "input"; io: IoBuffer; off: number; len: number };
/** One piece of a distributed value: words [off, off + mem.len) of the whole value. */
export interface DistPart {
  off: number;
  mem: MemValue;
}
/**
 * A value whose words live on several tiles (a recurrence matmul's result, each tile
 * holding the columns it computed; docs/SCHEDULE.md): words [off, off + len) of the
 * concatenation of `parts` (sorted by offset, covering it without gaps).
 */
export type DistValue = { kind: "dist"; parts: DistPart[]; off: number; len: number };
export type Value = MemValue | InputValue | DistValue;

/** The parts of `v` inside its window, each as (offset within the window, memory slice). */
export function windowParts(v: DistValue): { at: number; mem: MemValue }[] {
  const out: { at: number; mem: MemValue }[] = [];
  for (const p of v.parts) {
    const lo = Math.max(p.off, v.off);
    const hi = Math.min(p.off + p.mem.len, v.off + v.len);
    if (lo < hi) out.push({ at: lo - v.off, mem: { ...p.mem, off: p.mem.off + lo - p.off, len: hi - lo } });
  }
  return out;
}

export const refOf = (v: MemValue): Ref => ({ buf: v.buf, off: v.off });

/** Words [off, off + len) of `v`. */
export const sliceOf = (v: Value, off: number, len: number): Value => ({ ...v, off: v.off + off, len });

/** All of `buf` as a value. */
export const wholeBuffer = (buf: Buffer): MemValue => ({ kind: "mem", buf, off: 0, len: buf.len });

/** A copy received by a tile: words [from, from + copy.len) of some source buffer. */
interface ReceivedCopy {
  from: number;
  copy: MemValue;
}

export class SectionValues {
  /** Values the section's ops defined so far, by name. */
  readonly defined = new Map<string, Value>();
  /** Per tile and input: the loaded copy of the whole input. */
  private readonly loadedInputs = new Map<string, MemValue>();
  /** Per tile and distributed window: its gathered copy. */
  private readonly gathered = new Map<string, MemValue>();
  /** Per tile and source buffer: the copies received so far. */
  private readonly receivedCopies = new Map<string, ReceivedCopy[]>();

  /**
   * `stepValues`: for the final section, the values the step section defined (their last
   * step's contents are still in memory).
   */
  constructor(
    readonly streams: InstrStreams,
    readonly transfers: Transfers,
    private readonly inputs: ReadonlyMap<string, IoBuffer>,
    private readonly section: IrSection,
    private readonly stepValues: ReadonlyMap<string, Value> | null,
  ) {}

  /** A fresh buffer of `len` words on `tile`, as a value. */
  fresh(tile: number, len: number): MemValue {
    return wholeBuffer(this.streams.buffer(tile, len));
  }

  resolve(name: string): Value {
    const own = this.defined.get(name);
    if (own) return own;
    const v = this.stepValues?.get(name);
    if (v) {
      // A step value read after the last step must survive the whole step section.
      if (v.kind === "mem") v.buf.pinned = true;
      if (v.kind === "dist") for (const p of v.parts) p.mem.buf.pinned = true;
      return v;
    }
    const io = this.inputs.get(name);
    if (io) return { kind: "input", io, off: 0, len: io.size };
    return fail("semantic", `${this.section} section: value '${name}' is used but never defined`);
  }

  /** `v` in the memory of `tile` (loaded or received once per section and tile). */
  local(v: Value, tile: number): MemValue {
    if (v.kind === "mem" && v.buf.tile === tile) return v;
    if (v.kind === "dist") {
      const parts = windowParts(v);
      if (parts.length === 1) return this.local(parts[0]!.mem, tile);
      // Gathered once per section, tile and window.
      const key = `${tile}|dist:${v.parts.map((p) => `${p.mem.buf.id}+${p.mem.off}`).join(",")}@${v.off}:${v.len}`;
      let whole = this.gathered.get(key);
      if (!whole) {
        whole = this.fresh(tile, v.len);
        for (const p of parts) this.into(p.mem, tile, { buf: whole.buf, off: p.at });
        this.gathered.set(key, whole);
      }
      return whole;
    }
    if (v.kind === "input") {
      const key = `${tile}|input:${v.io.name}`;
      let whole = this.loadedInputs.get(key);
      if (!whole) {
        whole = this.fresh(tile, v.io.size);
        this.streams.load(tile, refOf(whole), v.io.addr, v.io.size);
        this.loadedInputs.set(key, whole);
      }
      return { ...whole, off: v.off, len: v.len };
    }
    // Reuse any copy on this tile that covers the requested words.
    const key = `${tile}|${v.buf.id}`;
    const have = this.receivedCopies.get(key) ?? [];
    const cover = have.find((c) => c.from <= v.off && v.off + v.len <= c.from + c.copy.len);
    if (cover) return { ...cover.copy, off: cover.copy.off + v.off - cover.from, len: v.len };
    const copy = this.fresh(tile, v.len);
    this.transfers.send(v.buf.tile, refOf(v), tile, refOf(copy), v.len);
    this.receivedCopies.set(key, [...have, { from: v.off, copy }]);
    return copy;
  }

  /** The value named `name`, in the memory of `tile`. */
  operand(name: string, tile: number): MemValue {
    return this.local(this.resolve(name), tile);
  }

  /** Writes `v` to `dst` on `tile`: a local copy, a load, or a transfer straight into place. */
  into(v: Value, tile: number, dst: Ref): void {
    if (v.kind === "input") this.streams.load(tile, dst, v.io.addr + v.off, v.len);
    else if (v.kind === "dist") for (const p of windowParts(v)) this.into(p.mem, tile, { buf: dst.buf, off: dst.off + p.at });
    else if (v.buf.tile === tile) this.streams.copy(tile, dst, refOf(v), v.len);
    else this.transfers.send(v.buf.tile, refOf(v), tile, dst, v.len);
  }
}
