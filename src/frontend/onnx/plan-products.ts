// Planning of matrix products (see ops/linalg.ts): which products stay matmuls of their
// own and which are inlined into their consumers, and elementwise sums that go to the
// vector unit before a matmul instead of multiplying its rows.

import { EMPTY, FormAcc, single, type LinForm } from "./forms.js";
import { classifyRequest } from "./classify.js";
import { liveRequests, rootsOf, stateSources } from "./live.js";
import { references, substitute, substituteForms, type Replacement } from "./substitute.js";
import type { Request, Source, Symbols } from "./symbols.js";

type Kind<K extends Source["kind"]> = Extract<Source, { kind: K }>;

function sourceKey(sym: Symbols, f: readonly LinForm[]): string {
  const ids = new Set<number>();
  for (const form of f) for (const id of form.ids) ids.add(sym.owner(id).id);
  return [...ids].sort((a, b) => a - b).join(",");
}

/** Connected components of the bipartite graph (symbols, output elements) of some forms. */
function components(forms: readonly (readonly LinForm[])[]): number {
  const parent: number[] = [];
  const node = new Map<number, number>();
  const make = (): number => {
    parent.push(parent.length);
    return parent.length - 1;
  };
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  for (const f of forms) {
    for (const form of f) {
      if (form.ids.length === 0) continue;
      const out = make();
      for (const id of form.ids) {
        let s = node.get(id);
        if (s === undefined) {
          s = make();
          node.set(id, s);
        }
        const a = find(out);
        const b = find(s);
        if (a !== b) parent[a] = b;
      }
    }
  }
  let n = 0;
  for (let i = 0; i < parent.length; i++) if (find(i) === i) n++;
  return n;
}

/** Weights a request puts on crossbars: its terms if it needs a matmul, none for vector ops. */
function crossbarEntries(sym: Symbols, r: Pick<Request, "c" | "f">): number {
  if (classifyRequest(sym, r).kind !== "matmul") return 0;
  return r.f.reduce((n, f) => n + f.ids.length, 0);
}

/**
 * Inline each virtual product into its consumers, unless
 *  - that merges structure the consumers keep apart: the connected components of the
 *    consumers (and of the requests that would share a matmul with them after inlining)
 *    drop. An encoder feeding S4D channels would tie every channel to the one input element;
 *  - or it puts more weights on crossbars: the product's matmul plus its consumers against
 *    the inlined consumers (an encoder read by a residual, a LayerNorm and a decoder turns
 *    three cheap vector ops into matmuls over the input when inlined).
 * An S4D input projection or readout product keeps channels apart and costs less inlined, so
 * it joins the state update's matmul. Latest products are decided first, so a product's
 * consumers are final when it is decided.
 */
export function decideVirtuals(sym: Symbols): void {
  const work = new Set(liveRequests(sym, rootsOf(sym)));
  const virtuals = sym.sources.filter((s): s is Kind<"virtual"> => s.kind === "virtual" && work.has(s.def)).sort((a, b) => b.id - a.id);
  const inline = (v: Kind<"virtual">, consumers: Request[], repl: Map<number, Replacement>): void => {
    v.cut = false;
    for (const r of consumers) {
      const x = substituteForms(sym, r.c, r.f, repl);
      r.c = x.c;
      r.f = x.f;
    }
    work.delete(v.def);
  };
  const replOf = (v: Kind<"virtual">) => new Map<number, Replacement>([[v.id, (j) => ({ c: v.def.c[j]!, f: v.def.f[j]! })]]);
  // Products inside a recurrence (reading a state whose update reads them) are always
  // inlined: a matmul of their own would put a second MVM on the recurrence's critical
  // path, where the DSL path has the one fused [x; u] -> [x'; y] product.
  const loop = inRecurrence(sym, virtuals);
  for (const v of [...virtuals].reverse()) {
    if (!v.forceCut && loop.has(v.id)) inline(v, [...work].filter((r) => r !== v.def && references(r, v)), replOf(v));
  }
  for (const v of virtuals) {
    if (v.cut === false) continue;
    if (v.forceCut) {
      v.cut = true;
      continue;
    }
    const consumers = [...work].filter((r) => r !== v.def && references(r, v));
    const repl = replOf(v);
    const inlined = consumers.map((r) => substituteForms(sym, r.c, r.f, repl));
    const keys = new Set(inlined.map((x) => sourceKey(sym, x.f)));
    const partners = [...work].filter((r) => r !== v.def && !consumers.includes(r) && keys.has(sourceKey(sym, r.f)));
    const before = components([...consumers.map((r) => r.f), ...partners.map((r) => r.f)]);
    const after = components([...inlined.map((x) => x.f), ...partners.map((r) => r.f)]);
    const costCut = crossbarEntries(sym, v.def) + consumers.reduce((n, r) => n + crossbarEntries(sym, r), 0);
    const costInline = inlined.reduce((n, x, k) => n + crossbarEntries(sym, x), 0);
    if (consumers.length > 0 && (after < before || costInline > costCut)) {
      v.cut = true;
      continue;
    }
    inline(v, consumers, repl);
  }
}

/** Products that read a state (through other products) and feed that state's update. */
function inRecurrence(sym: Symbols, virtuals: ReadonlyArray<Kind<"virtual">>): Set<number> {
  const reads = new Map<number, Set<number>>(); // product -> states it reads
  const readsOf = (v: Kind<"virtual">): Set<number> => {
    const known = reads.get(v.id);
    if (known) return known;
    const out = new Set<number>();
    reads.set(v.id, out);
    for (const s of sym.sourcesOf(v.def)) {
      if (s.kind === "state") out.add(s.id);
      else if (s.kind === "virtual") for (const t of readsOf(s)) out.add(t);
    }
    return out;
  };
  const loop = new Set<number>();
  for (const st of stateSources(sym)) {
    // Products the update of `st` reads, directly or through other products.
    const stack = sym.sourcesOf(st.next!);
    const seen = new Set<number>();
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (s.kind !== "virtual" || seen.has(s.id)) continue;
      seen.add(s.id);
      if (readsOf(s).has(st.id)) loop.add(s.id);
      stack.push(...sym.sourcesOf(s.def));
    }
  }
  return new Set(virtuals.filter((v) => loop.has(v.id)).map((v) => v.id));
}

/**
 * A matmul reading several values of one length whose rows are proportional element by
 * element (row of b_i = d_i * row of a_i) computes W (a + d b): the sum goes to the vector
 * unit first and the crossbar reads one value instead of several. This is the residual
 * `x + block(x)` feeding a decoder or the next layer, which the DSL path adds before its
 * linear layer too.
 */
export function factorSums(sym: Symbols, live: readonly Request[], levelled: ReadonlySet<Request>): void {
  const groups = new Map<string, Request[]>();
  for (const r of live) {
    if (levelled.has(r) || classifyRequest(sym, r).kind !== "matmul") continue;
    const key = `${r.section}|${sym.sourcesOf(r).map((x) => x.id).join(",")}`;
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(r);
  }
  for (const group of groups.values()) {
    const sources = sym.sourcesOf(group[0]!).filter((x) => x.kind !== "irstate");
    // Row of every source element: (column, coefficient) over the group's columns.
    const rows = new Map<number, Array<[number, number]>>();
    let col = 0;
    for (const r of group) {
      r.f.forEach((form, i) => form.ids.forEach((id, t) => (rows.get(id) ?? rows.set(id, []).get(id)!).push([col + i, form.k[t]!])));
      col += r.f.length;
    }
    const scaleOf = (a: Source, b: Source): Float64Array | undefined => {
      const d = new Float64Array(a.size);
      for (let i = 0; i < a.size; i++) {
        const ra = rows.get(a.base + i);
        const rb = rows.get(b.base + i);
        if (!ra || !rb) {
          if (ra || rb) return undefined;
          continue;
        }
        if (ra.length !== rb.length) return undefined;
        const k = rb[0]![1] / ra[0]![1];
        for (let q = 0; q < ra.length; q++) {
          if (ra[q]![0] !== rb[q]![0] || Math.abs(rb[q]![1] - k * ra[q]![1]) > 1e-9 * Math.abs(rb[q]![1])) return undefined;
        }
        d[i] = k;
      }
      return d;
    };
    const used = new Set<number>();
    const repl = new Map<number, Replacement>();
    for (const a of sources) {
      if (used.has(a.id)) continue;
      const members: Array<{ src: Source; d: Float64Array }> = [{ src: a, d: new Float64Array(a.size).fill(1) }];
      for (const b of sources) {
        if (b === a || used.has(b.id) || b.size !== a.size) continue;
        const d = scaleOf(a, b);
        if (d) members.push({ src: b, d });
      }
      if (members.length < 2) continue;
      for (const m of members) used.add(m.src.id);
      const f = Array.from({ length: a.size }, (_, i) => {
        const acc = new FormAcc();
        for (const m of members) acc.addTerm(m.src.base + i, m.d[i]!);
        return acc.finish();
      });
      const def = sym.request(group[0]!.section, new Float64Array(a.size), f, `${a.label}.sum`, group[0]!.layer);
      const z = sym.add("virtual", a.size, a.section, `${a.label}.sum`, a.node, { def, forceCut: true, cut: true });
      // a_i -> z_i; the other members' terms are already accounted for in z.
      repl.set(a.id, (j) => ({ c: 0, f: single(z.base + j) }));
      for (const m of members.slice(1)) repl.set(m.src.id, () => ({ c: 0, f: EMPTY }));
    }
    if (repl.size > 0) substitute(sym, group, repl);
  }
}
