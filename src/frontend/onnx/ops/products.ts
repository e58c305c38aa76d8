// Virtual sources for matrix products (see linalg.ts): creating them, and keeping them
// whole when the graph adds a bias after the MatMul, so the bias lands in the matmul.

import { single, type LinForm } from "../forms.js";
import { affine, type AffineTensor, type Tensor } from "../operand.js";
import type { OpContext } from "./context.js";

export function productSource(ctx: OpContext, t: AffineTensor, label: string, forceCut: boolean, levels?: number): AffineTensor {
  const n = t.f.length;
  const def = ctx.sym.request(t.section, t.c, t.f, label, ctx.node.name || undefined);
  const src = ctx.sym.add("virtual", n, t.section, label, ctx.ref, { def, forceCut, ...(levels !== undefined ? { levels } : {}) });
  const f = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) f[i] = single(src.base + i);
  return affine(t.shape, t.section, new Float64Array(n), f);
}

/**
 * MatMul followed by Add of a bias (torch.matmul(x, w.t()) + b): when t is exactly the
 * product's elements in order, each plus a constant, the sum is a product with a bias and
 * becomes a new virtual source, so the bias goes into the matmul instead of a vector op.
 * Anything else (broadcasts such as B * u, scaled elements) stays an ordinary affine tensor.
 */
export function absorbBias(ctx: OpContext, t: Tensor, label: string): Tensor {
  if (t.kind === "const") return t;
  const first = t.f[0];
  if (!first || first.ids.length !== 1) return t;
  const v = ctx.sym.owner(first.ids[0]!);
  if (v.kind !== "virtual" || v.size !== t.f.length) return t;
  for (let i = 0; i < t.f.length; i++) {
    const f = t.f[i]!;
    if (f.ids.length !== 1 || f.ids[0] !== v.base + i || f.k[0] !== 1) return t;
  }
  if (t.c.every((c) => c === 0)) return t;
  const c = Float64Array.from(t.c, (ci, i) => ci + v.def.c[i]!);
  return productSource(ctx, affine(t.shape, t.section, c, v.def.f), label, v.forceCut, v.levels);
}
