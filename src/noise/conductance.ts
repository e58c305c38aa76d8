// Mapping of signed weight levels to device conductances (differential pairs) and back.
//
// A cell holds level q in [-L, L] (L = deviceLevels - 1) on two devices between gMin and
// gMax (microsiemens):
//   q > 0:  g+ = gMin + q/L (gMax - gMin),  g- = gMin
//   q < 0:  g+ = gMin,                      g- = gMin + |q|/L (gMax - gMin)
//   q = 0:  g+ = g- = gMin  (programmed devices too: they get programming and read noise)
// The cell's effective weight in levels is (g+ - g-) / (gMax - gMin) * L, which is q exactly
// for the target conductances; the MVM sums effective weights instead of q when noise is on.

export interface ConductanceMap {
  gMinUs: number;
  gMaxUs: number;
  /** L: the largest weight level. */
  maxLevel: number;
  /** Levels per microsiemens: L / (gMax - gMin). */
  levelsPerUs: number;
}

export function conductanceMap(gMinUs: number, gMaxUs: number, maxLevel: number): ConductanceMap {
  if (!(gMaxUs > gMinUs)) throw new Error(`internal error: gMax ${gMaxUs} uS is not above gMin ${gMinUs} uS`);
  if (!(maxLevel >= 1)) throw new Error(`internal error: max weight level ${maxLevel} < 1`);
  return { gMinUs, gMaxUs, maxLevel, levelsPerUs: maxLevel / (gMaxUs - gMinUs) };
}

/** Target conductance of the positive device of a cell holding level q. */
export function targetGPlus(m: ConductanceMap, q: number): number {
  return q > 0 ? m.gMinUs + (q / m.maxLevel) * (m.gMaxUs - m.gMinUs) : m.gMinUs;
}

/** Target conductance of the negative device of a cell holding level q. */
export function targetGMinus(m: ConductanceMap, q: number): number {
  return q < 0 ? m.gMinUs + (-q / m.maxLevel) * (m.gMaxUs - m.gMinUs) : m.gMinUs;
}

/** Effective weight in levels of a pair with conductances g+ and g-. */
export function effectiveLevel(m: ConductanceMap, gPlus: number, gMinus: number): number {
  return (gPlus - gMinus) * m.levelsPerUs;
}
