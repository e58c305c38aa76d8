// Movement ops: every output element is a copy of one input element. Each op computes, from
// shapes and constant attributes only, which input element every output element copies;
// the same index plan then serves constants (folding) and affine tensors (lifting).

import { gather, reshapeTensor, type Tensor } from "../operand.js";
import { fmtShape, invalid } from "../problem.js";
import { broadcastIndex, broadcastShapes, intValues, normAxes, normAxis, sizeOf, strides } from "../tensor.js";
import { constArg, intsArg, optInts, tensorArg, type Inputs } from "./args.js";
import { attrInt, attrInts, type OpContext, type OpFn } from "./context.js";

// ---- index plans ----------------------------------------------------------------------

/** Calls fn(flat index, multi-index) for every element of `shape` in row-major order. */
function forEachIndex(shape: readonly number[], fn: (flat: number, at: number[]) => void): void {
  const n = sizeOf(shape);
  const at = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    fn(k, at);
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      if (++at[ax]! < shape[ax]!) break;
      at[ax] = 0;
    }
  }
}

export function transposeTensor(x: Tensor, perm: readonly number[]): Tensor {
  const r = x.shape.length;
  if (perm.length !== r || new Set(perm).size !== r || perm.some((p) => !Number.isInteger(p) || p < 0 || p >= r)) {
    invalid(`perm [${perm.join(", ")}] is not a permutation of the ${r} axes of a tensor of shape ${fmtShape(x.shape)}`);
  }
  const shape = perm.map((p) => x.shape[p]!);
  const st = strides(x.shape);
  const idx = new Int32Array(sizeOf(shape));
  forEachIndex(shape, (k, at) => {
    let j = 0;
    for (let a = 0; a < r; a++) j += at[a]! * st[perm[a]!]!;
    idx[k] = j;
  });
  return gather([x], idx, shape);
}

/** ONNX Slice on one tensor with normalized per-axis parameters. */
export function sliceTensor(x: Tensor, starts: readonly number[], ends: readonly number[], axes: readonly number[], steps: readonly number[]): Tensor {
  const r = x.shape.length;
  const lo = new Array<number>(r).fill(0);
  const step = new Array<number>(r).fill(1);
  const shape = [...x.shape];
  axes.forEach((a, i) => {
    const dim = x.shape[a]!;
    const s = steps[i]!;
    if (s === 0) invalid(`slice step for axis ${a} is 0`);
    let b = starts[i]!;
    let e = ends[i]!;
    if (b < 0) b += dim;
    if (e < 0) e += dim;
    if (s > 0) {
      b = Math.min(Math.max(b, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
      shape[a] = Math.max(0, Math.ceil((e - b) / s));
    } else {
      b = Math.min(Math.max(b, -1), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
      shape[a] = Math.max(0, Math.ceil((b - e) / -s));
    }
    lo[a] = b;
    step[a] = s;
  });
  const st = strides(x.shape);
  const idx = new Int32Array(sizeOf(shape));
  forEachIndex(shape, (k, at) => {
    let j = 0;
    for (let a = 0; a < r; a++) j += (lo[a]! + at[a]! * step[a]!) * st[a]!;
    idx[k] = j;
  });
  return gather([x], idx, shape);
}

export function concatTensors(xs: readonly Tensor[], axisAttr: number): Tensor {
  const first = xs[0]!;
  const r = first.shape.length;
  const axis = normAxis(axisAttr, r);
  xs.forEach((x, i) => {
    if (x.shape.length !== r || x.shape.some((d, a) => a !== axis && d !== first.shape[a])) {
      invalid(`Concat on axis ${axis}: input ${i} has shape ${fmtShape(x.shape)}, which does not match input 0 ${fmtShape(first.shape)} outside the concatenation axis`);
    }
  });
  const shape = [...first.shape];
  shape[axis] = xs.reduce((n, x) => n + x.shape[axis]!, 0);
  const outer = sizeOf(first.shape.slice(0, axis));
  const inner = sizeOf(first.shape.slice(axis + 1));
  const idx = new Int32Array(sizeOf(shape));
  let k = 0;
  const base: number[] = [];
  let acc = 0;
  for (const x of xs) {
    base.push(acc);
    acc += sizeOf(x.shape);
  }
  for (let o = 0; o < outer; o++) {
    xs.forEach((x, i) => {
      const block = x.shape[axis]! * inner;
      for (let j = 0; j < block; j++) idx[k++] = base[i]! + o * block + j;
    });
  }
  return gather(xs, idx, shape);
}

export function gatherTensor(x: Tensor, indices: readonly number[], indexShape: readonly number[], axisAttr: number): Tensor {
  const r = x.shape.length;
  const axis = normAxis(axisAttr, r);
  const dim = x.shape[axis]!;
  const norm = indices.map((i) => {
    if (i < -dim || i >= dim) invalid(`Gather index ${i} is out of range for axis ${axis} of size ${dim}`);
    return i < 0 ? i + dim : i;
  });
  const outer = sizeOf(x.shape.slice(0, axis));
  const inner = sizeOf(x.shape.slice(axis + 1));
  const shape = [...x.shape.slice(0, axis), ...indexShape, ...x.shape.slice(axis + 1)];
  const idx = new Int32Array(sizeOf(shape));
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const i of norm) {
      for (let j = 0; j < inner; j++) idx[k++] = (o * dim + i) * inner + j;
    }
  }
  return gather([x], idx, shape);
}

export function expandTensor(x: Tensor, target: readonly number[]): Tensor {
  const shape = broadcastShapes(x.shape, target);
  if (!shape) invalid(`cannot expand shape ${fmtShape(x.shape)} to ${fmtShape(target)}`);
  return gather([x], broadcastIndex(shape, x.shape), shape);
}

/** Reshape target with ONNX's 0 (copy) and -1 (infer) rules. */
export function reshapeTarget(from: readonly number[], spec: readonly number[], allowZero: boolean): number[] {
  const out = spec.map((d, i) => {
    if (d === 0 && !allowZero) {
      if (i >= from.length) invalid(`shape ${fmtShape(spec)} copies dimension ${i} (0), but the input has rank ${from.length}`);
      return from[i]!;
    }
    return d;
  });
  const unknown = out.filter((d) => d === -1).length;
  if (unknown > 1 || out.some((d) => d < -1 || !Number.isInteger(d))) invalid(`invalid target shape ${fmtShape(spec)}`);
  const n = sizeOf(from);
  if (unknown === 1) {
    const known = sizeOf(out.filter((d) => d !== -1));
    if (known === 0 || n % known !== 0) invalid(`cannot reshape ${fmtShape(from)} (${n} elements) to ${fmtShape(spec)}`);
    out[out.indexOf(-1)] = n / known;
  }
  if (sizeOf(out) !== n) invalid(`cannot reshape ${fmtShape(from)} (${n} elements) to ${fmtShape(spec)} (${sizeOf(out)} elements)`);
  return out;
}

export function squeezeShape(shape: readonly number[], axes: readonly number[] | undefined): number[] {
  if (axes === undefined) return shape.filter((d) => d !== 1);
  const norm = normAxes(axes, shape.length);
  for (const a of norm) if (shape[a] !== 1) invalid(`cannot squeeze axis ${a} of shape ${fmtShape(shape)}: its size is ${shape[a]}, not 1`);
  return shape.filter((_, a) => !norm.includes(a));
}

export function unsqueezeShape(shape: readonly number[], axes: readonly number[]): number[] {
  const r = shape.length + axes.length;
  const norm = normAxes(axes, r);
  const out: number[] = [];
  let j = 0;
  for (let a = 0; a < r; a++) out.push(norm.includes(a) ? 1 : shape[j++]!);
  return out;
}

// ---- ops ------------------------------------------------------------------------------

/** Axes from the attribute (older opsets) or the input `k` (newer ones). */
export function axesOf(ctx: OpContext, inputs: Inputs, k: number, inputSince: number): number[] | undefined {
  return ctx.opset >= inputSince ? optInts(inputs, k, "axes") : attrInts(ctx, "axes");
}

const identity: OpFn = (_ctx, inputs) => [tensorArg(inputs, 0, "input")];

const reshape: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "data");
  const spec = intsArg(inputs, 1, "shape");
  return [reshapeTensor(x, reshapeTarget(x.shape, spec, attrInt(ctx, "allowzero", 0) === 1))];
};

const flatten: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "input");
  const r = x.shape.length;
  const axis = attrInt(ctx, "axis", 1);
  if (axis < -r || axis > r) invalid(`axis ${axis} is out of range for Flatten of a rank-${r} tensor`);
  const a = axis < 0 ? axis + r : axis;
  return [reshapeTensor(x, [sizeOf(x.shape.slice(0, a)), sizeOf(x.shape.slice(a))])];
};

const squeeze: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "data");
  return [reshapeTensor(x, squeezeShape(x.shape, axesOf(ctx, inputs, 1, 13)))];
};

const unsqueeze: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "data");
  const axes = axesOf(ctx, inputs, 1, 13);
  if (!axes) invalid(`Unsqueeze needs axes`);
  return [reshapeTensor(x, unsqueezeShape(x.shape, axes))];
};

const transpose: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "data");
  const perm = attrInts(ctx, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
  return [transposeTensor(x, perm)];
};

const slice: OpFn = (_ctx, inputs) => {
  const x = tensorArg(inputs, 0, "data");
  const starts = intsArg(inputs, 1, "starts");
  const ends = intsArg(inputs, 2, "ends");
  const r = x.shape.length;
  const axes = normAxes(optInts(inputs, 3, "axes") ?? starts.map((_, i) => i), r);
  const steps = optInts(inputs, 4, "steps") ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    invalid(`starts, ends, axes and steps must have the same length (${starts.length}, ${ends.length}, ${axes.length}, ${steps.length})`);
  }
  return [sliceTensor(x, starts, ends, axes, steps)];
};

const split: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "input");
  const r = x.shape.length;
  const axis = normAxis(attrInt(ctx, "axis", 0), r);
  const dim = x.shape[axis]!;
  const n = ctx.node.outputs.length;
  let sizes = optInts(inputs, 1, "split");
  if (!sizes) {
    const parts = ctx.opset >= 18 ? attrInt(ctx, "num_outputs", n) : n;
    if (parts !== n) invalid(`num_outputs is ${parts} but the node has ${n} outputs`);
    // Opset 18: the last chunk may be smaller; before, the split must be even.
    const chunk = ctx.opset >= 18 ? Math.ceil(dim / parts) : dim / parts;
    if (!Number.isInteger(chunk)) invalid(`cannot split axis ${axis} of size ${dim} into ${parts} equal parts`);
    sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
  }
  if (sizes.length !== n) invalid(`split has ${sizes.length} sizes but the node has ${n} outputs`);
  if (sizes.reduce((a, b) => a + b, 0) !== dim) invalid(`split sizes [${sizes.join(", ")}] do not add up to the size ${dim} of axis ${axis}`);
  let at = 0;
  return sizes.map((s) => {
    const out = sliceTensor(x, [at], [at + s], [axis], [1]);
    at += s;
    return out;
  });
};

const concat: OpFn = (ctx, inputs) => {
  if (inputs.length === 0) invalid(`Concat needs at least one input`);
  const xs = inputs.map((_, k) => tensorArg(inputs, k, `input ${k}`));
  const axis = ctx.node.attrs.get("axis");
  if (!axis) invalid(`attribute "axis" is missing`);
  return [concatTensors(xs, attrInt(ctx, "axis", 0))];
};

const gatherOp: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "data");
  const ind = constArg(inputs, 1, "indices");
  return [gatherTensor(x, intValues(ind, "indices"), ind.shape, attrInt(ctx, "axis", 0))];
};

const expand: OpFn = (_ctx, inputs) => {
  const x = tensorArg(inputs, 0, "input");
  return [expandTensor(x, intsArg(inputs, 1, "shape"))];
};

export const MOVEMENT_OPS: Record<string, OpFn> = {
  Identity: identity,
  Reshape: reshape,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Transpose: transpose,
  Slice: slice,
  Split: split,
  Concat: concat,
  Gather: gatherOp,
  Expand: expand,
};

