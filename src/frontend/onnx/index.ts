// The ONNX front end: an exported PyTorch model (step graph or Scan sequence graph) ->
// lowered IR. Phases, one module each:
//   decode.ts      protobuf -> checked model description (constants, attributes, shapes)
//   graph-form.ts  what inputs/outputs mean (u_t, state pairs, sequences, pooled outputs)
//   evaluate.ts    symbolic graph walk over the op table (ops/): constants fold, affine
//                  tensors propagate, nonlinear ops become sources of new symbols
//   plan.ts        pending patterns, recurrence check, inlining of products
//                  (plan-products.ts), IR state layout (state-layout.ts)
//   emit.ts        requests -> lowered IR ops (vector ops, fused block-sparse matmuls)
// See README.md in this directory for the graph forms, the lifting rules and the limits.

import { basename, extname } from "node:path";
import { UserError } from "../../common/errors.js";
import { readBytes } from "../../common/files.js";
import type { Model } from "../../ir/types.js";
import { checkModel } from "../../ir/validate.js";
import { decodeOnnx } from "./decode.js";
import { emitModel } from "./emit.js";
import { liftGraph, type LiftOptions } from "./graph-form.js";
import { planLifting } from "./plan.js";
import { NodeProblem } from "./problem.js";

export type OnnxOptions = LiftOptions;
export { SUPPORTED_OPS } from "./ops/table.js";

/** Compiles ONNX bytes; `file` names the model in messages and becomes meta.source. */
export function compileOnnxBytes(bytes: Uint8Array, file: string, opts: OnnxOptions = {}): Model {
  try {
    return compileChecked(bytes, file, opts);
  } catch (e) {
    // Op semantics (and sizeOf's limit check) outside the graph walk have no node to name.
    if (e instanceof NodeProblem) throw new UserError(e.kind, e.message, { file });
    throw e;
  }
}

function compileChecked(bytes: Uint8Array, file: string, opts: OnnxOptions): Model {
  const model = decodeOnnx(bytes, file);
  const { sym, form } = liftGraph(model, file, opts);
  const planned = planLifting(sym, file);
  const meta: Record<string, string | number | boolean> = {
    source: file,
    frontend: "onnx",
    "onnx.form": form,
    "onnx.opset": model.opset,
  };
  if (model.producer) meta["onnx.producer"] = model.producer;
  const ir = emitModel({ sym, planned, file, name: basename(file, extname(file)) || model.graph.name || "model", meta });
  checkModel(ir, file);
  return ir;
}

export function compileOnnxFile(file: string, opts: OnnxOptions = {}): Model {
  return compileOnnxBytes(readBytes(file), file, opts);
}
