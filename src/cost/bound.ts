// Lower bounds on the cycles of one step of a compiled program, from the target's
// latencies alone (docs/SCHEDULE.md defines them):
//
//   criticalPath  the longest chain of true data dependencies through the step section:
//                 every instruction starts when the words it reads are written (RAW only,
//                 no unit contention, no in-order issue, no WAR/WAW from memory reuse) and
//                 takes its occupancy; a recv completes at max(start + 1, send end +
//                 interconnect latency), exactly as in docs/TIMING.md.
//   resource      the busiest unit: the largest sum of occupancies of the instructions one
//                 unit (a crossbar, or a tile's vector unit, load/store port or network
//                 port) executes in a step, or a tile's issue slot (one instruction per cycle).
//   recurrence    the largest cycle ratio of the loop-carried dependencies: a word the step
//                 reads before writing carries the value its last writer in the previous
//                 step produced, so the writer W of step t+1 ends at least L(V -> W)
//                 cycles after the writer V of step t, L being the longest RAW chain inside
//                 one step from the words V writes to W; around a cycle V1 -> ... -> Vm -> V1
//                 the interval per step is at least the sum of the L over m.
//   issueLoop     a tile issues in order (docs/TIMING.md): the first instruction of its step
//                 t+1 issues no earlier than the slot after the last one of step t (after its
//                 end, for a recv). From the start of a tile's first instruction, the start
//                 of its last one is at least the longest chain of true constraints: RAW,
//                 messages, the tile's issue order (one instruction per cycle, a recv blocks
//                 until its data is in) and its units' order (a unit runs its instructions
//                 in program order, one at a time). That chain plus the last slot bounds the
//                 interval: a tile whose step is one long dependency chain (a dense layer's
//                 matmul -> activation -> norm -> sends) cannot repeat faster than the chain.
//
// With a barrier between steps a step can take no fewer than max(criticalPath, resource)
// cycles (`lowerBound`). When steps overlap (the interpreter's default, docs/TIMING.md) the
// steady-state interval can take no fewer than max(recurrence, resource, issueLoop)
// (`intervalBound`): it holds for every run of the program's instructions on this machine
// (in-order issue per tile, non-pipelined units), whatever the memory hazards add.

import type { Instr } from "../backend/isa.js";
import type { Program, SectionName } from "../backend/program.js";
import { accessOf } from "../interp/access.js";
import { occupancy } from "../interp/timing.js";
import type { Target } from "../target/types.js";

export interface StepBounds {
  criticalPath: number;
  resource: number;
  /** Which unit gives `resource`, e.g. "tile 3 network". */
  resourceUnit: string;
  recurrence: number;
  /** Longest in-order issue loop of one tile (file comment). */
  issueLoop: number;
  /** Which tile gives `issueLoop`, e.g. "tile 11". */
  issueLoopTile: string;
  /** Barrier between steps: max(criticalPath, resource). */
  lowerBound: number;
  /** Overlapped steps, steady state: max(recurrence, resource, issueLoop). */
  intervalBound: number;
}

/** One instruction of the step section in an order that respects RAW dependencies and messages. */
interface Node {
  tile: number;
  pc: number;
  ins: Instr;
  cycles: number;
}

/**
 * The step's instructions in dataflow order (every recv after its send, program order per
 * tile), each with its occupancy.
 */
function dataflowOrder(p: Program, target: Target, section: SectionName): Node[] {
  const pc = p.tiles.map(() => 0);
  const sent = new Set<string>();
  const order: Node[] = [];
  for (;;) {
    let progressed = false;
    let done = true;
    p.tiles.forEach((tile, ti) => {
      const code = tile.sections[section].code;
      while (pc[ti]! < code.length) {
        const ins = code[pc[ti]!]!;
        if (ins.op === "recv" && !sent.has(`${ins.peer}>${ti}#${ins.tag}`)) break;
        if (ins.op === "send") sent.add(`${ti}>${ins.peer}#${ins.tag}`);
        order.push({ tile: ti, pc: pc[ti]!, ins, cycles: occupancy(target, ins).cycles });
        pc[ti]!++;
        progressed = true;
      }
      if (pc[ti]! < code.length) done = false;
    });
    if (done) return order;
    if (!progressed) throw new Error("internal error: the step section deadlocks (the verifier should have rejected it)");
  }
}

/**
 * Earliest completion of every instruction under RAW dependencies only, given when each
 * word is ready at the start (`ready`, updated in place; -Infinity: a word no chain of interest reaches;
 * an instruction none of whose operands are reached is unreached itself, and its write
 * makes the words unreached); `base` is the earliest start of any instruction (0 for the
 * critical path, -Infinity for chains from given words). Returns the end of each node (same order as `order`).
 */
function longestPaths(target: Target, order: readonly Node[], ready: Float64Array[], base: number): Float64Array {
  const arrival = new Map<string, number>();
  const ends = new Float64Array(order.length);
  order.forEach((n, k) => {
    const acc = accessOf(n.ins);
    let start = base;
    if (n.ins.op === "recv") start = (arrival.get(`${n.ins.peer}>${n.tile}#${n.ins.tag}`) ?? -Infinity) - 1;
    for (const r of acc.reads) for (let w = r.addr; w < r.addr + r.len; w++) start = Math.max(start, ready[n.tile]![w]!);
    const end = start + n.cycles;
    if (n.ins.op === "send") arrival.set(`${n.tile}>${n.ins.peer}#${n.ins.tag}`, end + target.interconnect.latencyCycles);
    if (acc.write) ready[n.tile]!.fill(end, acc.write.addr, acc.write.addr + acc.write.len);
    ends[k] = end;
  });
  return ends;
}

/**
 * Maximum cycle mean of a graph given as a dense weight matrix (-Infinity: no edge), by
 * Karp's theorem: max over v of min over k of (D_n(v) - D_k(v)) / (n - k), D_k(v) the
 * heaviest walk of exactly k edges ending at v. 0 without cycles.
 */
function maxCycleMean(n: number, weight: Float64Array): number {
  if (n === 0) return 0;
  const d = Array.from({ length: n + 1 }, () => new Float64Array(n).fill(-Infinity));
  d[0]!.fill(0);
  for (let k = 1; k <= n; k++)
    for (let u = 0; u < n; u++) {
      const du = d[k - 1]![u]!;
      if (du === -Infinity) continue;
      for (let v = 0; v < n; v++) {
        const w = weight[u * n + v]!;
        if (w !== -Infinity && du + w > d[k]![v]!) d[k]![v] = du + w;
      }
    }
  let best = 0;
  for (let v = 0; v < n; v++) {
    const dn = d[n]![v]!;
    if (dn === -Infinity) continue;
    let worst = Infinity;
    for (let k = 0; k < n; k++) if (d[k]![v]! !== -Infinity) worst = Math.min(worst, (dn - d[k]![v]!) / (n - k));
    best = Math.max(best, worst);
  }
  return best;
}

/** The recurrence bound (file comment). */
function recurrenceBound(p: Program, target: Target, order: readonly Node[]): number {
  // Words read before they are written in the step carry a value from the previous step.
  const written = p.tiles.map((t) => new Uint8Array(t.memoryWords));
  const carried = p.tiles.map((t) => new Uint8Array(t.memoryWords));
  const lastWriter = p.tiles.map((t) => new Int32Array(t.memoryWords).fill(-1));
  order.forEach((n, k) => {
    const acc = accessOf(n.ins);
    for (const r of acc.reads) for (let w = r.addr; w < r.addr + r.len; w++) if (!written[n.tile]![w]) carried[n.tile]![w] = 1;
    if (acc.write) {
      written[n.tile]!.fill(1, acc.write.addr, acc.write.addr + acc.write.len);
      lastWriter[n.tile]!.fill(k, acc.write.addr, acc.write.addr + acc.write.len);
    }
  });
  // Nodes of the loop graph: the last writers of carried words.
  const nodeOf = new Map<number, number>();
  p.tiles.forEach((t, ti) => {
    for (let w = 0; w < t.memoryWords; w++) if (carried[ti]![w] && lastWriter[ti]![w]! >= 0 && !nodeOf.has(lastWriter[ti]![w]!)) nodeOf.set(lastWriter[ti]![w]!, nodeOf.size);
  });
  const nodes = [...nodeOf.keys()];
  const m = nodes.length;
  const weight = new Float64Array(m * m).fill(-Infinity);
  const ready = p.tiles.map((t) => new Float64Array(t.memoryWords));
  nodes.forEach((src, i) => {
    const tile = order[src]!.tile;
    for (const r of ready) r.fill(-Infinity);
    const w0 = accessOf(order[src]!.ins).write!;
    for (let w = w0.addr; w < w0.addr + w0.len; w++) if (carried[tile]![w] && lastWriter[tile]![w] === src) ready[tile]![w] = 0;
    const ends = longestPaths(target, order, ready, -Infinity);
    nodes.forEach((dst, j) => {
      if (ends[dst]! > -Infinity) weight[i * m + j] = ends[dst]!;
    });
  });
  return maxCycleMean(m, weight);
}

/**
 * The issue loop of tile `ti` (file comment): from its first instruction's start (0), the
 * earliest slot at which its next step's first instruction can issue.
 */
function issueLoopOf(target: Target, order: readonly Node[], tiles: number, words: readonly number[], ti: number): number {
  const first = order.findIndex((n) => n.tile === ti);
  if (first < 0) return 0;
  const ready = words.map((w) => new Float64Array(w).fill(-Infinity));
  const arrival = new Map<string, number>();
  /** Per tile: the earliest slot of its next instruction (-Infinity: no reached instruction yet). */
  const issue = new Float64Array(tiles).fill(-Infinity);
  const unitFree = new Map<string, number>();
  for (let k = first; k < order.length; k++) {
    const n = order[k]!;
    const occ = occupancy(target, n.ins);
    const unit = occ.unit === null ? null : `${n.tile}|${occ.unit === "crossbar" && n.ins.op === "mvm" ? `x${n.ins.xbar}` : occ.unit}`;
    let start = k === first ? 0 : issue[n.tile]!;
    if (unit !== null) start = Math.max(start, unitFree.get(unit) ?? -Infinity);
    const acc = accessOf(n.ins);
    for (const r of acc.reads) for (let w = r.addr; w < r.addr + r.len; w++) start = Math.max(start, ready[n.tile]![w]!);
    let end = start + n.cycles;
    if (n.ins.op === "recv") {
      // Completes at max(start + 1, arrival); reached through its message alone, it starts a cycle before.
      const at = arrival.get(`${n.ins.peer}>${n.tile}#${n.ins.tag}`) ?? -Infinity;
      end = Math.max(start + 1, at);
      start = Math.max(start, at - 1);
    }
    if (n.ins.op === "send") arrival.set(`${n.tile}>${n.ins.peer}#${n.ins.tag}`, end + target.interconnect.latencyCycles);
    if (acc.write) ready[n.tile]!.fill(end, acc.write.addr, acc.write.addr + acc.write.len);
    if (start === -Infinity) continue;
    if (unit !== null) unitFree.set(unit, end);
    issue[n.tile] = n.ins.op === "recv" ? end : start + 1;
  }
  return issue[ti]!;
}

export function stepBounds(p: Program, target: Target, section: SectionName = "step"): StepBounds {
  const order = dataflowOrder(p, target, section);
  // Critical path: every word not written before in the section is ready at the start.
  const ends = longestPaths(target, order, p.tiles.map((t) => new Float64Array(t.memoryWords)), 0);
  let criticalPath = 0;
  for (const x of ends) criticalPath = Math.max(criticalPath, x);

  let resource = 0;
  let resourceUnit = "none";
  p.tiles.forEach((tile, ti) => {
    const code = tile.sections[section].code;
    const busy = new Map<string, number>([["issue", code.length]]);
    for (const ins of code) {
      const occ = occupancy(target, ins);
      if (occ.unit === null) continue;
      const key = occ.unit === "crossbar" && ins.op === "mvm" ? `crossbar ${ins.xbar}` : occ.unit;
      busy.set(key, (busy.get(key) ?? 0) + occ.cycles);
    }
    for (const [unit, cycles] of busy)
      if (cycles > resource) {
        resource = cycles;
        resourceUnit = `tile ${ti} ${unit}`;
      }
  });

  const recurrence = recurrenceBound(p, target, order);
  let issueLoop = 0;
  let issueLoopTile = "none";
  const words = p.tiles.map((t) => t.memoryWords);
  p.tiles.forEach((_, ti) => {
    const d = issueLoopOf(target, order, p.tiles.length, words, ti);
    if (d > issueLoop) [issueLoop, issueLoopTile] = [d, `tile ${ti}`];
  });
  return {
    criticalPath,
    resource,
    resourceUnit,
    recurrence,
    issueLoop,
    issueLoopTile,
    lowerBound: Math.max(criticalPath, resource),
    intervalBound: Math.max(recurrence, resource, issueLoop),
  };
}
