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

import type { Instr } from "../backend/isa.js";
import type { Program, SectionName } from "../backend/program.js";
import { UserError } from "../common/errors.js";
import type { NoiseSetup } from "../noise/setup.js";
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
  /** Cycles of each section once timed (see runSection). */
  private readonly sectionCycles: Record<SectionName, number | null> = { init: null, step: null, final: null };

  constructor(
    private readonly program: Program,
    target: Target,
    private readonly file: string,
    /** Recompute the schedule on every section run instead of reusing the first one. */
    private readonly retime = false,
    /** Device noise to simulate (src/noise/setup.ts); null: the exact noise-free crossbars. */
    noise: NoiseSetup | null = null,
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
          const occ = occupancy(target, ins);
          const acc = accessOf(ins);
          const xb = ins.op === "mvm" ? models.get(ins.xbar)! : null;
          const slot = occ.unit === "crossbar" ? xb!.slot : occ.unit === "vector" ? VECTOR_SLOT : occ.unit === "loadStore" ? LOAD_STORE_SLOT : occ.unit === "network" ? NETWORK_SLOT : NO_UNIT;
          const msg = ins.op === "send" ? messageSlot(name, ti, ins.peer, ins.tag) : ins.op === "recv" ? messageSlot(name, ins.peer, ti, ins.tag) : -1;
          const c = countsOf(ins);
          addCounts(counts, c);
          if (occ.unit !== null) busy[occ.unit] += occ.cycles;
          return {
            ins,
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
    const start = this.clock;
    const run: SectionRun = { section, start, cycles: 0, instructions: 0, counts: zeroCounts(), busy: zeroBusy(), saturations: 0 };
    const cached = this.sectionCycles[section];
    const timed = cached === null || schedule !== undefined || this.retime;
    for (const st of this.states) {
      st.pc = 0;
      st.issue = start;
      st.lastEnd = start;
    }
    const mailbox = this.mailboxes[section];
    mailbox.posted.fill(0);
    const n = this.states.length;
    for (;;) {
      let progressed = false;
      let done = true;
      for (let ti = 0; ti < n; ti++) {
        const st = this.states[ti]!;
        const code = this.plans[ti]![section].code;
        while (st.pc < code.length) {
          const p = code[st.pc]!;
          if (p.ins.op === "recv" && mailbox.posted[p.msg] === 0) break;
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
    let end = start;
    for (let ti = 0; ti < n; ti++) {
      const st = this.states[ti]!;
      if (st.lastEnd > end) end = st.lastEnd;
      const plan = this.plans[ti]![section];
      run.instructions += plan.code.length;
      addCounts(run.counts, plan.counts);
      for (const k of UNIT_KINDS) run.busy[k] += plan.busy[k];
    }
    run.cycles = timed ? end - start : cached!;
    if (timed && cached !== null && cached !== run.cycles) throw new Error(`internal error: section ${section} took ${run.cycles} cycles, earlier ${cached}`);
    this.sectionCycles[section] = run.cycles;
    this.clock = start + run.cycles;
    return run;
  }

  /**
   * Schedules one instruction: in-order issue, then wait for operands (RAW), for earlier
   * readers and writers of the destination (WAR, WAW) and for the unit. Returns its end.
   */
  private time(st: TileState, p: Planned, mailbox: Mailbox): number {
    let s = st.issue;
    if (p.slot !== NO_UNIT && st.unitFree[p.slot]! > s) s = st.unitFree[p.slot]!;
    for (const r of p.reads) s = maxOver(st.writeReady, r, s);
    if (p.write) {
      s = maxOver(st.writeReady, p.write, s);
      s = maxOver(st.readEnd, p.write, s);
    }
    let end = s + p.cycles;
    if (p.ins.op === "recv" && mailbox.arrival[p.msg]! > end) end = mailbox.arrival[p.msg]!;
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
      default:
        this.vector.exec(ins as VectorInstr, mem, steps);
    }
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

function copyWords(from: Memory, fromAddr: number, to: Memory, toAddr: number, len: number): void {
  for (let i = 0; i < len; i++) to[toAddr + i] = from[fromAddr + i]!;
}
