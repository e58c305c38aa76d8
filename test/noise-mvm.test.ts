// The noisy MVM inside the interpreter: per-MVM read and output noise statistics, seeding
// (same seeds -> same bits, chip vs read streams), noise off = the exact old path, and the
// IR-drop model against a brute-force evaluation of its equations and against the exact
// solution of the resistive network.

import { describe, expect, test } from "@jest/globals";
import type { Program } from "../src/backend/program.js";
import { UserError } from "../src/common/errors.js";
import { Rng } from "../src/common/rng.js";
import { runProgram, type RunOptions } from "../src/interp/run.js";
import { programCrossbar, type ChipSpec } from "../src/noise/chip.js";
import { conductanceMap } from "../src/noise/conductance.js";
import { flickerSigma } from "../src/noise/device.js";
import { irDropRatio, irDropSums, IrDropScratch } from "../src/noise/ir-drop.js";
import { parseNoiseArg } from "../src/noise/parse.js";
import { noiseOff, type NoiseModel } from "../src/noise/spec.js";
import { compile, loadModel } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import { patchedTarget, ProgramBuilder } from "./helpers/program-builder.js";

const K_SIGMA = 5;

function model(patch: (m: NoiseModel) => void): NoiseModel {
  const m = noiseOff();
  patch(m);
  return m;
}

// A 16-bit DAC/ADC variant of xbar64, so quantization does not hide the noise statistics.
const fine = patchedTarget("xbar64", (t) => {
  t.crossbar.numerics = { kind: "quantized", deviceLevels: 16, dacBits: 16, adcBits: 16 };
});
const D = 2 ** 15 - 1;
const SPEC: ChipSpec = { gMinUs: 0.1, gMaxUs: 25, maxLevel: 15 };
const K = conductanceMap(SPEC.gMinUs, SPEC.gMaxUs, SPEC.maxLevel).levelsPerUs;

// 4 inputs -> 3 outputs; x fixed over T steps, so every step is one MVM sample.
const LEVELS = [15, -3, 0, 7, 0, -15, -11, 2, 5, 0, 9, -1];
const COL_SCALE = [0.02, 0.03, 0.05];
const OUT_RANGE = [2, 2, 2];
const X = [0.9, -0.4, 0.25, 0.7];

function mvmProgram(): Program {
  const b = new ProgramBuilder(fine, { memoryWords: 64, globalWords: 64 });
  b.input("x", 4, 0).stepOutput("y", 3, 8);
  b.crossbar({ tile: 0, rows: 4, cols: 3, levels: LEVELS, inRange: [1, 1, 1, 1], colScale: COL_SCALE, outRange: OUT_RANGE });
  b.emit(0, "step", [
    { op: "load", dst: 0, global: 0, len: 4 },
    { op: "mvm", xbar: 0, rowStart: 0, rows: 4, colStart: 0, cols: 3, src: 0, dst: 4, acc: false },
    { op: "store", global: 8, src: 4, len: 3 },
  ]);
  return b.build();
}

function runSteps(p: Program, T: number, opts: RunOptions = {}): Float32Array {
  const x = new Float32Array(T * 4);
  for (let t = 0; t < T; t++) x.set(X, 4 * t);
  return runProgram(p, x, [1, T, 4], opts).step!;
}

function columnStats(y: Float32Array, cols: number): { mean: number[]; variance: number[]; n: number } {
  const n = y.length / cols;
  const mean = Array.from({ length: cols }, (_, j) => {
    let s = 0;
    for (let t = 0; t < n; t++) s += y[t * cols + j]!;
    return s / n;
  });
  const variance = mean.map((m, j) => {
    let s = 0;
    for (let t = 0; t < n; t++) s += (y[t * cols + j]! - m) ** 2;
    return s / (n - 1);
  });
  return { mean, variance, n };
}

const codes = X.map((x) => Math.round(x * D));
const lsb2 = OUT_RANGE.map((r) => (r / D) ** 2 / 12); // ADC rounding, uniform over one step

describe("read and output noise per MVM", () => {
  const T = 6000;
  const p = mvmProgram();
  const clean = Array.from(runSteps(p, 1));

  function checkColumns(y: Float32Array, wantVar: number[]): void {
    const s = columnStats(y, 3);
    for (let j = 0; j < 3; j++) {
      const v = wantVar[j]! + lsb2[j]!;
      // Unbiased around the noise-free output; variance within the standard error of s^2.
      expect(Math.abs(s.mean[j]! - clean[j]!)).toBeLessThan(K_SIGMA * Math.sqrt(v / s.n) + OUT_RANGE[j]! / D);
      expect(Math.abs(s.variance[j]! - v)).toBeLessThan(K_SIGMA * v * Math.sqrt(2 / (s.n - 1)));
    }
  }

  test("white read noise: output variance = sum over conducting devices of V^2 sigma^2, scaled to output units", () => {
    const sigma = 0.01;
    const y = runSteps(p, T, { noise: { model: model((m) => (m.read.sigma = sigma)), seed: 1 } });
    // Every cell has two devices with read sigma = sigma * gMax uS = sigma * gMax * K levels.
    const dev2 = (sigma * SPEC.gMaxUs * K) ** 2;
    const want = COL_SCALE.map((cs) => codes.reduce((a, c) => a + c * c * 2 * dev2, 0) * (cs / D) ** 2);
    checkColumns(y, want);
  });

  test("1/f read noise depends on each device's conductance", () => {
    const m = model((x) => Object.assign(x.read, { sigma: 0, flickerQs: 0.0088 }));
    const y = runSteps(p, T, { noise: { model: m, seed: 2 } });
    const map = conductanceMap(SPEC.gMinUs, SPEC.gMaxUs, SPEC.maxLevel);
    const g = (q: number): [number, number] => [
      q > 0 ? SPEC.gMinUs + (q / 15) * (SPEC.gMaxUs - SPEC.gMinUs) : SPEC.gMinUs,
      q < 0 ? SPEC.gMinUs + (-q / 15) * (SPEC.gMaxUs - SPEC.gMinUs) : SPEC.gMinUs,
    ];
    const want = COL_SCALE.map((cs, j) => {
      let v = 0;
      codes.forEach((c, i) => {
        for (const gi of g(LEVELS[i * 3 + j]!)) v += c * c * (flickerSigma(m.read, gi, gi, SPEC.gMaxUs, m.drift.tSeconds) * map.levelsPerUs) ** 2;
      });
      return v * (cs / D) ** 2;
    });
    expect(want.every((v) => v > 0)).toBe(true);
    checkColumns(y, want);
  });

  test("output noise: sigma relative to the ADC full scale", () => {
    const y = runSteps(p, T, { noise: { model: model((m) => (m.output.sigma = 0.003)), seed: 3 } });
    checkColumns(
      y,
      OUT_RANGE.map((r) => (0.003 * r) ** 2),
    );
  });
});

describe("seeds", () => {
  const p = mvmProgram();
  const T = 20;
  const both = model((m) => {
    Object.assign(m.programming, { c0: 0.01, c1: 0.02, c2: 0 });
    m.read.sigma = 0.01;
  });

  test("same seeds: bit-identical outputs; another chip seed or read seed: different outputs", () => {
    const a = runSteps(p, T, { noise: { model: both, seed: 7 } });
    expect(runSteps(p, T, { noise: { model: both, seed: 7, readSeed: 7 } })).toEqual(a);
    expect(runSteps(p, T, { noise: { model: both, seed: 8 } })).not.toEqual(a);
    expect(runSteps(p, T, { noise: { model: both, seed: 7, readSeed: 9 } })).not.toEqual(a);
  });

  test("the read seed changes only per-MVM draws: with programming noise alone it changes nothing", () => {
    const prog = model((m) => Object.assign(m.programming, { c0: 0.02, c1: 0, c2: 0 }));
    const a = runSteps(p, T, { noise: { model: prog, seed: 7 } });
    expect(runSteps(p, T, { noise: { model: prog, seed: 7, readSeed: 123 } })).toEqual(a);
    // ... and every step of a programmed chip computes the same weights.
    for (let t = 1; t < T; t++) expect(Array.from(a.subarray(3 * t, 3 * t + 3))).toEqual(Array.from(a.subarray(0, 3)));
    expect(runSteps(p, T, { noise: { model: prog, seed: 8 } })).not.toEqual(a);
  });

  test("seeds must be non-negative integers", () => {
    expect(() => runSteps(p, 1, { noise: { model: both, seed: -1 } })).toThrow(/seed \(--seed\) must be an integer/);
    expect(() => runSteps(p, 1, { noise: { model: both, seed: 1, readSeed: 0.5 } })).toThrow(UserError);
  });
});

describe("noise off keeps the exact noise-free results", () => {
  const xbar64 = loadTarget("xbar64");
  const tiny = compile(loadModel("examples/tiny.s4d"), xbar64).program;
  const rng = new Rng(5);
  const T = 24;
  const x = Float32Array.from({ length: 2 * T }, () => rng.normal());
  const run = (opts: RunOptions = {}): Float32Array => runProgram(tiny, x, [2, T, 1], opts).step!;
  const base = run();

  test("no noise option, --noise off, and an all-zero model give the same bits", () => {
    expect(run({ noise: { model: noiseOff(), seed: 3 } })).toEqual(base);
    expect(run({ noise: { model: parseNoiseArg("off", xbar64.noise), seed: 3 } })).toEqual(base);
    expect(run({ noise: { model: parseNoiseArg("off,programming.c0=0,read.sigma=0,drift.t=1", xbar64.noise), seed: 3 } })).toEqual(base);
    // "target" on a target without noise is off too.
    expect(parseNoiseArg("target", loadTarget("ideal").noise)).toEqual(noiseOff());
    const r = runProgram(tiny, x, [2, T, 1], { noise: { model: noiseOff(), seed: 3 } }).report;
    expect(r.noise).toEqual({ simulated: false, parts: [], seed: null, readSeed: null, model: null });
  });

  test("the noisy path without effective noise reproduces the noise-free outputs (conductance mapping is exact)", () => {
    // An output noise far below any rounding forces the noisy crossbars without changing values.
    expect(run({ noise: { model: model((m) => (m.output.sigma = 1e-300)), seed: 1 } })).toEqual(base);
  });

  test("a uniform drift shrinks every weight; compensation (digital, after the ADC) brings the outputs back", () => {
    const drift = (compensate: boolean): NoiseModel => model((m) => Object.assign(m.drift, { nu: 0.05, tSeconds: 86400, compensate }));
    const rms = (y: Float32Array): number => Math.sqrt(y.reduce((a, v, i) => a + (v - base[i]!) ** 2, 0) / y.length);
    const raw = rms(run({ noise: { model: drift(false), seed: 1 } }));
    const compensated = rms(run({ noise: { model: drift(true), seed: 1 } }));
    expect(compensated).toBeLessThan(raw / 3);
  });

  test("noise with the target's defaults changes the outputs, and the report says what ran", () => {
    const m = parseNoiseArg("target", xbar64.noise);
    const r = runProgram(tiny, x, [2, T, 1], { noise: { model: m, seed: 4, readSeed: 5 } });
    expect(r.step).not.toEqual(base);
    expect(r.report.noise?.simulated).toBe(true);
    expect(r.report.noise?.parts).toEqual(expect.arrayContaining(["programming", "read", "drift"]));
    expect(r.report.notes.join("\n")).toMatch(/device noise simulated \(chip seed 4, read seed 5\): programming noise/);
    expect(runProgram(tiny, x, [2, T, 1]).report.notes.join("\n")).toMatch(/configured in target xbar64 but was not simulated/);
  });

  test("noise on a float-numerics target is a user error", () => {
    const ideal = compile(loadModel("examples/tiny.s4d"), loadTarget("ideal")).program;
    expect(() => runProgram(ideal, x, [2, T, 1], { noise: { model: model((m) => (m.read.sigma = 0.01)), seed: 0 } })).toThrow(
      /device noise needs quantized crossbar numerics/,
    );
  });
});

describe("DAC and ADC errors in the MVM", () => {
  test("a DAC offset drives rows whose input is 0; an ADC offset shifts every column", () => {
    const p = mvmProgram();
    const zero = new Float32Array(4);
    const off = runProgram(p, zero, [1, 1, 4]).step!;
    expect(Array.from(off)).toEqual([0, 0, 0]);
    const dac = runProgram(p, zero, [1, 1, 4], { noise: { model: model((m) => (m.dac.offsetSigma = 0.01)), seed: 1 } }).step!;
    expect(Array.from(dac).every((v) => v !== 0)).toBe(true);
    const adc = runProgram(p, zero, [1, 1, 4], { noise: { model: model((m) => (m.adc.offsetSigma = 0.01)), seed: 1 } }).step!;
    expect(Array.from(adc).every((v) => v !== 0)).toBe(true);
  });
});

/** The first-order IR-drop equations evaluated literally, segment by segment. */
function irDropReference(gp: number[][], gm: number[][], V: number[], physRows: number, r: number): number[] {
  const rows = V.length;
  const cols = gp[0]!.length;
  const out: number[] = [];
  for (let j = 0; j < cols; j++) {
    let s = 0;
    for (let i = 0; i < rows; i++) {
      // word line: segment k (k = 0 from the driver to pair 0) carries the current of pairs >= k
      let dW = 0;
      for (let k = 0; k <= j; k++) for (let jj = k; jj < cols; jj++) dW += r * V[i]! * (gp[i]![jj]! + gm[i]![jj]!);
      // bit line: segment below physical row m carries the current of rows <= m
      let dP = 0;
      let dM = 0;
      for (let m = i; m < physRows; m++)
        for (let ii = 0; ii <= Math.min(m, rows - 1); ii++) {
          dP += r * V[ii]! * gp[ii]![j]!;
          dM += r * V[ii]! * gm[ii]![j]!;
        }
      s += (V[i]! - dW - dP) * gp[i]![j]! - (V[i]! - dW - dM) * gm[i]![j]!;
    }
    out.push(s);
  }
  return out;
}

/**
 * Exact column currents of the resistive network (wire conductance 1/r between neighbouring
 * nodes, drivers at column 0, ADC virtual grounds below row physRows - 1), by Gaussian
 * elimination. Unknowns: word-line nodes, then bit-line nodes of the + and - lines.
 */
function irDropExact(gp: number[][], gm: number[][], V: number[], physRows: number, r: number): number[] {
  const rows = V.length;
  const cols = gp[0]!.length;
  const gw = 1 / r;
  const nW = rows * cols;
  const W = (i: number, j: number): number => i * cols + j;
  const B = (s: 0 | 1, i: number, j: number): number => nW + s * physRows * cols + i * cols + j;
  const n = nW + 2 * physRows * cols;
  const A = Array.from({ length: n }, () => new Float64Array(n));
  const b = new Float64Array(n);
  const link = (a: number, c: number, g: number): void => {
    A[a]![a]! += g;
    A[a]![c]! -= g;
    A[c]![c]! += g;
    A[c]![a]! -= g;
  };
  for (let i = 0; i < rows; i++) {
    A[W(i, 0)]![W(i, 0)]! += gw; // wire to the driver at V_i
    b[W(i, 0)] += gw * V[i]!;
    for (let j = 0; j + 1 < cols; j++) link(W(i, j), W(i, j + 1), gw);
    for (let j = 0; j < cols; j++) {
      link(W(i, j), B(0, i, j), gp[i]![j]!);
      link(W(i, j), B(1, i, j), gm[i]![j]!);
    }
  }
  for (const s of [0, 1] as const)
    for (let j = 0; j < cols; j++) {
      for (let i = 0; i + 1 < physRows; i++) link(B(s, i, j), B(s, i + 1, j), gw);
      A[B(s, physRows - 1, j)]![B(s, physRows - 1, j)]! += gw; // wire to the ADC at 0 V
    }
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let k = c + 1; k < n; k++) if (Math.abs(A[k]![c]!) > Math.abs(A[piv]![c]!)) piv = k;
    [A[c], A[piv]] = [A[piv]!, A[c]!];
    [b[c], b[piv]] = [b[piv]!, b[c]!];
    for (let k = c + 1; k < n; k++) {
      const f = A[k]![c]! / A[c]![c]!;
      if (f === 0) continue;
      for (let m = c; m < n; m++) A[k]![m]! -= f * A[c]![m]!;
      b[k] -= f * b[c]!;
    }
  }
  const x = new Float64Array(n);
  for (let c = n - 1; c >= 0; c--) {
    let s = b[c]!;
    for (let m = c + 1; m < n; m++) s -= A[c]![m]! * x[m]!;
    x[c] = s / A[c]![c]!;
  }
  return Array.from({ length: cols }, (_, j) => gw * (x[B(0, physRows - 1, j)]! - x[B(1, physRows - 1, j)]!));
}

describe("IR drop", () => {
  const rows = 5;
  const cols = 4;
  const physRows = 7; // the window ends 2 rows above the ADC
  const rng = new Rng(17);
  const levels = Int16Array.from({ length: rows * cols }, () => Math.round(rng.uniform() * 30 - 15));
  const ohms = 40; // exaggerated so the drop is large enough to compare
  const m = model((x) => (x.irDrop.wireOhms = ohms));
  const chip = programCrossbar({ id: 0, rows, cols, levels }, SPEC, m, 1);
  const grid = (a: Float32Array): number[][] => Array.from({ length: rows }, (_, i) => Array.from(a.subarray(i * cols, (i + 1) * cols)));
  const gp = grid(chip.gPlus!);
  const gm = grid(chip.gMinus!);
  const V = [100, -40, 127, 0, 60];
  const r = irDropRatio(ohms, chip.levelsPerUs);

  function fast(volts: number[], ratio: number): number[] {
    const sums = new Float64Array(cols);
    irDropSums(chip, Float64Array.from(volts), { rowStart: 0, rows, colStart: 0, cols }, physRows, ratio, sums, null, new IrDropScratch(rows, cols));
    return Array.from(sums);
  }

  test("the prefix-sum implementation evaluates the documented equations", () => {
    const want = irDropReference(gp, gm, V, physRows, r);
    fast(V, r).forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 9));
  });

  test("first order: agrees with the exact resistive network to O(r^2)", () => {
    const ideal = Array.from({ length: cols }, (_, j) => V.reduce((s, v, i) => s + v * (gp[i]![j]! - gm[i]![j]!), 0));
    for (const scale of [1, 0.1]) {
      const approx = fast(V, r * scale);
      const exact = irDropExact(gp, gm, V, physRows, r * scale);
      for (let j = 0; j < cols; j++) {
        const dropExact = exact[j]! - ideal[j]!;
        const dropApprox = approx[j]! - ideal[j]!;
        // The first-order drop is within a few percent of the exact drop (less for smaller r).
        expect(Math.abs(dropApprox - dropExact)).toBeLessThan(0.05 * scale * Math.abs(dropExact) + 1e-9);
      }
    }
  });

  test("attenuation grows with the distance to the driver and to the ADC, and with the line currents", () => {
    // One programmed cell (level 15) among gMin pairs, all rows driven at full scale.
    const full = loadTarget("xbar64");
    const n = 64;
    const gain = (row: number, col: number, driven: number): number => {
      const lv = new Int16Array(n * n);
      lv[row * n + col] = 15;
      const c = programCrossbar({ id: 0, rows: n, cols: n, levels: lv }, SPEC, model((x) => (x.irDrop.wireOhms = 2)), 0);
      const volts = new Float64Array(n);
      volts.fill(127, 0, driven);
      if (row >= driven) volts[row] = 127;
      const sums = new Float64Array(n);
      irDropSums(c, volts, { rowStart: 0, rows: n, colStart: 0, cols: n }, full.crossbar.rows, irDropRatio(2, c.levelsPerUs), sums, null, new IrDropScratch(n, n));
      return sums[col]! / (127 * 15);
    };
    const near = gain(n - 1, 0, n);
    expect(near).toBeLessThan(1);
    expect(gain(n - 1, n - 1, n)).toBeLessThan(near); // far from the driver
    expect(gain(0, 0, n)).toBeLessThan(near); // far from the ADC
    expect(gain(0, n - 1, n)).toBeLessThan(Math.min(gain(n - 1, n - 1, n), gain(0, 0, n)));
    expect(gain(0, n - 1, 1)).toBeGreaterThan(gain(0, n - 1, n)); // fewer driven rows: less bit-line current
  });

  test("in the interpreter: IR drop shrinks outputs deterministically and its read noise uses the cell voltages", () => {
    const p = mvmProgram();
    const clean = runSteps(p, 1);
    const ir = runSteps(p, 2, { noise: { model: model((x) => (x.irDrop.wireOhms = 20)), seed: 0 } });
    expect(Array.from(ir.subarray(0, 3))).toEqual(Array.from(ir.subarray(3, 6)));
    for (let j = 0; j < 3; j++) {
      expect(Math.abs(ir[j]!)).toBeLessThan(Math.abs(clean[j]!));
      expect(Math.abs(ir[j]!)).toBeGreaterThan(0.8 * Math.abs(clean[j]!));
    }
    const noisy = runSteps(p, 400, { noise: { model: model((x) => ((x.irDrop.wireOhms = 20), (x.read.sigma = 0.01))), seed: 0 } });
    const s = columnStats(noisy, 3);
    for (let j = 0; j < 3; j++) expect(s.variance[j]).toBeGreaterThan(0);
  });
});
