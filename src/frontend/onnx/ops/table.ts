// The op semantics table: every supported ONNX op, and how it treats whole-sequence
// operands. One place lists what the front end accepts, so the "unsupported op" message
// and the documentation cannot drift from the code.

import { unsupported } from "../problem.js";
import type { Inputs } from "./args.js";
import { CONSTANT_OPS } from "./constants.js";
import type { OpContext, OpFn } from "./context.js";
import { ELEMENTWISE_OPS } from "./elementwise.js";
import { LINALG_OPS } from "./linalg.js";
import { MOVEMENT_OPS } from "./movement.js";
import { NONLINEAR_OPS } from "./nonlinear.js";
import { scan } from "./scan.js";
import { SEQ_ADAPTERS, elementwiseSeq, type SeqAdapter } from "./sequence.js";
import type { Operand } from "../operand.js";

const OPS: Record<string, OpFn> = {
  ...MOVEMENT_OPS,
  ...ELEMENTWISE_OPS,
  ...LINALG_OPS,
  ...NONLINEAR_OPS,
  ...CONSTANT_OPS,
  Scan: scan,
};

/** Ops that see whole-sequence operands themselves. */
const SEQ_NATIVE = new Set(["Shape", "Scan"]);
const ELEMENTWISE = ["Add", "Sub", "Mul", "Div", "Pow", "Neg", "Cast", "Relu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Reciprocal", "Gelu", "Identity"];
const SEQ: Record<string, SeqAdapter> = { ...Object.fromEntries(ELEMENTWISE.map((op) => [op, elementwiseSeq])), ...SEQ_ADAPTERS };

export const SUPPORTED_OPS: readonly string[] = Object.keys(OPS).sort();

export function isSupported(opType: string): boolean {
  return Object.hasOwn(OPS, opType);
}

export function applyOp(ctx: OpContext, inputs: Inputs): Operand[] {
  const op = ctx.node.opType;
  const fn = OPS[op];
  if (!fn) unsupported(`op type ${op} is not supported; supported ops: ${SUPPORTED_OPS.join(", ")}`);
  if (SEQ_NATIVE.has(op) || !inputs.some((x) => x?.kind === "seq")) return fn(ctx, inputs);
  const adapter = SEQ[op];
  if (!adapter) {
    unsupported(`${op} on a whole-sequence tensor (a Scan input or output) is not supported; ops that may take one: ${[...Object.keys(SEQ), ...SEQ_NATIVE].sort().join(", ")}`);
  }
  return adapter(ctx, inputs, fn);
}
