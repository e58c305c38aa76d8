// Error metrics between interpreter outputs and the float reference.

export interface ErrorMetrics {
  count: number;
  maxAbsError: number;
  rmsError: number;
  /** Largest |reference| value: the scale relative errors are measured against. */
  referenceMaxAbs: number;
  /** maxAbsError / referenceMaxAbs (0 when both are 0). */
  relativeMaxError: number;
  /** 10 log10(sum ref^2 / sum err^2); Infinity for an exact match. */
  snrDb: number;
}

export function compareArrays(actual: ArrayLike<number>, reference: ArrayLike<number>): ErrorMetrics {
  if (actual.length !== reference.length) throw new Error(`internal error: comparing arrays of length ${actual.length} and ${reference.length}`);
  let maxAbs = 0;
  let refMax = 0;
  let sumErr2 = 0;
  let sumRef2 = 0;
  for (let i = 0; i < actual.length; i++) {
    const r = reference[i]!;
    const e = actual[i]! - r;
    // NaN in the interpreter output must never pass as "small".
    const ae = Number.isNaN(e) ? Number.POSITIVE_INFINITY : Math.abs(e);
    if (ae > maxAbs) maxAbs = ae;
    if (Math.abs(r) > refMax) refMax = Math.abs(r);
    sumErr2 += e * e;
    sumRef2 += r * r;
  }
  const n = actual.length;
  return {
    count: n,
    maxAbsError: maxAbs,
    rmsError: n === 0 ? 0 : Math.sqrt(sumErr2 / n),
    referenceMaxAbs: refMax,
    relativeMaxError: maxAbs === 0 ? 0 : refMax === 0 ? Number.POSITIVE_INFINITY : maxAbs / refMax,
    snrDb: sumErr2 === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(sumRef2 / sumErr2),
  };
}

/** Fraction of rows (length `width` each) whose argmax agrees. */
export function argmaxAgreement(actual: ArrayLike<number>, reference: ArrayLike<number>, width: number): number {
  const rows = Math.floor(actual.length / width);
  if (rows === 0) return 1;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    if (argmax(actual, r * width, width) === argmax(reference, r * width, width)) agree++;
  }
  return agree / rows;
}

function argmax(a: ArrayLike<number>, start: number, width: number): number {
  let best = 0;
  for (let i = 1; i < width; i++) if (a[start + i]! > a[start + best]!) best = i;
  return best;
}
