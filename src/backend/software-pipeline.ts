// Software pipelining of the tiles' step streams with step delays (docs/ISA.md "Step delays").
//
// Why: a tile issues in order, so the vector work that consumes a step's MVM results (bias,
// GLU, LayerNorm, sends) sits between this step's MVMs and the next step's: every step pays
// the MVM latency plus that tail. With step delays the tail of step t runs in round t + 1
// and the next step's MVMs may be issued before it, so the crossbars of step t + 1 work
// while the vector unit finishes step t.
//
// What is legal. Per tile, the emitted step stream is the reference order. Each instruction
// gets a delay and the round body a new order. Two instructions that conflict (one writes
// what the other reads or writes, in local memory or in global memory) must keep
// the order their instances had: for Y before X in the stream, X's delay is Y's or one more,
// and in the body X follows Y when the delays are equal and precedes it otherwise. Then
// every pair of conflicting instances runs in the original order (X(s) after Y(s), before
// Y(s + 1)), so every value is the one the plain program computes, bit for bit. A send and
// its recv get one delay (the verifier's rule), input loads delay 0, the stores of one step
// output one delay. Messages pair by sender, receiver and tag within a round, so their order
// on a tile matters only for deadlock (see pipelineSteps). Instructions that do not conflict
// may go in any order: the body is
// list-scheduled for in-order issue (ready MVMs first, then the longest remaining chain).
//
// Which delays. On a tile whose MVMs write a buffer of their own (a dense stage: encoder,
// output linear), every instruction that reads an MVM result wants one more delay than the
// MVM; every send wants one more than the instructions that made its data (the receiver
// then finds it at the start of its round, not after the sender's chain of that round);
// everything else only what the rules force. Delays are the least solution of these
// difference constraints (longest paths); where a bound of the rules breaks (a value read
// two rounds after it was made, e.g. a residual skip next to a delayed block), the wish of
// one tile is dropped and the rest solved again; none left: no delays. A buffer written by
// the MVMs and read one round later is copied once per step first (double buffering),
// otherwise step t+1's MVM, which overwrites it, could issue only after step t's tail has
// read it. Buffers used at two delays hold values across the round boundary and are pinned.

import { accessOf, type Range } from "../interp/access.js";
import type { Buffer } from "./allocate.js";
import type { Instr } from "./isa.js";
import type { IoBuffer } from "./program.js";
import { at, type InstrStreams, type PendingInstr, type Ref } from "./streams.js";

/** Tiles with more step instructions are left alone (the pass is quadratic in a tile's stream). */
const MAX_TILE_INSTRUCTIONS = 3000;

interface Node {
  p: PendingInstr;
  /** The emitted instruction this one stands for (itself, or the original of a redirected copy-reader). */
  origin: PendingInstr;
  reads: Range[];
  write: Range | null;
  global: Range | null;
  /** A send or recv whose order among the tile's messages is kept (cyclic message graphs only). */
  message: boolean;
}

const overlaps = (a: Range, b: Range): boolean => a.addr < b.addr + b.len && b.addr < a.addr + a.len;

function conflict(a: Node, b: Node): boolean {
  if (a.message && b.message) return true;
  // Global memory: the same words, one of them a store (the port's order is only timing).
  if (a.global && b.global && (a.p.ins.op === "store" || b.p.ins.op === "store") && overlaps(a.global, b.global)) return true;
  if (a.write) {
    if (b.write && overlaps(a.write, b.write)) return true;
    for (const r of b.reads) if (overlaps(a.write, r)) return true;
  }
  if (b.write) for (const r of a.reads) if (overlaps(b.write, r)) return true;
  return false;
}

/** Footprints over a per-tile address space where every buffer has its own range (exact dataflow, no allocation reuse). */
function nodesOf(code: PendingInstr[], base: Map<Buffer, number>, orderMessages = false): Node[] {
  return code.map((p) => {
    const ins = { ...p.ins } as Instr;
    for (const [field, ref] of p.patches) (ins as unknown as Record<string, number>)[field] = base.get(ref.buf)! + ref.off;
    const a = accessOf(ins);
    return { p, origin: p, reads: a.reads, write: a.write, global: a.global, message: orderMessages && (ins.op === "send" || ins.op === "recv") };
  });
}

export interface PipelineResult {
  /** Instructions that run later than round t for step t. */
  delayed: number;
  /** The largest delay (0: the pass changed nothing). */
  maxDelay: number;
}

/** All conflicting pairs [i, j], i < j, of one tile's stream. */
function conflictPairs(nodes: Node[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) if (conflict(nodes[i]!, nodes[j]!)) out.push([i, j]);
  return out;
}

/**
 * Assigns step delays and reorders the step streams of `streams` in place (file comment);
 * `inputs` and `stepOutputs` are the program's host buffers, `occupancy` the target's cycles
 * per instruction. Returns what it did; when no wish can be met, nothing changes.
 */
export function pipelineSteps(streams: InstrStreams, inputs: readonly IoBuffer[], stepOutputs: readonly IoBuffer[], occupancy: (ins: Instr) => number): PipelineResult {
  const none = { delayed: 0, maxDelay: 0 };
  const tiles = streams.tileCount();
  if (Array.from({ length: tiles }, (_, t) => streams.code[t]!.step.length).some((n) => n > MAX_TILE_INSTRUCTIONS)) return none;
  const bases = streams.buffers.map((bufs) => {
    const m = new Map<Buffer, number>();
    let o = 0;
    for (const b of bufs) {
      m.set(b, o);
      o += Math.max(1, b.len);
    }
    return m;
  });
  // Messages pair by sender, receiver and tag within a round; their order on a tile matters
  // only for deadlock, impossible when the tiles' messages form an acyclic graph. Otherwise
  // they keep the rotated order (older steps first, then stream order), which is deadlock
  // free when the plain program is: per tile, a round then runs its messages in step order.
  const orderMessages = !messagesAcyclic(Array.from({ length: tiles }, (_, t) => streams.code[t]!.step.map((p) => p.ins)));
  const nodes = Array.from({ length: tiles }, (_, t) => nodesOf(streams.code[t]!.step, bases[t]!, orderMessages));
  const program = new StepGraph(nodes, inputs, stepOutputs);
  // Wishes: per tile with a dense stage, the readers of its MVM results one round later; and
  // every send one round after its data is made. The last stages' wishes go first when the
  // rules cannot all hold, then the sends'.
  const dense = program.results.map((r, t) => (r.size > 0 ? t : -1)).filter((t) => t >= 0);
  let delay: number[][] | null = null;
  for (const deferSends of [true, false])
    for (let k = dense.length; k >= (deferSends ? 0 : 1) && delay === null; k--) delay = program.solve(new Set(dense.slice(0, k)), deferSends);
  if (delay === null) return none;

  const created: Buffer[] = [];
  const bodies: { nodes: Node[]; delay: number[] }[] = [];
  for (let t = 0; t < tiles; t++) {
    const d = delay[t]!;
    if (d.every((x) => x === d[0])) {
      bodies.push({ nodes: nodes[t]!, delay: d });
      continue;
    }
    const lines = delayLines(streams, t, nodes[t]!, d, bases[t]!, created);
    bodies.push(doubleBuffer(streams, t, lines.nodes, lines.delay, bases[t]!, created));
  }
  if (!program.legal(bodies)) {
    for (const b of created) b.pinned = false; // unused: the allocator skips it
    return none;
  }
  let delayed = 0;
  let maxDelay = 0;
  bodies.forEach((body, t) => {
    const order = schedule(body.nodes, body.delay, occupancy);
    streams.code[t]!.step = order.map((i) => ({ ...body.nodes[i]!.p, delay: body.delay[i]! }));
    delayed += body.delay.filter((x) => x > 0).length;
    maxDelay = Math.max(maxDelay, ...body.delay);
    pinCrossRound(body.nodes, body.delay);
  });
  if (maxDelay === 0) return none;
  streams.renumber();
  return { delayed, maxDelay };
}

/** Whether no tile's step messages reach, through other tiles, back to itself. */
function messagesAcyclic(code: Instr[][]): boolean {
  const state = new Uint8Array(code.length);
  const visit = (t: number): boolean => {
    if (state[t] === 2) return true;
    if (state[t] === 1) return false;
    state[t] = 1;
    for (const ins of code[t]!) if (ins.op === "send" && !visit(ins.peer)) return false;
    state[t] = 2;
    return true;
  };
  return code.every((_, t) => visit(t));
}

/** Buffers of this stream that MVMs write and other instructions read later: the stage's own results (pinned ones excluded: state arenas). */
function denseResults(nodes: Node[]): Set<Buffer> {
  const out = new Set<Buffer>();
  const written = new Set<Buffer>();
  for (const x of nodes) {
    if (x.p.ins.op === "mvm") {
      for (const [f, ref] of x.p.patches) if (f === "dst" && !ref.buf.pinned) written.add(ref.buf);
    } else for (const [, ref] of x.p.patches) if (written.has(ref.buf)) out.add(ref.buf);
  }
  return out;
}

/** The step section as one constraint system over all tiles' instructions (file comment). */
class StepGraph {
  private readonly offset: number[] = [];
  private readonly total: number;
  private readonly pairs: [number, number][][];
  /** Global node pairs that must get one delay (messages, stores of one output). */
  private readonly equal: [number, number][] = [];
  private readonly inputLoads: number[] = [];
  /** Per tile, the buffers its MVMs write for other instructions (denseResults). */
  readonly results: Set<Buffer>[];

  constructor(
    private readonly nodes: Node[][],
    inputs: readonly IoBuffer[],
    stepOutputs: readonly IoBuffer[],
  ) {
    let o = 0;
    for (const list of nodes) {
      this.offset.push(o);
      o += list.length;
    }
    this.total = o;
    this.pairs = nodes.map(conflictPairs);
    this.results = nodes.map(denseResults);
    const sendOf = new Map<string, number>();
    const storesOf = new Map<IoBuffer, number[]>();
    nodes.forEach((list, t) =>
      list.forEach((x, i) => {
        const ins = x.p.ins;
        const g = this.offset[t]! + i;
        if (ins.op === "send") sendOf.set(`${t}>${ins.peer}#${ins.tag}`, g);
        const gl = x.global;
        if (gl && ins.op === "load" && inputs.some((b) => gl.addr < b.addr + b.size && b.addr < gl.addr + gl.len)) this.inputLoads.push(g);
        if (gl && ins.op === "store")
          for (const b of stepOutputs) if (gl.addr < b.addr + b.size && b.addr < gl.addr + gl.len) storesOf.set(b, [...(storesOf.get(b) ?? []), g]);
      }),
    );
    nodes.forEach((list, t) =>
      list.forEach((x, i) => {
        const ins = x.p.ins;
        if (ins.op === "recv") this.equal.push([sendOf.get(`${ins.peer}>${t}#${ins.tag}`)!, this.offset[t]! + i]);
      }),
    );
    for (const gs of storesOf.values()) for (let k = 1; k < gs.length; k++) this.equal.push([gs[0]!, gs[k]!]);
  }

  /** The least delays meeting the rules with the wishes of `wishing` tiles, or null. */
  solve(wishing: ReadonlySet<number>, deferSends: boolean): number[][] | null {
    // Edges u -> v with weight w: delay(v) >= delay(u) + w.
    const adj: [number, number][][] = Array.from({ length: this.total }, () => []);
    this.nodes.forEach((list, t) => {
      const o = this.offset[t]!;
      for (const [i, j] of this.pairs[t]!) {
        adj[o + i]!.push([o + j, 0]);
        // At most one round apart, except a value only read later (delayLines carries it).
        if (!rawOnly(list[i]!, list[j]!)) adj[o + j]!.push([o + i, -1]);
      }
      if (deferSends)
        list.forEach((x, j) => {
          if (x.p.ins.op !== "send") return;
          for (let i = 0; i < j; i++) {
            const w = list[i]!.write;
            if (w && x.reads.some((r) => overlaps(r, w))) adj[o + i]!.push([o + j, 1]);
          }
        });
      if (!wishing.has(t)) return;
      const results = this.results[t]!;
      list.forEach((y, i) => {
        if (y.p.ins.op !== "mvm" || !y.write) return;
        for (let j = i + 1; j < list.length; j++) {
          const x = list[j]!;
          if (x.p.ins.op !== "mvm" && x.p.patches.some(([, r]) => results.has(r.buf)) && x.reads.some((r) => overlaps(r, y.write!))) adj[o + i]!.push([o + j, 1]);
        }
      });
    });
    for (const [a, b] of this.equal) {
      adj[a]!.push([b, 0]);
      adj[b]!.push([a, 0]);
    }
    // Longest paths from 0 by relaxation; a positive cycle would raise a delay past any bound.
    const d = new Int32Array(this.total);
    const queue = Array.from({ length: this.total }, (_, i) => i);
    const queued = new Uint8Array(this.total).fill(1);
    let work = 0;
    while (queue.length > 0) {
      const u = queue.shift()!;
      queued[u] = 0;
      for (const [v, w] of adj[u]!)
        if (d[u]! + w > d[v]!) {
          d[v] = d[u]! + w;
          if (d[v]! > MAX_DELAY) return null;
          if (!queued[v]) {
            queued[v] = 1;
            queue.push(v);
          }
        }
      if (++work > 64 * this.total + 1024) return null;
    }
    const delay = this.nodes.map((list, t) => Array.from(d.subarray(this.offset[t]!, this.offset[t]! + list.length)));
    // A value read two or more rounds after it was written is carried by copies (delayLines);
    // any other conflict that far apart cannot be met.
    for (const [t, list] of this.nodes.entries())
      for (const [i, j] of this.pairs[t]!) {
        if (delay[t]![j]! - delay[t]![i]! <= 1) continue;
        if (!rawOnly(list[i]!, list[j]!)) return null;
      }
    return this.outsideRulesHold(this.nodes.map((list, t) => ({ nodes: list, delay: delay[t]! }))) ? delay : null;
  }

  /** Whether per-tile streams (possibly with inserted copies) and delays meet every rule of the file comment. */
  legal(bodies: { nodes: Node[]; delay: number[] }[]): boolean {
    for (const { nodes, delay } of bodies) {
      for (let i = 0; i < nodes.length; i++)
        for (let j = i + 1; j < nodes.length; j++) {
          const gap = delay[j]! - delay[i]!;
          if ((gap < 0 || gap > 1) && conflict(nodes[i]!, nodes[j]!)) return false;
        }
    }
    return this.outsideRulesHold(bodies);
  }

  /** Messages, input loads and stores (matched by instruction: copies add none of them). */
  private outsideRulesHold(bodies: { nodes: Node[]; delay: number[] }[]): boolean {
    const delayOf = new Map<PendingInstr, number>();
    bodies.forEach(({ nodes, delay }) => nodes.forEach((x, i) => delayOf.set(x.origin, delay[i]!)));
    const flat = this.nodes.flat();
    const of = (g: number): number => delayOf.get(flat[g]!.origin) ?? -1;
    return this.equal.every(([a, b]) => of(a) === of(b)) && this.inputLoads.every((g) => of(g) === 0);
  }
}

/** Whether y (earlier) and x conflict only because x reads what y wrote. */
function rawOnly(y: Node, x: Node): boolean {
  if (y.write === null || y.global !== null || x.global !== null) return false;
  if (x.write !== null && (overlaps(x.write, y.write) || y.reads.some((r) => overlaps(r, x.write!)))) return false;
  return x.reads.some((r) => overlaps(r, y.write!));
}

/** Delays fit the ISA's byte; far below that, a pipeline this deep is not a useful schedule. */
const MAX_DELAY = 32;

/**
 * Values read two or more rounds after they were written (a residual skip around delayed
 * layers): at the reader's place in the stream, a chain of copies each one round later than
 * the previous one, the first one round after the latest writer of the words, the last one
 * round before the reader, which reads it (every hop then spans one round: the rules hold).
 */
function delayLines(streams: InstrStreams, tile: number, nodes: Node[], delay: number[], base: Map<Buffer, number>, created: Buffer[]): { nodes: Node[]; delay: number[] } {
  const outNodes: Node[] = [];
  const outDelay: number[] = [];
  nodes.forEach((x, j) => {
    let patches = x.p.patches;
    for (const r of x.reads) {
      // The latest writer of these words before the reader.
      let from = -1;
      for (let i = 0; i < j; i++) {
        const w = nodes[i]!.write;
        if (w && overlaps(w, r)) from = Math.max(from, delay[i]!);
      }
      if (from < 0 || delay[j]! - from <= 1) continue;
      const ref = patches.find(([f]) => f === r.field)![1];
      let src: Ref = ref;
      for (let d = from + 1; d < delay[j]!; d++) {
        const buf = streams.buffer(tile, r.len, true);
        created.push(buf);
        base.set(buf, nextBase(base));
        const dst: Ref = { buf, off: 0 };
        for (const p of streams.copyInstrs(tile, dst, src, r.len, x.p.symbol)) {
          outNodes.push(nodesOf([p], base)[0]!);
          outDelay.push(d);
        }
        src = dst;
      }
      patches = patches.map(([f, q]): [string, Ref] => [f, f === r.field ? src : q]);
    }
    outNodes.push(patches === x.p.patches ? x : { ...nodesOf([{ ...x.p, patches }], base)[0]!, origin: x.origin, message: x.message });
    outDelay.push(delay[j]!);
  });
  return { nodes: outNodes, delay: outDelay };
}

/**
 * Copies each unpinned buffer that MVMs write and instructions one delay later read into a
 * pinned buffer, just before the first such reader in the stream, at the readers' delay,
 * and points their accesses (reads, and in-place writes) at the copy.
 */
function doubleBuffer(streams: InstrStreams, tile: number, nodes: Node[], delay: number[], base: Map<Buffer, number>, created: Buffer[]): { nodes: Node[]; delay: number[] } {
  // Per MVM-written unpinned buffer: its writers' delay.
  const writerDelay = new Map<Buffer, number>();
  nodes.forEach((x, i) => {
    if (x.p.ins.op === "mvm") for (const [f, ref] of x.p.patches) if (f === "dst" && !ref.buf.pinned) writerDelay.set(ref.buf, Math.max(writerDelay.get(ref.buf) ?? 0, delay[i]!));
  });
  const later = (i: number, b: Buffer): boolean => nodes[i]!.p.ins.op !== "mvm" && delay[i]! > writerDelay.get(b)!;
  const copies = new Map<Buffer, { copy: Buffer; at: number }>();
  nodes.forEach((x, i) => {
    for (const [, ref] of x.p.patches)
      if (writerDelay.has(ref.buf) && !copies.has(ref.buf) && later(i, ref.buf)) {
        const copy = streams.buffer(tile, ref.buf.len, true);
        created.push(copy);
        base.set(copy, nextBase(base));
        copies.set(ref.buf, { copy, at: i });
      }
  });
  if (copies.size === 0) return { nodes, delay };
  const outNodes: Node[] = [];
  const outDelay: number[] = [];
  nodes.forEach((x, i) => {
    for (const [src, c] of copies)
      if (c.at === i)
        for (const p of streams.copyInstrs(tile, { buf: c.copy, off: 0 }, { buf: src, off: 0 }, src.len, x.p.symbol)) {
          outNodes.push(nodesOf([p], base)[0]!);
          outDelay.push(writerDelay.get(src)! + 1);
        }
    if (x.p.patches.some(([, r]) => copies.has(r.buf) && later(i, r.buf))) {
      const patches = x.p.patches.map(([f, r]): [string, Ref] => [f, copies.has(r.buf) && later(i, r.buf) ? at({ buf: copies.get(r.buf)!.copy, off: 0 }, r.off) : r]);
      x = { ...nodesOf([{ ...x.p, patches }], base)[0]!, origin: x.origin, message: x.message };
    }
    outNodes.push(x);
    outDelay.push(delay[i]!);
  });
  return { nodes: outNodes, delay: outDelay };
}

function nextBase(base: Map<Buffer, number>): number {
  let top = 0;
  for (const [b, o] of base) top = Math.max(top, o + Math.max(1, b.len));
  return top;
}

/**
 * The round body: a topological order of the legality constraints (file comment), chosen
 * for in-order issue by list scheduling on the tile's own timing: the instruction that can
 * start first; among equals an MVM (its crossbar works while the vector unit goes on), then
 * what an MVM waits for, then the instruction heading the longest chain of occupancies,
 * then stream order.
 */
function schedule(nodes: Node[], delay: number[], occupancy: (ins: Instr) => number): number[] {
  const n = nodes.length;
  const succ: number[][] = nodes.map(() => []);
  const indeg = new Int32Array(n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      if (!conflict(nodes[i]!, nodes[j]!)) continue;
      // Equal delays: stream order; the later instruction one round later: it goes first.
      const [a, b] = delay[j] === delay[i] ? [i, j] : [j, i];
      succ[a]!.push(b);
      indeg[b]!++;
    }
  // Heights: longest occupancy chain to the end of the body (a topological order is
  // (delay descending, stream position)).
  const topo = Array.from({ length: n }, (_, i) => i).sort((a, b) => delay[b]! - delay[a]! || a - b);
  const height = new Float64Array(n);
  for (let k = n - 1; k >= 0; k--) {
    const i = topo[k]!;
    let h = 0;
    for (const j of succ[i]!) h = Math.max(h, height[j]!);
    height[i] = h + occupancy(nodes[i]!.p.ins);
  }
  const rank = new Int32Array(n);
  topo.forEach((i, k) => (rank[i] = k));
  // Whether an MVM follows through the constraints (reverse topological order).
  const feedsMvm = new Uint8Array(n);
  for (let k = n - 1; k >= 0; k--) {
    const i = topo[k]!;
    for (const j of succ[i]!) if (feedsMvm[j] || nodes[j]!.p.ins.op === "mvm") feedsMvm[i] = 1;
  }
  const key = (i: number): number => (nodes[i]!.p.ins.op === "mvm" ? 2 : feedsMvm[i]!);
  // The tile's in-order issue within one round, values from earlier rounds taken as ready:
  // each instruction's earliest start after the one before it (docs/TIMING.md).
  const preds: number[][] = nodes.map(() => []);
  succ.forEach((list, i) => list.forEach((j) => preds[j]!.push(i)));
  const unitOf = (ins: Instr): string | null => (ins.op === "mvm" ? `x${ins.xbar}` : ins.op === "recv" ? null : ins.op === "send" ? "net" : ins.op === "load" || ins.op === "store" ? "mem" : "vec");
  const unitFree = new Map<string, number>();
  const end = new Float64Array(n);
  let issue = 0;
  const earliest = (i: number): number => {
    let t = issue;
    const u = unitOf(nodes[i]!.p.ins);
    if (u !== null) t = Math.max(t, unitFree.get(u) ?? 0);
    for (const p of preds[i]!) t = Math.max(t, end[p]!);
    return t;
  };
  const ready: number[] = [];
  for (let i = 0; i < n; i++) if (indeg[i] === 0) ready.push(i);
  const out: number[] = [];
  while (ready.length > 0) {
    let best = 0;
    let bestStart = earliest(ready[0]!);
    for (let k = 1; k < ready.length; k++) {
      const a = ready[k]!;
      const b = ready[best]!;
      const sa = earliest(a);
      const ka = key(a);
      const kb = key(b);
      if (sa !== bestStart ? sa < bestStart : ka !== kb ? ka > kb : height[a] !== height[b] ? height[a]! > height[b]! : rank[a]! < rank[b]!) {
        best = k;
        bestStart = sa;
      }
    }
    const i = ready.splice(best, 1)[0]!;
    out.push(i);
    const ins = nodes[i]!.p.ins;
    const u = unitOf(ins);
    end[i] = bestStart + occupancy(ins);
    if (u !== null) unitFree.set(u, end[i]!);
    issue = ins.op === "recv" ? end[i]! : bestStart + 1;
    for (const j of succ[i]!) if (--indeg[j] === 0) ready.push(j);
  }
  return out;
}

/** Buffers used at two delays carry a value from one round into the next: not reusable within a round. */
function pinCrossRound(nodes: Node[], delay: number[]): void {
  const seen = new Map<Buffer, number>();
  nodes.forEach((x, i) => {
    for (const [, ref] of x.p.patches) {
      const d = seen.get(ref.buf);
      if (d === undefined) seen.set(ref.buf, delay[i]!);
      else if (d !== delay[i]) ref.buf.pinned = true;
    }
  });
}
