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
  return { row: b.row, col: b.col, rows: b.rows, cols: b.cols, data: Float64Array.from(b.data) };
}

/** y[j] = sum_i x[i] W[i][j] (+ bias[j]) for a block matrix in crossbar orientation. */
export function blockMatmulInto(blocks: readonly PackedBlock[], bias: Float64Array | null, x: Float64Array, y: Float64Array): void {
  if (bias) y.set(bias);
  else y.fill(0);
  for (const b of blocks) {
    for (let i = 0; i < b.rows; i++) {
      const xi = x[b.row + i];
      const base = i * b.cols;
      for (let j = 0; j < b.cols; j++) y[b.col + j] += xi * b.data[base + j];
    }
  }
}
