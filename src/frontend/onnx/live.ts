// What is alive after symbolic evaluation: the requests reachable from the roots (ONNX
// state updates and model outputs) through the sources they read.

import type { Request, Source, Symbols } from "./symbols.js";

export type StateSource = Extract<Source, { kind: "state" }>;

export function liveRequests(sym: Symbols, roots: readonly Request[]): Request[] {
  const seen = new Set<Request>();
  const seenSrc = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const r = stack.pop()!;
    if (seen.has(r)) continue;
    seen.add(r);
    for (const s of sym.sourcesOf(r)) {
      if (seenSrc.has(s.id)) continue;
      seenSrc.add(s.id);
      if (s.kind === "nonlinear") stack.push(...s.op.inputs);
      else if (s.kind === "virtual" && s.cut !== false) stack.push(s.def);
      else if (s.kind === "pooled") stack.push(s.of);
    }
  }
  return [...seen];
}

export function stateSources(sym: Symbols): StateSource[] {
  return sym.sources.filter((s): s is StateSource => s.kind === "state");
}

/** ONNX state updates and model outputs. */
export function rootsOf(sym: Symbols): Request[] {
  return [...stateSources(sym).map((s) => s.next!), ...sym.outputs.map((o) => o.req)];
}
