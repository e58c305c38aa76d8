// Cycle counts pinned to values derived by hand from the target parameters. The test target
// ("small") has round numbers:
//   crossbar 8x8, 4-bit bit-serial DAC (1 cycle/bit), 10 integration cycles, 2 ADCs at 1 cycle
//     -> full 8x8 MVM = DAC 4*1 + integration 10 + ADC ceil(8/2)*1 + local ceil((8+8)/4) = 4+10+4+4 = 22
//   vector: 4 lanes; add 1, mul 2, relu 1, gelu 5, sigmoid 3, tanh 3, reduce 2 cycles per lane group
//   global memory: latency 10, 2 words/cycle -> load/store of n words = 10 + ceil(n/2)
//   interconnect: latency 5, 2 words/cycle -> send of n words occupies the port ceil(n/2), arrives 5 later
//   energy: cell 1 pJ, DAC 2, ADC 3, vector op 4, local word 5, global word 6, interconnect word 7;
//     static 1 mW at 1 GHz = 1 pJ per cycle

import { describe, expect, test } from "@jest/globals";
import type { Instr } from "../src/backend/isa.js";
import { runProgram } from "../src/interp/run.js";
import { loadTarget } from "../src/target/load.js";
import { ProgramBuilder, smallTimingTarget as small } from "./helpers/program-builder.js";

const levels = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 7) - 3);

function builder(target = small(), tiles = 1): ProgramBuilder {
  const b = new ProgramBuilder(target, { tiles, memoryWords: 128, globalWords: 128 });
  b.input("x", 8, 0).stepOutput("y", 8, 32);
  for (let t = 0; t < tiles; t++) {
    b.crossbar({ tile: t, rows: 8, cols: 8, levels: levels(64) });
    b.crossbar({ tile: t, rows: 8, cols: 8, levels: levels(64).reverse() });
  }
  return b;
}

/** Runs one step (T = 1) and returns the report. */
function stepReport(b: ProgramBuilder, opts: { trace?: boolean } = {}) {
  return runProgram(b.build(), new Float32Array(8).fill(0.25), [1, 1, 8], opts);
}

const mvm = (xbar: number, src: number, dst: number, cols = 8): Instr => ({ op: "mvm", xbar, rowStart: 0, rows: 8, colStart: 0, cols, src, dst, acc: false });

describe("single-instruction latencies", () => {
  test("load: globalLatency + ceil(len / globalWordsPerCycle)", () => {
    // 10 + ceil(5/2) = 13
    const r = stepReport(builder().emit(0, "step", { op: "load", dst: 0, global: 0, len: 5 }));
    expect(r.report.sections.stepFirst.cycles).toBe(13);
  });

  test("mvm phases: full window and narrow window", () => {
    expect(stepReport(builder().emit(0, "step", mvm(0, 0, 8))).report.sections.stepFirst.cycles).toBe(22);
    // 8 rows x 3 cols: DAC 4 + 10 + ADC ceil(3/2) = 2 + local ceil(11/4) = 3 -> 19
    expect(stepReport(builder().emit(0, "step", mvm(0, 0, 8, 3))).report.sections.stepFirst.cycles).toBe(19);
  });

  test("parallel DAC takes dacCyclesPerBit once", () => {
    const t = small((t) => {
      t.crossbar.inputMode = "parallel";
      t.crossbar.dacCyclesPerBit = 3;
    });
    // DAC 3 + 10 + 4 + 4 = 21
    expect(stepReport(builder(t).emit(0, "step", mvm(0, 0, 8))).report.sections.stepFirst.cycles).toBe(21);
  });

  test("xbar64: a full 64x64 MVM takes 34 cycles", () => {
    // 8-bit bit-serial DAC at 1 cycle/bit = 8, integration 10, ADC ceil(64/8)*1 = 8, local ceil(128/16) = 8
    const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 256, globalWords: 64 });
    b.input("x", 1, 0);
    b.crossbar({ tile: 0, rows: 64, cols: 64, levels: new Array(4096).fill(1) });
    b.emit(0, "step", { op: "mvm", xbar: 0, rowStart: 0, rows: 64, colStart: 0, cols: 64, src: 0, dst: 64, acc: false });
    expect(runProgram(b.build(), new Float32Array(1), [1, 1, 1]).report.sections.stepFirst.cycles).toBe(34);
  });

  test.each<[string, Instr, number]>([
    ["vadd len 8: 2 groups x add 1", { op: "vadd", dst: 16, a: 0, b: 8, len: 8 }, 2],
    ["vmul len 9: 3 groups x mul 2", { op: "vmul", dst: 16, a: 0, b: 8, len: 9 }, 6],
    ["vgelu len 5: 2 groups x gelu 5", { op: "vgelu", dst: 16, a: 0, len: 5 }, 10],
    ["vtanh len 4: 1 group x tanh 3", { op: "vtanh", dst: 16, a: 0, len: 4 }, 3],
    ["vglu len 8: 2 groups x (mul 2 + sigmoid 3)", { op: "vglu", dst: 16, a: 0, len: 8 }, 10],
    ["vnorm len 8: 2 groups x (2 reduce 2 + add 1 + mul 2)", { op: "vnorm", dst: 16, a: 0, len: 8, imm: 1e-5 }, 14],
    ["vaffine len 4: 1 group x add 1", { op: "vaffine", dst: 16, a: 0, c: 40, len: 4 }, 1],
    ["vscale len 16: 4 groups x add 1", { op: "vscale", dst: 16, a: 0, len: 16, imm: 2 }, 4],
  ])("%s", (_name, ins, cycles) => {
    expect(stepReport(builder().emit(0, "step", ins)).report.sections.stepFirst.cycles).toBe(cycles);
  });
});

describe("scoreboard and unit occupancy", () => {
  // load x [0,14) -> mvm waits for x: [14,36) -> vrelu waits for the MVM result: [36,38)
  // -> store waits for the relu result: [38, 38 + 10 + 4 = 52)
  const pipeline = (): ProgramBuilder =>
    builder().emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 8 },
      mvm(0, 0, 8),
      { op: "vrelu", dst: 16, a: 8, len: 8 },
      { op: "store", global: 32, src: 16, len: 8 },
    ]);

  test("dependency stalls: each instruction waits for its operands", () => {
    const r = stepReport(pipeline()).report;
    const s = r.sections.stepFirst;
    expect(s.cycles).toBe(52);
    expect(s.busyCycles).toEqual({ crossbar: 22, vector: 2, loadStore: 28, network: 0 });
    // 2 crossbars, 1 vector unit, 1 port each
    expect(s.utilization.crossbar).toBeCloseTo(22 / (2 * 52), 12);
    expect(s.utilization.vector).toBeCloseTo(2 / 52, 12);
    expect(s.utilization.loadStore).toBeCloseTo(28 / 52, 12);
  });

  test("energy per step by component", () => {
    const e = stepReport(pipeline()).report.energyPj.perStep;
    // cells 8*8*1 = 64; DAC 8*2 = 16; ADC 8*3 = 24; vector 8 element ops * 4 = 32;
    // local words: load 8 + mvm (8+8) + relu (8 read + 8 written) + store 8 = 48 -> 240;
    // global words 8 + 8 = 16 -> 96; static 52 cycles * 1 pJ = 52
    expect(e).toEqual({ cells: 64, dac: 16, adc: 24, vector: 32, localMemory: 240, globalMemory: 96, interconnect: 0, static: 52, total: 524 });
  });

  test("unit busy: back-to-back MVMs on one crossbar serialize, on two crossbars overlap", () => {
    // Inputs come from memory already there (no dependency): same crossbar [0,22) then [22,44)
    expect(stepReport(builder().emit(0, "step", [mvm(0, 0, 8), mvm(0, 0, 16)])).report.sections.stepFirst.cycles).toBe(44);
    // different crossbars: issue at 0 and 1 -> [0,22) and [1,23)
    expect(stepReport(builder().emit(0, "step", [mvm(0, 0, 8), mvm(1, 0, 16)])).report.sections.stepFirst.cycles).toBe(23);
  });

  test("in-order issue at most one per cycle across independent units", () => {
    // load [0,12) (4 words: 10 + 2), mvm [1,23), vcopy [2,3): the MVM ends last
    const r = stepReport(
      builder().emit(0, "step", [
        { op: "load", dst: 64, global: 0, len: 4 },
        mvm(0, 0, 8),
        { op: "vcopy", dst: 40, a: 48, len: 4 },
      ]),
      { trace: true },
    );
    expect(r.report.sections.stepFirst.cycles).toBe(23);
    const starts = r.trace!.filter((e) => e.ph === "X" && e.cat === "step").map((e) => [e.name, e.ts, e.dur]);
    expect(starts).toEqual([
      ["load main", 0, 0.012],
      ["mvm main", 0.001, 0.022],
      ["vcopy main", 0.002, 0.001],
    ]);
  });

  test("write-after-read: an overwrite of an MVM's input waits until the MVM is done", () => {
    // mvm reads [0,8) during [0,22); vcopy into [0,4) may start only at 22 -> [22,23)
    expect(stepReport(builder().emit(0, "step", [mvm(0, 0, 8), { op: "vcopy", dst: 0, a: 48, len: 4 }])).report.sections.stepFirst.cycles).toBe(23);
    // the same copy into unrelated words does not wait: [1,2) and the section ends with the MVM at 22
    expect(stepReport(builder().emit(0, "step", [mvm(0, 0, 8), { op: "vcopy", dst: 60, a: 48, len: 4 }])).report.sections.stepFirst.cycles).toBe(22);
  });

  test("write-after-write: a later writer of the same words waits for the earlier one", () => {
    // mvm writes [8,16) at 22; vcopy into [8,12) waits until 22 -> [22,23)
    expect(stepReport(builder().emit(0, "step", [mvm(0, 0, 8), { op: "vcopy", dst: 8, a: 48, len: 4 }])).report.sections.stepFirst.cycles).toBe(23);
  });

  test("partial sums: an accumulating MVM on another crossbar waits for the first result", () => {
    // xbar0 writes [8,16) at 22; xbar1 with acc reads [8,16) -> starts at 22 -> [22,44)
    const acc: Instr = { op: "mvm", xbar: 1, rowStart: 0, rows: 8, colStart: 0, cols: 8, src: 0, dst: 8, acc: true };
    expect(stepReport(builder().emit(0, "step", [mvm(0, 0, 8), acc])).report.sections.stepFirst.cycles).toBe(44);
  });
});

describe("tiles, messages and sections", () => {
  test("send/recv: the receiver waits for the data; recv blocks issue", () => {
    const b = builder(small(), 2);
    // tile 0: load [0,12); send 4 words waits for them: [12,14), arrives at 14 + 5 = 19
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 4 },
      { op: "send", peer: 1, src: 0, len: 4, tag: 0 },
    ]);
    // tile 1: recv issues at 0 and completes at 19; the independent vcopy after it issues only
    // at 19 -> [19,20); vrelu on the data [20,21); store [21, 21 + 10 + 2 = 33)
    b.emit(1, "step", [
      { op: "recv", peer: 0, dst: 0, len: 4, tag: 0 },
      { op: "vcopy", dst: 60, a: 50, len: 4 },
      { op: "vrelu", dst: 8, a: 0, len: 4 },
      { op: "store", global: 32, src: 8, len: 4 },
    ]);
    const r = stepReport(b, { trace: true });
    expect(r.report.sections.stepFirst.cycles).toBe(33);
    expect(r.report.sections.stepFirst.busyCycles.network).toBe(2);
    expect(r.report.energyPj.perStep.interconnect).toBe(4 * 7);
    const recv = r.trace!.find((e) => e.ph === "X" && e.pid === 1 && e.name.startsWith("recv"));
    expect([recv?.ts, recv?.dur]).toEqual([0, 0.019]);
  });

  test("recv completes at the arrival time, or one cycle after issue if the data is already there", () => {
    const b = builder(small(), 2);
    // tile 0: send of memory contents at [0,2), arrives at 7. tile 1: load [0,12); recv issues at 1,
    // waits for the data until 7 -> [1,7); the dependent copy runs [7,8). The load ends the section at 12.
    b.emit(0, "step", { op: "send", peer: 1, src: 0, len: 4, tag: 0 });
    b.emit(1, "step", [
      { op: "load", dst: 40, global: 0, len: 4 },
      { op: "recv", peer: 0, dst: 0, len: 4, tag: 0 },
      { op: "vcopy", dst: 8, a: 0, len: 4 },
    ]);
    const r = stepReport(b, { trace: true });
    expect(r.report.sections.stepFirst.cycles).toBe(12);
    const copy = r.trace!.find((e) => e.ph === "X" && e.pid === 1 && e.name.startsWith("vcopy"));
    expect(copy?.ts).toBe(0.007);

    // Now tile 1 stalls on the load result before the recv: copy of loaded data [12,13), recv issues
    // at 13 with the data long there -> [13,14), dependent copy [14,15).
    const b2 = builder(small(), 2);
    b2.emit(0, "step", { op: "send", peer: 1, src: 0, len: 4, tag: 0 });
    b2.emit(1, "step", [
      { op: "load", dst: 40, global: 0, len: 4 },
      { op: "vcopy", dst: 50, a: 40, len: 4 },
      { op: "recv", peer: 0, dst: 0, len: 4, tag: 0 },
      { op: "vcopy", dst: 8, a: 0, len: 4 },
    ]);
    const r2 = stepReport(b2, { trace: true });
    expect(r2.report.sections.stepFirst.cycles).toBe(15);
    const recv = r2.trace!.find((e) => e.ph === "X" && e.pid === 1 && e.name.startsWith("recv"));
    expect([recv?.ts, recv?.dur]).toEqual([0.013, 0.001]);
  });

  test("sections run back to back; first and steady steps; totals", () => {
    const b = builder();
    b.emit(0, "init", { op: "load", dst: 0, global: 0, len: 2 }); // 10 + 1 = 11
    b.emit(0, "step", [{ op: "load", dst: 0, global: 0, len: 8 }, mvm(0, 0, 8)]); // [0,14) then [14,36)
    b.emit(0, "final", { op: "vcopy", dst: 0, a: 8, len: 8 }); // 2
    const r = runProgram(b.build(), new Float32Array(2 * 3 * 8), [2, 3, 8], { trace: true }).report;
    expect(r.sections.init.cycles).toBe(11);
    expect(r.sections.stepFirst.cycles).toBe(36);
    expect(r.sections.stepSteady!.cycles).toBe(36);
    expect(r.sections.final.cycles).toBe(2);
    expect(r.sequenceCycles).toBe(11 + 3 * 36 + 2);
    expect(r.totalCycles).toBe(2 * (11 + 3 * 36 + 2));
    expect(r.latency.stepSeconds).toBeCloseTo(36e-9, 18);
    expect(r.throughput.stepsPerSecond).toBeCloseTo(1e9 / 36, 3);
    expect(r.throughput.macsPerSecond).toBeCloseTo((2 * 3 * 64) / (r.totalCycles * 1e-9), 0);
    // static energy per sequence: 121 cycles at 1 pJ per cycle
    expect(r.energyPj.perSequence.static).toBeCloseTo(121, 9);
  });

  test("the trace covers init, the first step and final with one process per tile", () => {
    const b = builder(small(), 2);
    b.emit(0, "init", { op: "load", dst: 0, global: 0, len: 2 });
    b.emit(0, "step", [{ op: "load", dst: 0, global: 0, len: 8 }, mvm(1, 0, 8), { op: "send", peer: 1, src: 8, len: 8, tag: 2 }]);
    b.emit(1, "step", [{ op: "recv", peer: 0, dst: 0, len: 8, tag: 2 }, { op: "store", global: 32, src: 0, len: 8 }]);
    b.emit(1, "final", { op: "vcopy", dst: 8, a: 0, len: 8 });
    const r = runProgram(b.build(), new Float32Array(3 * 8), [1, 3, 8], { trace: true });
    const ev = r.trace!;
    const names = (pid: number): string[] => ev.filter((e) => e.ph === "M" && e.pid === pid && e.name === "thread_name").map((e) => String(e.args!.name));
    expect(names(0)).toEqual(["vector unit", "load/store port", "network send", "network recv", "crossbar 0", "crossbar 1"]);
    expect(names(2)).toEqual(["sections"]);
    const spans = ev.filter((e) => e.cat === "section").map((e) => e.name);
    expect(spans).toEqual(["init", "step 0", "final"]);
    // the final span starts after all three steps, which overlap (docs/TIMING.md): step 0 ends
    // at 70 (below). Step 1: tile 0 issues the cycle after the send started (48); its load
    // waits for the mvm reading words 0..8 to end (47) and for the host's input write (after
    // step 0's load, 25): [48,62); mvm [62,84); send [84,88) arrives 93; tile 1's recv
    // completes at 93, store [93,107). Step 2 is step 1 shifted by 37: ends at 144.
    expect(ev.find((e) => e.name === "final" && e.cat === "section")!.ts).toBe((11 + 59 + 2 * 37) / 1000);
    expect(r.report.sections.stepSteady!.cycles).toBe(37);
    // init 11 cycles; step 0: load [11,25), mvm on crossbar 1 [25,47), send [47,51) arrives 56,
    // recv on tile 1 [11,56), store [56,70)
    const mvmEv = ev.find((e) => e.ph === "X" && e.name.startsWith("mvm"))!;
    expect(mvmEv.tid).toBe(11);
    expect([mvmEv.ts, mvmEv.dur]).toEqual([0.025, 0.022]);
    const store = ev.find((e) => e.ph === "X" && e.pid === 1 && e.name.startsWith("store"))!;
    expect(store.args!.startCycle).toBe(56);
    expect(r.report.sections.stepFirst.cycles).toBe(70 - 11);
    // only one step's instructions are traced though T = 3
    expect(ev.filter((e) => e.ph === "X" && e.cat === "step").length).toBe(5);
  });

  test("reusing the first run's schedule gives the same report as re-timing every run", () => {
    const b = builder(small(), 3);
    b.emit(0, "init", { op: "load", dst: 0, global: 0, len: 8 });
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 8 },
      mvm(0, 0, 8),
      { op: "send", peer: 1, src: 8, len: 8, tag: 0 },
      { op: "send", peer: 2, src: 8, len: 4, tag: 0 },
      { op: "recv", peer: 2, dst: 20, len: 4, tag: 1 },
      { op: "vadd", dst: 8, a: 8, b: 20, len: 4 },
      { op: "store", global: 32, src: 8, len: 8 },
    ]);
    b.emit(1, "step", [{ op: "recv", peer: 0, dst: 0, len: 8, tag: 0 }, mvm(2, 0, 8), mvm(3, 0, 16), { op: "vgelu", dst: 8, a: 8, len: 16 }]);
    b.emit(2, "step", [{ op: "recv", peer: 0, dst: 0, len: 4, tag: 0 }, { op: "vnorm", dst: 4, a: 0, len: 4, imm: 0.1 }, { op: "send", peer: 0, src: 4, len: 4, tag: 1 }]);
    b.emit(1, "final", { op: "vdivsteps", dst: 0, a: 8, len: 8 });
    const p = b.build();
    const x = Float32Array.from({ length: 2 * 4 * 8 }, (_, i) => Math.cos(i));
    const cached = runProgram(p, x, [2, 4, 8]);
    const retimed = runProgram(p, x, [2, 4, 8], { retime: true });
    expect(JSON.stringify(retimed.report)).toBe(JSON.stringify(cached.report));
    expect(Array.from(retimed.step!)).toEqual(Array.from(cached.step!));
    expect(cached.report.sections.stepFirst.cycles).toBeGreaterThan(0);
  });
});
