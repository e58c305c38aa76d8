// MatMul, Gemm and the reductions: linear maps with constant weights. The result of a
// MatMul/Gemm with a non-constant operand becomes a *virtual* source: downstream forms refer
// to its elements, and planning later decides whether the product is inlined into its
// consumers (e.g. the S4D arithmetic around it) or becomes a matmul of its own (e.g. an
// encoder, whose inlining would merge independent S4D channels into one crossbar block).

import { linearMap, type AffineTensor, type Tensor } from "../operand.js";
import { productSource } from "./products.js";
import { fmtShape, invalid, unsupported } from "../problem.js";
import { broadcastIndex, broadcastShapes, constant, normAxes, sizeOf, strides, type ConstTensor } from "../tensor.js";
import { tensorArg, type Inputs } from "./args.js";
import { attrFloat, attrInt, outName, type OpContext, type OpFn } from "./context.js";
import { binary } from "./elementwise.js";
import { axesOf, transposeTensor } from "./movement.js";

/** Numpy matmul of two tensors, at least one constant. */
export function matmulTensor(a: Tensor, b: Tensor, op = "MatMul"): Tensor {
  if (a.kind !== "const" && b.kind !== "const") {
    unsupported(`${op} of two non-constant tensors (${fmtShape(a.shape)} x ${fmtShape(b.shape)}) is not affine; only products with a constant operand are supported`);
  }
  if (a.shape.length === 0 || b.shape.length === 0) invalid(`${op} operands must have rank >= 1`);
  const as = a.shape.length === 1 ? [1, a.shape[0]!] : [...a.shape];
  const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : [...b.shape];
  const [M, K] = as.slice(-2) as [number, number];
  const [K2, N] = bs.slice(-2) as [number, number];
  if (K !== K2) invalid(`${op} shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not match: ${K} columns vs ${K2} rows`);
  const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2));
  if (!batch) invalid(`${op} batch dimensions of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} cannot be broadcast`);
  const nb = sizeOf(batch);
  // Flat index of each batch's matrix in a and b.
  const ia = broadcastIndex(batch, as.slice(0, -2));
  const ib = broadcastIndex(batch, bs.slice(0, -2));
  const shape = [...batch, M, N];
  const outShape = [...batch, ...(a.shape.length === 1 ? [] : [M]), ...(b.shape.length === 1 ? [] : [N])];
  const aAt = (bi: number, m: number, k: number): number => ia[bi]! * M * K + m * K + k;
  const bAt = (bi: number, k: number, n: number): number => ib[bi]! * K * N + k * N + n;
  if (a.kind === "const" && b.kind === "const") {
    const out = new Float64Array(sizeOf(shape));
    for (let bi = 0; bi < nb; bi++)
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a.data[aAt(bi, m, k)]! * b.data[bAt(bi, k, n)]!;
          out[(bi * M + m) * N + n] = s;
        }
    return constant("float", outShape, out);
  }
  const decompose = (k: number): [number, number, number] => [Math.floor(k / (M * N)), Math.floor(k / N) % M, k % N];
  if (b.kind === "const") {
    return linearMap(a as AffineTensor, outShape, (o, visit) => {
      const [bi, m, n] = decompose(o);
      for (let k = 0; k < K; k++) visit(aAt(bi, m, k), b.data[bAt(bi, k, n)]!);
    });
  }
  const ac = a as ConstTensor;
  return linearMap(b as AffineTensor, outShape, (o, visit) => {
    const [bi, m, n] = decompose(o);
    for (let k = 0; k < K; k++) visit(bAt(bi, k, n), ac.data[aAt(bi, m, k)]!);
  });
}

/**
 * A product x @ w (or w @ x) with a constant weight. Quantized weights (from
 * DequantizeLinear) must reach the crossbar as they are: the input is pinned as a value of
 * its own, so no scaling is folded into the weight grid, and the product is never inlined.
 */
function product(ctx: OpContext, a: Tensor, b: Tensor, finish: (p: Tensor) => Tensor): Tensor {
  if (a.kind === "const" && b.kind === "const") return finish(matmulTensor(a, b, ctx.node.opType));
  const w = (a.kind === "const" ? a : b) as ConstTensor;
  const label = outName(ctx);
  if (w.levels !== undefined) {
    const pin = (t: Tensor): Tensor => (t.kind === "const" ? t : productSource(ctx, t, `${label}.x`, true));
    const p = finish(matmulTensor(pin(a), pin(b), ctx.node.opType));
    return p.kind === "const" ? p : productSource(ctx, p, label, true, w.levels);
  }
  const p = finish(matmulTensor(a, b, ctx.node.opType));
  return p.kind === "const" ? p : productSource(ctx, p, label, false);
}

const matmul: OpFn = (ctx, inputs) => {
  const a = tensorArg(inputs, 0, "A");
  const b = tensorArg(inputs, 1, "B");
  return [product(ctx, a, b, (p) => p)];
};

const gemm: OpFn = (ctx, inputs) => {
  let a = tensorArg(inputs, 0, "A");
  let b = tensorArg(inputs, 1, "B");
  const c = inputs[2] ? tensorArg(inputs, 2, "C") : undefined;
  if (a.shape.length !== 2 || b.shape.length !== 2) invalid(`Gemm needs 2-D A and B, found ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (attrInt(ctx, "transA", 0)) a = transposeTensor(a, [1, 0]);
  if (attrInt(ctx, "transB", 0)) b = transposeTensor(b, [1, 0]);
  const alpha = attrFloat(ctx, "alpha", 1);
  const beta = attrFloat(ctx, "beta", 1);
  const [M, N] = [a.shape[0]!, b.shape[1]!];
  if (c && !broadcastShapes(c.shape, [M, N])?.every((d, i) => d === [M, N][i])) {
    invalid(`Gemm bias C of shape ${fmtShape(c.shape)} does not broadcast to the output shape ${fmtShape([M, N])}`);
  }
  return [
    product(ctx, a, b, (p) => {
      let y = alpha === 1 ? p : binary(ctx, "Mul", p, constant("float", [], [alpha]));
      if (c && beta !== 0) y = binary(ctx, "Add", y, beta === 1 ? c : binary(ctx, "Mul", c, constant("float", [], [beta])));
      return y;
    }),
  ];
};

/** Reduction over `axes` (all axes when empty, unless noop_with_empty_axes). */
function reduce(ctx: OpContext, inputs: Inputs, mean: boolean): Tensor {
  const x = tensorArg(inputs, 0, "data");
  const r = x.shape.length;
  const given = axesOf(ctx, inputs, 1, mean ? 18 : 13);
  const noop = attrInt(ctx, "noop_with_empty_axes", 0) === 1;
  if ((!given || given.length === 0) && noop) return x;
  const axes = normAxes(given && given.length > 0 ? given : x.shape.map((_, i) => i), r);
  const keep = attrInt(ctx, "keepdims", 1) === 1;
  const kept = x.shape.map((d, a) => (axes.includes(a) ? 1 : d));
  const shape = keep ? kept : x.shape.filter((_, a) => !axes.includes(a));
  const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
  const w = mean ? 1 / count : 1;
  // Output element of every input element.
  const st = strides(kept);
  const xs = strides(x.shape);
  const target = new Int32Array(sizeOf(x.shape));
  for (let i = 0; i < target.length; i++) {
    let o = 0;
    for (let a = 0; a < r; a++) if (!axes.includes(a)) o += (Math.floor(i / xs[a]!) % x.shape[a]!) * st[a]!;
    target[i] = o;
  }
  const nOut = sizeOf(shape);
  if (x.kind === "const") {
    const out = new Float64Array(nOut);
    for (let i = 0; i < target.length; i++) out[target[i]!] += x.data[i]!;
    if (mean) for (let o = 0; o < nOut; o++) out[o] /= count;
    return constant(x.dtype === "bool" ? "int" : mean ? "float" : x.dtype, shape, out);
  }
  const members: number[][] = Array.from({ length: nOut }, () => []);
  for (let i = 0; i < target.length; i++) members[target[i]!]!.push(i);
  return linearMap(x, shape, (o, visit) => {
    for (const i of members[o]!) visit(i, w);
  });
}

export const LINALG_OPS: Record<string, OpFn> = {
  MatMul: matmul,
  Gemm: gemm,
  ReduceSum: (ctx, inputs) => [reduce(ctx, inputs, false)],
  ReduceMean: (ctx, inputs) => [reduce(ctx, inputs, true)],
};

