// Where affine regions end. A nonlinear op turns its (affine) input into a request and its
// output into a fresh source whose elements are new symbols, so everything downstream is
// affine again. Functions the IR only has inside larger ops (erf in GELU; square, sqrt and
// reciprocal in LayerNorm) stay *pending*: their results are symbols with a recipe, and a
// later Mul/Div that completes the pattern replaces them by the IR op. A pending symbol no
// pattern claimed is reported at planning time, naming the node that made it.
//
// Pattern checks compare affine forms, not node sequences, so any order of the Mul
// operands, any placement of the constants 0.5 / 1 / 1/sqrt(2), and any way of computing
// the mean (ReduceMean, Mul by 1/n of a ReduceSum, ...) is recognised.

import { FormAcc, addConst, formsEqual, ratio, scaleForm, single, type LinForm } from "../forms.js";
import { affine, type AffineTensor, type Tensor } from "../operand.js";
import { fmtShape, invalid } from "../problem.js";
import type { NonlinearKind, PendingFn, Request, Source } from "../symbols.js";
import { broadcastIndex, constant, normAxis, sizeOf } from "../tensor.js";
import { expandVirtuals } from "../substitute.js";
import { optConst, tensorArg } from "./args.js";
import { attrFloat, attrInt, outName, type OpContext, type OpFn } from "./context.js";

/** Relative tolerance of pattern checks (constants of exported graphs are float32). */
const TOL = 1e-5;
/** Float32 rounding of the GELU constants (relative), see gelu(). */
const GELU_SNAP = 1e-6;

function requestOf(ctx: OpContext, x: AffineTensor, label: string, c = x.c, f = x.f): Request {
  return ctx.sym.request(x.section, c, f, label, ctx.node.name || undefined);
}

function outputOf(s: Source, shape: readonly number[], coef?: Float64Array): AffineTensor {
  const n = s.size;
  const f = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) f[i] = single(s.base + i, coef ? coef[i] : 1);
  return affine(shape, s.section, new Float64Array(n), f);
}

/** Emits an IR nonlinear op on `inputs` (same shape); its output tensor has that shape. */
export function nonlinear(ctx: OpContext, kind: NonlinearKind, inputs: AffineTensor[], eps?: number): AffineTensor {
  const x = inputs[0]!;
  const label = outName(ctx);
  const reqs = inputs.map((t, k) => requestOf(ctx, t, inputs.length > 1 ? `${label}.in${k}` : `${label}.in`));
  const src = ctx.sym.add("nonlinear", sizeOf(x.shape), x.section, label, ctx.ref, { op: { kind, inputs: reqs, ...(eps !== undefined ? { eps } : {}) } });
  return outputOf(src, x.shape);
}

export function pending(ctx: OpContext, fn: PendingFn, x: AffineTensor): AffineTensor {
  const src = ctx.sym.add("pending", sizeOf(x.shape), x.section, `${outName(ctx)}.${fn}`, ctx.ref, { fn, argC: x.c, argF: x.f });
  return outputOf(src, x.shape);
}

/** The pending source and element a form consists of (exactly one term), if any. */
function pendingTerm(ctx: OpContext, f: LinForm, fn: PendingFn): { src: Extract<Source, { kind: "pending" }>; j: number; coef: number } | undefined {
  if (f.ids.length !== 1) return undefined;
  const s = ctx.sym.owner(f.ids[0]!);
  if (s.kind !== "pending" || s.fn !== fn) return undefined;
  return { src: s, j: f.ids[0]! - s.base, coef: f.k[0]! };
}

/**
 * 1/x. sqrt and rsqrt swap (1/(g sqrt v) = rsqrt(v)/g), which keeps the LayerNorm
 * pattern visible when a graph divides by the standard deviation; otherwise pending.
 */
export function reciprocal(ctx: OpContext, x: AffineTensor): AffineTensor {
  const n = x.f.length;
  const swap = { sqrt: "rsqrt", rsqrt: "sqrt" } as const;
  let from: Extract<Source, { kind: "pending" }> | undefined;
  const coef = new Float64Array(n);
  const elems = new Int32Array(n);
  for (let i = 0; i < n && n > 0; i++) {
    const t = x.c[i] === 0 ? (pendingTerm(ctx, x.f[i]!, "sqrt") ?? pendingTerm(ctx, x.f[i]!, "rsqrt")) : undefined;
    if (!t || (from && t.src !== from)) {
      from = undefined;
      break;
    }
    from = t.src;
    coef[i] = 1 / t.coef;
    elems[i] = t.j;
  }
  if (!from) return pending(ctx, "recip", x);
  const fn = swap[from.fn as "sqrt" | "rsqrt"];
  const argC = new Float64Array(n);
  const argF = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) {
    argC[i] = from.argC[elems[i]!]!;
    argF[i] = from.argF[elems[i]!]!;
  }
  const src = ctx.sym.add("pending", n, x.section, `${outName(ctx)}.${fn}`, ctx.ref, { fn, argC, argF });
  return outputOf(src, x.shape, coef);
}

// ---- normalize ------------------------------------------------------------------------

/**
 * normalize(x) is unchanged when the same affine expression is added to every element, so
 * the part common to all elements (per symbol the most frequent coefficient, counting
 * absence as 0) is dropped: x - mean(x) written out over the mean's symbols becomes x again,
 * an elementwise form that needs no crossbar.
 */
export function withoutCommonPart(c: Float64Array, f: LinForm[]): { c: Float64Array; f: LinForm[] } {
  const n = f.length;
  if (n < 3) return { c, f };
  const mode = (values: number[], absent: number): number => {
    const count = new Map<number, number>();
    if (absent > 0) count.set(0, absent);
    for (const v of values) count.set(v, (count.get(v) ?? 0) + 1);
    let best = 0;
    let bestN = 0;
    for (const [v, k] of count) if (k > bestN || (k === bestN && v === 0)) [best, bestN] = [v, k];
    return best;
  };
  const perSymbol = new Map<number, number[]>();
  for (const g of f) g.ids.forEach((id, t) => (perSymbol.get(id) ?? perSymbol.set(id, []).get(id)!).push(g.k[t]!));
  const common = new FormAcc();
  for (const [id, values] of perSymbol) {
    const m = mode(values, n - values.length);
    if (m !== 0) common.addTerm(id, m);
  }
  const cm = mode([...c], 0);
  const g = common.finish();
  if (g.ids.length === 0 && cm === 0) return { c, f };
  const c2 = c.map((v) => v - cm);
  const f2 = f.map((form) => {
    const acc = new FormAcc();
    acc.add(form, 1);
    acc.add(g, -1);
    return acc.finish();
  });
  return { c: c2, f: f2 };
}

/** normalize over each group of element indices of x (one IR op per group). */
function normalizeGroups(ctx: OpContext, x: AffineTensor, groups: number[][], eps: number): Source[] {
  return groups.map((g, k) => {
    const c = Float64Array.from(g, (i) => x.c[i]!);
    const f = g.map((i) => x.f[i]!);
    const simple = withoutCommonPart(c, f);
    const label = groups.length > 1 ? `${outName(ctx)}.norm${k}` : `${outName(ctx)}.norm`;
    const req = ctx.sym.request(x.section, simple.c, simple.f, `${label}.in`, ctx.node.name || undefined);
    return ctx.sym.add("nonlinear", g.length, x.section, label, ctx.ref, { op: { kind: "normalize", inputs: [req], eps } });
  });
}

const layerNormalization: OpFn = (ctx, inputs) => {
  const x = tensorArg(inputs, 0, "X");
  const scale = optConst(inputs, 1, "Scale");
  const bias = optConst(inputs, 2, "B");
  const r = x.shape.length;
  const axis = normAxis(attrInt(ctx, "axis", -1), r);
  const eps = attrFloat(ctx, "epsilon", 1e-5);
  const inner = sizeOf(x.shape.slice(axis));
  const outer = sizeOf(x.shape.slice(0, axis));
  const n = sizeOf(x.shape);
  for (const [t, what] of [[scale, "Scale"], [bias, "B"]] as const) {
    if (t && (t.shape.length > r - axis || t.shape.some((d, i) => d !== 1 && d !== x.shape[r - t.shape.length + i]))) {
      invalid(`${what} of shape ${fmtShape(t.shape)} does not broadcast over the normalized dimensions ${fmtShape(x.shape.slice(axis))}`);
    }
  }
  const si = scale ? broadcastIndex(x.shape, scale.shape) : undefined;
  const bi = bias ? broadcastIndex(x.shape, bias.shape) : undefined;
  const gamma = (i: number): number => (scale ? scale.data[si![i]!]! : 1);
  const beta = (i: number): number => (bias ? bias.data[bi![i]!]! : 0);
  // Mean and InvStdDev (outputs 1 and 2) are left undefined: they serve training, and the
  // graph walker reports a node that reads them.
  if (x.kind === "const") {
    const out = new Float64Array(n);
    for (let o = 0; o < outer; o++) {
      let mean = 0;
      for (let j = 0; j < inner; j++) mean += x.data[o * inner + j]!;
      mean /= inner;
      let v = 0;
      for (let j = 0; j < inner; j++) v += (x.data[o * inner + j]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / inner + eps);
      for (let j = 0; j < inner; j++) {
        const i = o * inner + j;
        out[i] = (x.data[i]! - mean) * inv * gamma(i) + beta(i);
      }
    }
    return [constant("float", x.shape, out)];
  }
  const groups = Array.from({ length: outer }, (_, o) => Array.from({ length: inner }, (_, j) => o * inner + j));
  const srcs = normalizeGroups(ctx, x, groups, eps);
  const c = new Float64Array(n);
  const f = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) {
    const s = srcs[Math.floor(i / inner)]!;
    c[i] = beta(i);
    f[i] = single(s.base + (i % inner), gamma(i));
  }
  return [affine(x.shape, x.section, c, f)];
};

// ---- Mul of two non-constant tensors ----------------------------------------------------

/** a * b (same shape): square, GELU, LayerNorm, or an IR `mul`. */
export function mulNonconst(ctx: OpContext, a: Tensor, b: Tensor): AffineTensor {
  const A = a as AffineTensor;
  const B = b as AffineTensor;
  if (A.f.every((f, i) => A.c[i] === B.c[i] && formsEqual(f, B.f[i]!))) return pending(ctx, "square", A);
  return gelu(ctx, A, B) ?? gelu(ctx, B, A) ?? normalize(ctx, A, B) ?? normalize(ctx, B, A) ?? nonlinear(ctx, "mul", [A, B]);
}

/**
 * x_i * beta_i (1 + erf(a_j)) with x_i = lambda_i a_j is lambda_i beta_i sqrt(2) gelu(sqrt(2) a_j)
 * (gelu(x) = x/2 (1 + erf(x / sqrt 2))), whatever constants the exporter folded where.
 */
function gelu(ctx: OpContext, X: AffineTensor, E: AffineTensor): AffineTensor | undefined {
  const n = X.f.length;
  const scale = new Float64Array(n);
  const xc = new Float64Array(n);
  const xf = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) {
    const t = pendingTerm(ctx, E.f[i]!, "erf");
    if (!t) return undefined;
    const beta = t.coef;
    if (Math.abs(E.c[i]! - beta) > TOL * Math.abs(beta)) return undefined;
    const ac = t.src.argC[t.j]!;
    const af = t.src.argF[t.j]!;
    const xe = expand(ctx, X.c[i]!, X.f[i]!);
    const ae = expand(ctx, ac, af);
    const lambda = ratio(xe.c, xe.f, ae.c, ae.f, TOL);
    if (lambda === null) return undefined;
    // Exported constants are float32 (0.5, 1/sqrt(2) = 0.70710677): the exact GELU a graph
    // means is scaled by 1 up to their rounding, and an exact 1 keeps a vector op away.
    const k = lambda * beta * Math.SQRT2;
    scale[i] = Math.abs(k - 1) <= GELU_SNAP ? 1 : k;
    xc[i] = Math.SQRT2 * ac;
    xf[i] = scaleForm(af, Math.SQRT2);
  }
  const label = outName(ctx);
  const req = ctx.sym.request(X.section, xc, xf, `${label}.in`, ctx.node.name || undefined);
  const src = ctx.sym.add("nonlinear", n, X.section, label, ctx.ref, { op: { kind: "gelu", inputs: [req] } });
  return outputOf(src, X.shape, scale);
}

/**
 * p_i * rho_i rsqrt(eps + mean_{k in G} d_k^2) with p_i = lambda_i d_k and the d_k of G
 * summing to zero (centered) is lambda_i rho_i normalize(d_G)_k.
 */
function normalize(ctx: OpContext, P: AffineTensor, R: AffineTensor): AffineTensor | undefined {
  const n = P.f.length;
  interface Group {
    members: number[]; // square-source elements, ascending
    eps: number;
    square: Extract<Source, { kind: "pending" }>;
    position: Map<number, number>;
    /** The members' args with products expanded, for the checks. */
    expanded: Array<{ c: number; f: LinForm }>;
    src?: Source;
  }
  const groups = new Map<string, Group>();
  const pick = new Array<{ g: Group; k: number; coef: number }>(n);
  for (let i = 0; i < n; i++) {
    const t = pendingTerm(ctx, R.f[i]!, "rsqrt");
    if (!t || R.c[i] !== 0) return undefined;
    const vf = t.src.argF[t.j]!;
    const eps = t.src.argC[t.j]!;
    const m = vf.ids.length;
    if (m < 2 || !(eps > 0)) return undefined;
    const first = ctx.sym.owner(vf.ids[0]!);
    if (first.kind !== "pending" || first.fn !== "square") return undefined;
    const members: number[] = [];
    for (let q = 0; q < m; q++) {
      const id = vf.ids[q]!;
      if (id < first.base || id >= first.base + first.size) return undefined;
      if (Math.abs(vf.k[q]! * m - 1) > TOL) return undefined;
      members.push(id - first.base);
    }
    const key = `${first.id}:${members.join(",")}:${eps}`;
    let g = groups.get(key);
    if (!g) {
      const expanded = members.map((k) => expand(ctx, first.argC[k]!, first.argF[k]!));
      if (!centered(expanded)) return undefined;
      g = { members, eps, square: first, position: new Map(members.map((k, p) => [k, p])), expanded };
      groups.set(key, g);
    }
    // Which member p_i is a multiple of.
    let found: { k: number; coef: number } | undefined;
    const pe = expand(ctx, P.c[i]!, P.f[i]!);
    for (let p = 0; p < g.members.length && !found; p++) {
      const de = g.expanded[p]!;
      const lambda = ratio(pe.c, pe.f, de.c, de.f, TOL);
      if (lambda !== null) found = { k: g.members[p]!, coef: lambda * t.coef };
    }
    if (!found) return undefined;
    pick[i] = { g, ...found };
  }
  const label = outName(ctx);
  let k = 0;
  for (const g of groups.values()) {
    const c = Float64Array.from(g.members, (j) => g.square.argC[j]!);
    const f = g.members.map((j) => g.square.argF[j]!);
    const simple = withoutCommonPart(c, f);
    const name = groups.size > 1 ? `${label}.norm${k++}` : `${label}.norm`;
    const req = ctx.sym.request(P.section, simple.c, simple.f, `${name}.in`, ctx.node.name || undefined);
    g.src = ctx.sym.add("nonlinear", g.members.length, P.section, name, ctx.ref, { op: { kind: "normalize", inputs: [req], eps: g.eps } });
  }
  const f = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) {
    const { g, k: member, coef } = pick[i]!;
    f[i] = single(g.src!.base + g.position.get(member)!, coef);
  }
  return affine(P.shape, P.section, new Float64Array(n), f);
}

/** Affine elements (constant + form) that sum to zero: the mean is already subtracted. */
function centered(elems: ReadonlyArray<{ c: number; f: LinForm }>): boolean {
  const sum = new Map<number, number>();
  const mag = new Map<number, number>();
  let scale = 0;
  for (const { f } of elems) {
    f.ids.forEach((id, t) => {
      const v = f.k[t]!;
      sum.set(id, (sum.get(id) ?? 0) + v);
      mag.set(id, (mag.get(id) ?? 0) + Math.abs(v));
      scale = Math.max(scale, Math.abs(v));
    });
  }
  if (scale === 0) return false;
  for (const [id, s] of sum) if (Math.abs(s) > TOL * mag.get(id)!) return false;
  const consts = elems.map((e) => e.c);
  return Math.abs(addConst(consts)) <= TOL * (consts.reduce((a, v) => a + Math.abs(v), 0) + scale);
}

/** One affine element with virtual products expanded (see expandVirtuals). */
function expand(ctx: OpContext, c: number, f: LinForm): { c: number; f: LinForm } {
  const e = expandVirtuals(ctx.sym, Float64Array.of(c), [f]);
  return { c: e.c[0]!, f: e.f[0]! };
}

export const NONLINEAR_OPS: Record<string, OpFn> = {
  LayerNormalization: layerNormalization,
};

