// The simulated chip: a discrete-event simulation over tiles that times a section with the
// scoreboard model of docs/TIMING.md and executes it functionally, in two passes over the
// same tile order (src/interp/plan.ts holds the compiled form each pass runs).
//
// Each tile runs its stream in program order until it finishes or reaches a recv whose
// message has not been sent yet; then the next tile runs. Because timing never depends on
// data and a tile's schedule depends on other tiles only through message arrival times
// (known when the message is posted), this order yields the exact cycle-level schedule.
// A full round without progress while some tile is blocked is a deadlock. The functional
// effect of each instruction is applied in program order; the scoreboard guarantees that
// the timed machine would compute the same values, and since neither pass depends on the
// other, the timing pass runs only while the schedule is not known yet (see runSection).

import type { Instr } from "../backend/isa.js";
import type { Program, SectionName } from "../backend/program.js";
import { activeDelays, delayAt, maxDelay } from "../backend/delays.js";
import { UserError } from "../common/errors.js";
import type { NoiseSetup } from "../noise/setup.js";
import type { ExtPlan, ExtRuntime } from "../target/plugin-runtime.js";
import type { Target } from "../target/types.js";
import { accessOf } from "./access.js";
import { makeCrossbar, type CrossbarModel } from "./crossbar.js";
import { addCounts, countsOf, zeroCounts, type EventCounts } from "./energy.js";
import { MachineMemory, precisionOf, type Memory, type Precision } from "./memory.js";
import { KernelArena } from "./wasm/arena.js";
import {
  copyWords,
  functionalPlan,
  OP_COPIES,
  OP_EXT,
  OP_LOAD,
  OP_MVM,
  OP_RECV,
  OP_SEND,
  OP_STORE,
  runCopies,
  T_INPUT_LOAD,
  T_RECV,
  T_SEND,
  timingPlan,
  type FnOp,
  type FunctionalPlan,
  type PlannedInstr,
  type TimingPlan,
} from "./plan.js";
import { occupancy, UNIT_KINDS, type UnitKind } from "./timing.js";
import { VectorUnit, type VectorInstr } from "./vector.js";

/** Unit slots of a tile's unit table; crossbars follow from CROSSBAR_SLOT on. */
const VECTOR_SLOT = 0;
const LOAD_STORE_SLOT = 1;
const NETWORK_SLOT = 2;
const CROSSBAR_SLOT = 3;
const NO_UNIT = -1;

/** An instruction with everything data-independent precomputed once per program: what the planner needs, plus the machine's own fields. */
interface Planned extends PlannedInstr {
  /** ins.op, read from this one object shape: instructions have many shapes, so ins.op is a megamorphic load. */
  op: Instr["op"];
  unitKind: UnitKind | null;
}

/**
 * Everything data-independent about one tile's stream for one section. Event counts and
 * busy cycles do not depend on data or timing, so they are summed once here.
 */
interface SectionPlan {
  code: Planned[];
  /** The same stream flattened for the timing pass and compiled for the functional pass (src/interp/plan.ts). */
  timing: TimingPlan;
  fn: FunctionalPlan;
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
  /** The sending tile of each message. */
  readonly sender: number[] = [];
  arrival = new Float64Array(0);
  posted = new Uint8Array(0);

  add(len: number, precision: Precision, sender: number): number {
    this.data.push(precision.alloc(len));
    this.sender.push(sender);
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
  /** With `state`: what the drifting steady state (see findDrift) checks. */
  drift: DriftRecord | null;
}

/**
 * Per step, relative to its end: each tile's latest completion and the step's start
 * (ends[n]); the host's input write clamped at the input tile's issue slot; and for every
 * recv in timing-pass order its tile, its sender and how far its own completion
 * (start + occupancy) lay after the message's arrival (negative: it waited for the message).
 */
interface DriftRecord {
  ends: Float64Array;
  input: number;
  recvTile: Int32Array;
  recvSender: Int32Array;
  recvMargin: Float64Array;
}

interface SectionTotal {
  instructions: number;
  counts: EventCounts;
  busy: Record<UnitKind, number>;
}

/** The step section as a prologue or drain round runs it: only the instructions of some delays. */
interface StepVariant {
  key: string;
  plans: SectionPlan[];
  total: SectionTotal;
}

/** Instructions, event counts and busy cycles summed over the tiles in tile order. */
function sumPlans(plans: readonly SectionPlan[]): SectionTotal {
  const t = { instructions: 0, counts: zeroCounts(), busy: zeroBusy() };
  for (const pl of plans) {
    t.instructions += pl.code.length;
    addCounts(t.counts, pl.counts);
    for (const k of UNIT_KINDS) t.busy[k] += pl.busy[k];
  }
  return t;
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
  /**
   * false: only the timing model runs (no values, no saturation counts). For the cost model
   * (src/cost/explain.ts), which needs cycles only: timing never depends on data.
   */
  functional = true;

  private readonly precision: Precision;
  private readonly vector: VectorUnit;
  private readonly plans: Record<SectionName, SectionPlan>[];
  private readonly states: TileState[];
  /** Per section: instructions, event counts and busy cycles summed over the tiles in tile order. */
  private readonly totals: Record<SectionName, SectionTotal>;
  /** Program counters (op indices) of the functional pass, per tile. */
  private readonly fnPc: Int32Array;
  private readonly mailboxes: Record<SectionName, Mailbox> = { init: new Mailbox(), step: new Mailbox(), final: new Mailbox() };
  /** Cycles of each section once timed (see runSection); for overlapped steps see stepRecords. */
  private readonly sectionCycles = new Map<string, number>();
  /** D, the program's largest step delay (docs/ISA.md "Step delays"). */
  private readonly maxDelay: number;
  /** The step section as run in prologue and drain rounds (only some delays), by "lo-hi"; built when first needed. */
  private readonly variants = new Map<string, StepVariant>();
  /** The variant the current round runs (null: the whole step section). */
  private active: StepVariant | null = null;
  private readonly stepPlans: (lo: number, hi: number) => SectionPlan[];
  /** Overlapped steps: record k is step k of a sequence (every sequence repeats them, it starts after init's barrier). */
  private readonly stepRecords: StepRecord[] = [];
  /**
   * Steady state: from step `periodicFrom` on (-1: not reached yet), step k repeats record
   * periodicFrom + (k - periodicFrom) mod period shifted in time.
   */
  private periodicFrom = -1;
  private period = 1;
  /**
   * Steps reused from the records (a superset of the periodic steady state above, which
   * alone defines stepTiming): from step `reuseFrom` on (-1: not yet), step k repeats record
   * reuseFrom + (k - reuseFrom) mod reusePeriod, each tile's timing shifted by `reuseDrift`
   * (cycles per period, relative to the step end; all zero for the periodic steady state).
   */
  private reuseFrom = -1;
  private reusePeriod = 1;
  private reuseDrift: Float64Array | null = null;
  /** The one tile whose step section loads a host-written input (-1: none, -2: several). */
  private inputTile = -1;
  /** Recvs of the step being timed, while it is recorded for findDrift (else null). */
  private recvLog: { tile: number[]; sender: number[]; margin: number[] } | null = null;
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
    // Noise-free quantized crossbars run the WebAssembly kernel, which works in tile memory
    // placed in its arena (src/interp/wasm/arena.ts); same bits as the JavaScript kernels.
    const arena = noise === null ? KernelArena.forProgram(program, target.crossbar.numerics, target.vector.precision) : null;
    this.memory = new MachineMemory(program, this.precision, arena?.tiles);
    this.saturationsPerCrossbar = new Float64Array(program.crossbars.length);
    this.conversionsPerCrossbar = new Float64Array(program.crossbars.length);
    this.saturationsPerSymbol = new Float64Array(program.symbols.length);
    this.conversionsPerSymbol = new Float64Array(program.symbols.length);

    const models = new Map<number, { model: CrossbarModel; index: number; slot: number }>();
    const perTile = new Array<number>(program.tiles.length).fill(0);
    program.crossbars.forEach((img, index) => {
      const slot = CROSSBAR_SLOT + perTile[img.tile]!++;
      models.set(img.id, { model: arena ? arena.crossbar(img) : makeCrossbar(img, target.crossbar.numerics, noise), index, slot });
    });
    // Message slots: sends first (they define the slots), then recvs look theirs up.
    const slots = new Map<string, number>();
    for (const name of ["init", "step", "final"] as const)
      program.tiles.forEach((tile, ti) =>
        tile.sections[name].code.forEach((ins) => {
          if (ins.op === "send") slots.set(`${name}:${ti}>${ins.peer}#${ins.tag}`, this.mailboxes[name].add(ins.len, this.precision, ti));
        }),
      );
    for (const m of Object.values(this.mailboxes)) m.seal();
    const messageSlot = (name: SectionName, src: number, dst: number, tag: number): number => {
      const slot = slots.get(`${name}:${src}>${dst}#${tag}`);
      if (slot === undefined) throw new Error(`internal error: unmatched message ${src}>${dst}#${tag} in ${name} (the verifier should have rejected it)`);
      return slot;
    };
    const builders: ((name: SectionName, keep?: (pc: number) => boolean) => SectionPlan)[] = [];
    this.plans = program.tiles.map((tile, ti) => {
      const plan = (name: SectionName, keep?: (pc: number) => boolean): SectionPlan => {
        const counts = zeroCounts();
        const busy = zeroBusy();
        const code = tile.sections[name].code.flatMap((ins, pc): Planned[] => {
          if (keep && !keep(pc)) return [];
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
          return [{
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
          }];
        });
        return { code, timing: timingPlan(code), fn: functionalPlan(code), counts, busy };
      };
      builders[ti] = plan;
      return { init: plan("init"), step: plan("step"), final: plan("final") };
    });
    this.maxDelay = maxDelay(program);
    this.stepPlans = (lo, hi) =>
      builders.map((plan, ti) =>
        plan("step", (pc) => {
          const d = delayAt(program.tiles[ti]!.sections.step, pc);
          return d >= lo && d <= hi;
        }),
      );
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
    this.fnPc = new Int32Array(program.tiles.length);
    const total = (name: SectionName): SectionTotal => sumPlans(this.plans.map((pl) => pl[name]));
    this.totals = { init: total("init"), step: total("step"), final: total("final") };
    this.plans.forEach((pl, ti) => {
      if (pl.step.code.some((p) => p.inputLoad)) this.inputTile = this.inputTile === -1 ? ti : -2;
    });
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
    if (section !== "step") {
      this.stepInSequence = 0;
      this.active = null;
      return this.runBarrier(section, section, steps, schedule);
    }
    // Round r of a program with step delays runs only the delays active in it (docs/ISA.md
    // "Step delays"); the drain rounds r >= T start at a barrier, like final.
    const r = this.stepInSequence;
    const drain = this.maxDelay > 0 && r >= steps;
    this.active = this.maxDelay > 0 ? this.variant(...activeDelays(r, steps, this.maxDelay)) : null;
    if (this.overlapSteps && !drain) return this.runOverlappedStep(steps, schedule);
    this.stepInSequence++;
    return this.runBarrier("step", this.active?.key ?? "step", steps, schedule);
  }

  /** The step section restricted to delays lo .. hi (null: all of them). */
  private variant(lo: number, hi: number): StepVariant | null {
    if (lo === 0 && hi >= this.maxDelay) return null;
    const key = `step:${lo}-${hi}`;
    let v = this.variants.get(key);
    if (!v) {
      const plans = this.stepPlans(lo, hi);
      v = { key, plans, total: sumPlans(plans) };
      this.variants.set(key, v);
    }
    return v;
  }

  private planOf(ti: number, section: SectionName): SectionPlan {
    return section === "step" && this.active !== null ? this.active.plans[ti]! : this.plans[ti]![section];
  }

  /** A section run starting when the chip is idle; its cycles are timed once per `key` and reused (exact: see below). */
  private runBarrier(section: SectionName, key: string, steps: number, schedule?: ScheduledInstr[]): SectionRun {
    const start = this.clock;
    const run: SectionRun = { section, start, cycles: 0, instructions: 0, counts: zeroCounts(), busy: zeroBusy(), saturations: 0 };
    const cached = this.sectionCycles.get(key);
    const timed = cached === undefined || schedule !== undefined || this.retime;
    for (const st of this.states) {
      st.pc = 0;
      st.issue = start;
      st.lastEnd = start;
    }
    this.inputFree = start;
    const end = this.execute(section, steps, run, timed, schedule);
    run.cycles = timed ? end - start : cached!;
    if (timed && cached !== undefined && cached !== run.cycles) throw new Error(`internal error: section ${key} took ${run.cycles} cycles, earlier ${cached}`);
    this.sectionCycles.set(key, run.cycles);
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
    const known = this.reuseFrom >= 0 || k < this.stepRecords.length;
    const recordIndex = (i: number): number => (this.reuseFrom >= 0 && i >= this.reuseFrom ? this.reuseFrom + ((i - this.reuseFrom) % this.reusePeriod) : i);
    const timed = !known || schedule !== undefined || this.retime;
    if (timed) {
      if (k === 0) {
        for (const st of this.states) st.issue = start;
        this.inputFree = start;
      } else if (!this.stateCurrent) {
        const r = recordIndex(k - 1);
        const saved = this.stepRecords[r]!;
        // Only runProgram's trace (first step) and retime (every step) time a step after untimed ones.
        if (saved.state === null) throw new Error(`internal error: step ${k} cannot be timed after untimed steps beyond the first ${MAX_STATES}`);
        // Step k - 1 is record r plus `periods` periods of drift.
        const periods = (k - 1 - r) / this.reusePeriod;
        this.restore(saved.state, start, periods > 0 ? this.reuseDrift : null, periods, saved.drift?.input ?? 0);
      }
      for (const st of this.states) {
        st.pc = 0;
        st.lastEnd = start;
      }
      // No input load yet (a step without one leaves the host free to write at once).
      this.inputLoadsEnd = -Infinity;
    }
    // Steps whose timing state is compared with earlier ones (see the snapshot below).
    const compared = !known && k < MAX_STATES + MAX_PERIOD;
    this.recvLog = compared ? { tile: [], sender: [], margin: [] } : null;
    const end = this.execute("step", steps, run, timed, schedule);
    if (!timed) {
      run.cycles = this.stepRecords[recordIndex(k)]!.cycles;
      this.stateCurrent = false;
    } else {
      run.cycles = end - start;
      this.inputFree = this.inputLoadsEnd;
      // The state is kept for the first MAX_STATES steps and compared with the states of the
      // MAX_PERIOD steps before: later, or for a known step, it would not be used.
      const state = compared ? this.snapshot(end) : null;
      if (known) {
        const want = this.stepRecords[recordIndex(k)]!.cycles;
        if (want !== run.cycles) throw new Error(`internal error: step ${k} took ${run.cycles} cycles, earlier ${want}`);
      } else {
        const drift = compared ? this.driftRecord(start, end) : null;
        const kept = k < MAX_STATES;
        this.stepRecords.push({ cycles: run.cycles, state: kept ? state : null, drift });
        // The state after step k is the one after step k - q shifted: steps k - q + 1 .. k repeat.
        // Prologue rounds (k < D) run part of the section: a period starts after them.
        const qMax = Math.min(MAX_PERIOD, k, k + 1 - this.maxDelay);
        for (let q = 1; q <= qMax; q++)
          if (sameState(state, this.stepRecords[k - q]!.state)) {
            this.periodicFrom = this.reuseFrom = k - q + 1;
            this.period = this.reusePeriod = q;
            this.reuseDrift = null;
            break;
          }
        // Drifting steady states are looked for where every step of the period keeps its state
        // (for restore) and the drift is not all zero: then the state never repeats exactly
        // (so stepTiming, which reports the exact periodic state only, is as without reuse).
        if (this.reuseFrom < 0 && kept && state !== null && drift !== null)
          for (let q = 1; q <= qMax; q++) {
            const d = this.findDrift(k, q, state, drift);
            if (d !== null) {
              this.reuseFrom = k - q + 1;
              this.reusePeriod = q;
              this.reuseDrift = d;
              break;
            }
          }
      }
      this.stateCurrent = true;
    }
    this.recvLog = null;
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

  /**
   * Sets the timing state to a snapshot taken at a step end, shifted to end at `end`, and
   * each tile's part by `periods` times its drift (see findDrift; `input` is the record's
   * input write clamped at the input tile's issue, which drifts with that tile).
   */
  private restore(s: Float64Array, end: number, drift: Float64Array | null, periods: number, input: number): void {
    this.inputFree = drift === null || this.inputTile < 0 ? s[0]! + end : input + periods * drift[this.inputTile]! + end;
    let o = 1;
    this.states.forEach((st, ti) => {
      const e = end + (drift === null ? 0 : periods * drift[ti]!);
      st.issue = s[o++]! + e;
      for (let u = 0; u < st.unitFree.length; u++) st.unitFree[u] = s[o++]! + e;
      for (const r of st.stepWords)
        for (let i = r.addr; i < r.addr + r.len; i++) {
          st.writeReady[i] = s[o++]! + e;
          st.readEnd[i] = s[o++]! + e;
        }
    });
  }

  /** The DriftRecord of the step just timed (from `start` to `end`). */
  private driftRecord(start: number, end: number): DriftRecord {
    const n = this.states.length;
    const ends = new Float64Array(n + 1);
    for (let ti = 0; ti < n; ti++) ends[ti] = this.states[ti]!.lastEnd - end;
    ends[n] = start - end;
    const log = this.recvLog!;
    const t = this.inputTile;
    return {
      ends,
      input: t >= 0 ? Math.max(this.inputFree, this.states[t]!.issue) - end : 0,
      recvTile: Int32Array.from(log.tile),
      recvSender: Int32Array.from(log.sender),
      recvMargin: Float64Array.from(log.margin),
    };
  }

  /**
   * Whether the schedule repeats from step k - q + 1 on with period q, each tile's times
   * shifted per period by its own drift d_t <= 0 relative to the step ends: the timing
   * state after step k (clamped as in snapshot) equals the one after step k - q with tile
   * t's part shifted by d_t. Tiles that only feed the pipeline (e.g. the input layer) run
   * ahead of it by a growing distance (unbounded receive buffers), so their state drifts
   * and the exact periodic state of sameState never comes. Returns the drifts, or null.
   *
   * Exact: within a tile every time shifts by the same amount, which keeps every
   * comparison the tile's schedule makes. Tiles meet only at a recv (its end is the later of
   * its own completion and the message's arrival), at the host's input write (one input
   * tile: internal to it) and at the step's end (the latest tile). The repetition holds if,
   * in the q steps k - q + 1 .. k, every recv either connects tiles of the same drift or
   * completed by itself (margin >= 0) while its sender drifts further ahead (d_sender <
   * d_tile), and every step ended on a tile without drift (or at its start): those
   * outcomes then hold with growing margins in every later period, by induction.
   */
  private findDrift(k: number, q: number, state: Float64Array, now: DriftRecord): Float64Array | null {
    const prev = this.stepRecords[k - q]!;
    // Several input tiles share the host's write: not handled (the exact periodic state may still come).
    if (this.inputTile === -2 || prev.state === null || prev.drift === null || prev.state.length !== state.length) return null;
    const n = this.states.length;
    // Each tile's drift is its first word's shift; the conditions below are cheap, so they
    // are checked before the comparison of every word (the costly part, left for last).
    const d = new Float64Array(n);
    const starts = new Int32Array(n + 1);
    let o = 1;
    for (let ti = 0; ti < n; ti++) {
      const st = this.states[ti]!;
      let len = 1 + st.unitFree.length;
      for (const r of st.stepWords) len += 2 * r.len;
      const dt = state[o]! - prev.state[o]!;
      if (!(dt <= 0)) return null;
      d[ti] = dt;
      starts[ti] = o;
      o += len;
    }
    starts[n] = o;
    const t = this.inputTile;
    if (t >= 0 && now.input - prev.drift.input !== d[t]) return null;
    if (d.every((x) => x === 0)) return null;
    for (let j = k - q + 1; j <= k; j++) {
      const rec = j === k ? now : this.stepRecords[j]!.drift;
      if (rec === null) return null;
      for (let i = 0; i < rec.recvTile.length; i++) {
        const dt = d[rec.recvTile[i]!]!;
        const du = d[rec.recvSender[i]!]!;
        if (!(dt === du || (dt > du && rec.recvMargin[i]! >= 0))) return null;
      }
      let fixed = rec.ends[n]!;
      let drifting = -Infinity;
      for (let ti = 0; ti < n; ti++) {
        if (d[ti] === 0) fixed = Math.max(fixed, rec.ends[ti]!);
        else drifting = Math.max(drifting, rec.ends[ti]!);
      }
      if (drifting > fixed) return null;
    }
    for (let ti = 0; ti < n; ti++) {
      const dt = d[ti]!;
      for (let i = starts[ti]!; i < starts[ti + 1]!; i++) if (state[i]! - prev.state[i]! !== dt) return null;
    }
    return d;
  }

  /**
   * Runs `section`'s streams functionally (and timed when `timed`) from the tile states set
   * up by the caller; adds counts to `run` and returns the latest completion (timed runs).
   */
  private execute(section: SectionName, steps: number, run: SectionRun, timed: boolean, schedule: ScheduledInstr[] | undefined): number {
    if (timed) this.timeSection(section, schedule);
    if (this.functional) this.perform(section, steps, run);
    let end = run.start;
    for (const st of this.states) if (st.lastEnd > end) end = st.lastEnd;
    // The tiles' sums in tile order, added once (the same additions as tile by tile into zeros).
    const total = section === "step" && this.active !== null ? this.active.total : this.totals[section];
    run.instructions += total.instructions;
    addCounts(run.counts, total.counts);
    for (const k of UNIT_KINDS) run.busy[k] += total.busy[k];
    return end;
  }

  /**
   * The timing pass: every tile's stream in program order until it finishes or reaches a
   * recv whose message has not been sent yet, then the next tile (see the top of this file).
   */
  private timeSection(section: SectionName, schedule: ScheduledInstr[] | undefined): void {
    const mailbox = this.mailboxes[section];
    mailbox.posted.fill(0);
    const posted = mailbox.posted;
    const latency = this.target.interconnect.latencyCycles;
    const n = this.states.length;
    for (const st of this.states) st.pc = 0;
    for (;;) {
      let progressed = false;
      let done = true;
      for (let ti = 0; ti < n; ti++) {
        const st = this.states[ti]!;
        const tp = this.planOf(ti, section).timing;
        const len = tp.slot.length;
        while (st.pc < len) {
          const i = st.pc;
          const flags = tp.flags[i]!;
          if ((flags & T_RECV) !== 0 && posted[tp.msg[i]!] === 0) break;
          const end = this.time(ti, st, tp, i, mailbox);
          if ((flags & T_SEND) !== 0) {
            mailbox.arrival[tp.msg[i]!] = end + latency;
            posted[tp.msg[i]!] = 1;
          }
          if (schedule) this.record(schedule, ti, section, this.planOf(ti, section).code[i]!, end);
          st.pc++;
          progressed = true;
        }
        if (st.pc < len) done = false;
      }
      if (done) break;
      if (!progressed) throw this.deadlock(section, this.states.map((st, ti) => this.planOf(ti, section).code[st.pc]?.pc ?? Infinity));
    }
  }

  /**
   * Schedules instruction i of a tile's stream: in-order issue, then wait for operands (RAW),
   * for earlier readers and writers of the destination (WAW, WAR) and for the unit. Returns its end.
   */
  private time(ti: number, st: TileState, tp: TimingPlan, i: number, mailbox: Mailbox): number {
    const flags = tp.flags[i]!;
    const slot = tp.slot[i]!;
    const uf = st.unitFree;
    const wr = st.writeReady;
    const re = st.readEnd;
    let s = st.issue;
    // The host writes the next input once every load of the current one has completed.
    if ((flags & T_INPUT_LOAD) !== 0 && this.inputFree > s) s = this.inputFree;
    if (slot !== NO_UNIT && uf[slot]! > s) s = uf[slot]!;
    const r0 = tp.readStart[i]!;
    const r1 = tp.readStart[i + 1]!;
    for (let k = r0; k < r1; k++)
      for (let a = tp.readAddr[k]!, e = a + tp.readLen[k]!; a < e; a++) if (wr[a]! > s) s = wr[a]!;
    const w0 = tp.writeAddr[i]!;
    const w1 = w0 + tp.writeLen[i]!;
    for (let a = w0; a < w1; a++) {
      if (wr[a]! > s) s = wr[a]!;
      if (re[a]! > s) s = re[a]!;
    }
    let end = s + tp.cycles[i]!;
    const recv = (flags & T_RECV) !== 0;
    if (recv) {
      const arrival = mailbox.arrival[tp.msg[i]!]!;
      const log = this.recvLog;
      if (log !== null) {
        log.tile.push(ti);
        log.sender.push(mailbox.sender[tp.msg[i]!]!);
        log.margin.push(end - arrival);
      }
      if (arrival > end) end = arrival;
    }
    if ((flags & T_INPUT_LOAD) !== 0 && end > this.inputLoadsEnd) this.inputLoadsEnd = end;
    for (let k = r0; k < r1; k++)
      for (let a = tp.readAddr[k]!, e = a + tp.readLen[k]!; a < e; a++) if (re[a]! < end) re[a] = end;
    for (let a = w0; a < w1; a++) wr[a] = end;
    if (slot !== NO_UNIT) uf[slot] = end;
    // recv blocks the stream until its data is in; everything else frees the issue slot next cycle.
    st.issue = recv ? end : s + 1;
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
   * The functional pass: the tiles' compiled streams (src/interp/plan.ts) in the order of the
   * timing pass, a recv waiting for its send. Effects are applied in program order per tile.
   */
  private perform(section: SectionName, steps: number, run: SectionRun): void {
    const mailbox = this.mailboxes[section];
    mailbox.posted.fill(0);
    const posted = mailbox.posted;
    const n = this.states.length;
    const pcs = this.fnPc;
    pcs.fill(0);
    for (;;) {
      let progressed = false;
      let done = true;
      for (let ti = 0; ti < n; ti++) {
        const { ops, segs } = this.planOf(ti, section).fn;
        const mem = this.memory.tiles[ti]!;
        let pc = pcs[ti]!;
        while (pc < ops.length) {
          const o = ops[pc]!;
          const kind = o.kind;
          if (kind === OP_COPIES) runCopies(mem, segs, o.segStart, o.segEnd);
          else if (kind === OP_RECV) {
            if (posted[o.msg] === 0) break;
            const ins = o.ins as Extract<Instr, { op: "recv" }>;
            copyWords(mailbox.data[o.msg]!, 0, mem, ins.dst, ins.len);
          } else this.apply(o, mem, mailbox, steps, run);
          pc++;
          progressed = true;
        }
        pcs[ti] = pc;
        if (pc < ops.length) done = false;
      }
      if (done) break;
      if (!progressed) throw this.deadlock(section, Array.from(pcs, (pc, ti) => this.planOf(ti, section).fn.ops[pc]?.pc ?? Infinity));
    }
  }

  /** The functional effect of one op other than fused copies and recv. */
  private apply(o: FnOp, mem: Memory, mailbox: Mailbox, steps: number, run: SectionRun): void {
    const ins = o.ins;
    switch (o.kind) {
      case OP_MVM: {
        const m = ins as Extract<Instr, { op: "mvm" }>;
        const sat = o.xbar!.mvm(mem, m, this.precision.round);
        run.saturations += sat;
        this.saturationsPerCrossbar[o.xbarIndex] += sat;
        this.conversionsPerCrossbar[o.xbarIndex] += m.cols;
        this.saturationsPerSymbol[o.symbol] += sat;
        this.conversionsPerSymbol[o.symbol] += m.cols;
        return;
      }
      case OP_LOAD: {
        const l = ins as Extract<Instr, { op: "load" }>;
        copyWords(this.memory.global, l.global, mem, l.dst, l.len);
        return;
      }
      case OP_STORE: {
        const s = ins as Extract<Instr, { op: "store" }>;
        copyWords(mem, s.src, this.memory.global, s.global, s.len);
        return;
      }
      case OP_SEND: {
        const s = ins as Extract<Instr, { op: "send" }>;
        copyWords(mem, s.src, mailbox.data[o.msg]!, 0, s.len);
        mailbox.posted[o.msg] = 1;
        return;
      }
      case OP_EXT:
        this.ext!.execute(o.ext!, ins as Extract<Instr, { op: "ext" }>, mem);
        return;
      default:
        // Vector instructions other than vcopy (every vcopy is in a fused run).
        this.vector.exec(ins as VectorInstr, mem, steps);
    }
  }

  private extPlan(ins: Extract<Instr, { op: "ext" }>): ExtPlan {
    const spec = this.ext?.spec(ins);
    if (!spec) throw new Error(`internal error: ext instruction ${ins.ext} without its plugin (the verifier should have rejected it)`);
    return this.ext!.plan(spec, ins);
  }

  /** The deadlock error; `pcs[ti]` is the instruction (index in the section) tile ti waits at (Infinity: finished). */
  private deadlock(section: SectionName, pcs: readonly number[]): UserError {
    const waits: string[] = [];
    this.states.forEach((_, ti) => {
      const p = this.planOf(ti, section).code.find((c) => c.pc === pcs[ti]);
      if (p && p.ins.op === "recv") waits.push(`tile ${ti} waits at instruction ${p.pc} (recv from tile ${p.ins.peer}, tag ${p.ins.tag})`);
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

function sameState(a: Float64Array | null, b: Float64Array | null): boolean {
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
