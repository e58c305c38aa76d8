// Phase 4 of lifting: decisions over the whole recorded step, before any IR op exists.
//   1. pending functions: squares nobody claimed become IR muls; any other pending function
//      (a bare Erf, a Sqrt, a division by a non-constant) is an error at its node
//   2. the recurrence check: a next state must not pass through a nonlinear op whose input
//      depends on that same state
//   3. products: inline into the consumers, or keep as a matmul of their own (plan-products)
//   4. IR states and their layout (state-layout)
//   5. elementwise sums in front of matmuls (plan-products)

import { UserError } from "../../common/errors.js";
import { single } from "./forms.js";
import { liveRequests, rootsOf, stateSources } from "./live.js";
import { decideVirtuals, factorSums } from "./plan-products.js";
import { describeNode } from "./problem.js";
import { buildStates, type IrState } from "./state-layout.js";
import { substitute, type Replacement } from "./substitute.js";
import type { Request, Source, Symbols } from "./symbols.js";

export type { IrState };

export interface PlannedLifting {
  states: IrState[];
  /** Every request that must become an IR value, IR state updates and outputs included. */
  live: Request[];
}

const PENDING_USE: Record<string, string> = {
  erf: "Erf of a non-constant tensor is supported only as part of the exact GELU x * 0.5 * (1 + erf(x / sqrt(2))), and this result is used otherwise",
  sqrt: "a square root of a non-constant tensor is supported only as the standard deviation of a LayerNorm ((x - mean) / sqrt(var + eps)); the IR has no square-root op",
  rsqrt: "a reciprocal square root of a non-constant tensor is supported only as the standard deviation of a LayerNorm ((x - mean) / sqrt(var + eps)); the IR has no square-root op",
  recip: "division by a non-constant tensor is supported only inside a LayerNorm ((x - mean) / sqrt(var + eps)); the IR has no division op",
};

/** Realises unclaimed squares as IR muls; any other pending function used is an error. */
function resolvePending(sym: Symbols, file: string): void {
  for (;;) {
    const live = liveRequests(sym, rootsOf(sym));
    const repl = new Map<number, Replacement>();
    for (const r of live) {
      for (const s of sym.sourcesOf(r)) {
        if (s.kind !== "pending" || repl.has(s.id)) continue;
        if (s.fn !== "square") {
          throw new UserError("unsupported", PENDING_USE[s.fn]!, { file, path: s.node!.path });
        }
        const req = sym.request(s.section, s.argC, s.argF, `${s.label}.in`, s.node?.name || undefined);
        const mul = sym.add("nonlinear", s.size, s.section, s.label, s.node, { op: { kind: "mul", inputs: [req, req] } });
        repl.set(s.id, (j) => ({ c: 0, f: single(mul.base + j) }));
      }
    }
    if (repl.size === 0) return;
    substitute(sym, live, repl);
  }
}

/** Rejects a state update that goes through a nonlinear op reading the same state. */
function checkRecurrences(sym: Symbols, file: string): void {
  const memo = new Map<number, Set<number>>();
  const deps = (s: Source): Set<number> => {
    const known = memo.get(s.id);
    if (known) return known;
    const out = new Set<number>();
    memo.set(s.id, out);
    const reqs = s.kind === "nonlinear" ? s.op.inputs : s.kind === "virtual" ? [s.def] : s.kind === "state" ? [] : [];
    if (s.kind === "state") out.add(s.id);
    for (const r of reqs) for (const t of sym.sourcesOf(r)) for (const d of deps(t)) out.add(d);
    return out;
  };
  for (const st of stateSources(sym)) {
    const stack: Source[] = sym.sourcesOf(st.next!);
    const seen = new Set<number>();
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (seen.has(s.id)) continue;
      seen.add(s.id);
      if (s.kind === "virtual") stack.push(...sym.sourcesOf(s.def));
      if (s.kind === "nonlinear" && deps(s).has(st.id)) {
        const via = s.node ? `node ${describeNode(s.node)}` : `a nonlinear op`;
        throw new UserError(
          "unsupported",
          `the update of state "${st.inName}" -> "${st.outName}" is not affine: it passes through ${via}, whose input depends on "${st.inName}" itself; ` +
            `a nonlinearity inside the recurrence cannot become a crossbar matrix (only affine state updates are supported)`,
          { file, path: s.node?.path ?? "graph" },
        );
      }
    }
  }
}

export function planLifting(sym: Symbols, file: string): PlannedLifting {
  resolvePending(sym, file);
  checkRecurrences(sym, file);
  decideVirtuals(sym);
  const states = buildStates(sym);
  const roots = (): Request[] => [...states.map((s) => s.next), ...sym.outputs.map((o) => o.req)];
  const levelled = new Set(sym.sources.flatMap((x) => (x.kind === "virtual" && x.levels !== undefined ? [x.def] : [])));
  factorSums(sym, liveRequests(sym, roots()), levelled);
  return { states, live: liveRequests(sym, roots()) };
}
