// Execution plans of one tile's section, compiled once per program (src/interp/machine.ts).
//
// The machine runs a section in two passes over the same tile order: a timing pass (only
// when the schedule is not known yet, see Machine.runSection) and a functional pass. Timing
// never depends on data and the functional effects never depend on timing, so the passes
// are independent; each gets the representation that makes it cheap:
//
// - TimingPlan: every instruction's unit slot, occupancy and scoreboard ranges in flat typed
//   arrays, so the per-instruction scoreboard update reads no objects.
// - FnOp[]: the functional ops, one object shape for all instructions (a monomorphic loop),
//   with each run of consecutive vcopy instructions fused into one op that walks a table of
//   (dst, src, len) segments. vcopy (gathers of a word or a few) is the most frequent
//   instruction of compiled S4D programs; fused, a run of hundreds costs one dispatch.

import type { Instr } from "../backend/isa.js";
import type { ExtPlan } from "../target/plugin-runtime.js";
import type { Range } from "./access.js";
import type { CrossbarModel } from "./crossbar.js";
import type { Memory } from "./memory.js";

/** Functional op kinds. */
export const OP_COPIES = 0;
export const OP_MVM = 1;
export const OP_LOAD = 2;
export const OP_STORE = 3;
export const OP_SEND = 4;
export const OP_RECV = 5;
export const OP_EXT = 6;
export const OP_VECTOR = 7;

/** One functional op: a single instruction, or (OP_COPIES) a run of consecutive vcopy instructions. */
export class FnOp {
  constructor(
    readonly kind: number,
    /** Program counter of the (first) instruction, for messages. */
    readonly pc: number,
    readonly ins: Instr,
    /** send / recv: the message slot, else -1. */
    readonly msg: number,
    /** mvm: the crossbar model and its Program.crossbars index; symbol index of the instruction. */
    readonly xbar: CrossbarModel | null,
    readonly xbarIndex: number,
    readonly symbol: number,
    /** OP_COPIES: segments [segStart, segEnd) of the plan's segment table (3 numbers each). */
    readonly segStart: number,
    readonly segEnd: number,
    readonly ext: ExtPlan | null,
  ) {}
}

/** What the planner knows about one instruction (the data-independent part of Machine's per-instruction plan). */
export interface PlannedInstr {
  ins: Instr;
  pc: number;
  symbol: number;
  slot: number;
  cycles: number;
  reads: Range[];
  write: Range | null;
  /** mvm: the crossbar model and its index in Program.crossbars. */
  xbar: CrossbarModel | null;
  xbarIndex: number;
  /** send / recv: index of the message in the section's mailbox, else -1. */
  msg: number;
  /** ext: the plugin's declarations for it (src/target/plugin-runtime.ts), else null. */
  ext: ExtPlan | null;
  /** A load of a host-written input (waits for the host's write of the step's input). */
  inputLoad: boolean;
}

export interface FunctionalPlan {
  ops: FnOp[];
  /** (dst, src, len) triples of the fused vcopy runs. */
  segs: Int32Array;
}

export function functionalPlan(code: readonly PlannedInstr[]): FunctionalPlan {
  const ops: FnOp[] = [];
  const segs: number[] = [];
  for (let i = 0; i < code.length; ) {
    const p = code[i]!;
    const ins = p.ins;
    if (ins.op === "vcopy") {
      const start = segs.length;
      let j = i;
      for (; j < code.length; j++) {
        const q = code[j]!.ins;
        if (q.op !== "vcopy") break;
        segs.push(q.dst, q.a, q.len);
      }
      ops.push(new FnOp(OP_COPIES, p.pc, ins, -1, null, -1, p.symbol, start, segs.length, null));
      i = j;
      continue;
    }
    const kind =
      ins.op === "mvm" ? OP_MVM : ins.op === "load" ? OP_LOAD : ins.op === "store" ? OP_STORE : ins.op === "send" ? OP_SEND : ins.op === "recv" ? OP_RECV : ins.op === "ext" ? OP_EXT : OP_VECTOR;
    ops.push(new FnOp(kind, p.pc, ins, p.msg, p.xbar, p.xbarIndex, p.symbol, 0, 0, p.ext));
    i++;
  }
  return { ops, segs: Int32Array.from(segs) };
}

/** Below this length an element loop beats a typed-array view plus a bulk copy. */
export const BULK_WORDS = 32;

/**
 * The fused vcopy segments [from, to) of `segs`, in program order: each is
 * mem[dst, dst+len) = old mem[src, src+len) (copy-in/copy-out for overlapping ranges: an
 * ascending element loop is that when the destination does not start inside the source,
 * copyWithin otherwise). Short copies are element loops, long ones copyWithin, as before.
 */
export function runCopies(mem: Memory, segs: Int32Array, from: number, to: number): void {
  for (let k = from; k < to; k += 3) {
    const d = segs[k]!;
    const s = segs[k + 1]!;
    const n = segs[k + 2]!;
    if (n === 1) mem[d] = mem[s]!;
    else if (n < BULK_WORDS && (d <= s || d >= s + n)) for (let i = 0; i < n; i++) mem[d + i] = mem[s + i]!;
    else mem.copyWithin(d, s, s + n);
  }
}

/** Copies between two memories of the same precision (every memory of a run has the target's). */
export function copyWords(from: Memory, fromAddr: number, to: Memory, toAddr: number, len: number): void {
  if (len >= BULK_WORDS) to.set(from.subarray(fromAddr, fromAddr + len), toAddr);
  else for (let i = 0; i < len; i++) to[toAddr + i] = from[fromAddr + i]!;
}

/** Flags of TimingPlan.flags. */
export const T_INPUT_LOAD = 1;
export const T_RECV = 2;
export const T_SEND = 4;

/** The data-independent timing inputs of every instruction of one tile's section, flat. */
export interface TimingPlan {
  /** Unit slot, or -1 for none. */
  slot: Int32Array;
  cycles: Float64Array;
  flags: Uint8Array;
  msg: Int32Array;
  /** Reads of instruction i: entries readStart[i] .. readStart[i+1] of readAddr / readLen. */
  readStart: Int32Array;
  readAddr: Int32Array;
  readLen: Int32Array;
  /** Written range (writeLen 0: none). */
  writeAddr: Int32Array;
  writeLen: Int32Array;
}

export function timingPlan(code: readonly PlannedInstr[]): TimingPlan {
  const n = code.length;
  const t: TimingPlan = {
    slot: new Int32Array(n),
    cycles: new Float64Array(n),
    flags: new Uint8Array(n),
    msg: new Int32Array(n),
    readStart: new Int32Array(n + 1),
    readAddr: new Int32Array(code.reduce((a, p) => a + p.reads.length, 0)),
    readLen: new Int32Array(code.reduce((a, p) => a + p.reads.length, 0)),
    writeAddr: new Int32Array(n),
    writeLen: new Int32Array(n),
  };
  let k = 0;
  code.forEach((p, i) => {
    t.slot[i] = p.slot;
    t.cycles[i] = p.cycles;
    t.flags[i] = (p.inputLoad ? T_INPUT_LOAD : 0) | (p.ins.op === "recv" ? T_RECV : 0) | (p.ins.op === "send" ? T_SEND : 0);
    t.msg[i] = p.msg;
    t.readStart[i] = k;
    for (const r of p.reads) {
      t.readAddr[k] = r.addr;
      t.readLen[k++] = r.len;
    }
    t.writeAddr[i] = p.write?.addr ?? 0;
    t.writeLen[i] = p.write?.len ?? 0;
  });
  t.readStart[n] = k;
  return t;
}
