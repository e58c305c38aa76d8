// The compiled WebAssembly kernels (src/interp/wasm/mvm.wat) and the noisy crossbars' use
// of them. See src/interp/wasm/arena.ts for the noise-free MVM.

import type { ProgrammedCrossbar } from "../../noise/chip.js";
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

/**
 * Byte offsets in a kernel memory, 8-byte aligned, handed out in order. Offset 0 is never
 * handed out, so the kernels can take 0 to mean "absent".
 */
export class KernelLayout {
  private top = 8;

  take(bytes: number): number {
    const at = this.top;
    this.top = Math.ceil((this.top + bytes) / 8) * 8;
    return at;
  }

  get bytes(): number {
    return this.top;
  }
}

/** An instance of the kernel module on a fresh memory large enough for `layout`. */
export function instantiate(module: WebAssembly.Module, layout: KernelLayout): { exports: Record<string, unknown>; buffer: ArrayBuffer } {
  const memory = new WebAssembly.Memory({ initial: Math.ceil(layout.bytes / 65536) });
  return { exports: new WebAssembly.Instance(module, { env: { memory } }).exports, buffer: memory.buffer };
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
  const layout = new KernelLayout();
  const w = layout.take(4 * rows * cols);
  const rv = readVar === null ? 0 : layout.take(4 * rows * cols);
  const volts = layout.take(8 * rows);
  const sums = layout.take(8 * cols);
  const vars = layout.take(8 * cols);
  const { exports, buffer: buf } = instantiate(module, layout);
  const fn = exports.noisySums as NoisySumsFn;
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
  gp0: number,
  gp1: number,
  gm0: number,
  gm1: number,
  vp0: number,
  vp1: number,
  vm0: number,
  vm1: number,
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
 * chip's conductances: the caller writes `volts` and reads `sums` (and `vars` when
 * `withVars`) after `run`. Null where the kernel is not available.
 */
export interface IrDropKernel {
  volts: Float64Array;
  sums: Float64Array;
  vars: Float64Array;
  run(rowStart: number, rows: number, colStart: number, cols: number, physRows: number, r: number, withVars: boolean): void;
}

/**
 * A row-major rows x cols array as the kernel's two pair-interleaved copies: copy p holds
 * the column pairs (p, p+1), (p+2, p+3) ..., each as rows x 2 values, 0 past the last column.
 */
function pairArrays(a: Float32Array, rows: number, cols: number): [Float32Array, Float32Array] {
  return [0, 1].map((p) => {
    const pairs = Math.ceil((cols - p) / 2);
    const out = new Float32Array(pairs * rows * 2);
    for (let q = 0; q < pairs; q++)
      for (let i = 0; i < rows; i++)
        for (let lane = 0; lane < 2; lane++) {
          const c = p + 2 * q + lane;
          if (c < cols) out[(q * rows + i) * 2 + lane] = a[i * cols + c]!;
        }
    return out;
  }) as [Float32Array, Float32Array];
}

export function irDropKernel(chip: ProgrammedCrossbar): IrDropKernel | null {
  const module = kernelModule();
  if (module === null || chip.gPlus === null || chip.gMinus === null) return null;
  const { rows, cols } = chip;
  // g+ + g- per cell in float64, as irDropSums' layout has it.
  const gPlus = chip.gPlus;
  const gMinus = chip.gMinus;
  const gSumValues = Float64Array.from(gPlus, (g, i) => g + gMinus[i]!);
  const sources = [chip.gPlus, chip.gMinus, chip.varPlus, chip.varMinus].map((a) => (a === null ? null : pairArrays(a, rows, cols)));
  const layout = new KernelLayout();
  const n = rows * cols;
  const gSum = layout.take(8 * n);
  // Per source array, its two copies' offsets (0, 0 when absent).
  const offsets = sources.map((pair) => (pair === null ? [0, 0] : pair.map((a) => layout.take(4 * a.length))));
  const volts = layout.take(8 * rows);
  const wl = layout.take(8 * (n + 1));
  const pp = layout.take(32 * rows);
  const pm = layout.take(32 * rows);
  const sums = layout.take(8 * cols);
  const vars = layout.take(8 * cols);
  const { exports, buffer: buf } = instantiate(module, layout);
  const fn = exports.irDropSums as IrDropSumsFn;
  new Float64Array(buf, gSum, n).set(gSumValues);
  sources.forEach((pair, k) => pair?.forEach((a, p) => new Float32Array(buf, offsets[k]![p]!, a.length).set(a)));
  const [[gp0, gp1], [gm0, gm1], [vp0, vp1], [vm0, vm1]] = offsets as [number, number][];
  const withVarsOk = vp0 !== 0 && vm0 !== 0;
  return {
    volts: new Float64Array(buf, volts, rows),
    sums: new Float64Array(buf, sums, cols),
    vars: new Float64Array(buf, vars, cols),
    run: (rowStart, nRows, colStart, nCols, physRows, r, withVars) => {
      if (withVars && !withVarsOk) throw new Error("internal error: read-noise variances without the chip's variance arrays");
      const v = withVars ? 1 : 0;
      fn(gSum, gp0!, gp1!, gm0!, gm1!, v * vp0!, v * vp1!, v * vm0!, v * vm1!, rows, cols, rowStart, nRows, colStart, nCols, volts, wl, pp, pm, physRows - rowStart - nRows, r, sums, vars);
    },
  };
}
