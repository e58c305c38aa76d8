// The WebAssembly MVM kernel (src/interp/wasm/) against the JavaScript kernel it replaces:
// bit for bit on random and adversarial inputs (NaN, infinities, signed zeros, exact ties,
// saturation), sparse and dense images, sub-windows with odd sizes (the two-lane loops' tails);
// a whole program with and without it; and the committed module against its source.

import { describe, expect, test } from "@jest/globals";
import { execFileSync } from "node:child_process";
import type { CrossbarImage } from "../src/backend/program.js";
import { Rng } from "../src/common/rng.js";
import { compile, loadModel } from "../src/pipeline.js";
import { makeCrossbar, type MvmWindow } from "../src/interp/crossbar.js";
import { runProgram, type RunOptions } from "../src/interp/run.js";
import { programCrossbar } from "../src/noise/chip.js";
import { irDropRatio, irDropSums, IrDropScratch } from "../src/noise/ir-drop.js";
import { noiseSetup } from "../src/noise/setup.js";
import { irDropKernel } from "../src/interp/wasm/kernel.js";
import { noiseFromTarget } from "../src/noise/spec.js";
import { KernelArena } from "../src/interp/wasm/arena.js";
import { readFloatNpy } from "../src/common/npy.js";
import { loadTarget } from "../src/target/load.js";
import type { Numerics } from "../src/target/types.js";

type Quantized = Extract<Numerics, { kind: "quantized" }>;
type NoiseOptions = RunOptions["noise"];

function image(id: number, rows: number, cols: number, density: number, rng: Rng, exact = false): CrossbarImage {
  const levels = new Int16Array(rows * cols);
  for (let i = 0; i < levels.length; i++) if (rng.uniform() < density) levels[i] = Math.round((rng.uniform() * 2 - 1) * 15) || 1;
  return {
    id,
    tile: 0,
    rows,
    cols,
    weights: { kind: "levels", levels },
    // exact (with D = Q = 7): ranges 1 and column scale 7/2, so that an input k/2 gives the
    // DAC t = 3.5k and a column sum s the ADC t = ((3.5s / 7) / 1) * 7 = 3.5s, all exact: ties
    // that a rounding on the wrong side of 3.5 would get wrong.
    inRange: Float32Array.from({ length: rows }, () => (exact ? 1 : 0.25 + rng.uniform())),
    colScale: Float32Array.from({ length: cols }, () => (exact ? 3.5 : 0.002 + 0.02 * rng.uniform())),
    outRange: Float32Array.from({ length: cols }, () => (exact ? 1 : 0.1 + rng.uniform())),
  };
}

const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e30, -1e30];

function inputs(n: number, rng: Rng, mode: "random" | "special" | "ties" | "zeros" | "nan"): number[] {
  return Array.from({ length: n }, (_, i) => {
    if (mode === "zeros") return i % 3 === 0 ? -0 : 0;
    if (mode === "nan") return i === n - 1 ? NaN : rng.uniform() - 0.5;
    if (mode === "special") return rng.uniform() < 0.4 ? SPECIAL[Math.floor(rng.uniform() * SPECIAL.length)]! : (rng.uniform() - 0.5) * 3;
    if (mode === "ties") return Math.round((rng.uniform() - 0.5) * 6) / 2;
    return (rng.uniform() - 0.5) * 2.4; // some beyond the DAC range
  });
}

describe("WebAssembly MVM kernel", () => {
  test("the committed module is the compile of src/interp/wasm/mvm.wat", () => {
    expect(() => execFileSync(process.execPath, ["scripts/gen-wasm.mjs", "--check"], { stdio: "pipe" })).not.toThrow();
  });

  test("this Node runs it (WebAssembly SIMD), so the other tests exercise it", () => {
    const rng = new Rng(1);
    expect(KernelArena.build([16], [image(0, 4, 4, 0.5, rng)], { kind: "quantized", deviceLevels: 16, dacBits: 8, adcBits: 8 })).not.toBeNull();
  });

  const numerics: [string, Quantized][] = [
    ["8-bit converters", { kind: "quantized", deviceLevels: 16, dacBits: 8, adcBits: 8 }],
    ["4/6-bit converters", { kind: "quantized", deviceLevels: 16, dacBits: 4, adcBits: 6 }],
    ["4-bit converters on exact ties", { kind: "quantized", deviceLevels: 16, dacBits: 4, adcBits: 4 }],
  ];
  const windows: [string, (r: number, c: number) => Omit<MvmWindow, "src" | "dst" | "acc">][] = [
    ["full window", (rows, cols) => ({ rowStart: 0, rows, colStart: 0, cols })],
    ["odd sub-window", (rows, cols) => ({ rowStart: 3, rows: rows - 6, colStart: 1, cols: cols - 4 })],
    ["single cell", (rows, cols) => ({ rowStart: rows - 1, rows: 1, colStart: cols - 1, cols: 1 })],
  ];

  test.each(numerics)("bit for bit with the JavaScript kernel: %s", (_, q) => {
    const rng = new Rng(17);
    const exact = q.dacBits === 4 && q.adcBits === 4;
    for (const [rows, cols] of [
      [64, 64],
      [37, 29],
    ] as const)
      for (const density of [0.05, 0.6]) {
        const img = image(0, rows, cols, density, rng, exact);
        const arena = KernelArena.build([256], [img], q)!;
        const wasm = arena.crossbar(img);
        const js = makeCrossbar(img, q);
        const mem = arena.tiles[0]!;
        for (const [wname, win] of windows)
          for (const mode of ["random", "special", "ties", "zeros", "nan"] as const)
            for (const acc of [false, true]) {
              const w: MvmWindow = { ...win(rows, cols), src: 0, dst: 128, acc };
              mem.fill(0);
              mem.set(inputs(w.rows, rng, mode), 0);
              for (let j = 0; j < w.cols; j++) mem[128 + j] = acc ? (rng.uniform() - 0.5) * 2 : 0;
              const plain = Float32Array.from(mem);
              const satJs = js.mvm(plain, w, Math.fround);
              const satWasm = wasm.mvm(mem, w, Math.fround);
              const where = `${rows}x${cols} density ${density} ${wname} ${mode} acc=${acc}`;
              if (satWasm !== satJs) throw new Error(`${where}: ${satWasm} saturations, JavaScript ${satJs}`);
              for (let j = 0; j < 256; j++)
                if (!Object.is(mem[j], plain[j])) throw new Error(`${where}: word ${j} is ${mem[j]}, JavaScript ${plain[j]}`);
            }
      }
  });

  test.each([
    ["with read noise", true],
    ["without read noise", false],
  ])("noisy column sums without IR drop, bit for bit with the JavaScript loops, odd windows included: %s", (_, read) => {
    const target = loadTarget("xbar64");
    const full = noiseFromTarget(target.noise);
    const model = { ...full, irDrop: { ...full.irDrop, wireOhms: 0 }, ...(read ? {} : { read: { ...full.read, sigma: 0, flickerQs: 0 } }) };
    const q = target.crossbar.numerics as Quantized;
    const rng = new Rng(23);
    const img = image(5, 37, 29, 0.5, rng);
    const models = ["1", "0"].map((env) => {
      process.env.IMSSA_WASM = env;
      try {
        return makeCrossbar(img, q, noiseSetup(target, { model, seed: 4 }, "<test>"));
      } finally {
        delete process.env.IMSSA_WASM;
      }
    });
    for (const [wname, win] of windows)
      for (const mode of ["random", "special", "zeros"] as const) {
        const w: MvmWindow = { ...win(37, 29), src: 0, dst: 64, acc: false };
        const x = inputs(w.rows, rng, mode);
        const mems = models.map((m) => {
          const mem = new Float32Array(128);
          mem.set(x, 0);
          return { mem, sat: m.mvm(mem, w, Math.fround) };
        });
        const where = `${wname} ${mode}`;
        if (mems[0]!.sat !== mems[1]!.sat) throw new Error(`${where}: ${mems[0]!.sat} saturations, JavaScript ${mems[1]!.sat}`);
        for (let j = 0; j < 128; j++)
          if (!Object.is(mems[0]!.mem[j], mems[1]!.mem[j])) throw new Error(`${where}: word ${j} is ${mems[0]!.mem[j]}, JavaScript ${mems[1]!.mem[j]}`);
      }
  });

  test("IR-drop column sums bit for bit with irDropSums: window widths 1 to 9 (every remainder of the 4- and 2-column passes), offsets, 0 V rows, with and without read variances", () => {
    const rows = 14;
    const cols = 11;
    const rng = new Rng(29);
    const levels = Int16Array.from({ length: rows * cols }, () => Math.round(rng.uniform() * 14 - 7));
    const m = noiseFromTarget(loadTarget("xbar64").noise);
    const model = { ...m, irDrop: { ...m.irDrop, wireOhms: 3 }, read: { ...m.read, sigma: 0.05 } };
    const chip = programCrossbar({ id: 3, rows, cols, levels }, { gMinUs: 0.1, gMaxUs: 25, maxLevel: 7 }, model, 9);
    const kernel = irDropKernel(chip)!;
    expect(kernel).not.toBeNull();
    const scratch = new IrDropScratch(rows, cols);
    const r = irDropRatio(3, chip.levelsPerUs);
    let compared = 0;
    for (let width = 1; width <= 9; width++)
      for (const [rowStart, n] of [
        [0, rows],
        [3, 7],
        [13, 1],
      ] as const)
        for (const withVars of [false, true]) {
          const w = { rowStart, rows: n, colStart: cols - width - (width % 2), cols: width };
          const volts = Float64Array.from({ length: n }, (_, i) => (i % 4 === 1 ? (i % 8 === 1 ? -0 : 0) : Math.round(rng.uniform() * 254 - 127) + rng.uniform() * 0.01));
          const want = new Float64Array(width);
          const wantVars = withVars ? new Float64Array(width) : null;
          irDropSums(chip, volts, w, rows + 3, r, want, wantVars, scratch);
          kernel.volts.set(volts);
          kernel.run(w.rowStart, w.rows, w.colStart, w.cols, rows + 3, r, withVars);
          const where = `window ${JSON.stringify(w)} vars=${withVars}`;
          for (let j = 0; j < width; j++) {
            if (!Object.is(kernel.sums[j], want[j])) throw new Error(`${where}: sum ${j} is ${kernel.sums[j]}, irDropSums ${want[j]}`);
            if (withVars && !Object.is(kernel.vars[j], wantVars![j])) throw new Error(`${where}: variance ${j} is ${kernel.vars[j]}, irDropSums ${wantVars![j]}`);
          }
          compared += width;
        }
    expect(compared).toBe(6 * 45);
  });

  test("memory outside the arena takes the JavaScript kernel", () => {
    const rng = new Rng(3);
    const q: Quantized = { kind: "quantized", deviceLevels: 16, dacBits: 8, adcBits: 8 };
    const img = image(0, 8, 8, 0.5, rng);
    const wasm = KernelArena.build([32], [img], q)!.crossbar(img);
    const mem = Float32Array.from(inputs(32, rng, "random"));
    const plain = Float32Array.from(mem);
    const w: MvmWindow = { rowStart: 0, rows: 8, colStart: 0, cols: 8, src: 0, dst: 16, acc: false };
    expect(wasm.mvm(mem, w, Math.fround)).toBe(makeCrossbar(img, q).mvm(plain, w, Math.fround));
    expect(Array.from(mem)).toEqual(Array.from(plain));
  });

  describe("the digits example gives the same outputs and report with and without it", () => {
    const target = loadTarget("xbar64");
    const { program } = compile(loadModel("examples/digits.s4d"), target);
    const x = readFloatNpy("examples/digits-input.npy").data;
    const run = (env: string | undefined, T: number, noise?: NoiseOptions): string => {
      const saved = process.env.IMSSA_WASM;
      if (env === undefined) delete process.env.IMSSA_WASM;
      else process.env.IMSSA_WASM = env;
      try {
        const r = runProgram(program, x.subarray(0, 2 * T), [2, T, 1], { noise });
        return JSON.stringify({ final: Array.from(r.final!, (v) => (Object.is(v, -0) ? "-0" : v)), report: r.report });
      } finally {
        if (saved === undefined) delete process.env.IMSSA_WASM;
        else process.env.IMSSA_WASM = saved;
      }
    };
    const full = noiseFromTarget(target.noise);
    const noIrDrop = { ...full, irDrop: { ...full.irDrop, wireOhms: 0 } };

    test("noise off (the MVM kernel)", () => {
      expect(run(undefined, 64)).toBe(run("0", 64));
    });

    test.each([
      ["target noise without IR drop (column sums and read-noise variances)", noIrDrop],
      ["target noise without IR drop and read noise (column sums only)", { ...noIrDrop, read: { ...noIrDrop.read, sigma: 0, flickerQs: 0 } }],
      ["target noise (IR drop)", full],
    ])("%s", (_, model) => {
      expect(run(undefined, 8, { model, seed: 3 })).toBe(run("0", 8, { model, seed: 3 }));
    });
  });
});
