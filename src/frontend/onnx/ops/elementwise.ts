// Elementwise ops with numpy broadcasting. Constants fold; an affine operand propagates when
// the op is affine in it (Add, Sub, Neg, Mul/Div by a constant, Cast to float); everything
// else is handed to the nonlinear layer (nonlinear.ts), which emits IR ops or keeps the
// result pending until a GELU or LayerNorm pattern claims it.

import { erf } from "../../../common/erf.js";
import { gather, sectionOf, weightedSum, type Tensor } from "../operand.js";
import { fmtShape, invalid, unsupported } from "../problem.js";
import { broadcastIndex, broadcastShapes, constant, sizeOf, type ConstTensor, type DType } from "../tensor.js";
import { dtypeOf, typeName } from "../decode.js";
import { tensorArg, uniformValue } from "./args.js";
import { attrInt, outName, type OpContext, type OpFn } from "./context.js";
import { absorbBias } from "./products.js";
import { mulNonconst, nonlinear, pending, reciprocal } from "./nonlinear.js";

type Binary = "Add" | "Sub" | "Mul" | "Div" | "Pow";

function resultType(a: ConstTensor, b: ConstTensor): DType {
  return a.dtype === "float" || b.dtype === "float" ? "float" : a.dtype === "bool" && b.dtype === "bool" ? "bool" : "int";
}

function foldBinary(op: Binary, a: ConstTensor, b: ConstTensor, shape: number[], ia: Int32Array, ib: Int32Array): ConstTensor {
  const dtype = resultType(a, b);
  const out = new Float64Array(ia.length);
  for (let k = 0; k < out.length; k++) {
    const x = a.data[ia[k]!]!;
    const y = b.data[ib[k]!]!;
    switch (op) {
      case "Add":
        out[k] = x + y;
        break;
      case "Sub":
        out[k] = x - y;
        break;
      case "Mul":
        out[k] = x * y;
        break;
      case "Div":
        // Integer division truncates (shape arithmetic: e.g. a dimension halved for GLU).
        out[k] = dtype === "int" ? Math.trunc(x / y) : x / y;
        break;
      case "Pow":
        out[k] = x ** y;
        break;
    }
  }
  return constant(dtype, shape, out);
}

/** Broadcast index plans of a binary op; `what` reports a shape mismatch. */
export function broadcastPair(a: Tensor, b: Tensor): { shape: number[]; ia: Int32Array; ib: Int32Array } {
  const shape = broadcastShapes(a.shape, b.shape);
  if (!shape) invalid(`operand shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} cannot be broadcast together`);
  return { shape, ia: broadcastIndex(shape, a.shape), ib: broadcastIndex(shape, b.shape) };
}

function constValues(c: ConstTensor, idx: Int32Array, fn: (v: number) => number = (v) => v): Float64Array {
  const out = new Float64Array(idx.length);
  for (let k = 0; k < idx.length; k++) out[k] = fn(c.data[idx[k]!]!);
  return out;
}

export function binary(ctx: OpContext, op: Binary, a: Tensor, b: Tensor): Tensor {
  const { shape, ia, ib } = broadcastPair(a, b);
  if (a.kind === "const" && b.kind === "const") return foldBinary(op, a, b, shape, ia, ib);
  const section = sectionOf([a, b])!;
  switch (op) {
    case "Add":
    case "Sub": {
      const sign = op === "Add" ? 1 : -1;
      const sum = weightedSum(shape, [{ x: a, idx: ia, coef: 1 }, { x: b, idx: ib, coef: sign }], section);
      const withConst = b.kind === "const" || (a.kind === "const" && op === "Add");
      return withConst ? absorbBias(ctx, sum, outName(ctx)) : sum;
    }
    case "Mul":
      if (b.kind === "const") return weightedSum(shape, [{ x: a, idx: ia, coef: constValues(b, ib) }], section);
      if (a.kind === "const") return weightedSum(shape, [{ x: b, idx: ib, coef: constValues(a, ia) }], section);
      return mulNonconst(ctx, gather([a], ia, shape), gather([b], ib, shape));
    case "Div":
      if (b.kind === "const") {
        const inv = constValues(b, ib, (v) => {
          if (v === 0) invalid(`division of a non-constant tensor by a constant that contains 0`);
          return 1 / v;
        });
        return weightedSum(shape, [{ x: a, idx: ia, coef: inv }], section);
      }
      return binary(ctx, "Mul", a, reciprocal(ctx, b as Exclude<Tensor, ConstTensor>));
    case "Pow": {
      if (b.kind !== "const") unsupported(`Pow with a non-constant exponent is not supported`);
      const e = uniformValue(b);
      const x = gather([a], ia, shape);
      if (x.kind === "const") throw new Error("internal error: folded above");
      switch (e) {
        case 1:
          return x;
        case 2:
          return pending(ctx, "square", x);
        case 0.5:
          return pending(ctx, "sqrt", x);
        case -0.5:
          return pending(ctx, "rsqrt", x);
        case -1:
          return reciprocal(ctx, x);
        default:
          unsupported(`Pow of a non-constant tensor is supported with exponents 1, 2, 0.5, -0.5 and -1 only, found ${e === undefined ? "a non-uniform exponent" : e}`);
      }
    }
  }
}

const binaryOp =
  (op: Binary): OpFn =>
  (ctx, inputs) => [binary(ctx, op, tensorArg(inputs, 0, "A"), tensorArg(inputs, 1, "B"))];

function unaryFold(x: ConstTensor, fn: (v: number) => number, dtype: DType = x.dtype): ConstTensor {
  return constant(dtype, x.shape, x.data.map(fn));
}

const neg: OpFn = (_ctx, inputs) => {
  const x = tensorArg(inputs, 0, "X");
  if (x.kind === "const") return [unaryFold(x, (v) => -v)];
  return [weightedSum(x.shape, [{ x, idx: Int32Array.from({ length: sizeOf(x.shape) }, (_, i) => i), coef: -1 }], x.section)];
};

const cast: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "input");
  const to = attrInt(ctx, "to", 0);
  const dtype = dtypeOf(to);
  if (!dtype) unsupported(`Cast to ${typeName(to)} is not supported`);
  if (x.kind === "const") {
    const fn = dtype === "int" ? Math.trunc : dtype === "bool" ? (v: number) => (v !== 0 ? 1 : 0) : (v: number) => v;
    return [unaryFold(x, fn, dtype)];
  }
  if (dtype !== "float") unsupported(`Cast of a non-constant tensor to ${typeName(to)}: only casts between float types keep the model affine`);
  return [x];
};

/** Unary ops that fold on constants and become IR ops (or pending functions) otherwise. */
function unaryOp(fold: (v: number) => number, lift: (ctx: OpContext, x: Exclude<Tensor, ConstTensor>) => Tensor): OpFn {
  return (ctx, inputs) => {
    const x = tensorArg(inputs, 0, "X");
    return [x.kind === "const" ? unaryFold(x, fold, "float") : lift(ctx, x)];
  };
}

const SQRT2 = Math.SQRT2;

const gelu: OpFn = (ctx, inputs) => {
  const approx = ctx.node.attrs.get("approximate");
  if (approx && !(approx.kind === "string" && approx.value === "none")) {
    unsupported(`Gelu with approximate="${approx.kind === "string" ? approx.value : "?"}" is not supported; the IR's gelu is the exact erf form (approximate="none")`);
  }
  const x = tensorArg(inputs, 0, "X");
  if (x.kind === "const") return [unaryFold(x, (v) => 0.5 * v * (1 + erf(v / SQRT2)))];
  return [nonlinear(ctx, "gelu", [x])];
};

const softmax: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "input");
  if (x.kind !== "const") unsupported(`Softmax of a non-constant tensor is not supported: the IR has no softmax op`);
  const r = x.shape.length;
  const axisAttr = attrInt(ctx, "axis", -1);
  const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
  const dim = x.shape[axis]!;
  const inner = sizeOf(x.shape.slice(axis + 1));
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < sizeOf(x.shape.slice(0, axis)); o++) {
    for (let j = 0; j < inner; j++) {
      let m = -Infinity;
      for (let d = 0; d < dim; d++) m = Math.max(m, x.data[(o * dim + d) * inner + j]!);
      let s = 0;
      for (let d = 0; d < dim; d++) s += Math.exp(x.data[(o * dim + d) * inner + j]! - m);
      for (let d = 0; d < dim; d++) out[(o * dim + d) * inner + j] = Math.exp(x.data[(o * dim + d) * inner + j]! - m) / s;
    }
  }
  return [constant("float", x.shape, out)];
};

export const ELEMENTWISE_OPS: Record<string, OpFn> = {
  Add: binaryOp("Add"),
  Sub: binaryOp("Sub"),
  Mul: binaryOp("Mul"),
  Div: binaryOp("Div"),
  Pow: binaryOp("Pow"),
  Neg: neg,
  Cast: cast,
  Relu: unaryOp(
    (v) => Math.max(v, 0),
    (ctx, x) => nonlinear(ctx, "relu", [x]),
  ),
  Sigmoid: unaryOp(
    (v) => 1 / (1 + Math.exp(-v)),
    (ctx, x) => nonlinear(ctx, "sigmoid", [x]),
  ),
  Tanh: unaryOp(Math.tanh, (ctx, x) => nonlinear(ctx, "tanh", [x])),
  Erf: unaryOp(erf, (ctx, x) => pending(ctx, "erf", x)),
  Sqrt: unaryOp(Math.sqrt, (ctx, x) => pending(ctx, "sqrt", x)),
  Reciprocal: unaryOp((v) => 1 / v, (ctx, x) => reciprocal(ctx, x)),
  Gelu: gelu,
  Softmax: softmax,
};

