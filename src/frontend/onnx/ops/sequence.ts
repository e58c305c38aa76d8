// Ops on whole-sequence tensors (Scan inputs and outputs, time length unknown). A SeqTensor
// is one tensor per step with the time axis removed; an op that treats the time axis as a
// batch axis runs on that per-step tensor with its axis attributes renumbered, and the time
// axis is put back into the result. Reducing over time is the one op that leaves the step
// section: ReduceMean/ReduceSum over the time axis become an accumulator (a pooled source
// read once per sequence, in the final section).

import { single, type LinForm } from "../forms.js";
import { affine, fullShape, reshapeTensor, type Operand, type SeqTensor, type Tensor } from "../operand.js";
import { fmtShape, invalid, unsupported } from "../problem.js";
import { constant, normAxes, sizeOf, type ConstTensor } from "../tensor.js";
import { need, optInts, type Inputs } from "./args.js";
import { attrInt, attrInts, outName, type OpContext, type OpFn } from "./context.js";
import { squeezeShape, transposeTensor, unsqueezeShape } from "./movement.js";

export type SeqAdapter = (ctx: OpContext, inputs: Inputs, op: OpFn) => Operand[];

const seq = (axis: number, inner: Tensor): SeqTensor => ({ kind: "seq", axis, inner });

function removeAxis(t: ConstTensor, axis: number): ConstTensor {
  if (t.shape[axis] !== 1) unsupported(`a constant of shape ${fmtShape(t.shape)} varies along the time axis, whose length is unknown at compile time`);
  return reshapeTensor(t, t.shape.filter((_, a) => a !== axis));
}

/** Ops applied independently to every element (with numpy broadcasting). */
export const elementwiseSeq: SeqAdapter = (ctx, inputs, op) => {
  const ranks = inputs.map((x) => (x ? fullShape(x).length : 0));
  const R = Math.max(...ranks);
  let A: number | undefined;
  inputs.forEach((x, k) => {
    if (x?.kind !== "seq") return;
    const aligned = x.axis + R - ranks[k]!;
    if (A !== undefined && A !== aligned) unsupported(`the time axes of the whole-sequence inputs do not line up`);
    A = aligned;
  });
  const inner = inputs.map((x, k) => {
    if (!x) return undefined;
    if (x.kind === "seq") return x.inner;
    if (x.kind === "affine") unsupported(`this op combines a whole-sequence tensor with a value computed once per sequence`);
    const at = A! - (R - ranks[k]!);
    return at >= 0 ? removeAxis(x, at) : x;
  });
  return op(ctx, inner).map((y) => {
    if (y.kind === "seq") throw new Error("internal error: elementwise op returned a sequence");
    return seq(A! - (R - y.shape.length - 1), y);
  });
};

function firstSeq(inputs: Inputs): SeqTensor {
  const x = need(inputs, 0, "input");
  if (x.kind !== "seq") unsupported(`only the first input may be a whole-sequence tensor for this op`);
  if (inputs.slice(1).some((y) => y?.kind === "seq")) unsupported(`only the first input may be a whole-sequence tensor for this op`);
  return x;
}

const transposeSeq: SeqAdapter = (ctx, inputs) => {
  const x = firstSeq(inputs);
  const r = x.inner.shape.length + 1;
  const perm = attrInts(ctx, "perm") ?? Array.from({ length: r }, (_, i) => r - 1 - i);
  const t = x.axis;
  const out = perm.indexOf(t);
  if (out < 0 || perm.length !== r) invalid(`perm [${perm.join(", ")}] is not a permutation of ${r} axes`);
  const innerPerm = perm.filter((p) => p !== t).map((p) => (p > t ? p - 1 : p));
  return [seq(out, innerPerm.every((p, i) => p === i) ? x.inner : transposeTensor(x.inner, innerPerm))];
};

const unsqueezeSeq: SeqAdapter = (ctx, inputs) => {
  const x = firstSeq(inputs);
  const axes = ctx.opset >= 13 ? optInts(inputs, 1, "axes") : attrInts(ctx, "axes");
  if (!axes) invalid(`Unsqueeze needs axes`);
  const full = fullShape(x);
  const out = unsqueezeShape(full, axes);
  // The time axis is the t-th of the axes that were not inserted.
  const inserted = normAxes(axes, out.length);
  let seen = -1;
  let tOut = -1;
  for (let a = 0; a < out.length; a++) {
    if (inserted.includes(a)) continue;
    if (++seen === x.axis) tOut = a;
  }
  return [seq(tOut, reshapeTensor(x.inner, out.filter((_, a) => a !== tOut)))];
};

const squeezeSeq: SeqAdapter = (ctx, inputs) => {
  const x = firstSeq(inputs);
  const axes = ctx.opset >= 13 ? optInts(inputs, 1, "axes") : attrInts(ctx, "axes");
  const full = fullShape(x);
  const norm = axes ? normAxes(axes, full.length) : full.map((d, a) => (d === 1 ? a : -1)).filter((a) => a >= 0);
  if (norm.includes(x.axis)) unsupported(`cannot squeeze the time axis of a whole-sequence tensor`);
  const inner = squeezeShape(
    x.inner.shape,
    norm.map((a) => (a > x.axis ? a - 1 : a)),
  );
  return [seq(x.axis - norm.filter((a) => a < x.axis).length, reshapeTensor(x.inner, inner))];
};

/**
 * A pooled (final-section) tensor: mean or sum over time of a per-step tensor. When every
 * element is c + k * (an element of one source), the source itself is accumulated and the
 * constants are applied once, after pooling (mean(k x + c) = k mean(x) + c), where they fold
 * into whatever follows (typically the decoder).
 */
function pool(ctx: OpContext, t: Tensor, mode: "mean" | "sum"): Tensor {
  if (t.kind === "const") {
    if (mode === "sum") unsupported(`ReduceSum over time of a constant depends on the sequence length`);
    return t;
  }
  const label = outName(ctx);
  const n = t.f.length;
  const one = t.f.every((f) => f.ids.length <= 1) ? ctx.sym.sourcesOf(t) : [];
  const direct = one.length === 1 && one[0]!.size <= n && (mode === "mean" || t.c.every((c) => c === 0));
  if (direct) {
    const s = one[0]!;
    const all = Array.from({ length: s.size }, (_, j) => single(s.base + j));
    const req = ctx.sym.request(t.section, new Float64Array(s.size), all, `${label}.step`, ctx.node.name || undefined);
    const src = ctx.sym.add("pooled", s.size, "final", label, ctx.ref, { of: req, mode });
    const f = t.f.map((form) => (form.ids.length === 0 ? form : single(src.base + form.ids[0]! - s.base, form.k[0]!)));
    return affine(t.shape, "final", new Float64Array(t.c), f);
  }
  const req = ctx.sym.request(t.section, t.c, t.f, `${label}.step`, ctx.node.name || undefined);
  const src = ctx.sym.add("pooled", n, "final", label, ctx.ref, { of: req, mode });
  const f = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) f[i] = single(src.base + i);
  return affine(t.shape, "final", new Float64Array(n), f);
}

const reduceSeq =
  (mean: boolean): SeqAdapter =>
  (ctx, inputs, op) => {
    const x = firstSeq(inputs);
    const full = fullShape(x);
    const r = full.length;
    const given = ctx.opset >= (mean ? 18 : 13) ? optInts(inputs, 1, "axes") : attrInts(ctx, "axes");
    const noop = attrInt(ctx, "noop_with_empty_axes", 0) === 1;
    if ((!given || given.length === 0) && noop) return [x];
    const axes = normAxes(given && given.length > 0 ? given : full.map((_, i) => i), r);
    const keep = attrInt(ctx, "keepdims", 1) === 1;
    const t = x.axis;
    const others = axes.filter((a) => a !== t).map((a) => (a > t ? a - 1 : a));
    // Reduce the other axes per step with the op itself (same keepdims), then over time.
    const perStep = (inner: Tensor): Tensor => {
      if (others.length === 0) return inner;
      const axesConst = constant("int", [others.length], others);
      const sub: Inputs = ctx.opset >= (mean ? 18 : 13) ? [inner, axesConst] : [inner];
      const subCtx: OpContext = ctx.opset >= (mean ? 18 : 13) ? ctx : { ...ctx, node: { ...ctx.node, attrs: new Map([...ctx.node.attrs, ["axes", { kind: "ints", value: others }]]) } };
      const y = op(subCtx, sub)[0]!;
      if (y.kind === "seq") throw new Error("internal error: reduction returned a sequence");
      return y;
    };
    const y = perStep(x.inner);
    const tOut = keep ? t : t - axes.filter((a) => a < t).length;
    if (!axes.includes(t)) return [seq(tOut, y)];
    const pooled = pool(ctx, y, mean ? "mean" : "sum");
    if (!keep) return [pooled];
    const shape = [...pooled.shape];
    shape.splice(t, 0, 1);
    return [reshapeTensor(pooled, shape)];
  };

const matmulSeq: SeqAdapter = (ctx, inputs, op) => {
  const x = firstSeq(inputs);
  const w = need(inputs, 1, "B");
  if (w.kind !== "const" || w.shape.length > 2) unsupported(`MatMul of a whole-sequence tensor needs a constant 1-D or 2-D right operand`);
  const r = x.inner.shape.length + 1;
  const t = x.axis;
  if (t === r - 1) unsupported(`MatMul contracting over the time axis is not supported`);
  if (t < r - 2) {
    const y = op(ctx, [x.inner, w])[0] as Tensor;
    return [seq(t, y)];
  }
  // The time axis is the row axis: one row per step.
  const rows = [...x.inner.shape];
  rows.splice(r - 2, 0, 1);
  const y = op(ctx, [reshapeTensor(x.inner, rows), w])[0] as Tensor;
  return [seq(r - 2, reshapeTensor(y, y.shape.filter((_, a) => a !== r - 2)))];
};

const gemmSeq: SeqAdapter = (ctx, inputs, op) => {
  const x = firstSeq(inputs);
  if (x.inner.shape.length !== 1) invalid(`Gemm needs a 2-D A, found ${fmtShape(fullShape(x))}`);
  const transA = attrInt(ctx, "transA", 0) === 1;
  if (x.axis !== (transA ? 1 : 0)) unsupported(`Gemm over a whole-sequence tensor needs the time axis as the row axis of A`);
  const K = x.inner.shape[0]!;
  const a = reshapeTensor(x.inner, transA ? [K, 1] : [1, K]);
  const y = op(ctx, [a, ...inputs.slice(1)])[0] as Tensor;
  return [seq(0, reshapeTensor(y, [sizeOf(y.shape)]))];
};

export const SEQ_ADAPTERS: Record<string, SeqAdapter> = {
  Transpose: transposeSeq,
  Unsqueeze: unsqueezeSeq,
  Squeeze: squeezeSeq,
  ReduceMean: reduceSeq(true),
  ReduceSum: reduceSeq(false),
  MatMul: matmulSeq,
  Gemm: gemmSeq,
};

