// Small hand-made models and matrix views for quantization tests.

import type { BlockMatrix, Model, Op } from "../../src/ir/types.js";

/** W[i][j] of a block matrix, dense and row-major (test-sized matrices only). */
export function denseOf(w: BlockMatrix): Float64Array {
  const out = new Float64Array(w.rows * w.cols);
  for (const b of w.blocks) for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) out[(b.row + r) * w.cols + b.col + c] = b.data[r * b.cols + c]!;
  return out;
}

/** A one-layer model y = W x + b with W [out, in] given, b_o = 0.01 o; `levels` asks for a level count (QAT). */
export function linearModel(weight: number[], nOut: number, nIn: number, levels?: number): Model {
  const op: Op = {
    op: "linear",
    out: "y",
    layer: "fc",
    x: "x",
    weight: { shape: [nOut, nIn], data: weight },
    bias: { shape: [nOut], data: Array.from({ length: nOut }, (_, o) => 0.01 * o) },
    ...(levels !== undefined ? { quant: { levels } } : {}),
  };
  return {
    irVersion: 1,
    name: "fc",
    level: "model",
    inputs: [{ name: "x", size: nIn }],
    outputs: [{ name: "y", value: "y", section: "step" }],
    state: [],
    sections: { step: [op], final: [] },
  };
}
