// Overlapped steps (docs/TIMING.md "Sections and steps"): first-step latency and steady-state
// interval of small pipelines, derived by hand from the test target below, and the interval
// bounds of src/cost/bound.ts (docs/SCHEDULE.md).
//
// Target "small": 8x8 crossbars, 4-bit bit-serial DAC, 10 integration cycles, 2 ADCs:
//   full 8x8 MVM = 4 + 10 + ceil(8/2) + ceil((8+8)/4) = 22 cycles
//   load/store of n words = 10 + ceil(n/2); send of n words occupies the port ceil(n/2) and
//   arrives 5 cycles after it ends; vector: 4 lanes, add 1 cycle per lane group.

import { describe, expect, test } from "@jest/globals";
import type { Instr } from "../src/backend/isa.js";
import { stepBounds } from "../src/cost/bound.js";
import { Machine } from "../src/interp/machine.js";
import { runProgram } from "../src/interp/run.js";
import type { Target } from "../src/target/types.js";
import { ProgramBuilder, smallTimingTarget } from "./helpers/program-builder.js";

const small: Target = smallTimingTarget();

const levels = (n: number, k: number): number[] => Array.from({ length: n }, (_, i) => ((i + k) % 7) - 3);
const mvm = (xbar: number, src: number, dst: number): Instr => ({ op: "mvm", xbar, rowStart: 0, rows: 8, colStart: 0, cols: 8, src, dst, acc: false });

function builder(tiles: number): ProgramBuilder {
  const b = new ProgramBuilder(small, { tiles, memoryWords: 64, globalWords: 64 });
  b.input("x", 8, 0).stepOutput("y", 8, 32);
  for (let t = 0; t < tiles; t++) b.crossbar({ tile: t, rows: 8, cols: 8, levels: levels(64, t) });
  return b;
}

/**
 * Two stages on two tiles: tile 0 loads x_t and multiplies (stage 1), tile 1 multiplies
 * again and stores y_t (stage 2).
 */
function twoStage(): ReturnType<ProgramBuilder["build"]> {
  const b = builder(2);
  b.emit(0, "step", [{ op: "load", dst: 0, global: 0, len: 8 }, mvm(0, 0, 8), { op: "send", peer: 1, src: 8, len: 8, tag: 0 }]);
  b.emit(1, "step", [{ op: "recv", peer: 0, dst: 0, len: 8, tag: 0 }, mvm(1, 0, 8), { op: "store", global: 32, src: 8, len: 8 }]);
  return b.build();
}

describe("two-stage pipeline", () => {
  // Step 0 (from 0): tile 0 load [0,14), mvm [14,36), send [36,40) arrives 45; tile 1 recv
  // completes 45, mvm [45,67), store [67,81): first step 81.
  // Step 1: tile 0 issues at 37 (the cycle after the send started); its load waits for the
  // host's write of x_1 (after step 0's load, 14) and for the mvm reading words 0..8 (36):
  // [37,51); mvm [51,73); send [73,77) arrives 82. Tile 1: recv issues at 68 (after the
  // store started), waits for the mvm reading 0..8 (67), completes at 82; mvm [82,104);
  // store [104,118): step 1 ends at 118, 37 cycles after step 0.
  // Step 2 is step 1 shifted by 37: tile 0's loop load 14 + mvm 22 + 1 issue cycle of the
  // send is the slowest stage (tile 1's is mvm 22 + 1).
  test("first step 81 cycles, steady-state interval 37 (stage 1: load 14 + mvm 22 + issue 1)", () => {
    const T = 5;
    const r = runProgram(twoStage(), new Float32Array(T * 8).fill(0.25), [1, T, 8]).report;
    expect(r.sections.stepFirst.cycles).toBe(81);
    expect(r.sections.stepSteady!.cycles).toBe(37);
    expect(r.sequenceCycles).toBe(81 + (T - 1) * 37);
  });

  test("each step's schedule by hand: steps 0..2 end at 81, 118, 155", () => {
    const m = new Machine(twoStage(), small, "two-stage");
    m.resetSequence();
    m.runSection("init", 3);
    const ends = [0, 1, 2].map(() => {
      const r = m.runSection("step", 3);
      return r.start + r.cycles;
    });
    expect(ends).toEqual([81, 118, 155]);
    expect(m.stepTiming()).toEqual({ first: 81, steady: 37 });
  });

  test("with a barrier between steps every step takes the first step's 81 cycles", () => {
    const m = new Machine(twoStage(), small, "two-stage", false, null, null, false);
    m.resetSequence();
    m.runSection("init", 3);
    expect([0, 1, 2].map(() => m.runSection("step", 3).cycles)).toEqual([81, 81, 81]);
  });

  test("values do not depend on the overlap; re-timing every step gives the same report", () => {
    const p = twoStage();
    const x = Float32Array.from({ length: 2 * 6 * 8 }, (_, i) => Math.sin(i));
    const cached = runProgram(p, x, [2, 6, 8]);
    const retimed = runProgram(p, x, [2, 6, 8], { retime: true });
    expect(JSON.stringify(retimed.report)).toBe(JSON.stringify(cached.report));
    expect(Array.from(retimed.step!)).toEqual(Array.from(cached.step!));
    expect(cached.report.totalCycles).toBe(2 * (81 + 5 * 37));
  });

  test("bounds: critical path 81 (14 + 22 + 4 + 5 + 22 + 14), busiest unit a crossbar (22), no recurrence, issue loop 37", () => {
    // Issue loop of tile 0 (src/cost/bound.ts): load starts at 0 and ends at 14, the mvm
    // reads its words: [14, 36), the send reads the mvm's: starts at 36, so step t+1's load
    // can issue at 37. Tile 1: recv (reached from its own start only: completes at 1), mvm
    // [1, 23), store [23, ...): next issue 24. The interval bound is 37, which the
    // interpreter reaches (previous test).
    expect(stepBounds(twoStage(), small)).toMatchObject({ criticalPath: 81, resource: 22, recurrence: 0, issueLoop: 37, issueLoopTile: "tile 0", lowerBound: 81, intervalBound: 37 });
  });
});

describe("recurrences bound the interval", () => {
  test("a state loop on one tile: mvm 22 + copy 2 = interval 24, equal to its bound", () => {
    // state s at 0..8: y = W s into 8..16, s = y (vcopy of 8 words on 4 lanes: 2 cycles).
    // Step 0: mvm [0,22), vcopy [22,24). Step 1: the mvm waits for s (24): [24,46), vcopy [46,48).
    const b = builder(1);
    b.emit(0, "step", [mvm(0, 0, 8), { op: "vcopy", dst: 0, a: 8, len: 8 }]);
    const p = b.build();
    const r = runProgram(p, new Float32Array(4 * 8), [1, 4, 8]).report;
    expect([r.sections.stepFirst.cycles, r.sections.stepSteady!.cycles]).toEqual([24, 24]);
    expect(stepBounds(p, small)).toMatchObject({ criticalPath: 24, recurrence: 24, intervalBound: 24 });
  });

  test("a loop through two tiles' states spans two steps: bound (53 + 9) / 2 = 31", () => {
    // Tile 0: state a at 0..8 -> mvm -> send to tile 1; recv tile 1's old state b as the new a.
    // Tile 1: send b; recv tile 0's product into 8..16 -> mvm -> new b at 0..8.
    // From a: mvm 22, send 4 + 5 latency, recv, mvm 22: b is written 53 cycles after a is
    // ready; from b: send 4 + 5: a is written 9 cycles after. The cycle a -> b -> a has
    // weight 62 over 2 steps. Each crossbar is busy 22 cycles per step.
    const b = builder(2);
    b.emit(0, "step", [mvm(0, 0, 8), { op: "send", peer: 1, src: 8, len: 8, tag: 0 }, { op: "recv", peer: 1, dst: 0, len: 8, tag: 1 }]);
    b.emit(1, "step", [{ op: "send", peer: 0, src: 0, len: 8, tag: 1 }, { op: "recv", peer: 0, dst: 8, len: 8, tag: 0 }, mvm(1, 8, 0)]);
    const p = b.build();
    const bounds = stepBounds(p, small);
    expect(bounds).toMatchObject({ criticalPath: 53, resource: 22, recurrence: 31, intervalBound: 31 });
    // The interpreter reaches it with period 2. Step 0: tile 1's mvm [31,53) ends it; tile 0
    // has its new a at 24 (b sent [0,4), arrives 9, recv after tile 0's mvm [0,22) and send).
    // Step 1: tile 0 mvm [26,48) (waits for its send of step 0 reading 8..16, to 26), send
    // [48,52) arrives 57; tile 1 sends b at 53 (its mvm) [53,57), tile 0's recv ends 62;
    // tile 1's recv ends 57, mvm [57,79): 26 cycles. Step 2: tile 0 mvm [62,84), send
    // [84,88) arrives 93; tile 1 send [79,83); its mvm [93,115): 36 cycles. Then 26, 36, ...:
    // 62 cycles per two steps, the cycle a -> b -> a exactly.
    const m = new Machine(p, small, "loop");
    m.resetSequence();
    m.runSection("init", 12);
    const cycles = Array.from({ length: 12 }, () => m.runSection("step", 12).cycles);
    expect(cycles).toEqual([53, 26, 36, 26, 36, 26, 36, 26, 36, 26, 36, 26]);
    expect(m.stepTiming()).toEqual({ first: 53, steady: 31 });
  });
});

describe("the in-order issue loop bounds the interval", () => {
  test("one tile, load -> mvm -> vcopy -> send, vcopy: loop 40 = 14 + 22 + 2 + 1 + 1, reached", () => {
    // Tile 0 from its load's start: load [0,14) (10 + ceil(8/2)); the mvm reads its words:
    // [14,36); a vcopy of the mvm's 8 words (4 lanes: 2 cycles) [36,38); the send of the
    // copy starts at 38 (4 cycles); a second vcopy of the mvm's words issues the cycle after
    // the send started, 39, and finds the vector unit free: [39,41). The next step's load
    // can issue at 40. Busiest unit: the crossbar (22); no loop-carried words.
    const b = builder(2);
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 8 },
      mvm(0, 0, 8),
      { op: "vcopy", dst: 16, a: 8, len: 8 },
      { op: "send", peer: 1, src: 16, len: 8, tag: 0 },
      { op: "vcopy", dst: 24, a: 8, len: 8 },
    ]);
    b.emit(1, "step", [{ op: "recv", peer: 0, dst: 0, len: 8, tag: 0 }, { op: "store", global: 32, src: 0, len: 8 }]);
    const p = b.build();
    const bounds = stepBounds(p, small);
    expect(bounds).toMatchObject({ resource: 22, recurrence: 0, issueLoop: 40, issueLoopTile: "tile 0", intervalBound: 40 });
    // The interpreter: step t+1's load issues at 40; the host wrote its input at 14 and the
    // mvm stopped reading words 0..8 at 36, so it starts at 40, and every step repeats the
    // same schedule 40 cycles later.
    const r = runProgram(p, new Float32Array(6 * 8).fill(0.25), [1, 6, 8]).report;
    expect(r.sections.stepSteady!.cycles).toBe(40);
  });
});
