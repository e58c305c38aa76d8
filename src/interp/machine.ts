// The simulated chip: a discrete-event simulation over tiles that executes a section
// functionally and times it with the scoreboard model of docs/TIMING.md in one pass.
//
// Each tile runs its stream in program order until it finishes or reaches a recv whose
// message has not been sent yet; then the next tile runs. Because timing never depends on
// data and a tile's schedule depends on other tiles only through message arrival times
// (known when the message is posted), this order yields the exact cycle-level schedule.
// A full round without progress while some tile is blocked is a deadlock. The functional
// effect of each instruction is applied in program order at issue; the scoreboard
// guarantees that the timed machine would compute the same values.

import type { Instr, VecUnaryOp } from "../backend/isa.js";
import type { Program, SectionName } from "../backend/program.js";
import { UserError } from "../common/errors.js";
import type { NoiseSetup } from "../noise/setup.js";
import type { ExtPlan, ExtRuntime } from "../target/plugin-runtime.js";
import type { Target } from "../target/types.js";
import { accessOf, type Range } from "./access.js";
import { makeCrossbar, type CrossbarModel } from "./crossbar.js";
import { addCounts, countsOf, zeroCounts, type EventCounts } from "./energy.js";
import { MachineMemory, precisionOf, type Memory, type Precision } from "./memory.js";
import { occupancy, UNIT_KINDS, type UnitKind } from "./timing.js";
import { VectorUnit, type VectorInstr } from "./vector.js";

/** Unit slots of a tile's unit table; crossbars follow from CROSSBAR_SLOT on. */
const VECTOR_SLOT = 0;
const LOAD_STORE_SLOT = 1;
const NETWORK_SLOT = 2;
const CROSSBAR_SLOT = 3;
const NO_UNIT = -1;

/** An instruction with everything data-independent precomputed once per program. */
interface Planned {
  ins: Instr;
  /** ins.op, read from this one object shape: instructions have many shapes, so ins.op is a megamorphic load. */
  op: Instr["op"];
  pc: number;
  symbol: number;
  unitKind: UnitKind | null;
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

/**
 * Everything data-independent about one tile's stream for one section. Event counts and
 * busy cycles do not depend on data or timing, so they are summed once here.
 */
interface SectionPlan {
  code: Planned[];
  counts: EventCounts;
  busy: Record<UnitKind, number>;
}

/**
 * The messages of one section. The verifier guarantees that every (sender, receiver, tag)
 * is sent once and received once per section, so each message gets a fixed slot and a
 * preallocated buffer: no allocation per step.
 */
class Mailbox {
  readonly data: Memory[] = [];
  arrival = new Float64Array(0);
  posted = new Uint8Array(0);

  add(len: number, precision: Precision): number {
    this.data.push(precision.alloc(len));
    return this.data.length - 1;
  }
  seal(): void {
    this.arrival = new Float64Array(this.data.length);
    this.posted = new Uint8Array(this.data.length);
  }
}

interface TileState {
  pc: number;
  /** Earliest cycle the next instruction may issue. */
  issue: number;
  /** Latest completion of any instruction so far. */
  lastEnd: number;
  /** Start of the instruction scheduled last (for traces). */
  lastStart: number;
  /** The words the step section reads or writes, merged: the part of the scoreboard a step's timing depends on. */
  stepWords: Span[];
  unitFree: Float64Array;
  /** Scoreboard per local word: when its last write completes / its last read completes. */
  writeReady: Float64Array;
  readEnd: Float64Array;
}

/** One executed instruction, for traces. Times in absolute cycles. */
export interface ScheduledInstr {
  tile: number;
  section: SectionName;
  pc: number;
  op: Instr["op"];
  symbol: string;
  unitKind: UnitKind | null;
  /** Crossbar id for crossbar units. */
  xbar: number | null;
  start: number;
  end: number;
}

export interface SectionRun {
  section: SectionName;
  start: number;
  cycles: number;
  instructions: number;
  counts: EventCounts;
  busy: Record<UnitKind, number>;
  saturations: number;
}

/**
 * Timing of one step index of a sequence, relative to the end of that step: what the next
 * step's schedule depends on (tile issue slots, units, the scoreboard over the words the
 * step section touches, and when the host may write the next input), each clamped from
 * below at the tile's next issue slot (the earliest one for the host): earlier values
 * cannot delay anything any more. `state` is kept for the first MAX_STATES step indices only.
 */
interface StepRecord {
  cycles: number;
  state: Float64Array | null;
}

/** Whether a load reads a host-written input buffer (the host rewrites those between steps). */
function readsInput(p: Program, ins: Instr): boolean {
  if (ins.op !== "load") return false;
  return p.io.inputs.some((b) => ins.global < b.addr + b.size && b.addr < ins.global + ins.len);
}

interface Span {
  addr: number;
  len: number;
}

function mergeRanges(rs: Span[]): Span[] {
  const sorted = rs.filter((r) => r.len > 0).sort((a, b) => a.addr - b.addr);
  const out: Span[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.addr <= last.addr + last.len) last.len = Math.max(last.len, r.addr + r.len - last.addr);
    else out.push({ addr: r.addr, len: r.len });
  }
  return out;
}

export function zeroBusy(): Record<UnitKind, number> {
  return { crossbar: 0, vector: 0, loadStore: 0, network: 0 };
}

function maxOver(a: Float64Array, r: Range, init: number): number {
  let m = init;
  for (let i = r.addr, end = r.addr + r.len; i < end; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

export class Machine {
  readonly target: Target;
  readonly memory: MachineMemory;
  /** ADC saturations and conversions, per Program.crossbars index and per symbol index. */
  readonly saturationsPerCrossbar: Float64Array;
  readonly conversionsPerCrossbar: Float64Array;
  readonly saturationsPerSymbol: Float64Array;
  readonly conversionsPerSymbol: Float64Array;
  /** Absolute cycle at which the chip is idle (end of the last section run). */
  clock = 0;

  private readonly precision: Precision;
  private readonly vector: VectorUnit;
  private readonly plans: Record<SectionName, SectionPlan>[];
  private readonly states: TileState[];
  private readonly mailboxes: Record<SectionName, Mailbox> = { init: new Mailbox(), step: new Mailbox(), final: new Mailbox() };
  /** Cycles of each section once timed (see runSection); for overlapped steps see stepRecords. */
  private readonly sectionCycles: Record<SectionName, number | null> = { init: null, step: null, final: null };
  /** Overlapped steps: record k is step k of a sequence (every sequence repeats them, it starts after init's barrier). */
  private readonly stepRecords: StepRecord[] = [];
  /**
   * Steady state: from step `periodicFrom` on (-1: not reached yet), step k repeats record
   * periodicFrom + (k - periodicFrom) mod period shifted in time.
   */
  private periodicFrom = -1;
  private period = 1;
  /** Steps run since the last init/final (the index of the next step within its sequence). */
  private stepInSequence = 0;
  /** Whether the tile states hold the timing of the latest step (false after steps taken from stepRecords). */
  private stateCurrent = true;
  /** Host input writes: the latest completion of a load of the input in the previous / the current step. */
  private inputFree = 0;
  private inputLoadsEnd = 0;

  constructor(
    private readonly program: Program,
    target: Target,
    private readonly file: string,
    /** Recompute the schedule on every section run instead of reusing the first one. */
    private readonly retime = false,
    /** Device noise to simulate (src/noise/setup.ts); null: the exact noise-free crossbars. */
    noise: NoiseSetup | null = null,
    /** The program's target plugin, which runs its ext instructions (the verifier matched it). */
    private readonly ext: ExtRuntime | null = null,
    /**
     * Let consecutive steps overlap (docs/TIMING.md); false: every step starts when the
     * previous one has ended on all tiles (a barrier, as between all other sections).
     */
    readonly overlapSteps = true,
  ) {
    this.target = target;
    this.precision = precisionOf(target);
    this.vector = new VectorUnit(this.precision.round);
    this.memory = new MachineMemory(program, this.precision);
    this.saturationsPerCrossbar = new Float64Array(program.crossbars.length);
    this.conversionsPerCrossbar = new Float64Array(program.crossbars.length);
    this.saturationsPerSymbol = new Float64Array(program.symbols.length);
    this.conversionsPerSymbol = new Float64Array(program.symbols.length);

    const models = new Map<number, { model: CrossbarModel; index: number; slot: number }>();
    const perTile = new Array<number>(program.tiles.length).fill(0);
    program.crossbars.forEach((img, index) => {
      const slot = CROSSBAR_SLOT + perTile[img.tile]!++;
      models.set(img.id, { model: makeCrossbar(img, target.crossbar.numerics, noise), index, slot });
    });
    // Message slots: sends first (they define the slots), then recvs look theirs up.
    const slots = new Map<string, number>();
    for (const name of ["init", "step", "final"] as const)
      program.tiles.forEach((tile, ti) =>
        tile.sections[name].code.forEach((ins) => {
          if (ins.op === "send") slots.set(`${name}:${ti}>${ins.peer}#${ins.tag}`, this.mailboxes[name].add(ins.len, this.precision));
        }),
      );
    for (const m of Object.values(this.mailboxes)) m.seal();
    const messageSlot = (name: SectionName, src: number, dst: number, tag: number): number => {
      const slot = slots.get(`${name}:${src}>${dst}#${tag}`);
      if (slot === undefined) throw new Error(`internal error: unmatched message ${src}>${dst}#${tag} in ${name} (the verifier should have rejected it)`);
      return slot;
    };
    this.plans = program.tiles.map((tile, ti) => {
      const plan = (name: SectionName): SectionPlan => {
        const counts = zeroCounts();
        const busy = zeroBusy();
        const code = tile.sections[name].code.map((ins, pc): Planned => {
          // ext: the plugin declares cost and accesses; it runs on the tile's digital periphery (vector slot).
          const xp = ins.op === "ext" ? this.extPlan(ins) : null;
          const occ = xp ? { unit: "vector" as const, cycles: xp.cycles } : occupancy(target, ins);
          const acc = xp ? { reads: xp.reads, write: xp.write } : accessOf(ins);
          const xb = ins.op === "mvm" ? models.get(ins.xbar)! : null;
          const slot = occ.unit === "crossbar" ? xb!.slot : occ.unit === "vector" ? VECTOR_SLOT : occ.unit === "loadStore" ? LOAD_STORE_SLOT : occ.unit === "network" ? NETWORK_SLOT : NO_UNIT;
          const msg = ins.op === "send" ? messageSlot(name, ti, ins.peer, ins.tag) : ins.op === "recv" ? messageSlot(name, ins.peer, ti, ins.tag) : -1;
          const c = xp ? xp.counts : countsOf(ins);
          addCounts(counts, c);
          if (occ.unit !== null) busy[occ.unit] += occ.cycles;
          return {
            ins,
            op: ins.op,
            pc,
            symbol: tile.sections[name].symbols[pc]!,
            unitKind: occ.unit,
            slot,
            cycles: occ.cycles,
            reads: acc.reads,
            write: acc.write,
            xbar: xb?.model ?? null,
            xbarIndex: xb?.index ?? -1,
            msg,
            ext: xp,
            inputLoad: readsInput(program, ins),
          };
        });
        return { code, counts, busy };
      };
      return { init: plan("init"), step: plan("step"), final: plan("final") };
    });
    this.states = program.tiles.map((tile, ti) => ({
      pc: 0,
      issue: 0,
      lastEnd: 0,
      lastStart: 0,
      stepWords: mergeRanges(this.plans[ti]!.step.code.flatMap((p) => (p.write ? [...p.reads, p.write] : p.reads)).map((r) => ({ addr: r.addr, len: r.len }))),
      unitFree: new Float64Array(CROSSBAR_SLOT + perTile[ti]!),
      writeReady: new Float64Array(tile.memoryWords),
      readEnd: new Float64Array(tile.memoryWords),
    }));
  }

  /** Zeroes all memory and rewrites the constants: the start of a new sequence. */
  resetSequence(): void {
    this.memory.reset();
  }

  /**
   * Runs `section` on all tiles, starting when the chip is idle; `steps` is T for vdivsteps.
   * When `schedule` is given, every executed instruction is appended to it.
   *
   * Timing is computed the first time a section runs and reused afterwards: a section
   * starts with every unit free and every scoreboard entry at or before its start, and
   * timing never depends on data, so every run of a section has the same schedule shifted
   * in time. `retime` (tests) recomputes it on every run instead.
   */
  runSection(section: SectionName, steps: number, schedule?: ScheduledInstr[]): SectionRun {
    if (section === "step" && this.overlapSteps) return this.runOverlappedStep(steps, schedule);
    if (section !== "step") this.stepInSequence = 0;
    const start = this.clock;
    const run: SectionRun = { section, start, cycles: 0, instructions: 0, counts: zeroCounts(), busy: zeroBusy(), saturations: 0 };
    const cached = this.sectionCycles[section];
    const timed = cached === null || schedule !== undefined || this.retime;
    for (const st of this.states) {
      st.pc = 0;
      st.issue = start;
      st.lastEnd = start;
    }
    this.inputFree = start;
    const end = this.execute(section, steps, run, timed, schedule);
    run.cycles = timed ? end - start : cached!;
    if (timed && cached !== null && cached !== run.cycles) throw new Error(`internal error: section ${section} took ${run.cycles} cycles, earlier ${cached}`);
    this.sectionCycles[section] = run.cycles;
    this.clock = start + run.cycles;
    return run;
  }

  /**
   * Cycles of the steady-state step once the overlapped steps have become periodic (the
   * average over one period), else null; and the first step's cycles, once run.
   */
  stepTiming(): { first: number | null; steady: number | null } {
    if (this.periodicFrom < 0) return { first: this.stepRecords[0]?.cycles ?? null, steady: null };
    let sum = 0;
    for (let i = 0; i < this.period; i++) sum += this.stepRecords[this.periodicFrom + i]!.cycles;
    return { first: this.stepRecords[0]!.cycles, steady: sum / this.period };
  }

  /**
   * One step with overlap: step 0 of a sequence starts at init's barrier, every later step
   * continues each tile's stream where the previous step left it. The step's cycles are
   * from the end of the previous step (the latest completion of any of its instructions)
   * to the end of this one, so the steps of a sequence add up to its span.
   *
   * Every sequence starts from a barrier, so step k takes the same cycles in every
   * sequence, and once the state a step leaves (StepRecord) is that of a step q <= MAX_PERIOD
   * steps earlier shifted in time, the steps in between repeat with period q: steps are timed until then and taken from the
   * records afterwards (exact, like the reuse of a section's schedule). A timed step after
   * untimed ones (traces, retime) restores the tile states from the record.
   */
  private runOverlappedStep(steps: number, schedule?: ScheduledInstr[]): SectionRun {
    const k = this.stepInSequence++;
    const start = this.clock;
    const run: SectionRun = { section: "step", start, cycles: 0, instructions: 0, counts: zeroCounts(), busy: zeroBusy(), saturations: 0 };
    const known = this.periodicFrom >= 0 || k < this.stepRecords.length;
    const recordIndex = (i: number): number => (this.periodicFrom >= 0 && i >= this.periodicFrom ? this.periodicFrom + ((i - this.periodicFrom) % this.period) : i);
    const timed = !known || schedule !== undefined || this.retime;
    if (timed) {
      if (k === 0) {
        for (const st of this.states) st.issue = start;
        this.inputFree = start;
      } else if (!this.stateCurrent) {
        const saved = this.stepRecords[recordIndex(k - 1)]!.state;
        // Only runProgram's trace (first step) and retime (every step) time a step after untimed ones.
        if (saved === null) throw new Error(`internal error: step ${k} cannot be timed after untimed steps beyond the first ${MAX_STATES}`);
        this.restore(saved, start);
      }
      for (const st of this.states) {
        st.pc = 0;
        st.lastEnd = start;
      }
      // No input load yet (a step without one leaves the host free to write at once).
      this.inputLoadsEnd = -Infinity;
    }
    const end = this.execute("step", steps, run, timed, schedule);
    if (!timed) {
      run.cycles = this.stepRecords[recordIndex(k)]!.cycles;
      this.stateCurrent = false;
    } else {
      run.cycles = end - start;
      this.inputFree = this.inputLoadsEnd;
      const state = this.snapshot(end);
      if (known) {
        const want = this.stepRecords[recordIndex(k)]!.cycles;
        if (want !== run.cycles) throw new Error(`internal error: step ${k} took ${run.cycles} cycles, earlier ${want}`);
      } else {
        this.stepRecords.push({ cycles: run.cycles, state: k < MAX_STATES ? state : null });
        // The state after step k is the one after step k - q shifted: steps k - q + 1 .. k repeat.
        for (let q = 1; q <= MAX_PERIOD && q <= k; q++)
          if (sameState(state, this.stepRecords[k - q]!.state)) {
            this.periodicFrom = k - q + 1;
            this.period = q;
            break;
          }
      }
      this.stateCurrent = true;
    }
    this.clock = start + run.cycles;
    return run;
  }

  /** The timing state relative to `end` (StepRecord). */
  private snapshot(end: number): Float64Array {
    let n = 1;
    for (const st of this.states) n += 1 + st.unitFree.length + 2 * st.stepWords.reduce((a, r) => a + r.len, 0);
    const out = new Float64Array(n);
    let minIssue = Infinity;
    for (const st of this.states) minIssue = Math.min(minIssue, st.issue);
    out[0] = Math.max(this.inputFree, minIssue) - end;
    let o = 1;
    for (const st of this.states) {
      const lo = st.issue;
      out[o++] = lo - end;
      for (const v of st.unitFree) out[o++] = Math.max(v, lo) - end;
      for (const r of st.stepWords)
        for (let i = r.addr; i < r.addr + r.len; i++) {
          out[o++] = Math.max(st.writeReady[i]!, lo) - end;
          out[o++] = Math.max(st.readEnd[i]!, lo) - end;
        }
    }
    return out;
  }

  /** Sets the timing state to a snapshot taken at a step end, shifted to end at `end`. */
  private restore(s: Float64Array, end: number): void {
    this.inputFree = s[0]! + end;
    let o = 1;
    for (const st of this.states) {
      st.issue = s[o++]! + end;
      for (let u = 0; u < st.unitFree.length; u++) st.unitFree[u] = s[o++]! + end;
      for (const r of st.stepWords)
        for (let i = r.addr; i < r.addr + r.len; i++) {
          st.writeReady[i] = s[o++]! + end;
          st.readEnd[i] = s[o++]! + end;
        }
    }
  }

  /**
   * Runs `section`'s streams functionally (and timed when `timed`) from the tile states set
   * up by the caller; adds counts to `run` and returns the latest completion (timed runs).
   */
  private execute(section: SectionName, steps: number, run: SectionRun, timed: boolean, schedule: ScheduledInstr[] | undefined): number {
    const mailbox = this.mailboxes[section];
    mailbox.posted.fill(0);
    const n = this.states.length;
    for (const st of this.states) st.pc = 0;
    for (;;) {
      let progressed = false;
      let done = true;
      for (let ti = 0; ti < n; ti++) {
        const st = this.states[ti]!;
        const code = this.plans[ti]![section].code;
        while (st.pc < code.length) {
          const p = code[st.pc]!;
          if (p.op === "recv" && mailbox.posted[p.msg] === 0) break;
          const end = timed ? this.time(st, p, mailbox) : 0;
          this.perform(ti, p, mailbox, steps, run, end);
          if (schedule) this.record(schedule, ti, section, p, end);
          st.pc++;
          progressed = true;
        }
        if (st.pc < code.length) done = false;
      }
      if (done) break;
      if (!progressed) throw this.deadlock(section);
    }
    let end = run.start;
    for (let ti = 0; ti < n; ti++) {
      const st = this.states[ti]!;
      if (st.lastEnd > end) end = st.lastEnd;
      const plan = this.plans[ti]![section];
      run.instructions += plan.code.length;
      addCounts(run.counts, plan.counts);
      for (const k of UNIT_KINDS) run.busy[k] += plan.busy[k];
    }
    return end;
  }

  /**
   * Schedules one instruction: in-order issue, then wait for operands (RAW), for earlier
   * readers and writers of the destination (WAR, WAW) and for the unit. Returns its end.
   */
  private time(st: TileState, p: Planned, mailbox: Mailbox): number {
    let s = st.issue;
    // The host writes the next input once every load of the current one has completed.
    if (p.inputLoad && this.inputFree > s) s = this.inputFree;
    if (p.slot !== NO_UNIT && st.unitFree[p.slot]! > s) s = st.unitFree[p.slot]!;
    for (const r of p.reads) s = maxOver(st.writeReady, r, s);
    if (p.write) {
      s = maxOver(st.writeReady, p.write, s);
      s = maxOver(st.readEnd, p.write, s);
    }
    let end = s + p.cycles;
    if (p.ins.op === "recv" && mailbox.arrival[p.msg]! > end) end = mailbox.arrival[p.msg]!;
    if (p.inputLoad && end > this.inputLoadsEnd) this.inputLoadsEnd = end;
    for (const r of p.reads) {
      const re = st.readEnd;
      for (let i = r.addr, e = r.addr + r.len; i < e; i++) if (re[i]! < end) re[i] = end;
    }
    if (p.write) st.writeReady.fill(end, p.write.addr, p.write.addr + p.write.len);
    if (p.slot !== NO_UNIT) st.unitFree[p.slot] = end;
    // recv blocks the stream until its data is in; everything else frees the issue slot next cycle.
    st.issue = p.ins.op === "recv" ? end : s + 1;
    if (end > st.lastEnd) st.lastEnd = end;
    st.lastStart = s;
    return end;
  }

  private record(schedule: ScheduledInstr[], tile: number, section: SectionName, p: Planned, end: number): void {
    schedule.push({
      tile,
      section,
      pc: p.pc,
      op: p.ins.op,
      symbol: this.program.symbols[p.symbol] ?? "",
      unitKind: p.unitKind,
      xbar: p.ins.op === "mvm" ? p.ins.xbar : null,
      start: this.states[tile]!.lastStart,
      end,
    });
  }

  /**
   * The functional effect of one instruction. `end` is when a sent message leaves the port
   * (meaningful only on timed runs; untimed runs never read arrival times).
   */
  private perform(ti: number, p: Planned, mailbox: Mailbox, steps: number, run: SectionRun, end: number): void {
    const mem = this.memory.tiles[ti]!;
    const ins = p.ins;
    if (p.op === "vcopy") {
      // The most frequent instruction (gathers of a few words): a memmove, which is what the
      // vector unit's copy-in/copy-out vcopy computes, without its generic dispatch.
      const v = ins as Extract<Instr, { op: VecUnaryOp }>;
      moveWords(mem, v.a, v.dst, v.len);
      return;
    }
    switch (ins.op) {
      case "mvm": {
        const sat = p.xbar!.mvm(mem, ins, this.precision.round);
        run.saturations += sat;
        this.saturationsPerCrossbar[p.xbarIndex] += sat;
        this.conversionsPerCrossbar[p.xbarIndex] += ins.cols;
        this.saturationsPerSymbol[p.symbol] += sat;
        this.conversionsPerSymbol[p.symbol] += ins.cols;
        return;
      }
      case "load":
        copyWords(this.memory.global, ins.global, mem, ins.dst, ins.len);
        return;
      case "store":
        copyWords(mem, ins.src, this.memory.global, ins.global, ins.len);
        return;
      case "send":
        copyWords(mem, ins.src, mailbox.data[p.msg]!, 0, ins.len);
        mailbox.arrival[p.msg] = end + this.target.interconnect.latencyCycles;
        mailbox.posted[p.msg] = 1;
        return;
      case "recv":
        copyWords(mailbox.data[p.msg]!, 0, mem, ins.dst, ins.len);
        return;
      case "ext":
        this.ext!.execute(p.ext!, ins, mem);
        return;
      default:
        this.vector.exec(ins as VectorInstr, mem, steps);
    }
  }

  private extPlan(ins: Extract<Instr, { op: "ext" }>): ExtPlan {
    const spec = this.ext?.spec(ins);
    if (!spec) throw new Error(`internal error: ext instruction ${ins.ext} without its plugin (the verifier should have rejected it)`);
    return this.ext!.plan(spec, ins);
  }

  private deadlock(section: SectionName): UserError {
    const waits: string[] = [];
    this.states.forEach((st, ti) => {
      const p = this.plans[ti]![section].code[st.pc];
      if (p && p.ins.op === "recv") waits.push(`tile ${ti} waits at instruction ${st.pc} (recv from tile ${p.ins.peer}, tag ${p.ins.tag})`);
    });
    return new UserError("verify", `section ${section}: deadlock: ${waits.join("; ")}; no tile can proceed`, { file: this.file });
  }
}

/** Longest period of the overlapped steady state looked for (longer ones are timed step by step, still exact). */
const MAX_PERIOD = 8;

/**
 * Step indices whose state is kept. A schedule can drift forever without repeating (a tile
 * that only produces, e.g. the input layer, runs ahead of the pipeline into the unbounded
 * receive buffers): then every step is timed, and only its cycles are kept beyond these.
 */
const MAX_STATES = 64;

function sameState(a: Float64Array, b: Float64Array | null): boolean {
  if (b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Below this length an element loop beats a typed-array view plus a bulk copy. */
const BULK_WORDS = 32;

/** Copies between two memories of the same precision (every memory of a run has the target's). */
function copyWords(from: Memory, fromAddr: number, to: Memory, toAddr: number, len: number): void {
  if (len >= BULK_WORDS) to.set(from.subarray(fromAddr, fromAddr + len), toAddr);
  else for (let i = 0; i < len; i++) to[toAddr + i] = from[fromAddr + i]!;
}

/** mem[to, to+len) = old mem[from, from+len): copy-in/copy-out semantics for overlapping ranges. */
function moveWords(mem: Memory, from: number, to: number, len: number): void {
  if (len < BULK_WORDS && (to <= from || to >= from + len)) for (let i = 0; i < len; i++) mem[to + i] = mem[from + i]!;
  else mem.copyWithin(to, from, from + len);
}
