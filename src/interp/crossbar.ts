// Functional model of one programmed crossbar: the MVM formulas of src/backend/program.ts
// (CrossbarImage), with ADC saturations counted. Analog arithmetic is exact in float64
// (integer sums of codes * levels stay far below 2^53); the result is rounded to the
// vector-unit precision only when it lands in local memory.
//
// With device noise on (docs/NOISE.md) a quantized crossbar is replaced by NoisyCrossbar,
// which sums the effective weights of a programmed chip (src/noise/chip.ts) instead of the
// integer levels; the noise-free QuantizedCrossbar stays exactly as it was, so noise-off
// runs keep their speed and their bits.

import type { CrossbarImage } from "../backend/program.js";
import { programCrossbar, type ProgrammedCrossbar } from "../noise/chip.js";
import { irDropRatio, irDropSums, IrDropScratch } from "../noise/ir-drop.js";
import { transferCurve } from "../noise/periphery.js";
import type { NoiseSetup } from "../noise/setup.js";
import { partActive } from "../noise/spec.js";
import { readStream, type NoiseStream } from "../noise/streams.js";
import type { Numerics } from "../target/types.js";
import type { Memory } from "./memory.js";
import { irDropKernel, noisyKernel, type IrDropKernel, type NoisyKernel } from "./wasm/kernel.js";

const sqrt = Math.sqrt;
const abs = Math.abs;

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

/**
 * clamp(roundHalfAway(t), -M, M) for an integer 0 < M < 2^52, bit for bit for every t
 * including +-0, NaN and infinities (checked against the straightforward form in
 * test/interp-kernels.test.ts). This runs twice per MVM row and column, so it avoids
 * data-dependent branches, which mispredict on mixed signs (Math.sign and Math.round branch
 * inside): t is clamped to +-(M + 1) (the result is +-M beyond that anyway), then with
 * i = trunc(t), 2t - 2i = 2 frac(t) is exact and trunc of it is +-1 exactly when |frac(t)|
 * >= 1/2, with the sign of t also on a zero (-0 + -0 = -0). t = +-0 and NaN take the
 * original form (a branch that does not depend on the sign).
 */
export function roundClamp(t: number, M: number): number {
  if (t !== t || t === 0) return Math.min(M, Math.round(Math.abs(t))) * Math.sign(t);
  const c = Math.max(-M - 1, Math.min(M + 1, t));
  const i = Math.trunc(c);
  return Math.max(-M, Math.min(M, i + Math.trunc(2 * c - 2 * i)));
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

/**
 * The nonzero cells of a row-major weight array, column by column in ascending row order
 * (compressed sparse columns). A noise-free MVM may skip zero cells exactly: the quantized
 * sums are integers far below 2^53 (order and omitted zero terms cannot change them), and a
 * float column sum adds the same nonzero terms in the same ascending row order as the dense
 * loop (see FloatCrossbar). Column-wise, each sum stays in a register instead of being
 * scattered to memory once per cell.
 */
export interface SparseCols {
  /** Cells of column j: indices colPtr[j] .. colPtr[j+1]. */
  colPtr: Int32Array;
  row: Int32Array;
  val: Float64Array;
}

/**
 * Above this fraction of nonzero cells the dense row loop is faster than the indexed one
 * (a sparse cell costs an index load and a gathered load, a dense one neither).
 */
const SPARSE_MAX_DENSITY = 0.3;

/** The sparse columns of `values` (rows x cols, row-major), or null when it is too dense to pay off. */
export function sparseCols(values: ArrayLike<number>, rows: number, cols: number): SparseCols | null {
  let nnz = 0;
  for (let i = 0; i < rows * cols; i++) if (values[i] !== 0) nnz++;
  if (nnz > SPARSE_MAX_DENSITY * rows * cols) return null;
  const colPtr = new Int32Array(cols + 1);
  const row = new Int32Array(nnz);
  const val = new Float64Array(nnz);
  let k = 0;
  for (let j = 0; j < cols; j++) {
    colPtr[j] = k;
    for (let r = 0; r < rows; r++) {
      const v = values[r * cols + j]!;
      if (v !== 0) {
        row[k] = r;
        val[k++] = v;
      }
    }
  }
  colPtr[cols] = k;
  return { colPtr, row, val };
}

/**
 * sums[j] = sum over the window's nonzero cells of column colStart + j of
 * xs[r - rowStart] * W[r][colStart + j], rows ascending; writes all `cols` sums.
 */
function sparseWindowSums(sp: SparseCols, xs: Float64Array, rowStart: number, rows: number, colStart: number, cols: number, fullHeight: boolean, sums: Float64Array): void {
  const { colPtr, row, val } = sp;
  for (let j = 0; j < cols; j++) {
    const end = colPtr[colStart + j + 1]!;
    let s = 0;
    if (fullHeight) {
      for (let k = colPtr[colStart + j]!; k < end; k++) s += xs[row[k]!]! * val[k]!;
    } else {
      for (let k = colPtr[colStart + j]!; k < end; k++) {
        const r = row[k]! - rowStart;
        if (r >= 0 && r < rows) s += xs[r]! * val[k]!;
      }
    }
    sums[j] = s;
  }
}

class QuantizedCrossbar implements CrossbarModel {
  private readonly dacMax: number;
  private readonly adcMax: number;
  private readonly levels: Int16Array;
  private readonly sparse: SparseCols | null;
  private readonly codes: Float64Array;
  private readonly sums: Float64Array;

  constructor(
    readonly image: CrossbarImage,
    dacBits: number,
    adcBits: number,
  ) {
    if (image.weights.kind !== "levels") throw new Error(`internal error: crossbar ${image.id} has float weights on a quantized target`);
    this.levels = image.weights.levels;
    this.sparse = sparseCols(this.levels, image.rows, image.cols);
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
    let nan = false;
    for (let r = 0; r < rows; r++) {
      const c = roundClamp((mem[src + r]! / inRange[rowStart + r]!) * D, D);
      codes[r] = c;
      if (c !== c) nan = true;
    }
    const sums = this.sums;
    // A NaN input (codes clamp infinities) turns every column NaN through its zero cells
    // (NaN * 0): then only the dense loop gives the same sums.
    if (this.sparse !== null && !nan) {
      sparseWindowSums(this.sparse, codes, rowStart, rows, colStart, cols, rowStart === 0 && rows === this.image.rows, sums);
    } else {
      sums.fill(0, 0, cols);
      const lv = this.levels;
      for (let r = 0; r < rows; r++) {
        const c = codes[r]!;
        if (c === 0) continue; // idle rows draw no current; also the common case for sparse inputs
        const base = (rowStart + r) * stride + colStart;
        for (let j = 0; j < cols; j++) sums[j] += c * lv[base + j]!;
      }
    }
    let saturations = 0;
    for (let j = 0; j < cols; j++) {
      const col = colStart + j;
      const v = (sums[j]! * colScale[col]!) / D;
      const range = outRange[col]!;
      if (Math.abs(v) > range) saturations++;
      const y = (roundClamp((v / range) * Q, Q) * range) / Q;
      // The store rounds to the memory's precision, which is `round`'s (src/interp/memory.ts):
      // storing the unrounded sum is the same as storing round(sum), without a call per word.
      mem[dst + j] = acc ? mem[dst + j]! + y : y;
    }
    return saturations;
  }
}

class FloatCrossbar implements CrossbarModel {
  private readonly values: Float32Array;
  private readonly sparse: SparseCols | null;
  private readonly inputs: Float64Array;
  private readonly sums: Float64Array;

  constructor(readonly image: CrossbarImage) {
    if (image.weights.kind !== "float") throw new Error(`internal error: crossbar ${image.id} has levels on a float target`);
    this.values = image.weights.values;
    this.sparse = sparseCols(this.values, image.rows, image.cols);
    this.inputs = new Float64Array(image.rows);
    this.sums = new Float64Array(image.cols);
  }

  mvm(mem: Memory, w: MvmWindow, round: (x: number) => number): number {
    const stride = this.image.cols;
    const { rowStart, rows, colStart, cols, src, dst, acc } = w;
    // Inputs are copied first: src and dst may overlap, and all inputs are applied before any output exists.
    const xs = this.inputs;
    let finite = true;
    for (let r = 0; r < rows; r++) {
      const x = mem[src + r]!;
      xs[r] = x;
      if (x - x !== 0) finite = false;
    }
    const sums = this.sums;
    // Skipping a zero weight drops a term x * 0 = +-0, which leaves a sum unchanged only for
    // finite x (Infinity * 0 is NaN): with a non-finite input the dense loop runs.
    if (this.sparse !== null && finite) {
      sparseWindowSums(this.sparse, xs, rowStart, rows, colStart, cols, rowStart === 0 && rows === this.image.rows, sums);
    } else {
      sums.fill(0, 0, cols);
      const vals = this.values;
      for (let r = 0; r < rows; r++) {
        const x = xs[r]!;
        if (x === 0) continue;
        const base = (rowStart + r) * stride + colStart;
        for (let j = 0; j < cols; j++) sums[j] += x * vals[base + j]!;
      }
    }
    for (let j = 0; j < cols; j++) mem[dst + j] = acc ? round(mem[dst + j]! + sums[j]!) : sums[j]!;
    return 0;
  }
}

/**
 * A quantized crossbar on a noisy chip. Per MVM:
 *   V_i = f_DAC(code_i) + dacOffset_i * D                    (DAC, code units)
 *   s_j = sum_i V_i w_ij  (+ IR drop)  + sqrt(sum_i V_i^2 var_ij) * z_j   (analog sum, read noise)
 *   v_j = s_j * colScale[j] / D + sigma_out * outRange[j] * z'_j + adcOffset_j * outRange[j]
 *   y_j = ADC(f_ADC(v_j)) * driftScale                        (digital drift compensation)
 * w_ij are the effective weight levels of the programmed devices. The read noise of every
 * conducting device enters through its variance: a sum of independent Gaussians is the
 * Gaussian with the summed variance, so one draw per column samples exactly the
 * distribution of the per-device draws at a fraction of their cost.
 */
class NoisyCrossbar implements CrossbarModel {
  private readonly dacMax: number;
  private readonly adcMax: number;
  private readonly volts: Float64Array;
  private readonly sums: Float64Array;
  private readonly vars: Float64Array;
  private readonly readRng: NoiseStream | null;
  private readonly outputRng: NoiseStream | null;
  private readonly outputSigma: number;
  private readonly dacCurve: number;
  private readonly adcCurve: number;
  private readonly ir: { ratio: number; physRows: number } | null;
  /** The JavaScript IR-drop sweep's buffers, made on its first use (the kernel has its own). */
  private irScratch: IrDropScratch | null = null;
  private readonly sumsKernel: NoisyKernel | null;
  private readonly irKernel: IrDropKernel | null;

  constructor(
    readonly image: CrossbarImage,
    dacBits: number,
    adcBits: number,
    private readonly chip: ProgrammedCrossbar,
    noise: NoiseSetup,
  ) {
    const m = noise.model;
    this.dacMax = 2 ** (dacBits - 1) - 1;
    this.adcMax = 2 ** (adcBits - 1) - 1;
    this.readRng = chip.readVar !== null ? readStream(noise.readSeed, image.id, "read") : null;
    this.ir = partActive(m, "irDrop")
      ? { ratio: irDropRatio(m.irDrop.wireOhms, chip.levelsPerUs), physRows: noise.chip.physRows }
      : null;
    // The column sums run in a WebAssembly kernel (same bits), which owns the voltage and
    // sum arrays.
    this.sumsKernel = this.ir === null ? noisyKernel(chip.rows, chip.cols, chip.weight, chip.readVar) : null;
    this.irKernel = this.ir !== null ? irDropKernel(chip) : null;
    const arrays = this.sumsKernel ?? this.irKernel;
    this.volts = arrays?.volts ?? new Float64Array(image.rows);
    this.sums = arrays?.sums ?? new Float64Array(image.cols);
    this.vars = arrays?.vars ?? new Float64Array(image.cols);
    this.outputRng = partActive(m, "output") ? readStream(noise.readSeed, image.id, "output") : null;
    this.outputSigma = m.output.sigma;
    this.dacCurve = m.dac.nonlinearity;
    this.adcCurve = m.adc.nonlinearity;
  }

  mvm(mem: Memory, w: MvmWindow, round: (x: number) => number): number {
    const { inRange, colScale, outRange } = this.image;
    const { rowStart, rows, colStart, cols, src, dst, acc } = w;
    const D = this.dacMax;
    const Q = this.adcMax;
    const chip = this.chip;
    const volts = this.volts;
    const dacOffset = chip.dacOffset;
    const dacCurve = this.dacCurve;
    for (let r = 0; r < rows; r++) {
      const c = roundClamp((mem[src + r]! / inRange[rowStart + r]!) * D, D);
      let v = dacCurve === 0 ? c : transferCurve(c, D, dacCurve);
      if (dacOffset !== null) v += dacOffset[rowStart + r]! * D;
      volts[r] = v;
    }
    const sums = this.sums;
    const vars = this.vars;
    const readVar = chip.readVar;
    const inside = rowStart + rows <= this.image.rows && colStart + cols <= this.image.cols;
    if (this.ir !== null) {
      if (this.irKernel !== null && inside) this.irKernel.run(rowStart, rows, colStart, cols, this.ir.physRows, this.ir.ratio, readVar !== null);
      else {
        this.irScratch ??= new IrDropScratch(this.image.rows, this.image.cols);
        irDropSums(chip, volts, w, this.ir.physRows, this.ir.ratio, sums, readVar === null ? null : vars, this.irScratch);
      }
    } else if (this.sumsKernel !== null && inside) {
      this.sumsKernel.run(rowStart, rows, colStart, cols);
    } else {
      sums.fill(0, 0, cols);
      const wt = chip.weight;
      const stride = chip.cols;
      if (readVar === null) {
        for (let r = 0; r < rows; r++) {
          const v = volts[r]!;
          if (v === 0) continue; // a row at 0 V draws no current
          const base = (rowStart + r) * stride + colStart;
          for (let j = 0; j < cols; j++) sums[j] += v * wt[base + j]!;
        }
      } else {
        vars.fill(0, 0, cols);
        for (let r = 0; r < rows; r++) {
          const v = volts[r]!;
          if (v === 0) continue; // ... and adds no read noise
          const v2 = v * v;
          const base = (rowStart + r) * stride + colStart;
          for (let j = 0; j < cols; j++) {
            sums[j] += v * wt[base + j]!;
            vars[j] += v2 * readVar[base + j]!;
          }
        }
      }
    }
    const readRng = this.readRng;
    const outputRng = this.outputRng;
    const outputSigma = this.outputSigma;
    const adcOffset = chip.adcOffset;
    const adcCurve = this.adcCurve;
    const scale = chip.driftScale;
    let saturations = 0;
    for (let j = 0; j < cols; j++) {
      const col = colStart + j;
      let s = sums[j]!;
      // One draw per column and MVM, whatever the variance, so the stream stays aligned.
      if (readRng !== null) s += sqrt(vars[j]!) * readRng.normal();
      const range = outRange[col]!;
      let v = (s * colScale[col]!) / D;
      if (outputRng !== null) v += outputSigma * range * outputRng.normal();
      if (adcOffset !== null) v += adcOffset[col]! * range;
      let q: number;
      if (abs(v) > range) {
        saturations++;
        q = v > 0 ? Q : -Q;
      } else {
        const u = adcCurve === 0 ? v : transferCurve(v, range, adcCurve);
        q = roundClamp((u / range) * Q, Q);
      }
      const y = ((q * range) / Q) * scale;
      // The store rounds like `round` (see QuantizedCrossbar.mvm).
      mem[dst + j] = acc ? mem[dst + j]! + y : y;
    }
    return saturations;
  }
}

/**
 * The crossbar model of one image. `noise` (active noise only, see src/noise/setup.ts)
 * selects the noisy model and programs its chip; without it the exact noise-free models run.
 */
export function makeCrossbar(image: CrossbarImage, numerics: Numerics, noise: NoiseSetup | null = null): CrossbarModel {
  if (numerics.kind === "float") {
    if (noise !== null) throw new Error("internal error: device noise on float numerics (noiseSetup rejects it)");
    return new FloatCrossbar(image);
  }
  if (noise === null) return new QuantizedCrossbar(image, numerics.dacBits, numerics.adcBits);
  if (image.weights.kind !== "levels") throw new Error(`internal error: crossbar ${image.id} has float weights on a quantized target`);
  const chip = programCrossbar({ id: image.id, rows: image.rows, cols: image.cols, levels: image.weights.levels }, noise.chip, noise.model, noise.seed, noise.buffers);
  return new NoisyCrossbar(image, numerics.dacBits, numerics.adcBits, chip, noise);
}
