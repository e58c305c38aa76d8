// The machine's precompiled execution (src/interp/plan.ts) and its reuse of drifting
// steady states (Machine.findDrift): fused vcopy runs against a word-by-word reference of
// the ISA's copy semantics, and every step's cycles and schedule against re-timing each step.
// Also the IR-drop kernel's column-major layout against the row-major loops it replaced.

import { describe, expect, test } from "@jest/globals";
import type { Instr } from "../src/backend/isa.js";
import type { Program } from "../src/backend/program.js";
import { Rng } from "../src/common/rng.js";
import { Machine, type ScheduledInstr } from "../src/interp/machine.js";
import { runProgram } from "../src/interp/run.js";
import { programCrossbar, type ProgrammedCrossbar } from "../src/noise/chip.js";
import { irDropRatio, irDropSums, IrDropScratch, type IrWindow } from "../src/noise/ir-drop.js";
import { noiseOff } from "../src/noise/spec.js";
import type { Target } from "../src/target/types.js";
import { ProgramBuilder, smallTimingTarget } from "./helpers/program-builder.js";

const small: Target = smallTimingTarget();
const levels = (n: number, k: number): number[] => Array.from({ length: n }, (_, i) => ((i * 5 + k) % 7) - 3);
const mvm = (xbar: number, src: number, dst: number): Instr => ({ op: "mvm", xbar, rowStart: 0, rows: 8, colStart: 0, cols: 8, src, dst, acc: false });

describe("fused vcopy runs", () => {
  // Overlapping copies in both directions, single words, a bulk copy (>= 32 words), and
  // copies that read what an earlier copy of the same run wrote.
  const copies: Instr[] = [
    { op: "vcopy", dst: 40, a: 0, len: 40 },
    { op: "vcopy", dst: 3, a: 1, len: 6 },
    { op: "vcopy", dst: 10, a: 12, len: 6 },
    { op: "vcopy", dst: 90, a: 41, len: 1 },
    { op: "vcopy", dst: 91, a: 90, len: 1 },
    { op: "vcopy", dst: 50, a: 45, len: 36 },
    { op: "vcopy", dst: 60, a: 62, len: 35 },
    { op: "vcopy", dst: 20, a: 20, len: 4 },
  ];

  /** The ISA's semantics one instruction at a time: read all len words, then write them. */
  function reference(mem: number[]): number[] {
    const m = mem.slice();
    for (const c of copies) {
      if (c.op !== "vcopy") throw new Error("test setup");
      const src = m.slice(c.a, c.a + c.len);
      src.forEach((v, i) => (m[c.dst + i] = v));
    }
    return m;
  }

  test("a run of vcopy gives the words of copying one instruction at a time", () => {
    const words = 128;
    const b = new ProgramBuilder(small, { tiles: 1, memoryWords: words, globalWords: 2 * words });
    b.input("x", words, 0).stepOutput("y", words, words);
    b.emit(0, "step", [{ op: "load", dst: 0, global: 0, len: words }, ...copies, { op: "store", global: words, src: 0, len: words }]);
    const x = Float32Array.from({ length: words }, (_, i) => Math.fround(Math.sin(i + 1) * 100));
    const y = runProgram(b.build(), x, [1, 1, words]).step!;
    expect(Array.from(y)).toEqual(reference(Array.from(x)));
  });
});

/**
 * Tile 0 loads x_t and sends it on (a producer much faster than the rest, so it runs ahead
 * of the pipeline by a growing distance: its timing drifts), tile 1 runs a chain of three
 * MVMs and forwards to tile 2, which accumulates a state (a recurrence) and stores y_t.
 */
function drifting(): Program {
  const b = new ProgramBuilder(small, { tiles: 3, memoryWords: 64, globalWords: 64 });
  b.input("x", 8, 0).stepOutput("y", 8, 32);
  for (let t = 0; t < 3; t++) b.crossbar({ tile: t, rows: 8, cols: 8, levels: levels(64, t) });
  b.crossbar({ tile: 1, rows: 8, cols: 8, levels: levels(64, 5) });
  b.emit(0, "step", [
    { op: "load", dst: 0, global: 0, len: 8 },
    { op: "send", peer: 1, src: 0, len: 8, tag: 0 },
  ]);
  b.emit(1, "step", [{ op: "recv", peer: 0, dst: 0, len: 8, tag: 0 }, mvm(1, 0, 8), mvm(3, 8, 16), mvm(1, 16, 24), { op: "send", peer: 2, src: 24, len: 8, tag: 1 }]);
  b.emit(2, "step", [
    { op: "recv", peer: 1, dst: 0, len: 8, tag: 1 },
    { op: "vadd", dst: 16, a: 16, b: 0, len: 8 },
    mvm(2, 16, 8),
    { op: "vcopy", dst: 16, a: 8, len: 8 },
    { op: "store", global: 32, src: 8, len: 8 },
  ]);
  return b.build();
}

function stepCycles(m: Machine, T: number, sequences: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < sequences; s++) {
    m.resetSequence();
    m.runSection("init", T);
    for (let t = 0; t < T; t++) out.push(m.runSection("step", T).cycles);
    m.runSection("final", T);
  }
  return out;
}

describe("drifting steady state", () => {
  const T = 40;

  test("the producer drifts ahead, steps are reused, and every step's cycles equal re-timing it", () => {
    const p = drifting();
    const reused = new Machine(p, small, "drift");
    const cycles = stepCycles(reused, T, 2);
    // Reuse engaged, with the producer's drift (it never repeats exactly: no periodic state).
    const internals = reused as unknown as { reuseFrom: number; reuseDrift: Float64Array | null; periodicFrom: number };
    expect(internals.reuseFrom).toBeGreaterThanOrEqual(0);
    expect(internals.periodicFrom).toBe(-1);
    expect(Array.from(internals.reuseDrift!)[0]).toBeLessThan(0);
    // Re-timing every step (which also checks each one against the reused record).
    const retimed = stepCycles(new Machine(p, small, "drift", true), T, 2);
    expect(cycles).toEqual(retimed);
    expect(reused.clock).toBeGreaterThan(0);
  });

  test("a schedule taken after reused steps equals the re-timed one (drifted state restored)", () => {
    const p = drifting();
    const relative = (s: ScheduledInstr[]): number[][] => s.map((e) => [e.tile, e.pc, e.start - s[0]!.start, e.end - s[0]!.start]);
    const take = (retime: boolean): number[][] => {
      const m = new Machine(p, small, "drift", retime);
      stepCycles(m, T, 1);
      m.resetSequence();
      m.runSection("init", T);
      for (let t = 0; t < 25; t++) m.runSection("step", T);
      const schedule: ScheduledInstr[] = [];
      m.runSection("step", T, schedule);
      return relative(schedule);
    };
    expect(take(false)).toEqual(take(true));
  });

  test("outputs and report are the same with and without re-timing", () => {
    const p = drifting();
    const x = Float32Array.from({ length: 2 * T * 8 }, (_, i) => Math.cos(i * 0.3));
    const a = runProgram(p, x, [2, T, 8]);
    const b = runProgram(p, x, [2, T, 8], { retime: true });
    expect(JSON.stringify(a.report)).toBe(JSON.stringify(b.report));
    expect(Array.from(a.step!)).toEqual(Array.from(b.step!));
  });
});

describe("IR-drop sums on the column-major layout", () => {
  // The sums as src/noise/ir-drop.ts computed them before its layout (word lines and bit
  // lines read straight from the chip's row-major arrays, one column at a time): the
  // layout and the two-column interleave must give the same bits.
  function rowMajor(chip: ProgrammedCrossbar, volts: Float64Array, w: IrWindow, physRows: number, r: number, sums: Float64Array, vars: Float64Array | null): void {
    const gp = chip.gPlus!;
    const gm = chip.gMinus!;
    const vp = chip.varPlus;
    const vm = chip.varMinus;
    const stride = chip.cols;
    const { rowStart, rows, colStart, cols } = w;
    const wl = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const v = volts[i]!;
      if (v === 0) continue;
      const base = (rowStart + i) * stride + colStart;
      let total = 0;
      for (let j = 0; j < cols; j++) total += v * (gp[base + j]! + gm[base + j]!);
      let beyond = total;
      let drop = r * (colStart + 1) * total;
      wl[i * cols] = drop;
      for (let j = 1; j < cols; j++) {
        beyond -= v * (gp[base + j - 1]! + gm[base + j - 1]!);
        drop += r * beyond;
        wl[i * cols + j] = drop;
      }
    }
    const tail = physRows - rowStart - rows;
    const pp = new Float64Array(rows);
    const pm = new Float64Array(rows);
    for (let j = 0; j < cols; j++) {
      let accP = 0;
      let accM = 0;
      for (let i = 0; i < rows; i++) {
        const idx = (rowStart + i) * stride + colStart + j;
        accP += volts[i]! * gp[idx]!;
        accM += volts[i]! * gm[idx]!;
        pp[i] = accP;
        pm[i] = accM;
      }
      let riseP = tail * accP;
      let riseM = tail * accM;
      let s = 0;
      let variance = 0;
      for (let i = rows - 1; i >= 0; i--) {
        riseP += pp[i]!;
        riseM += pm[i]!;
        const idx = (rowStart + i) * stride + colStart + j;
        const u = volts[i]! - wl[i * cols + j]!;
        const up = u - r * riseP;
        const um = u - r * riseM;
        s += up * gp[idx]! - um * gm[idx]!;
        if (vars !== null) variance += up * up * vp![idx]! + um * um * vm![idx]!;
      }
      sums[j] = s;
      if (vars !== null) vars[j] = variance;
    }
  }

  test("bit-identical to the row-major sums, with and without read variances, on offset and odd windows", () => {
    const rows = 12;
    const cols = 9;
    const rng = new Rng(5);
    const levels = Int16Array.from({ length: rows * cols }, () => Math.round(rng.uniform() * 14 - 7));
    const spec = { gMinUs: 0.1, gMaxUs: 25, maxLevel: 7 };
    const m = noiseOff();
    m.irDrop.wireOhms = 3;
    m.read.sigma = 0.05;
    m.programming = { c0: 0.2, c1: 0.3, c2: 0.1, scale: 1 };
    const chip = programCrossbar({ id: 3, rows, cols, levels }, spec, m, 9);
    const scratch = new IrDropScratch(rows, cols);
    const r = irDropRatio(3, chip.levelsPerUs);
    const windows: IrWindow[] = [
      { rowStart: 0, rows, colStart: 0, cols },
      { rowStart: 2, rows: 7, colStart: 1, cols: 7 },
      { rowStart: 5, rows: 7, colStart: 4, cols: 4 },
      { rowStart: 11, rows: 1, colStart: 8, cols: 1 },
    ];
    let compared = 0;
    for (const w of windows)
      for (const withVars of [false, true]) {
        const volts = Float64Array.from({ length: w.rows }, (_, i) => (i % 4 === 1 ? 0 : Math.round(rng.uniform() * 254 - 127) + rng.uniform() * 0.01));
        const got = new Float64Array(w.cols);
        const gotVars = withVars ? new Float64Array(w.cols) : null;
        irDropSums(chip, volts, w, rows + 3, r, got, gotVars, scratch);
        const want = new Float64Array(w.cols);
        const wantVars = withVars ? new Float64Array(w.cols) : null;
        rowMajor(chip, volts, w, rows + 3, r, want, wantVars);
        expect(Array.from(got)).toEqual(Array.from(want));
        if (withVars) expect(Array.from(gotVars!)).toEqual(Array.from(wantVars!));
        compared += w.cols;
      }
    expect(compared).toBeGreaterThan(0);
  });
});
