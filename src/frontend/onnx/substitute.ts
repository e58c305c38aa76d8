// Rewriting requests by replacing the symbols of some sources with affine expressions
// (inlining a virtual product, renaming ONNX state elements to IR state elements, turning a
// pending square into the output of an IR mul).

import { FormAcc, type LinForm } from "./forms.js";
import type { Request, Source, Symbols } from "./symbols.js";

/** Element j of a replaced source as constant + form. */
export type Replacement = (j: number) => { c: number; f: LinForm };

export function substituteForms(sym: Symbols, c: Float64Array, f: LinForm[], repl: ReadonlyMap<number, Replacement>): { c: Float64Array; f: LinForm[]; changed: boolean } {
  let changed = false;
  const c2 = new Float64Array(c);
  const f2 = f.map((form, i) => {
    let hit = false;
    for (const id of form.ids) {
      if (repl.has(sym.owner(id).id)) {
        hit = true;
        break;
      }
    }
    if (!hit) return form;
    changed = true;
    const acc = new FormAcc();
    let ci = c2[i]!;
    form.ids.forEach((id, t) => {
      const s = sym.owner(id);
      const r = repl.get(s.id);
      const k = form.k[t]!;
      if (!r) {
        acc.addTerm(id, k);
        return;
      }
      const e = r(id - s.base);
      ci += k * e.c;
      acc.add(e.f, k);
    });
    c2[i] = ci;
    return acc.finish();
  });
  return { c: changed ? c2 : c, f: changed ? f2 : f, changed };
}

/** Rewrites requests in place; returns those that changed. */
export function substitute(sym: Symbols, reqs: Iterable<Request>, repl: ReadonlyMap<number, Replacement>): Request[] {
  const changed: Request[] = [];
  for (const r of reqs) {
    const out = substituteForms(sym, r.c, r.f, repl);
    if (out.changed) {
      r.c = out.c;
      r.f = out.f;
      changed.push(r);
    }
  }
  return changed;
}

/** True if any form of the request has a symbol of `src`. */
export function references(r: Request, src: Source): boolean {
  const lo = src.base;
  const hi = src.base + src.size;
  for (const f of r.f) {
    // ids are sorted: binary search for the first id >= lo
    const ids = f.ids;
    let a = 0;
    let b = ids.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (ids[m]! < lo) a = m + 1;
      else b = m;
    }
    if (a < ids.length && ids[a]! < hi) return true;
  }
  return false;
}

/**
 * The forms with every virtual product replaced by its definition (recursively): what an
 * element computes from non-virtual symbols. Pattern checks compare these, since the same
 * value may be reached through different products (x*0.5 and x/sqrt(2) of one MatMul).
 */
export function expandVirtuals(sym: Symbols, c: Float64Array, f: LinForm[]): { c: Float64Array; f: LinForm[] } {
  let cur = { c, f };
  for (;;) {
    const repl = new Map<number, Replacement>();
    for (const form of cur.f) {
      for (const id of form.ids) {
        const s = sym.owner(id);
        if (s.kind === "virtual" && !repl.has(s.id)) repl.set(s.id, (j) => ({ c: s.def.c[j]!, f: s.def.f[j]! }));
      }
    }
    if (repl.size === 0) return cur;
    const next = substituteForms(sym, cur.c, cur.f, repl);
    cur = { c: next.c, f: next.f };
  }
}
