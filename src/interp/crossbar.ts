// Functional model of one programmed crossbar: the MVM formulas of src/backend/program.ts
// (CrossbarImage), with ADC saturations counted. Analog arithmetic is exact in float64
// (integer sums of codes * levels stay far below 2^53); the result is rounded to the
// vector-unit precision only when it lands in local memory.

import type { CrossbarImage } from "../backend/program.js";
import type { Numerics } from "../target/types.js";
import type { Memory } from "./memory.js";

/** The part of an `mvm` instruction the crossbar needs. */
export interface MvmWindow {
  rowStart: number;
  rows: number;
  colStart: number;
  cols: number;
  src: number;
  dst: number;
  acc: boolean;
}

/**
 * Round half away from zero. program.ts says "round" without a tie rule; this one keeps
 * quantization symmetric (code(-x) = -code(x)), which Math.round (half up) does not.
 */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

export interface CrossbarModel {
  readonly image: CrossbarImage;
  /**
   * Runs one MVM reading mem[src ..) and writing (or adding to) mem[dst ..).
   * `round` is the vector unit's rounding for the digital accumulate.
   * Returns the number of ADC saturations (0 for float numerics).
   */
  mvm(mem: Memory, w: MvmWindow, round: (x: number) => number): number;
}

class QuantizedCrossbar implements CrossbarModel {
  private readonly dacMax: number;
  private readonly adcMax: number;
  private readonly levels: Int16Array;
  private readonly codes: Float64Array;
  private readonly sums: Float64Array;

  constructor(
    readonly image: CrossbarImage,
    dacBits: number,
    adcBits: number,
  ) {
    if (image.weights.kind !== "levels") throw new Error(`internal error: crossbar ${image.id} has float weights on a quantized target`);
    this.levels = image.weights.levels;
    this.dacMax = 2 ** (dacBits - 1) - 1;
    this.adcMax = 2 ** (adcBits - 1) - 1;
    this.codes = new Float64Array(image.rows);
    this.sums = new Float64Array(image.cols);
  }

  mvm(mem: Memory, w: MvmWindow, round: (x: number) => number): number {
    // Fields are read into locals once: MvmWindow objects are instructions of many shapes,
    // and property loads inside the inner loops would be megamorphic.
    const { inRange, colScale, outRange, cols: stride } = this.image;
    const { rowStart, rows, colStart, cols, src, dst, acc } = w;
    const D = this.dacMax;
    const Q = this.adcMax;
    const codes = this.codes;
    for (let r = 0; r < rows; r++) {
      const c = roundHalfAway((mem[src + r]! / inRange[rowStart + r]!) * D);
      codes[r] = c > D ? D : c < -D ? -D : c;
    }
    const sums = this.sums;
    sums.fill(0, 0, cols);
    const lv = this.levels;
    for (let r = 0; r < rows; r++) {
      const c = codes[r]!;
      if (c === 0) continue; // idle rows draw no current; also the common case for sparse inputs
      const base = (rowStart + r) * stride + colStart;
      for (let j = 0; j < cols; j++) sums[j] += c * lv[base + j]!;
    }
    let saturations = 0;
    for (let j = 0; j < cols; j++) {
      const col = colStart + j;
      const v = (sums[j]! * colScale[col]!) / D;
      const range = outRange[col]!;
      if (Math.abs(v) > range) saturations++;
      const q = roundHalfAway((v / range) * Q);
      const y = ((q > Q ? Q : q < -Q ? -Q : q) * range) / Q;
      mem[dst + j] = acc ? round(mem[dst + j]! + y) : y;
    }
    return saturations;
  }
}

class FloatCrossbar implements CrossbarModel {
  private readonly values: Float32Array;
  private readonly inputs: Float64Array;
  private readonly sums: Float64Array;

  constructor(readonly image: CrossbarImage) {
    if (image.weights.kind !== "float") throw new Error(`internal error: crossbar ${image.id} has levels on a float target`);
    this.values = image.weights.values;
    this.inputs = new Float64Array(image.rows);
    this.sums = new Float64Array(image.cols);
  }

  mvm(mem: Memory, w: MvmWindow, round: (x: number) => number): number {
    const stride = this.image.cols;
    const { rowStart, rows, colStart, cols, src, dst, acc } = w;
    // Inputs are copied first: src and dst may overlap, and all inputs are applied before any output exists.
    const xs = this.inputs;
    for (let r = 0; r < rows; r++) xs[r] = mem[src + r]!;
    const sums = this.sums;
    sums.fill(0, 0, cols);
    const vals = this.values;
    for (let r = 0; r < rows; r++) {
      const x = xs[r]!;
      if (x === 0) continue;
      const base = (rowStart + r) * stride + colStart;
      for (let j = 0; j < cols; j++) sums[j] += x * vals[base + j]!;
    }
    for (let j = 0; j < cols; j++) mem[dst + j] = acc ? round(mem[dst + j]! + sums[j]!) : sums[j]!;
    return 0;
  }
}

export function makeCrossbar(image: CrossbarImage, numerics: Numerics): CrossbarModel {
  return numerics.kind === "quantized" ? new QuantizedCrossbar(image, numerics.dacBits, numerics.adcBits) : new FloatCrossbar(image);
}
