// Emits the model-level IR from a checked model: one op per layer, SSA value names, a state
// vector per s4d layer, and the parameters fetched from a ParamSource. All checking has
// happened before; the only new problems here are the parameter source's (missing tensors).

import type { SourceLocation } from "../../common/errors.js";
import { IR_VERSION, type Model, type Op, type StateDecl } from "../../ir/types.js";
import type { ParamSource } from "../params/source.js";
import type { CheckedModel, Layer } from "./checker.js";

export function buildIr(model: CheckedModel, params: ParamSource, file: string, meta: Record<string, string | number | boolean> = {}): Model {
  const step: Op[] = [];
  const final: Op[] = [];
  const state: StateDecl[] = [];
  let ops = step;
  let counter = 0;
  const fresh = (): string => {
    // Value names only have to differ from each other and from the input's name.
    let name: string;
    do name = `v${counter++}`;
    while (name === model.input.name);
    return name;
  };
  const at = (l: Layer): SourceLocation => ({ file, line: l.pos.line, column: l.pos.column });

  const emit = (layers: Layer[], x: string): string => {
    let cur = x;
    for (const l of layers) {
      if (l.kind === "residual") {
        // The body's values come first, so names are numbered in definition order.
        const body = emit(l.body, cur);
        const out = fresh();
        ops.push({ op: "add", out, layer: l.name, a: cur, b: body });
        cur = out;
        continue;
      }
      const out = fresh();
      switch (l.kind) {
        case "linear": {
          const p = params.linear({ name: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, bias: l.bias, at: at(l) });
          ops.push({ op: "linear", out, layer: l.name, x: cur, ...p, ...(l.quant ? { quant: l.quant } : {}) });
          break;
        }
        case "s4d": {
          const stateName = `${l.name}.state`;
          state.push({ name: stateName, size: 2 * l.H * (l.N / 2) });
          const p = params.s4d({ name: l.name, H: l.H, N: l.N, init: l.init, dtMin: l.dtMin, dtMax: l.dtMax, at: at(l) });
          ops.push({
            op: "s4d",
            out,
            layer: l.name,
            x: cur,
            state: stateName,
            channels: l.H,
            modes: l.N / 2,
            discretization: l.discretization,
            ...p,
            ...(l.quant ? { quant: l.quant } : {}),
          });
          break;
        }
        case "layernorm": {
          const p = params.layernorm({ name: l.name, width: l.width, at: at(l) });
          ops.push({ op: "layernorm", out, layer: l.name, x: cur, gamma: p.gamma, beta: p.beta, eps: l.eps });
          break;
        }
        case "activation":
          ops.push({ op: l.op, out, layer: l.name, x: cur });
          break;
        case "glu":
          ops.push({ op: "glu", out, layer: l.name, x: cur });
          break;
        case "meanpool":
          // From here on everything runs once per sequence.
          ops = final;
          ops.push({ op: "meanpool", out, layer: l.name, x: cur });
          break;
      }
      cur = out;
    }
    return cur;
  };

  const last = emit(model.layers, model.input.name);
  return {
    irVersion: IR_VERSION,
    name: model.name,
    level: "model",
    inputs: [{ name: model.input.name, size: model.input.size }],
    outputs: [{ name: model.output.name, value: last, section: ops === final ? "final" : "step" }],
    state,
    sections: { step, final },
    meta: { source: file, params: params.description, ...meta },
  };
}
