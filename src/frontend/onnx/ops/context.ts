// What an op's semantics see: its node's attributes (typed accessors with ONNX defaults),
// the opset, the symbol table for ops that create sources, and a way to evaluate subgraphs.

import type { Attr, OnnxGraph, OnnxNode } from "../decode.js";
import type { Operand } from "../operand.js";
import { invalid, type NodeRef } from "../problem.js";
import type { Symbols } from "../symbols.js";
import type { ConstTensor } from "../tensor.js";

export interface OpContext {
  readonly node: OnnxNode;
  readonly ref: NodeRef;
  readonly opset: number;
  readonly sym: Symbols;
  /** Evaluates a Scan body (evaluate.ts owns the graph walk). */
  readonly evalBody: (graph: OnnxGraph, inputs: Operand[]) => Operand[];
}

export type OpFn = (ctx: OpContext, inputs: readonly (Operand | undefined)[]) => Operand[];

function get(ctx: OpContext, name: string): Attr | undefined {
  return ctx.node.attrs.get(name);
}

function wrongType(name: string, want: string, a: Attr): never {
  invalid(`attribute "${name}" must be ${want}, found ${a.kind === "other" ? a.type : a.kind}`);
}

export function attrInt(ctx: OpContext, name: string, dflt: number): number {
  const a = get(ctx, name);
  if (!a) return dflt;
  if (a.kind !== "int") wrongType(name, "an int", a);
  return a.value;
}

export function attrFloat(ctx: OpContext, name: string, dflt: number): number {
  const a = get(ctx, name);
  if (!a) return dflt;
  if (a.kind !== "float") wrongType(name, "a float", a);
  return a.value;
}

export function attrString(ctx: OpContext, name: string, dflt: string): string {
  const a = get(ctx, name);
  if (!a) return dflt;
  if (a.kind !== "string") wrongType(name, "a string", a);
  return a.value;
}

export function attrInts(ctx: OpContext, name: string): number[] | undefined {
  const a = get(ctx, name);
  if (!a) return undefined;
  if (a.kind !== "ints") wrongType(name, "a list of ints", a);
  return a.value;
}

export function attrTensor(ctx: OpContext, name: string): ConstTensor | undefined {
  const a = get(ctx, name);
  if (!a) return undefined;
  if (a.kind !== "tensor") wrongType(name, "a tensor", a);
  return a.value;
}

export function attrGraph(ctx: OpContext, name: string): OnnxGraph {
  const a = get(ctx, name);
  if (!a) invalid(`attribute "${name}" (a graph) is missing`);
  if (a.kind !== "graph") wrongType(name, "a graph", a);
  return a.value;
}

/** Output name `k` of the node, for labels of the sources an op creates. */
export function outName(ctx: OpContext, k = 0): string {
  return ctx.node.outputs[k] || ctx.node.name || ctx.node.opType;
}
