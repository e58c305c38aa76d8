// Phase 3: the graph walk. Nodes run in file order (ONNX requires a topological order) on
// symbolic values; op semantics come from the op table. Problems an op reports are located
// here, at the node, with its position, name and op type.

import { UserError } from "../../common/errors.js";
import type { OnnxGraph, ValueInfo } from "./decode.js";
import { fullShape, type Operand } from "./operand.js";
import type { OpContext } from "./ops/context.js";
import { applyOp } from "./ops/table.js";
import { NodeProblem, atNode, nodeRef, type NodeRef } from "./problem.js";
import type { Symbols } from "./symbols.js";

export interface WalkContext {
  file: string;
  opset: number;
  sym: Symbols;
}

/** Values visible to a graph: its own, then its enclosing graphs' (Scan bodies see outer values). */
class Scope {
  private readonly values = new Map<string, Operand | { missing: string }>();
  constructor(private readonly outer?: Scope) {}

  set(name: string, v: Operand | { missing: string }): void {
    this.values.set(name, v);
  }
  hasOwn(name: string): boolean {
    return this.values.has(name);
  }
  get(name: string): Operand | { missing: string } | undefined {
    return this.values.get(name) ?? this.outer?.get(name);
  }
}

const isOperand = (v: Operand | { missing: string } | undefined): v is Operand => v !== undefined && "kind" in v;

/** Declared dims that are numbers must match the value's shape (symbolic dims match anything). */
export function checkDeclared(info: ValueInfo, x: Operand, what: string): string | undefined {
  if (!info.dims) return undefined;
  const shape = fullShape(x);
  const declared = info.dims;
  const ok = declared.length === shape.length && declared.every((d, i) => typeof d !== "number" || Number.isNaN(shape[i]!) || d === shape[i]);
  if (ok) return undefined;
  const text = (dims: readonly (number | string | null)[]): string => `[${dims.map((d) => (d === null ? "?" : typeof d === "number" && Number.isNaN(d) ? "time" : d)).join(", ")}]`;
  return `${what} "${info.name}" is declared with shape ${text(declared)}, but the graph gives it shape ${text(shape)}`;
}

export function evaluateGraph(wc: WalkContext, g: OnnxGraph, inputs: ReadonlyMap<string, Operand>, outer?: Scope, parent?: NodeRef): Operand[] {
  const scope = new Scope(outer);
  const where = parent ? `${parent.path} > body` : "graph";
  for (const [name, t] of g.initializers) scope.set(name, t);
  for (const info of g.inputs) {
    const x = inputs.get(info.name);
    if (!x) throw new Error(`internal error: graph input ${info.name} has no value`);
    const mismatch = checkDeclared(info, x, "input");
    if (mismatch && parent) throw new UserError("semantic", mismatch, { file: wc.file, path: where });
    scope.set(info.name, x);
  }
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => o && !producer.has(o) && producer.set(o, i)));

  for (const node of g.nodes) {
    const ref = nodeRef(node.index, node.name, node.opType, parent);
    const fail = (kind: "semantic" | "unsupported", message: string): never => {
      throw new UserError(kind, message, { file: wc.file, path: ref.path });
    };
    if (node.domain !== "" && node.domain !== "ai.onnx") {
      fail("unsupported", `op ${node.opType} of domain "${node.domain}" is not supported; only the standard ONNX domain is`);
    }
    const args = node.inputs.map((name, k) => {
      if (name === "") return undefined;
      const v = scope.get(name);
      if (isOperand(v)) return v;
      if (v) return fail("unsupported", `input ${k} "${name}" is ${v.missing}`);
      const later = producer.get(name);
      if (later !== undefined && later >= node.index) {
        return fail("semantic", `input ${k} "${name}" is produced by node ${later}, which comes later: the graph is not in topological order`);
      }
      return fail("semantic", `input ${k} "${name}" is not defined: no initializer, graph input or earlier node output has this name (a missing initializer?)`);
    });
    const ctx: OpContext = {
      node,
      ref,
      opset: wc.opset,
      sym: wc.sym,
      evalBody: (body, values) =>
        evaluateGraph(
          wc,
          body,
          new Map(body.inputs.map((info, k) => [info.name, values[k]!])),
          scope,
          ref,
        ),
    };
    let outs: Operand[];
    try {
      outs = applyOp(ctx, args);
    } catch (e) {
      if (e instanceof NodeProblem) throw atNode(e, wc.file, ref);
      throw e;
    }
    node.outputs.forEach((name, k) => {
      if (!name) return;
      if (scope.hasOwn(name)) fail("semantic", `output "${name}" is already defined (by an initializer, an input or another node); ONNX values are assigned once`);
      const y = outs[k];
      scope.set(name, y ?? { missing: `output ${k} of ${ref.path}, which is not computed (this output of ${node.opType} is not supported)` });
    });
  }

  return g.outputs.map((info, k) => {
    const v = scope.get(info.name);
    if (!isOperand(v)) {
      throw new UserError(v ? "unsupported" : "semantic", v ? `graph output "${info.name}" is ${v.missing}` : `graph output "${info.name}" is not produced by any node, input or initializer`, {
        file: wc.file,
        path: `${where} output ${k}`,
      });
    }
    return v;
  });
}
