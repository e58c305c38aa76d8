// Chrome Trace Event format (opens in Perfetto / chrome://tracing): one process per tile,
// one thread per execution unit, one complete ("X") event per instruction. Cycles are
// converted to microseconds at the target clock so the time axis is real time.

import type { Program } from "../backend/program.js";
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

export interface SectionSpan {
  name: string;
  start: number;
  cycles: number;
}

export function buildTrace(p: Program, clockHz: number, schedule: ScheduledInstr[], sections: SectionSpan[]): TraceEvent[] {
  // one division by the cycles per microsecond keeps round cycle counts exact in the trace
  const cyclesPerUs = clockHz / 1e6;
  const us = (cycles: number): number => cycles / cyclesPerUs;
  const events: TraceEvent[] = [];
  const meta = (pid: number, tid: number | null, name: string): void => {
    if (tid === null) events.push({ name: "process_name", ph: "M", pid, tid: 0, ts: 0, args: { name } });
    else events.push({ name: "thread_name", ph: "M", pid, tid, ts: 0, args: { name } });
  };
  const crossbarTid = new Map<number, number>();
  p.tiles.forEach((_, ti) => {
    meta(ti, null, `tile ${ti}`);
    events.push({ name: "process_sort_index", ph: "M", pid: ti, tid: 0, ts: 0, args: { sort_index: ti } });
    meta(ti, TID_VECTOR, "vector unit");
    meta(ti, TID_LOAD_STORE, "load/store port");
    meta(ti, TID_SEND, "network send");
    meta(ti, TID_RECV, "network recv");
  });
  const perTile = new Array<number>(p.tiles.length).fill(0);
  for (const x of p.crossbars) {
    const tid = TID_CROSSBAR + perTile[x.tile]!++;
    crossbarTid.set(x.id, tid);
    meta(x.tile, tid, `crossbar ${x.id}`);
  }
  const chip = p.tiles.length;
  meta(chip, null, "chip");
  meta(chip, TID_SECTIONS, "sections");
  // Empty sections (e.g. no init code) would be zero-length events, which viewers drop or warn about.
  for (const s of sections.filter((x) => x.cycles > 0)) events.push({ name: s.name, ph: "X", cat: "section", pid: chip, tid: TID_SECTIONS, ts: us(s.start), dur: us(s.cycles), args: { cycles: s.cycles } });

  for (const e of schedule) {
    const tid =
      e.unitKind === "crossbar" ? crossbarTid.get(e.xbar!)! : e.unitKind === "vector" ? TID_VECTOR : e.unitKind === "loadStore" ? TID_LOAD_STORE : e.unitKind === "network" ? TID_SEND : TID_RECV;
    events.push({
      name: e.symbol ? `${e.op} ${e.symbol}` : e.op,
      ph: "X",
      cat: e.section,
      pid: e.tile,
      tid,
      ts: us(e.start),
      dur: us(e.end - e.start),
      args: { pc: e.pc, section: e.section, startCycle: e.start, endCycle: e.end, symbol: e.symbol },
    });
  }
  return events;
}

export function traceFile(events: TraceEvent[], info: Record<string, string | number>): TraceFile {
  return { traceEvents: events, displayTimeUnit: "ns", otherData: info };
}
