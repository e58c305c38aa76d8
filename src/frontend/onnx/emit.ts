// Phase 5: requests -> lowered IR ops, each the cheapest op that computes it (classify.ts):
// nothing or a slice, slices + concat, affine/add on the vector unit, or a matmul. All matmul
// requests of a section that read the same values (and ask for the same weight
// quantization) share one matmul, sliced afterwards, which is how an S4D layer's state
// update and its readout become the one fused [x; u] -> [x'; y] MVM.
// Values are emitted on demand, depth first from the state updates and outputs, so every
// op follows the ops defining its operands.

import { UserError } from "../../common/errors.js";
import { IR_VERSION, type Model, type Op, type OutputDecl, type StateDecl } from "../../ir/types.js";
import { levelsKey } from "../../passes/quant-request.js";
import { blockMatrix } from "./block-matrix.js";
import { classifyRequest, type Plan } from "./classify.js";
import type { IrState, PlannedLifting } from "./plan.js";
import type { Request, Section, Source, Symbols } from "./symbols.js";

class Names {
  private readonly taken = new Set<string>();
  fresh(base: string): string {
    const clean = base.replace(/\s+/g, "_") || "v";
    let name = clean;
    for (let k = 1; this.taken.has(name); k++) name = `${clean}.${k}`;
    this.taken.add(name);
    return name;
  }
  reserve(name: string): void {
    this.taken.add(name);
  }
}

export interface EmitInput {
  sym: Symbols;
  planned: PlannedLifting;
  file: string;
  name: string;
  meta: Record<string, string | number | boolean>;
}

export function emitModel({ sym, planned, file, name, meta }: EmitInput): Model {
  const names = new Names();
  const ops: Record<Section, Op[]> = { step: [], final: [] };
  const state: StateDecl[] = [];
  const stateNames = new Names();
  const valueOf = new Map<number, string>(); // source id -> value
  const reqValue = new Map<Request, string>();
  const partialSums = new Map<string, string>(); // elementwise combination -> value
  const levels = new Map<Request, number>(); // def request of a quantized product -> levels
  const nextOf = new Set(planned.states.map((s) => s.next));
  const irStateOf = new Map<number, IrState>();
  for (const s of planned.states) {
    irStateOf.set(s.step.id, s);
    irStateOf.set(s.final.id, s);
    state.push({ name: stateNames.fresh(s.name), size: s.size });
  }
  const irStateName = new Map(planned.states.map((s, i) => [s, state[i]!.name]));
  for (const s of sym.sources) {
    if (s.kind === "input") {
      names.reserve(s.irName);
      valueOf.set(s.id, s.irName);
    }
    if (s.kind === "virtual" && s.cut && s.levels !== undefined) levels.set(s.def, s.levels);
  }
  const push = (section: Section, op: Op): void => {
    ops[section].push(op);
  };
  const layerOf = (r: Request): { layer?: string } => (r.layer ? { layer: r.layer } : {});

  // ---- classification -------------------------------------------------------------------

  const plans = new Map<Request, Plan>();
  const classify = (r: Request): Plan => {
    const known = plans.get(r);
    if (known) return known;
    const p = classifyRequest(sym, r);
    plans.set(r, p);
    return p;
  };
  // Matmul groups: same section, same sources, same weight levels.
  const groups = new Map<string, Request[]>();
  const groupKey = (r: Request, p: Extract<Plan, { kind: "matmul" }>): string => `${r.section}|${p.sources.map((s) => s.id).join(",")}|${levels.get(r) ?? ""}`;
  for (const r of planned.live) {
    const p = classify(r);
    if (p.kind !== "matmul") continue;
    const key = groupKey(r, p);
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(r);
  }
  for (const g of groups.values()) {
    // State updates first (in IR state order), then the rest in creation order.
    const rank = (r: Request): number => (nextOf.has(r) ? planned.states.findIndex((s) => s.next === r) : planned.states.length + r.id);
    g.sort((a, b) => rank(a) - rank(b));
  }

  // ---- sources ----------------------------------------------------------------------------

  const ensureSource = (s: Source): string => {
    const known = valueOf.get(s.id);
    if (known !== undefined) return known;
    let v: string;
    switch (s.kind) {
      case "irstate": {
        const ir = irStateOf.get(s.id)!;
        v = names.fresh(s.label);
        push(s.final ? "final" : "step", { op: "state_read", out: v, state: irStateName.get(ir)! });
        break;
      }
      case "nonlinear": {
        const inputs = s.op.inputs.map(ensureRequest);
        v = names.fresh(s.label);
        const layer = s.node?.name ? { layer: s.node.name } : {};
        const k = s.op.kind;
        if (k === "mul") push(s.section, { op: "mul", out: v, a: inputs[0]!, b: inputs[1]!, ...layer });
        else if (k === "normalize") push(s.section, { op: "normalize", out: v, x: inputs[0]!, eps: s.op.eps!, ...layer });
        else push(s.section, { op: k, out: v, x: inputs[0]!, ...layer });
        break;
      }
      case "virtual":
        v = ensureRequest(s.def);
        break;
      case "pooled": {
        // A running sum in a state of its own, read once per sequence (as lower.ts does
        // for the DSL's meanpool).
        const x = ensureRequest(s.of);
        const layer = s.node?.name ? { layer: s.node.name } : {};
        const acc = stateNames.fresh(`${s.label}.sum`);
        state.push({ name: acc, size: s.size });
        const prev = names.fresh(`${s.label}.sum_prev`);
        const sum = names.fresh(`${s.label}.sum_next`);
        push("step", { op: "state_read", out: prev, state: acc, ...layer });
        push("step", { op: "add", out: sum, a: prev, b: x, ...layer });
        push("step", { op: "state_write", out: names.fresh(`${s.label}.sum_write`), state: acc, x: sum, ...layer });
        const total = names.fresh(`${s.label}.sum_final`);
        push("final", { op: "state_read", out: total, state: acc, ...layer });
        if (s.mode === "mean") {
          v = names.fresh(s.label);
          push("final", { op: "div_steps", out: v, x: total, ...layer });
        } else v = total;
        break;
      }
      default:
        throw new Error(`internal error: source ${s.label} (${s.kind}) reached emission`);
    }
    valueOf.set(s.id, v);
    return v;
  };

  // ---- requests ---------------------------------------------------------------------------

  const ensureRequest = (r: Request): string => {
    const known = reqValue.get(r);
    if (known !== undefined) return known;
    const p = classify(r);
    const n = r.f.length;
    const section = r.section;
    const slice = (src: Source, start: number, length: number, label: string): string => {
      const x = ensureSource(src);
      if (start === 0 && length === src.size) return x;
      const out = names.fresh(label);
      push(section, { op: "slice", out, x, start, length, ...layerOf(r) });
      return out;
    };
    let v: string;
    switch (p.kind) {
      case "alias":
        v = slice(p.src, p.start, n, r.label);
        break;
      case "gather": {
        const parts = p.runs.map((run, k) => slice(run.src, run.start, run.length, `${r.label}.part${k}`));
        v = names.fresh(r.label);
        push(section, { op: "concat", out: v, xs: parts, ...layerOf(r) });
        break;
      }
      case "elementwise": {
        // Partial sums are shared: a residual x + f(x) feeding a LayerNorm and, with a later
        // block's output added, the decoder is computed once.
        const keyOf = (k: number): string =>
          `${section}|${Array.from(p.shift).join(",")}|` + p.parts.slice(0, k + 1).map((q) => `${q.src.id}@${q.start}:${Array.from(q.scale).join(",")}`).join("|");
        let k = p.parts.length - 1;
        while (k >= 0 && !partialSums.has(keyOf(k))) k--;
        let acc = k >= 0 ? partialSums.get(keyOf(k))! : undefined;
        for (let j = k + 1; j < p.parts.length; j++) {
          const part = p.parts[j]!;
          const x = slice(part.src, part.start, n, `${r.label}.x${j}`);
          const shift = j === 0 ? p.shift : new Float64Array(n);
          let term = x;
          if (!part.scale.every((v) => v === 1) || !shift.every((v) => v === 0)) {
            term = names.fresh(p.parts.length === 1 ? r.label : `${r.label}.t${j}`);
            push(section, { op: "affine", out: term, x, scale: Array.from(part.scale), shift: Array.from(shift), ...layerOf(r) });
          }
          if (acc === undefined) acc = term;
          else {
            const out = names.fresh(j === p.parts.length - 1 ? r.label : `${r.label}.s${j}`);
            push(section, { op: "add", out, a: acc, b: term, ...layerOf(r) });
            acc = out;
          }
          partialSums.set(keyOf(j), acc);
        }
        v = acc!;
        break;
      }
      case "matmul":
        emitMatmul(r, p);
        v = reqValue.get(r)!;
        break;
      case "constant":
        throw new UserError("unsupported", `"${r.label}" is a constant (it does not depend on the input or the state); constant outputs and state updates are not supported`, { file });
    }
    reqValue.set(r, v);
    return v;
  };

  const emitMatmul = (r: Request, p: Extract<Plan, { kind: "matmul" }>): void => {
    const group = groups.get(groupKey(r, p)) ?? [r];
    // States first, so an S4D update reads [x; u] like the DSL's fused matrix.
    const sources = [...p.sources].sort((a, b) => (a.kind === "irstate" ? 0 : 1) - (b.kind === "irstate" ? 0 : 1) || a.id - b.id);
    const xs = sources.map(ensureSource);
    const rowOf = new Map<number, number>();
    let rows = 0;
    for (const s of sources) {
      rowOf.set(s.id, rows);
      rows += s.size;
    }
    const cols = group.reduce((n, q) => n + q.f.length, 0);
    const entries: Array<Array<[number, number]>> = Array.from({ length: rows }, () => []);
    const bias = new Array<number>(cols).fill(0);
    let col = 0;
    for (const q of group) {
      q.f.forEach((form, i) => {
        bias[col + i] = q.c[i]!;
        form.ids.forEach((id, t) => {
          const s = sym.owner(id);
          entries[rowOf.get(s.id)! + id - s.base]!.push([col + i, form.k[t]!]);
        });
      });
      col += q.f.length;
    }
    const isState = isS4DUpdate(group, sources);
    const label = group.length === 1 ? group[0]!.label : `${group[0]!.label}.mm`;
    const mm = names.fresh(label);
    const layer = group.find((q) => q.layer)?.layer;
    push(r.section, {
      op: "matmul",
      out: mm,
      xs,
      weight: blockMatrix(rows, cols, entries),
      ...(bias.some((b) => b !== 0) ? { bias } : {}),
      origin: isState ? "s4d" : "dense",
      ...(layer ? { layer } : {}),
    });
    const lv = levels.get(r);
    if (lv !== undefined) meta[levelsKey(r.section, mm)] = lv;
    if (group.length === 1) {
      reqValue.set(r, mm);
      return;
    }
    let at = 0;
    for (const q of group) {
      const out = names.fresh(q.label);
      push(r.section, { op: "slice", out, x: mm, start: at, length: q.f.length, ...layerOf(q) });
      reqValue.set(q, out);
      at += q.f.length;
    }
  };

  /**
   * Origin "s4d" promises the lower-s4d layout the quantizer's mode repair relies on: the
   * first operand is a state whose update is the group's first columns, and the state maps
   * to itself through 2x2 blocks on element pairs (2m, 2m+1). Other recurrences are "dense".
   */
  const isS4DUpdate = (group: Request[], sources: Source[]): boolean => {
    const ir = planned.states.find((st) => st.next === group[0]);
    if (!ir || ir.size % 2 !== 0 || sources[0] !== ir.step || group.slice(1).some((q) => nextOf.has(q))) return false;
    const base = ir.step.base;
    return ir.next.f.every((form, i) => form.ids.every((id) => id < base || id >= base + ir.size || ((id - base) >> 1) === i >> 1));
  };

  // ---- roots ------------------------------------------------------------------------------

  planned.states.forEach((s, i) => {
    const x = ensureRequest(s.next);
    push("step", { op: "state_write", out: names.fresh(`${s.name}.write`), state: state[i]!.name, x });
  });
  const outputs: OutputDecl[] = sym.outputs.map((o) => ({ name: o.name, value: ensureRequest(o.req), section: o.section }));
  // Pool accumulators were appended to the step section while emitting final outputs; the
  // state reads of the final section must come first there, which on-demand order ensures.
  return {
    irVersion: IR_VERSION,
    name,
    level: "lowered",
    inputs: sym.sources.filter((s): s is Extract<Source, { kind: "input" }> => s.kind === "input").map((s) => ({ name: s.irName, size: s.size })),
    outputs,
    state,
    sections: ops,
    meta,
  };
}
