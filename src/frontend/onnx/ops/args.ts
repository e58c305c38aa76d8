// Checked access to an op's inputs: present, constant where ONNX semantics need a value at
// compile time (shapes, axes, indices, weights of nonlinear parameters), per-step where a
// whole-sequence tensor cannot be handled.

import type { Operand, Tensor } from "../operand.js";
import { invalid, unsupported } from "../problem.js";
import { intValues, type ConstTensor } from "../tensor.js";

export type Inputs = readonly (Operand | undefined)[];

export function need(inputs: Inputs, k: number, what: string): Operand {
  const x = inputs[k];
  if (!x) invalid(`input ${k} (${what}) is missing`);
  return x;
}

export function tensorArg(inputs: Inputs, k: number, what: string): Tensor {
  const x = need(inputs, k, what);
  if (x.kind === "seq") unsupported(`input ${k} (${what}) is a whole-sequence tensor (a Scan input or output), which this op cannot take here`);
  return x;
}

export function constArg(inputs: Inputs, k: number, what: string): ConstTensor {
  const x = need(inputs, k, what);
  if (x.kind !== "const") unsupported(`input ${k} (${what}) must be a constant, but it depends on the model's inputs or state`);
  return x;
}

export function optConst(inputs: Inputs, k: number, what: string): ConstTensor | undefined {
  return inputs[k] ? constArg(inputs, k, what) : undefined;
}

/** Integer values of a constant input, every one known (a shape may hold the unknown sequence length). */
export function intsArg(inputs: Inputs, k: number, what: string): number[] {
  const t = constArg(inputs, k, what);
  const v = intValues(t, what);
  if (v.some(Number.isNaN)) unsupported(`${what} depends on the sequence length, which is unknown at compile time`);
  return v;
}

export function optInts(inputs: Inputs, k: number, what: string): number[] | undefined {
  return inputs[k] ? intsArg(inputs, k, what) : undefined;
}

/** A constant that must hold one value (all elements equal), e.g. a Pow exponent. */
export function uniformValue(t: ConstTensor): number | undefined {
  if (t.data.length === 0) return undefined;
  const v = t.data[0]!;
  for (const x of t.data) if (x !== v) return undefined;
  return v;
}
