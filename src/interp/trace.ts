// The schedule of traced section runs in two equivalent forms:
//   - a Timeline (lanes = execution units per tile, bars = instructions, in cycles), what
//     imssa-report draws as its Gantt chart;
//   - Chrome Trace Event format (opens in Perfetto / chrome://tracing), what `imssa-run
//     --trace` writes: one process per tile, one thread per execution unit, one complete
//     ("X") event per instruction. Cycles are converted to microseconds at the target clock
//     so the time axis is real time; every event also carries its exact cycles in `args`.
// The trace is made from the timeline and timelineFromTrace inverts it exactly, so the
// report's chart and the trace file always show the same events.

import type { Program, SectionName } from "../backend/program.js";
import type { ScheduledInstr } from "./machine.js";

export interface TraceEvent {
  name: string;
  ph: "X" | "M";
  pid: number;
  tid: number;
  /** Microseconds. */
  ts: number;
  dur?: number;
  cat?: string;
  args?: Record<string, string | number>;
}

export interface TraceFile {
  traceEvents: TraceEvent[];
  displayTimeUnit: "ns";
  otherData: Record<string, string | number>;
}

const TID_VECTOR = 1;
const TID_LOAD_STORE = 2;
const TID_SEND = 3;
const TID_RECV = 4;
const TID_CROSSBAR = 10;

/** Section spans live in an extra process after the tiles. */
const TID_SECTIONS = 1;
const CHIP_PROCESS = "chip";

export interface SectionSpan {
  name: string;
  start: number;
  cycles: number;
}

/** One execution unit of one tile: a row of the chart, a thread of the trace. */
export interface TimelineLane {
  tile: number;
  tid: number;
  name: string;
}

/** One executed instruction on its lane. Times in absolute cycles. */
export interface TimelineBar {
  tile: number;
  tid: number;
  section: SectionName;
  pc: number;
  op: string;
  symbol: string;
  start: number;
  end: number;
}

export interface Timeline {
  tiles: number;
  /** Ordered by tile, then thread id. */
  lanes: TimelineLane[];
  bars: TimelineBar[];
  sections: SectionSpan[];
}

/** The lanes of every tile: its vector unit, load/store port, network send and receive, then its crossbars. */
function lanesOf(p: Program): { lanes: TimelineLane[]; crossbarTid: Map<number, number> } {
  const lanes: TimelineLane[] = [];
  const crossbarTid = new Map<number, number>();
  p.tiles.forEach((_, tile) => {
    lanes.push({ tile, tid: TID_VECTOR, name: "vector unit" }, { tile, tid: TID_LOAD_STORE, name: "load/store port" }, { tile, tid: TID_SEND, name: "network send" }, { tile, tid: TID_RECV, name: "network recv" });
  });
  const perTile = new Array<number>(p.tiles.length).fill(0);
  for (const x of p.crossbars) {
    const tid = TID_CROSSBAR + perTile[x.tile]!++;
    crossbarTid.set(x.id, tid);
    lanes.push({ tile: x.tile, tid, name: `crossbar ${x.id}` });
  }
  lanes.sort((a, b) => a.tile - b.tile || a.tid - b.tid);
  return { lanes, crossbarTid };
}

export function buildTimeline(p: Program, schedule: readonly ScheduledInstr[], sections: readonly SectionSpan[]): Timeline {
  const { lanes, crossbarTid } = lanesOf(p);
  const bars = schedule.map(
    (e): TimelineBar => ({
      tile: e.tile,
      tid: e.unitKind === "crossbar" ? crossbarTid.get(e.xbar!)! : e.unitKind === "vector" ? TID_VECTOR : e.unitKind === "loadStore" ? TID_LOAD_STORE : e.unitKind === "network" ? TID_SEND : TID_RECV,
      section: e.section,
      pc: e.pc,
      op: e.op,
      symbol: e.symbol,
      start: e.start,
      end: e.end,
    }),
  );
  return { tiles: p.tiles.length, lanes, bars, sections: sections.map((s) => ({ ...s })) };
}

export function timelineToTrace(t: Timeline, clockHz: number): TraceEvent[] {
  // one division by the cycles per microsecond keeps round cycle counts exact in the trace
  const cyclesPerUs = clockHz / 1e6;
  const us = (cycles: number): number => cycles / cyclesPerUs;
  const events: TraceEvent[] = [];
  const processName = (pid: number, name: string): void => {
    events.push({ name: "process_name", ph: "M", pid, tid: 0, ts: 0, args: { name } });
  };
  const threadName = (pid: number, tid: number, name: string): void => {
    events.push({ name: "thread_name", ph: "M", pid, tid, ts: 0, args: { name } });
  };
  for (let tile = 0; tile < t.tiles; tile++) {
    processName(tile, `tile ${tile}`);
    events.push({ name: "process_sort_index", ph: "M", pid: tile, tid: 0, ts: 0, args: { sort_index: tile } });
  }
  for (const lane of t.lanes) threadName(lane.tile, lane.tid, lane.name);
  const chip = t.tiles;
  processName(chip, CHIP_PROCESS);
  threadName(chip, TID_SECTIONS, "sections");
  // Empty sections (e.g. no init code) would be zero-length events, which viewers drop or warn about.
  for (const s of t.sections.filter((x) => x.cycles > 0))
    events.push({ name: s.name, ph: "X", cat: "section", pid: chip, tid: TID_SECTIONS, ts: us(s.start), dur: us(s.cycles), args: { startCycle: s.start, cycles: s.cycles } });

  for (const e of t.bars) {
    events.push({
      name: e.symbol ? `${e.op} ${e.symbol}` : e.op,
      ph: "X",
      cat: e.section,
      pid: e.tile,
      tid: e.tid,
      ts: us(e.start),
      dur: us(e.end - e.start),
      args: { op: e.op, pc: e.pc, section: e.section, startCycle: e.start, endCycle: e.end, symbol: e.symbol },
    });
  }
  return events;
}

export function buildTrace(p: Program, clockHz: number, schedule: readonly ScheduledInstr[], sections: readonly SectionSpan[]): TraceEvent[] {
  return timelineToTrace(buildTimeline(p, schedule, sections), clockHz);
}

/**
 * The timeline a trace was made from (timelineToTrace's inverse; empty sections, which the
 * trace leaves out, stay out). Cycles come from the events' args, not from the rounded
 * microsecond times.
 */
export function timelineFromTrace(events: readonly TraceEvent[]): Timeline {
  const chipEvent = events.find((e) => e.ph === "M" && e.name === "process_name" && e.args?.["name"] === CHIP_PROCESS);
  if (!chipEvent) throw new Error("internal error: the trace has no chip process");
  const chip = chipEvent.pid;
  const lanes: TimelineLane[] = [];
  const bars: TimelineBar[] = [];
  const sections: SectionSpan[] = [];
  for (const e of events) {
    const a = e.args ?? {};
    if (e.ph === "M") {
      if (e.name === "thread_name" && e.pid !== chip) lanes.push({ tile: e.pid, tid: e.tid, name: String(a["name"]) });
    } else if (e.pid === chip) {
      sections.push({ name: e.name, start: Number(a["startCycle"]), cycles: Number(a["cycles"]) });
    } else {
      bars.push({
        tile: e.pid,
        tid: e.tid,
        section: String(a["section"]) as SectionName,
        pc: Number(a["pc"]),
        op: String(a["op"]),
        symbol: String(a["symbol"]),
        start: Number(a["startCycle"]),
        end: Number(a["endCycle"]),
      });
    }
  }
  return { tiles: chip, lanes, bars, sections };
}

export function traceFile(events: TraceEvent[], info: Record<string, string | number>): TraceFile {
  return { traceEvents: events, displayTimeUnit: "ns", otherData: info };
}
