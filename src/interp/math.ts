// Scalar functions of the vector unit that Math lacks, evaluated in float64 and rounded once
// by the caller. erf/erfc/GELU come from src/common/erf.ts, shared with the float reference,
// so that ideal-target runs and the reference agree bit for bit on those functions.

export { erf, erfc, gelu } from "../common/erf.js";

/** Logistic sigmoid without overflow for large |x|. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}
