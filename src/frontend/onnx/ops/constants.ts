// Ops that make constants: Constant, ConstantOfShape, Shape (shapes are known at compile
// time, except the sequence length of whole-sequence tensors, which stays NaN so only
// arithmetic that needs it fails), and the QuantizeLinear/DequantizeLinear pair, which QAT
// exports put around weights: folding them gives the float weights, and the integer grid
// they came from becomes the crossbar quantization the matmul asks for.

import { intRange, typeName } from "../decode.js";
import { fullShape } from "../operand.js";
import { fmtShape, invalid, unsupported } from "../problem.js";
import { constant, normAxis, sizeOf, type ConstTensor } from "../tensor.js";
import { constArg, intsArg, need, optConst } from "./args.js";
import { attrInt, attrTensor, type OpFn } from "./context.js";

const constantOp: OpFn = (ctx) => {
  const attrs = [...ctx.node.attrs.keys()].filter((k) => k.startsWith("value") || k === "sparse_value");
  if (attrs.length !== 1) invalid(`Constant needs exactly one value attribute, found ${attrs.length ? attrs.join(", ") : "none"}`);
  const a = ctx.node.attrs.get(attrs[0]!)!;
  switch (a.kind) {
    case "tensor":
      return [a.value];
    case "float":
      return [constant("float", [], [a.value])];
    case "floats":
      return [constant("float", [a.value.length], a.value)];
    case "int":
      return [constant("int", [], [a.value])];
    case "ints":
      return [constant("int", [a.value.length], a.value)];
    default:
      unsupported(`Constant with attribute "${attrs[0]}" is not supported (use a numeric tensor)`);
  }
};

const constantOfShape: OpFn = (ctx, inputs) => {
  const shape = intsArg(inputs, 0, "shape");
  if (shape.some((d) => d < 0)) invalid(`shape ${fmtShape(shape)} has a negative dimension`);
  const value = attrTensor(ctx, "value");
  if (value && value.data.length !== 1) invalid(`attribute "value" must hold one element, found ${value.data.length}`);
  return [constant(value?.dtype ?? "float", shape, new Float64Array(sizeOf(shape)).fill(value?.data[0] ?? 0))];
};

const shapeOp: OpFn = (ctx, inputs) => {
  const full = fullShape(need(inputs, 0, "data"));
  const r = full.length;
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(attrInt(ctx, "start", 0));
  const end = clamp(attrInt(ctx, "end", r));
  const dims = full.slice(start, Math.max(start, end));
  return [constant("int", [dims.length], dims)];
};

/** Per-axis parameter (scale, zero point) of element i of a tensor quantized along `axis`. */
function perAxis(p: ConstTensor | undefined, shape: readonly number[], axis: number, what: string): (i: number) => number {
  if (!p) return () => 0;
  if (p.data.length === 1) return () => p.data[0]!;
  const dim = shape[axis]!;
  if (p.shape.length !== 1 || p.data.length !== dim) invalid(`${what} of shape ${fmtShape(p.shape)} must be a scalar or have ${dim} entries (one per index of axis ${axis})`);
  const inner = sizeOf(shape.slice(axis + 1));
  return (i) => p.data[Math.floor(i / inner) % dim]!;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const quantizeLinear: OpFn = (ctx, inputs) => {
  const x = need(inputs, 0, "x");
  if (x.kind !== "const") {
    unsupported(`QuantizeLinear of a non-constant tensor (activation quantization) is not supported; only weights may be quantized with QuantizeLinear/DequantizeLinear`);
  }
  if (ctx.node.attrs.has("block_size") && attrInt(ctx, "block_size", 0) !== 0) unsupported(`blocked quantization (block_size) is not supported`);
  const scale = constArg(inputs, 1, "y_scale");
  const zp = optConst(inputs, 2, "y_zero_point");
  const type = (zp as { onnxType?: number } | undefined)?.onnxType ?? 2; // uint8 unless the zero point says otherwise
  const range = intRange(type);
  if (!range) unsupported(`QuantizeLinear to ${typeName(type)} is not supported (8-, 16- or 32-bit integers)`);
  const axis = x.shape.length > 0 ? normAxis(attrInt(ctx, "axis", 1), x.shape.length) : 0;
  const s = perAxis(scale, x.shape, axis, "y_scale");
  const z = perAxis(zp, x.shape, axis, "y_zero_point");
  const out = x.data.map((v, i) => {
    const q = roundHalfEven(v / s(i)) + z(i);
    return Math.min(Math.max(q, range[0]), range[1]);
  });
  return [Object.assign(constant("int", x.shape, out), { onnxType: type })];
};

const dequantizeLinear: OpFn = (ctx, inputs) => {
  const x = need(inputs, 0, "x");
  if (x.kind !== "const") unsupported(`DequantizeLinear of a non-constant tensor is not supported; only weights may be quantized`);
  if (x.dtype === "float") invalid(`DequantizeLinear input must be an integer tensor, found float values`);
  if (ctx.node.attrs.has("block_size") && attrInt(ctx, "block_size", 0) !== 0) unsupported(`blocked quantization (block_size) is not supported`);
  const scale = constArg(inputs, 1, "x_scale");
  const zp = optConst(inputs, 2, "x_zero_point");
  const axis = x.shape.length > 0 ? normAxis(attrInt(ctx, "axis", 1), x.shape.length) : 0;
  const s = perAxis(scale, x.shape, axis, "x_scale");
  const z = perAxis(zp, x.shape, axis, "x_zero_point");
  let maxLevel = 0;
  const out = x.data.map((q, i) => {
    maxLevel = Math.max(maxLevel, Math.abs(q - z(i)));
    return (q - z(i)) * s(i);
  });
  // The grid actually used, not the type's range: ternary QAT stores {-1, 0, 1} in int8.
  return [constant("float", x.shape, out, maxLevel > 0 ? 2 * maxLevel + 1 : undefined)];
};

export const CONSTANT_OPS: Record<string, OpFn> = {
  Constant: constantOp,
  ConstantOfShape: constantOfShape,
  Shape: shapeOp,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
};

