// Where layer parameters come from. The IR builder asks a ParamSource for each weight layer;
// one implementation draws them from a seeded initialiser, another reads a checkpoint.
// Sources never throw for a bad tensor: they record a diagnostic and return zeros of the
// right shape, so one compile reports every missing or mis-shaped tensor at once.

import type { Diagnostic, SourceLocation } from "../../common/errors.js";
import type { S4DOp, Tensor } from "../../ir/types.js";
import type { S4DInit } from "../s4d-init.js";

export interface LinearRequest {
  /** Parameter prefix, e.g. "encoder" or "s4_layers.0.output_linear.0". */
  name: string;
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** The layer in the .s4d file, for diagnostics. */
  at: SourceLocation;
}

export interface LayerNormRequest {
  name: string;
  width: number;
  at: SourceLocation;
}

export interface S4DRequest {
  name: string;
  /** Channels. */
  H: number;
  /** State size; M = N/2 complex modes per channel. */
  N: number;
  init: S4DInit;
  dtMin: number;
  dtMax: number;
  at: SourceLocation;
}

export interface LinearParams {
  weight: Tensor; // [out, in]
  bias?: Tensor; // [out]
}

export interface LayerNormParams {
  gamma: Tensor;
  beta: Tensor;
}

export type S4DParamsIR = Pick<S4DOp, "timescale" | "logAReal" | "AImag" | "B" | "C" | "D">;

export interface ParamSource {
  /** Human-readable description for the IR's meta, e.g. "init seed 0". */
  readonly description: string;
  /** Problems found so far (missing or mis-shaped tensors ...). */
  readonly diagnostics: Diagnostic[];
  linear(req: LinearRequest): LinearParams;
  layernorm(req: LayerNormRequest): LayerNormParams;
  s4d(req: S4DRequest): S4DParamsIR;
}

export function tensor(shape: number[], data: ArrayLike<number>): Tensor {
  // An own copy; slice() of a plain array is a bulk copy, Array.from iterates element by element.
  return { shape, data: Array.isArray(data) ? (data as number[]).slice() : Array.from(data) };
}
