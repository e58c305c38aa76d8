// The compiled WebAssembly kernels (src/interp/wasm/mvm.wat) and the noisy crossbars' use
// of them. See src/interp/wasm/arena.ts for the noise-free MVM.

import type { ProgrammedCrossbar } from "../../noise/chip.js";
import { layoutOf } from "../../noise/ir-drop.js";
import { MVM_WASM_BASE64 } from "./mvm-module.js";

export type MvmFn = (
  inRange: number,
  colScale: number,
  outRange: number,
  levels: number,
  colPtr: number,
  cellRow: number,
  cellVal: number,
  stride: number,
  D: number,
  Q: number,
  src: number,
  dst: number,
  rowStart: number,
  rows: number,
  colStart: number,
  cols: number,
  acc: number,
  codes: number,
  sums: number,
) => number;

let compiled: WebAssembly.Module | null | undefined;

/**
 * The kernel module, or null where this Node cannot run it (no WebAssembly SIMD) or where it
 * is switched off (IMSSA_WASM=0 in the environment: A/B measurements, or a way out should it
 * ever misbehave; the JavaScript kernels give the same bits).
 */
export function kernelModule(): WebAssembly.Module | null {
  if (process.env.IMSSA_WASM === "0") return null;
  if (compiled === undefined) {
    const bytes = Buffer.from(MVM_WASM_BASE64, "base64");
    compiled = typeof WebAssembly === "object" && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled;
}

type NoisySumsFn = (volts: number, weight: number, readVar: number, stride: number, rowStart: number, rows: number, colStart: number, cols: number, sums: number, vars: number) => void;

/**
 * The analog column sums of one noisy crossbar without IR drop, in its own kernel memory:
 * the caller writes the DAC voltages into `volts` and reads `sums` (and `vars`, with read
 * noise) after `run`. Same values, same order as NoisyCrossbar's loops. Null where the kernel
 * is not available.
 */
export interface NoisyKernel {
  volts: Float64Array;
  sums: Float64Array;
  vars: Float64Array;
  run(rowStart: number, rows: number, colStart: number, cols: number): void;
}

export function noisyKernel(rows: number, cols: number, weight: Float32Array, readVar: Float32Array | null): NoisyKernel | null {
  const module = kernelModule();
  if (module === null) return null;
  let top = 8;
  const take = (bytes: number): number => {
    const at = top;
    top = Math.ceil((top + bytes) / 8) * 8;
    return at;
  };
  const w = take(4 * rows * cols);
  const rv = readVar === null ? 0 : take(4 * rows * cols);
  const volts = take(8 * rows);
  const sums = take(8 * cols);
  const vars = take(8 * cols);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(top / 65536) });
  const fn = new WebAssembly.Instance(module, { env: { memory } }).exports.noisySums as NoisySumsFn;
  const buf = memory.buffer;
  new Float32Array(buf, w, rows * cols).set(weight);
  if (readVar !== null) new Float32Array(buf, rv, rows * cols).set(readVar);
  return {
    volts: new Float64Array(buf, volts, rows),
    sums: new Float64Array(buf, sums, cols),
    vars: new Float64Array(buf, vars, cols),
    run: (rowStart, nRows, colStart, nCols) => {
      fn(volts, w, rv, cols, rowStart, nRows, colStart, nCols, sums, vars);
    },
  };
}

type IrDropSumsFn = (
  gSum: number,
  gp: number,
  gm: number,
  vp: number,
  vm: number,
  height: number,
  stride: number,
  rowStart: number,
  rows: number,
  colStart: number,
  cols: number,
  volts: number,
  wl: number,
  pp: number,
  pm: number,
  tail: number,
  r: number,
  sums: number,
  vars: number,
) => void;

/**
 * The IR-drop column sums of one noisy crossbar (src/noise/ir-drop.ts irDropSums, same
 * operations per column in the same order) in its own kernel memory, which holds the
 * chip's conductances in irDropSums' layout: the caller writes `volts` and reads `sums` (and
 * `vars` when `withVars`) after `run`. Null where the kernel is not available.
 */
export interface IrDropKernel {
  volts: Float64Array;
  sums: Float64Array;
  vars: Float64Array;
  run(rowStart: number, rows: number, colStart: number, cols: number, physRows: number, r: number, withVars: boolean): void;
}

export function irDropKernel(chip: ProgrammedCrossbar): IrDropKernel | null {
  const module = kernelModule();
  if (module === null || chip.gPlus === null || chip.gMinus === null) return null;
  const l = layoutOf(chip);
  const { rows, cols } = chip;
  let top = 8;
  const take = (bytes: number): number => {
    const at = top;
    top = Math.ceil((top + bytes) / 8) * 8;
    return at;
  };
  const n = rows * cols;
  const gSum = take(8 * n);
  const gp = take(4 * n);
  const gm = take(4 * n);
  const vp = l.varPlusT === null ? 0 : take(4 * n);
  const vm = l.varMinusT === null ? 0 : take(4 * n);
  const volts = take(8 * rows);
  const wl = take(8 * n);
  const pp = take(32 * rows);
  const pm = take(32 * rows);
  const sums = take(8 * cols);
  const vars = take(8 * cols);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(top / 65536) });
  const fn = new WebAssembly.Instance(module, { env: { memory } }).exports.irDropSums as IrDropSumsFn;
  const buf = memory.buffer;
  new Float64Array(buf, gSum, n).set(l.gSum);
  new Float32Array(buf, gp, n).set(l.gPlusT);
  new Float32Array(buf, gm, n).set(l.gMinusT);
  if (l.varPlusT !== null) new Float32Array(buf, vp, n).set(l.varPlusT);
  if (l.varMinusT !== null) new Float32Array(buf, vm, n).set(l.varMinusT);
  const withVarsOk = vp !== 0 && vm !== 0;
  return {
    volts: new Float64Array(buf, volts, rows),
    sums: new Float64Array(buf, sums, cols),
    vars: new Float64Array(buf, vars, cols),
    run: (rowStart, nRows, colStart, nCols, physRows, r, withVars) => {
      if (withVars && !withVarsOk) throw new Error("internal error: read-noise variances without the chip's variance arrays");
      fn(gSum, gp, gm, withVars ? vp : 0, withVars ? vm : 0, rows, cols, rowStart, nRows, colStart, nCols, volts, wl, pp, pm, physRows - rowStart - nRows, r, sums, vars);
    },
  };
}
