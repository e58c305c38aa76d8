// How a request becomes IR, decided from its forms alone (planning uses it to weigh
// choices, emission to emit): the cheapest op kind that computes it.
//   exactly a (slice of a) value                         alias   -> nothing / slice
//   copies of elements                                   gather  -> slices + concat
//   values combined element by element (element i from element offset+i of each, with
//   per-element weights)                                 elementwise -> affine / add
//   no symbols at all                                    constant
//   anything else                                        matmul

import type { Request, Source, Symbols } from "./symbols.js";

export type Plan =
  | { kind: "alias"; src: Source; start: number }
  | { kind: "gather"; runs: Array<{ src: Source; start: number; length: number }> }
  | { kind: "elementwise"; parts: Array<{ src: Source; start: number; scale: Float64Array }>; shift: Float64Array }
  | { kind: "matmul"; sources: Source[] }
  | { kind: "constant" };

export function classifyRequest(sym: Symbols, r: Pick<Request, "c" | "f">): Plan {
  const n = r.f.length;
  let terms = 0;
  let copies = true;
  for (let i = 0; i < n; i++) {
    const f = r.f[i]!;
    terms += f.ids.length;
    if (f.ids.length !== 1 || f.k[0] !== 1 || r.c[i] !== 0) copies = false;
  }
  if (terms === 0) return { kind: "constant" };
  if (copies) {
    const runs: Array<{ src: Source; start: number; length: number }> = [];
    for (let i = 0; i < n; i++) {
      const id = r.f[i]!.ids[0]!;
      const last = runs[runs.length - 1];
      if (last && id === last.src.base + last.start + last.length && id < last.src.base + last.src.size) last.length++;
      else {
        const src = sym.owner(id);
        runs.push({ src, start: id - src.base, length: 1 });
      }
    }
    if (runs.length === 1) return { kind: "alias", src: runs[0]!.src, start: runs[0]!.start };
    return { kind: "gather", runs };
  }
  // Elementwise: per source one term per element, at a fixed offset from the element index.
  const parts = new Map<number, { src: Source; start: number; scale: Float64Array }>();
  let elementwise = true;
  for (let i = 0; i < n && elementwise; i++) {
    const f = r.f[i]!;
    let lastSrc = -1;
    for (let t = 0; t < f.ids.length; t++) {
      const id = f.ids[t]!;
      const src = sym.owner(id);
      if (src.id === lastSrc) {
        elementwise = false; // two elements of one source
        break;
      }
      lastSrc = src.id;
      let part = parts.get(src.id);
      if (!part) {
        const start = id - src.base - i;
        if (start < 0 || start + n > src.size) {
          elementwise = false;
          break;
        }
        part = { src, start, scale: new Float64Array(n) };
        parts.set(src.id, part);
      }
      if (id - src.base !== part.start + i) {
        elementwise = false;
        break;
      }
      part.scale[i] = f.k[t]!;
    }
  }
  if (elementwise) return { kind: "elementwise", parts: [...parts.values()].sort((a, b) => a.src.id - b.src.id), shift: new Float64Array(r.c) };
  return { kind: "matmul", sources: sym.sourcesOf(r) };
}
