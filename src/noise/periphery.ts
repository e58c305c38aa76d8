// DAC and ADC errors (docs/NOISE.md): a static offset per row / column (chip randomness)
// and a smooth transfer curve that keeps zero and full scale fixed,
//   f(v) = v (1 + a) / (1 + a |v| / F)      for |v| <= F (F the full scale),
// odd and monotonic for a > -1: a > 0 compresses (the curve bows towards the ends, like a
// saturating amplifier; aihwkit's output non-linearity has this form), a < 0 expands.
// Its largest deviation from linear is F (sqrt(1 + a) - 1)^2 / a at |v| = F (sqrt(1 + a) - 1) / a.

const abs = Math.abs;

/** The transfer curve for |v| <= fullScale. */
export function transferCurve(v: number, fullScale: number, a: number): number {
  return (v * (1 + a)) / (1 + (a * abs(v)) / fullScale);
}

/** Largest |f(v) - v| over [-F, F], in units of F (integral nonlinearity). */
export function maxCurveError(a: number): number {
  if (a === 0) return 0;
  const s = Math.sqrt(1 + a) - 1;
  return abs((s * s) / a);
}
