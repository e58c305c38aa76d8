// The report's Gantt chart and `imssa-run --trace` show the same schedule: both are the
// interpreter's timeline, the trace made from it and the chart read back from the trace.

import { describe, expect, test } from "@jest/globals";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import { SECTION_NAMES, type Program } from "../src/backend/program.js";
import { Machine, type ScheduledInstr } from "../src/interp/machine.js";
import { runProgram } from "../src/interp/run.js";
import { buildTimeline, timelineFromTrace, timelineToTrace, traceFile, type SectionSpan, type TraceEvent } from "../src/interp/trace.js";
import { compile, loadModel } from "../src/pipeline.js";
import { collectReport } from "../src/report/index.js";
import { layerColors } from "../src/report/layers.js";
import { renderTimeline } from "../src/report/render-timeline.js";
import { loadTarget } from "../src/target/load.js";

const target = loadTarget("xbar64");
const program: Program = decodeProgram(encodeProgram(compile(loadModel("examples/tiny.s4d"), target).program), "tiny.xbin");

interface Bar {
  tile: number;
  unit: string;
  op: string;
  symbol: string;
  start: number;
  end: number;
  pc: number;
}

const order = (a: Bar, b: Bar): number => a.tile - b.tile || a.unit.localeCompare(b.unit) || a.pc - b.pc;

/** The first step's instructions in a Chrome trace, relative to the step's start. */
function stepBarsOfTrace(events: readonly TraceEvent[]): Bar[] {
  const threads = new Map(events.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => [`${e.pid}:${e.tid}`, String(e.args!["name"])]));
  const span = events.find((e) => e.cat === "section" && e.name === "step 0")!;
  const stepStart = Number(span.args!["startCycle"]);
  return events
    .filter((e) => e.ph === "X" && e.cat === "step")
    .map((e) => ({
      tile: e.pid,
      unit: threads.get(`${e.pid}:${e.tid}`)!,
      op: String(e.args!["op"]),
      symbol: String(e.args!["symbol"]),
      start: Number(e.args!["startCycle"]) - stepStart,
      end: Number(e.args!["endCycle"]) - stepStart,
      pc: Number(e.args!["pc"]),
    }));
}

describe("timeline and trace", () => {
  test("the report's chart has exactly the step events imssa-run --trace writes", () => {
    const steps = 4;
    const x = new Float32Array(steps);
    // what imssa-run --trace writes
    const run = runProgram(program, x, [1, steps, 1], { trace: true });
    const file = JSON.parse(JSON.stringify(traceFile(run.trace!, { model: "tiny" }))) as { traceEvents: TraceEvent[] };
    const traced = stepBarsOfTrace(file.traceEvents).sort(order);
    // what imssa-report draws
    const d = collectReport(program, { programFile: "tiny.xbin", input: null, steps });
    const { data } = renderTimeline(d, layerColors(d.summary));
    const drawn = [...data.bars].sort(order);
    expect(drawn.length).toBeGreaterThan(0);
    expect(drawn).toEqual(traced);
    // the chart spans the step's cycles as the run report counts them
    expect(data.cycles).toBe(run.report.sections.stepFirst.cycles);
  });

  test("timelineFromTrace inverts timelineToTrace, and trace times are the cycles at the clock", () => {
    const machine = new Machine(program, target, "tiny.xbin");
    machine.resetSequence();
    const schedule: ScheduledInstr[] = [];
    const spans: SectionSpan[] = [];
    for (const name of SECTION_NAMES) {
      const r = machine.runSection(name, 1, schedule);
      spans.push({ name, start: r.start, cycles: r.cycles });
    }
    const tl = buildTimeline(program, schedule, spans);
    expect(tl.bars.length).toBe(schedule.length);
    const events = timelineToTrace(tl, target.clockHz);
    // empty sections are left out of the trace (viewers drop zero-length events)
    expect(timelineFromTrace(events)).toEqual({ ...tl, sections: tl.sections.filter((s) => s.cycles > 0) });
    const cyclesPerUs = target.clockHz / 1e6;
    for (const e of events.filter((x) => x.ph === "X")) {
      expect(e.ts).toBeCloseTo(Number(e.args!["startCycle"]) / cyclesPerUs, 9);
      if (e.cat !== "section") expect(e.dur).toBeCloseTo((Number(e.args!["endCycle"]) - Number(e.args!["startCycle"])) / cyclesPerUs, 9);
    }
  });
});
