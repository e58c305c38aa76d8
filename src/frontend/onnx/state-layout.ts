// IR states: ONNX states whose updates read each other become one IR state, laid out so
// that a diagonal S4D gets the DSL layout ((h*M + m)*2 + re/im) whatever real arrangement
// the exporter chose; ONNX state symbols are renamed to IR state symbols.

import { single } from "./forms.js";
import { liveRequests, rootsOf, stateSources, type StateSource } from "./live.js";
import { substitute, type Replacement } from "./substitute.js";
import type { Request, Source, Symbols } from "./symbols.js";

type Kind<K extends Source["kind"]> = Extract<Source, { kind: K }>;

export interface IrState {
  name: string;
  size: number;
  /** The IR state's next value, in IR element order. */
  next: Request;
  /** state_read in the step section / in the final section. */
  step: Kind<"irstate">;
  final: Kind<"irstate">;
}

class UnionFind {
  private readonly parent: number[] = [];
  make(): number {
    this.parent.push(this.parent.length);
    return this.parent.length - 1;
  }
  find(x: number): number {
    const p = this.parent;
    while (p[x] !== x) {
      p[x] = p[p[x]!]!;
      x = p[x]!;
    }
    return x;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[ra] = rb;
  }
}

/**
 * IR element order of a group of ONNX states: by channel (the smallest non-state symbol
 * the element's connected component of the update reads, e.g. the S4D input u_h), then by
 * mode (the coupled pair of a complex mode, found as a component of the state-to-state part),
 * then by ONNX position. For diagonal S4D in any real arrangement this is (h, m, re/im).
 */
function layout(sym: Symbols, group: StateSource[]): number[] {
  const offset = new Map<number, number>();
  let n = 0;
  for (const s of group) {
    offset.set(s.id, n);
    n += s.size;
  }
  const channels = new UnionFind();
  const pairs = new UnionFind();
  for (let e = 0; e < n; e++) {
    channels.make();
    pairs.make();
  }
  const extra = new Map<number, number>(); // non-state symbol -> node
  const symbolOf = new Map<number, number>(); // node -> symbol id
  const elements: Array<{ s: StateSource; j: number }> = [];
  for (const s of group) for (let j = 0; j < s.size; j++) elements.push({ s, j });
  elements.forEach(({ s, j }, e) => {
    const form = s.next!.f[j]!;
    for (const id of form.ids) {
      const t = sym.owner(id);
      const off = offset.get(t.id);
      if (off !== undefined) {
        channels.union(e, off + id - t.base);
        pairs.union(e, off + id - t.base);
        continue;
      }
      let node = extra.get(id);
      if (node === undefined) {
        node = channels.make();
        extra.set(id, node);
        symbolOf.set(node, id);
      }
      channels.union(e, node);
    }
  });
  const channelKey = new Map<number, number>();
  for (const [node, id] of symbolOf) {
    const r = channels.find(node);
    channelKey.set(r, Math.min(channelKey.get(r) ?? Infinity, id));
  }
  const pairKey = new Map<number, number>();
  for (let e = 0; e < n; e++) {
    const r = pairs.find(e);
    if (!pairKey.has(r)) pairKey.set(r, e);
  }
  const order = Array.from({ length: n }, (_, e) => e);
  const ck = order.map((e) => channelKey.get(channels.find(e)) ?? Infinity);
  const pk = order.map((e) => pairKey.get(pairs.find(e))!);
  order.sort((a, b) => ck[a]! - ck[b]! || pk[a]! - pk[b]! || a - b);
  return order;
}

export function buildStates(sym: Symbols): IrState[] {
  const states = stateSources(sym);
  const uf = new UnionFind();
  const index = new Map(states.map((s, i) => [s.id, i]));
  states.forEach(() => uf.make());
  states.forEach((s, i) => {
    for (const t of sym.sourcesOf(s.next!)) {
      const k = index.get(t.id);
      if (k !== undefined) uf.union(i, k);
    }
  });
  const groups = new Map<number, StateSource[]>();
  states.forEach((s, i) => {
    const r = uf.find(i);
    (groups.get(r) ?? groups.set(r, []).get(r)!).push(s);
  });
  const finals = new Map<number, Kind<"finalstate">>();
  for (const s of sym.sources) if (s.kind === "finalstate") finals.set(s.of, s);

  const out: IrState[] = [];
  const repl = new Map<number, Replacement>();
  const nexts: Array<{ ir: IrState; elements: Array<{ s: StateSource; j: number }> }> = [];
  for (const group of groups.values()) {
    const order = layout(sym, group);
    const flat: Array<{ s: StateSource; j: number }> = [];
    for (const s of group) for (let j = 0; j < s.size; j++) flat.push({ s, j });
    const elements = order.map((e) => flat[e]!);
    const name = group.map((s) => s.inName).join("+");
    const size = flat.length;
    const step = sym.add("irstate", size, "step", `${name}.prev`, undefined, { state: name, final: false });
    const final = sym.add("irstate", size, "final", `${name}.last`, undefined, { state: name, final: true });
    const pos = new Map<number, Int32Array>(group.map((s) => [s.id, new Int32Array(s.size)]));
    elements.forEach(({ s, j }, p) => (pos.get(s.id)![j] = p));
    for (const s of group) {
      const at = pos.get(s.id)!;
      repl.set(s.id, (j) => ({ c: 0, f: single(step.base + at[j]!) }));
      const fin = finals.get(s.id);
      if (fin) repl.set(fin.id, (j) => ({ c: 0, f: single(final.base + at[j]!) }));
    }
    const ir: IrState = { name, size, next: undefined as unknown as Request, step, final };
    out.push(ir);
    nexts.push({ ir, elements });
  }
  substitute(sym, liveRequests(sym, rootsOf(sym)), repl);
  for (const { ir, elements } of nexts) {
    const c = Float64Array.from(elements, ({ s, j }) => s.next!.c[j]!);
    const f = elements.map(({ s, j }) => s.next!.f[j]!);
    ir.next = sym.request("step", c, f, `${ir.name}.next`);
  }
  return out;
}
