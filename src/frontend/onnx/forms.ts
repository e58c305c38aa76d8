// Sparse linear forms: sum_k coef_k * symbol_k, with symbol ids sorted and coefficients
// nonzero. An affine tensor element is a constant plus one form. Symbols are the elements of
// sources (symbols.ts); the forms never see what a symbol means.
//
// Exporters write the same complex arithmetic in many arrangements, and some of them make
// a coefficient cancel only up to rounding (a*b - a*b computed two ways). A sum whose
// magnitude is below CANCEL times the magnitude of what was summed is rounding noise and is
// dropped, so structural zeros stay zeros and the crossbar matrices stay sparse.

export interface LinForm {
  readonly ids: Int32Array;
  readonly k: Float64Array;
}

const CANCEL = 1e-13;

export const EMPTY: LinForm = { ids: new Int32Array(0), k: new Float64Array(0) };

export function single(id: number, coef = 1): LinForm {
  return coef === 0 ? EMPTY : { ids: Int32Array.of(id), k: Float64Array.of(coef) };
}

export function scaleForm(f: LinForm, s: number): LinForm {
  if (s === 1) return f;
  if (s === 0 || f.ids.length === 0) return EMPTY;
  const k = new Float64Array(f.k.length);
  for (let i = 0; i < k.length; i++) k[i] = f.k[i]! * s;
  return { ids: f.ids, k };
}

/** sa*a + sb*b by merging the sorted id lists. */
export function axpy(a: LinForm, sa: number, b: LinForm, sb: number): LinForm {
  if (sb === 0 || b.ids.length === 0) return scaleForm(a, sa);
  if (sa === 0 || a.ids.length === 0) return scaleForm(b, sb);
  const ids = new Int32Array(a.ids.length + b.ids.length);
  const k = new Float64Array(ids.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < a.ids.length || j < b.ids.length) {
    const ia = i < a.ids.length ? a.ids[i]! : Infinity;
    const ib = j < b.ids.length ? b.ids[j]! : Infinity;
    if (ia < ib) {
      ids[n] = ia;
      k[n++] = sa * a.k[i++]!;
    } else if (ib < ia) {
      ids[n] = ib;
      k[n++] = sb * b.k[j++]!;
    } else {
      const x = sa * a.k[i++]!;
      const y = sb * b.k[j++]!;
      const v = x + y;
      if (Math.abs(v) > CANCEL * (Math.abs(x) + Math.abs(y))) {
        ids[n] = ia;
        k[n++] = v;
      }
    }
  }
  return n === ids.length ? { ids, k } : { ids: ids.slice(0, n), k: k.slice(0, n) };
}

/** Accumulates many scaled forms (matmul rows, reductions) into one. */
export class FormAcc {
  private readonly sum = new Map<number, number>();
  private readonly mag = new Map<number, number>();

  add(f: LinForm, s: number): void {
    if (s === 0) return;
    for (let i = 0; i < f.ids.length; i++) {
      const id = f.ids[i]!;
      const v = f.k[i]! * s;
      this.sum.set(id, (this.sum.get(id) ?? 0) + v);
      this.mag.set(id, (this.mag.get(id) ?? 0) + Math.abs(v));
    }
  }

  addTerm(id: number, v: number): void {
    if (v === 0) return;
    this.sum.set(id, (this.sum.get(id) ?? 0) + v);
    this.mag.set(id, (this.mag.get(id) ?? 0) + Math.abs(v));
  }

  get empty(): boolean {
    return this.sum.size === 0;
  }

  finish(): LinForm {
    const keys: number[] = [];
    for (const [id, v] of this.sum) if (Math.abs(v) > CANCEL * this.mag.get(id)!) keys.push(id);
    if (keys.length === 0) return EMPTY;
    keys.sort((a, b) => a - b);
    const ids = Int32Array.from(keys);
    const k = new Float64Array(keys.length);
    for (let i = 0; i < keys.length; i++) k[i] = this.sum.get(keys[i]!)!;
    return { ids, k };
  }
}

/** Sums of constants use the same rule as coefficients, so folded zeros stay exact. */
export function addConst(values: readonly number[]): number {
  let s = 0;
  let m = 0;
  for (const v of values) {
    s += v;
    m += Math.abs(v);
  }
  return Math.abs(s) > CANCEL * m ? s : 0;
}

export function formsEqual(a: LinForm, b: LinForm, tol = 0): boolean {
  if (a.ids.length !== b.ids.length) return false;
  for (let i = 0; i < a.ids.length; i++) {
    if (a.ids[i] !== b.ids[i]) return false;
    const x = a.k[i]!;
    const y = b.k[i]!;
    if (x !== y && Math.abs(x - y) > tol * Math.max(Math.abs(x), Math.abs(y))) return false;
  }
  return true;
}

/**
 * lambda with (ca + a) = lambda * (cb + b) for affine elements (constant + form), within
 * relative tolerance `tol`; null if they are not proportional or b is zero.
 */
export function ratio(ca: number, a: LinForm, cb: number, b: LinForm, tol: number): number | null {
  if (a.ids.length !== b.ids.length || b.ids.length === 0) return null; // a constant is no symbolic multiple
  const lambda = a.k[0]! / b.k[0]!;
  let scale = 0;
  for (let i = 0; i < a.ids.length; i++) {
    if (a.ids[i] !== b.ids[i]) return null;
    const l = a.k[i]! / b.k[i]!;
    if (Math.abs(l - lambda) > tol * Math.abs(lambda)) return null;
    scale = Math.max(scale, Math.abs(a.k[i]!));
  }
  // Constants are compared on the scale of the coefficients: a constant offset far below
  // every coefficient is rounding, not a different function.
  if (Math.abs(ca - lambda * cb) > tol * (Math.abs(ca) + Math.abs(lambda * cb) + scale)) return null;
  return lambda;
}
