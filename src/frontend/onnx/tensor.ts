// Constant tensors and shape arithmetic. Every constant (initializers, folded subgraphs,
// shapes) is held as float64 whatever its ONNX type: int64 shape values stay exact up to
// 2^53, which covers every dimension; the INT64_MAX sentinels of Slice only need to be huge.

import { elementsProblem, limits } from "../../common/limits.js";
import { invalid, NodeProblem } from "./problem.js";

export type DType = "float" | "int" | "bool";

export interface ConstTensor {
  readonly kind: "const";
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Float64Array;
  /**
   * Set when the values came out of DequantizeLinear: they lie on a grid of `levels` signed
   * levels (odd, 3 = ternary), which the matmul reading them asks the quantizer to keep.
   */
  readonly levels?: number;
}

/**
 * Elements of a shape. Every op that allocates a result computes this first, so this is
 * where a shape computed from the file's data (ConstantOfShape of [1e12], Expand, Tile ...)
 * is refused before the allocation: a NodeProblem the graph walker places at the node.
 */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  if (n > limits().maxElements) throw new NodeProblem("resource", elementsProblem(shape, "the result") ?? `shape [${shape.join(", ")}] is too large`);
  return n;
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function constant(dtype: DType, shape: readonly number[], data: Float64Array | readonly number[], levels?: number): ConstTensor {
  const arr = data instanceof Float64Array ? data : Float64Array.from(data);
  if (arr.length !== sizeOf(shape)) throw new Error(`internal error: ${arr.length} values for shape [${shape.join(", ")}]`);
  return levels === undefined ? { kind: "const", dtype, shape: [...shape], data: arr } : { kind: "const", dtype, shape: [...shape], data: arr, levels };
}

export function scalar(value: number, dtype: DType = "float"): ConstTensor {
  return constant(dtype, [], [value]);
}

/** Axis in [-rank, rank) to [0, rank); `what` names the attribute for the message. */
export function normAxis(axis: number, rank: number, what = "axis"): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) invalid(`${what} ${axis} is out of range for a tensor of rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

export function normAxes(axes: readonly number[], rank: number, what = "axes"): number[] {
  const out = axes.map((a) => normAxis(a, rank, what));
  if (new Set(out).size !== out.length) invalid(`${what} [${axes.join(", ")}] repeats an axis`);
  return out;
}

/** Numpy (multidirectional) broadcasting; null when the shapes are incompatible. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** For each element of `outShape`, the flat index of the element of `inShape` it broadcasts from. */
export function broadcastIndex(outShape: readonly number[], inShape: readonly number[]): Int32Array {
  const n = sizeOf(outShape);
  const idx = new Int32Array(n);
  const r = outShape.length;
  const off = r - inShape.length;
  const inStrides = strides(inShape);
  // Stride of each output axis in the input (0 where the input broadcasts).
  const step = new Array<number>(r).fill(0);
  for (let i = 0; i < inShape.length; i++) if (inShape[i] !== 1) step[off + i] = inStrides[i]!;
  const counter = new Array<number>(r).fill(0);
  let at = 0;
  for (let k = 0; k < n; k++) {
    idx[k] = at;
    for (let ax = r - 1; ax >= 0; ax--) {
      counter[ax]!++;
      at += step[ax]!;
      if (counter[ax]! < outShape[ax]!) break;
      at -= step[ax]! * outShape[ax]!;
      counter[ax] = 0;
    }
  }
  return idx;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Values of a constant as integers (shape inputs, axes, indices); `what` names the input. */
export function intValues(t: ConstTensor, what: string): number[] {
  const out: number[] = [];
  for (const v of t.data) {
    if (!Number.isInteger(v) && Number.isFinite(v)) invalid(`${what} must hold integers, found ${v}`);
    out.push(v);
  }
  return out;
}
