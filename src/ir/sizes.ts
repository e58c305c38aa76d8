// Vector lengths of IR values. Every value is a 1-D vector whose length follows from its
// op's operands and constants; validation uses opOutputSize while it checks, later passes
// use valueSizes on models that already passed validation.

import { assert } from "../common/errors.js";
import type { Model, Op } from "./types.js";

export interface SizeEnv {
  /** Length of a value of the op's own section; undefined when unknown. */
  value(name: string): number | undefined;
  /** Length of a step-section value (meanpool reads the step section from `final`). */
  stepValue(name: string): number | undefined;
  /** Declared size of a state vector. */
  state(name: string): number | undefined;
}

/**
 * Length of the value `op` defines, or null for ops that define none (state_write).
 * undefined when it cannot be known (an operand is unknown, or the op is malformed, e.g. glu of an odd length).
 */
export function opOutputSize(op: Op, env: SizeEnv): number | null | undefined {
  switch (op.op) {
    case "s4d":
      return op.channels;
    case "linear":
      return op.weight.shape.length === 2 ? op.weight.shape[0] : undefined;
    case "matmul":
      return op.weight.cols;
    case "slice":
      return op.length;
    case "glu": {
      const n = env.value(op.x);
      return n !== undefined && n % 2 === 0 ? n / 2 : undefined;
    }
    case "concat": {
      let total = 0;
      for (const x of op.xs) {
        const n = env.value(x);
        if (n === undefined) return undefined;
        total += n;
      }
      return total;
    }
    case "add":
    case "mul":
      return env.value(op.a) ?? env.value(op.b);
    case "meanpool":
      return env.stepValue(op.x);
    case "state_read":
      return env.state(op.state);
    case "state_write":
      return null;
    case "layernorm":
    case "gelu":
    case "sigmoid":
    case "tanh":
    case "relu":
    case "affine":
    case "normalize":
    case "div_steps":
      return env.value(op.x);
  }
}

/** Length of every value (inputs and op results) of a validated model, per section. */
export function valueSizes(model: Model): { step: Map<string, number>; final: Map<string, number> } {
  const states = new Map(model.state.map((s) => [s.name, s.size]));
  const step = new Map<string, number>(model.inputs.map((i) => [i.name, i.size]));
  const final = new Map<string, number>();
  const fill = (ops: Op[], sizes: Map<string, number>): void => {
    const env: SizeEnv = { value: (n) => sizes.get(n), stepValue: (n) => step.get(n), state: (n) => states.get(n) };
    for (const op of ops) {
      const n = opOutputSize(op, env);
      if (n === null) continue;
      assert(n !== undefined, `valueSizes: size of "${op.out}" is unknown (model not validated?)`);
      sizes.set(op.out, n);
    }
  };
  fill(model.sections.step, step);
  fill(model.sections.final, final);
  return { step, final };
}
