// Float64 vector kernels shared by the two reference evaluators (recurrent step form and
// convolution form). They write into caller-provided buffers so the step loop allocates
// nothing.

import { gelu } from "../common/erf.js";
import type { MatrixBlock, UnaryKind } from "../ir/types.js";

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function relu(x: number): number {
  return Math.max(0, x);
}

export function unaryFunction(kind: UnaryKind): (x: number) => number {
  switch (kind) {
    case "gelu":
      return gelu;
    case "sigmoid":
      return sigmoid;
    case "tanh":
      return Math.tanh;
    case "relu":
      return relu;
  }
}

export function unaryInto(f: (x: number) => number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
}

/**
 * y = (x - mean) / sqrt(var + eps) (* gamma + beta), biased variance, two passes so a large
 * common offset does not cancel the variance away. gamma/beta null: plain normalization.
 */
export function layerNormInto(x: Float64Array, gamma: Float64Array | null, beta: Float64Array | null, eps: number, y: Float64Array): void {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i] - mean;
    variance += d * d;
  }
  variance /= n;
  const inv = 1 / Math.sqrt(variance + eps);
  for (let i = 0; i < n; i++) {
    const z = (x[i] - mean) * inv;
    y[i] = gamma && beta ? z * gamma[i] + beta[i] : z;
  }
}

/** GLU: y = x[:n] * sigmoid(x[n:]) with n = x.length / 2. */
export function gluInto(x: Float64Array, y: Float64Array): void {
  const n = y.length;
  for (let i = 0; i < n; i++) y[i] = x[i] * sigmoid(x[n + i]);
}

/** y = W x + b, W row-major [out, in] (PyTorch orientation). */
export function denseInto(weight: Float64Array, bias: Float64Array | null, x: Float64Array, y: Float64Array): void {
  const nIn = x.length;
  for (let o = 0; o < y.length; o++) {
    let acc = 0;
    const row = o * nIn;
    for (let i = 0; i < nIn; i++) acc += weight[row + i] * x[i];
    y[o] = bias ? acc + bias[o] : acc;
  }
}

export interface PackedBlock {
  row: number;
  col: number;
  rows: number;
  cols: number;
  data: Float64Array;
}

export function packBlock(b: MatrixBlock): PackedBlock {
  // A plain copy loop: Float64Array.from goes through the iterator protocol per element.
  const src = b.data;
  const data = new Float64Array(src.length);
  for (let k = 0; k < src.length; k++) data[k] = src[k];
  return { row: b.row, col: b.col, rows: b.rows, cols: b.cols, data };
}

/** y[j] = sum_i x[i] W[i][j] (+ bias[j]) for a block matrix in crossbar orientation. */
export function blockMatmulInto(blocks: readonly PackedBlock[], bias: Float64Array | null, x: Float64Array, y: Float64Array): void {
  if (bias) y.set(bias);
  else y.fill(0);
  for (const b of blocks) denseBlockInto(b, x, y);
}

function denseBlockInto(b: PackedBlock, x: Float64Array, y: Float64Array): void {
  // Locals: the loop is the reference evaluator's hot spot (calibration runs it per weight
  // and step), keep property loads out of it.
  // Four rows per pass over y: y[j] + a + b + c + d evaluates left to right, one rounding
  // per addition, so each y[j] gets the same products in the same order as row by row (JS
  // never fuses a multiply-add), with a quarter of the loads and stores of y.
  const { row, col, rows, cols, data } = b;
  let i = 0;
  for (; i + 4 <= rows; i += 4) {
    const x0 = x[row + i];
    const x1 = x[row + i + 1];
    const x2 = x[row + i + 2];
    const x3 = x[row + i + 3];
    const b0 = i * cols;
    const b1 = b0 + cols;
    const b2 = b1 + cols;
    const b3 = b2 + cols;
    for (let j = 0; j < cols; j++) y[col + j] = y[col + j] + x0 * data[b0 + j] + x1 * data[b1 + j] + x2 * data[b2 + j] + x3 * data[b3 + j];
  }
  for (; i < rows; i++) {
    const xi = x[row + i];
    const base = i * cols;
    for (let j = 0; j < cols; j++) y[col + j] += xi * data[base + j];
  }
}

/**
 * Blocks with fewer cells than this are flattened into single terms: a lowered S4D matrix is
 * thousands of 2x2 rotation blocks, where the per-block loop overhead costs more than the
 * multiply-adds. (Measured on an H=256, M=32 S4D matrix: flattening its 2M x 1 C columns too
 * was slower than the four-row dense loop.)
 */
const SMALL_BLOCK_CELLS = 64;

/** A run of consecutive small blocks as terms y[yIdx[k]] += x[xIdx[k]] * w[k]. */
interface TermRun {
  kind: "terms";
  xIdx: Int32Array;
  yIdx: Int32Array;
  w: Float64Array;
}

type MatmulSegment = { kind: "dense"; block: PackedBlock } | TermRun;

/** A block matrix prepared for blockMatmul; same arithmetic as blockMatmulInto. */
export interface PackedMatmul {
  segments: MatmulSegment[];
}

/**
 * Packs blocks for packedMatmulInto. The terms of a run are listed in the order
 * blockMatmulInto visits them (block by block, row by row, column by column), and dense
 * segments keep their place between runs, so every y[j] receives the same products in the
 * same order: the sums are bit-identical (zero weights included, so NaN and signed zeros
 * propagate the same way too).
 */
export function packMatmul(blocks: readonly MatrixBlock[]): PackedMatmul {
  const segments: MatmulSegment[] = [];
  let pending: MatrixBlock[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    let n = 0;
    for (const b of pending) n += b.rows * b.cols;
    const xIdx = new Int32Array(n);
    const yIdx = new Int32Array(n);
    const w = new Float64Array(n);
    let k = 0;
    for (const b of pending) {
      const { row, col, rows, cols, data } = b;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++, k++) {
          xIdx[k] = row + i;
          yIdx[k] = col + j;
          w[k] = data[i * cols + j];
        }
      }
    }
    segments.push({ kind: "terms", xIdx, yIdx, w });
    pending = [];
  };
  for (const b of blocks) {
    if (b.rows * b.cols < SMALL_BLOCK_CELLS) pending.push(b);
    else {
      flush();
      segments.push({ kind: "dense", block: packBlock(b) });
    }
  }
  flush();
  return { segments };
}

function termsInto(r: TermRun, x: Float64Array, y: Float64Array): void {
  const { xIdx, yIdx, w } = r;
  for (let k = 0; k < w.length; k++) y[yIdx[k]] += x[xIdx[k]] * w[k];
}

/** y[j] = sum_i x[i] W[i][j] (+ bias[j]); bit-identical to blockMatmulInto on the same blocks. */
export function packedMatmulInto(m: PackedMatmul, bias: Float64Array | null, x: Float64Array, y: Float64Array): void {
  if (bias) y.set(bias);
  else y.fill(0);
  for (const s of m.segments) {
    if (s.kind === "dense") denseBlockInto(s.block, x, y);
    else termsInto(s, x, y);
  }
}
