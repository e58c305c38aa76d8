// The values flowing through symbolic evaluation:
//   ConstTensor   folded constant (tensor.ts)
//   AffineTensor  every element = constant + sparse linear form over symbols
//   SeqTensor     a whole-sequence tensor (Scan inputs and outputs): one affine or constant
//                 tensor per time step, the time axis removed and remembered
// plus the two primitives every affine op reduces to: gathering elements (movement ops) and
// weighted sums of elements (everything linear).

import { EMPTY, FormAcc, axpy, scaleForm, type LinForm } from "./forms.js";
import { unsupported } from "./problem.js";
import type { Section } from "./symbols.js";
import { constant, sizeOf, type ConstTensor } from "./tensor.js";

export interface AffineTensor {
  readonly kind: "affine";
  readonly shape: readonly number[];
  readonly section: Section;
  readonly c: Float64Array;
  readonly f: LinForm[];
}

export interface SeqTensor {
  readonly kind: "seq";
  /** Position of the time axis in the full tensor (rank = inner rank + 1). */
  readonly axis: number;
  readonly inner: ConstTensor | AffineTensor;
}

export type Tensor = ConstTensor | AffineTensor;
export type Operand = Tensor | SeqTensor;

export function affine(shape: readonly number[], section: Section, c: Float64Array, f: LinForm[]): AffineTensor {
  return { kind: "affine", shape: [...shape], section, c, f };
}

/**
 * An affine tensor whose elements all lost their symbols (a Gather or Slice that kept only
 * constant elements of a Concat, a product with zero weights) is a constant again, so later
 * ops fold it instead of treating it as a model value.
 */
export function settle(t: AffineTensor): Tensor {
  for (const f of t.f) if (f.ids.length > 0) return t;
  return constant("float", t.shape, t.c);
}

export function isConst(x: Operand | undefined): x is ConstTensor {
  return x?.kind === "const";
}

export function fullShape(x: Operand): number[] {
  if (x.kind !== "seq") return [...x.shape];
  const s = [...x.inner.shape];
  s.splice(x.axis, 0, NaN);
  return s;
}

/** The section of a non-constant tensor; constants fit anywhere. */
export function sectionOf(xs: readonly (Tensor | undefined)[]): Section | undefined {
  let s: Section | undefined;
  for (const x of xs) {
    if (x?.kind !== "affine") continue;
    if (s && s !== x.section) unsupported(`this op combines values computed once per step with values computed once per sequence (after pooling)`);
    s = x.section;
  }
  return s;
}

/** Element accessors that treat a constant as an affine tensor without forms. */
export function elemC(x: Tensor, i: number): number {
  return x.kind === "const" ? x.data[i]! : x.c[i]!;
}
export function elemF(x: Tensor, i: number): LinForm {
  return x.kind === "const" ? EMPTY : x.f[i]!;
}

/**
 * out[k] = element idx[k] of the concatenation of the flattened `xs` (movement ops: every
 * output element is a copy of one input element). Constants stay constants.
 */
export function gather(xs: readonly Tensor[], idx: Int32Array, shape: readonly number[]): Tensor {
  const offsets: number[] = [];
  let total = 0;
  for (const x of xs) {
    offsets.push(total);
    total += sizeOf(x.shape);
  }
  const which = (j: number): number => {
    let lo = 0;
    while (lo + 1 < xs.length && offsets[lo + 1]! <= j) lo++;
    return lo;
  };
  if (xs.every((x) => x.kind === "const")) {
    const data = new Float64Array(idx.length);
    for (let k = 0; k < idx.length; k++) {
      const j = idx[k]!;
      const w = xs.length === 1 ? 0 : which(j);
      data[k] = (xs[w] as ConstTensor).data[j - offsets[w]!]!;
    }
    const first = xs[0] as ConstTensor;
    // A copy of quantized weights is still on their grid.
    const levels = xs.length === 1 ? first.levels : undefined;
    return constant(first.dtype, shape, data, levels);
  }
  const section = sectionOf(xs)!;
  const c = new Float64Array(idx.length);
  const f = new Array<LinForm>(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const j = idx[k]!;
    const w = xs.length === 1 ? 0 : which(j);
    c[k] = elemC(xs[w]!, j - offsets[w]!);
    f[k] = elemF(xs[w]!, j - offsets[w]!);
  }
  return settle(affine(shape, section, c, f));
}

/** One input of a weighted elementwise sum: out[k] += coef[k] * x[idx[k]]. */
export interface Term {
  x: Tensor;
  idx: Int32Array;
  /** Per output element, or one number for all. */
  coef: Float64Array | number;
}

/** out[k] = sum over terms of coef * element; the caller has folded the all-constant case. */
export function weightedSum(shape: readonly number[], terms: readonly Term[], section: Section): Tensor {
  const n = sizeOf(shape);
  const c = new Float64Array(n);
  const f = new Array<LinForm>(n);
  for (let k = 0; k < n; k++) {
    let ck = 0;
    let fk = EMPTY;
    for (const t of terms) {
      const s = typeof t.coef === "number" ? t.coef : t.coef[k]!;
      if (s === 0) continue;
      const j = t.idx[k]!;
      ck += s * elemC(t.x, j);
      const g = elemF(t.x, j);
      if (g.ids.length > 0) fk = fk.ids.length === 0 ? scaleForm(g, s) : axpy(fk, 1, g, s);
    }
    c[k] = ck;
    f[k] = fk;
  }
  return settle(affine(shape, section, c, f));
}

/**
 * Linear map given as, per output element, a list of (input element, weight) pairs:
 * out[k] = bias[k] + sum_j w_kj x[j]. Used by matmul and reductions.
 */
export function linearMap(x: AffineTensor, shape: readonly number[], rows: (k: number, visit: (j: number, w: number) => void) => void, bias?: Float64Array): Tensor {
  const n = sizeOf(shape);
  const c = new Float64Array(n);
  const f = new Array<LinForm>(n);
  for (let k = 0; k < n; k++) {
    const acc = new FormAcc();
    let ck = bias ? bias[k]! : 0;
    rows(k, (j, w) => {
      if (w === 0) return;
      ck += w * x.c[j]!;
      acc.add(x.f[j]!, w);
    });
    c[k] = ck;
    f[k] = acc.finish();
  }
  return settle(affine(shape, x.section, c, f));
}

export function reshapeTensor<T extends Tensor>(x: T, shape: readonly number[]): T {
  return (x.kind === "const" ? constant(x.dtype, shape, x.data, x.levels) : affine(shape, x.section, x.c, x.f)) as T;
}
