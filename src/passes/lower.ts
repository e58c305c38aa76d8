// Lowering (IR level "model" -> "lowered"): every weight becomes a `matmul` on a block
// matrix in crossbar orientation, S4D layers become one fused recurrence matmul over
// explicit state, and the remaining model ops become vector ops the digital periphery runs.
//
//   s4d       -> state_read, matmul [state, u] -> [state', y] (see lower-s4d), slice, state_write, slice
//   linear    -> matmul (W transposed to rows = inputs) with bias
//   layernorm -> normalize + affine
//   meanpool  -> step: accumulator state (state_read + add + state_write); final: state_read + div_steps
//   others    -> unchanged
// The pass is pure: the input model is not modified and shares no mutable arrays with the output.

import { UserError } from "../common/errors.js";
import { NameSource } from "../ir/names.js";
import { valueSizes } from "../ir/sizes.js";
import type { BlockMatrix, LinearOp, Model, Op, StateDecl, WeightQuantSpec } from "../ir/types.js";
import { fusedS4DMatrix } from "./lower-s4d.js";
import { levelsKey } from "./quant-request.js";

type Section = "step" | "final";

/** W [out, in] (PyTorch) as one dense block in crossbar orientation [in, out]. */
function linearMatrix(op: LinearOp): BlockMatrix {
  const shape = op.weight.shape;
  if (shape.length !== 2 || shape[0] * shape[1] !== op.weight.data.length) {
    throw new UserError("semantic", `linear "${op.out}": weight must be a 2-D tensor [out, in], got shape [${shape.join(", ")}]`, {
      file: "<ir>",
      path: op.layer ?? op.out,
    });
  }
  const [nOut, nIn] = shape;
  const src = op.weight.data;
  // A packed array (fill(0): `new Array(n)` alone is holey, slower on every store), and the
  // transpose in strips of 16 output columns, so the strided side stays in cache
  // (measured ~2x faster than the plain double loop on 512 x 512).
  const data = new Array<number>(nIn * nOut).fill(0);
  const STRIP = 16;
  for (let o0 = 0; o0 < nOut; o0 += STRIP) {
    const oEnd = Math.min(nOut, o0 + STRIP);
    for (let i = 0; i < nIn; i++) {
      const base = i * nOut;
      for (let o = o0; o < oEnd; o++) data[base + o] = src[o * nIn + i];
    }
  }
  return { rows: nIn, cols: nOut, blocks: [{ row: 0, col: 0, rows: nIn, cols: nOut, data }] };
}

function checkLevels(spec: WeightQuantSpec | undefined, op: Op): number | undefined {
  const levels = spec?.levels;
  if (levels === undefined) return undefined;
  if (!Number.isInteger(levels) || levels < 3 || levels % 2 === 0) {
    throw new UserError("semantic", `"${op.out}": quant levels must be an odd integer >= 3 (3 = ternary), got ${levels}`, {
      file: "<ir>",
      path: op.layer ?? op.out,
    });
  }
  return levels;
}

export function lower(model: Model): Model {
  if (model.level !== "model") {
    throw new UserError("semantic", `lowering expects an IR of level "model", got "${model.level}"`, { file: model.name });
  }
  const sizes = valueSizes(model);
  const names = new NameSource([
    ...model.inputs.map((i) => i.name),
    ...model.sections.step.map((o) => o.out),
    ...model.sections.final.map((o) => o.out),
  ]);
  const stateNames = new NameSource(model.state.map((s) => s.name));
  const state: StateDecl[] = model.state.map((s) => ({ ...s }));
  const meta: Record<string, string | number | boolean> = { ...(model.meta ?? {}) };
  const step: Op[] = [];
  const final: Op[] = [];
  // Accumulators of meanpool run after everything else in the step section, so their
  // operand is defined whatever the op order in `final`.
  const poolSteps: Op[] = [];

  const lowerOp = (op: Op, section: Section, out: Op[]): void => {
    const layer = op.layer !== undefined ? { layer: op.layer } : {};
    switch (op.op) {
      case "s4d": {
        const H = op.channels;
        const stateLen = 2 * H * op.modes;
        const prev = names.fresh(`${op.out}.state`);
        const mm = names.fresh(`${op.out}.mm`);
        const next = names.fresh(`${op.out}.next`);
        out.push({ op: "state_read", out: prev, state: op.state, ...layer });
        out.push({ op: "matmul", out: mm, xs: [prev, op.x], weight: fusedS4DMatrix(op), origin: "s4d", ...layer });
        out.push({ op: "slice", out: next, x: mm, start: 0, length: stateLen, ...layer });
        out.push({ op: "state_write", out: names.fresh(`${op.out}.write`), state: op.state, x: next, ...layer });
        out.push({ op: "slice", out: op.out, x: mm, start: stateLen, length: H, ...layer });
        const levels = checkLevels(op.quant, op);
        if (levels !== undefined) meta[levelsKey(section, mm)] = levels;
        return;
      }
      case "linear": {
        const bias = op.bias ? { bias: op.bias.data.slice() } : {};
        out.push({ op: "matmul", out: op.out, xs: [op.x], weight: linearMatrix(op), ...bias, origin: "dense", ...layer });
        const levels = checkLevels(op.quant, op);
        if (levels !== undefined) meta[levelsKey(section, op.out)] = levels;
        return;
      }
      case "layernorm": {
        const norm = names.fresh(`${op.out}.norm`);
        out.push({ op: "normalize", out: norm, x: op.x, eps: op.eps, ...layer });
        out.push({ op: "affine", out: op.out, x: norm, scale: op.gamma.data.slice(), shift: op.beta.data.slice(), ...layer });
        return;
      }
      case "meanpool": {
        const size = sizes.step.get(op.x);
        if (size === undefined) {
          throw new UserError("semantic", `meanpool "${op.out}" reads "${op.x}", which is not a step-section value`, { file: model.name });
        }
        const acc = stateNames.fresh(`${op.out}.sum`);
        state.push({ name: acc, size });
        const prev = names.fresh(`${op.out}.sum_prev`);
        const sum = names.fresh(`${op.out}.sum_next`);
        poolSteps.push({ op: "state_read", out: prev, state: acc, ...layer });
        poolSteps.push({ op: "add", out: sum, a: prev, b: op.x, ...layer });
        poolSteps.push({ op: "state_write", out: names.fresh(`${op.out}.sum_write`), state: acc, x: sum, ...layer });
        const total = names.fresh(`${op.out}.sum_final`);
        out.push({ op: "state_read", out: total, state: acc, ...layer });
        out.push({ op: "div_steps", out: op.out, x: total, ...layer });
        return;
      }
      default:
        // Vector ops (and already-lowered ops) pass through; copy so the output owns its arrays.
        out.push(structuredClone(op));
    }
  };

  for (const op of model.sections.step) lowerOp(op, "step", step);
  for (const op of model.sections.final) lowerOp(op, "final", final);
  step.push(...poolSteps);

  return {
    irVersion: model.irVersion,
    name: model.name,
    level: "lowered",
    inputs: model.inputs.map((i) => ({ ...i })),
    outputs: model.outputs.map((o) => ({ ...o })),
    state,
    sections: { step, final },
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
  };
}
