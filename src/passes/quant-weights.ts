// Weight quantization of one block matrix: per output column j an integer level
// q_ij in [-L, L] and a scale s_j with W_ij ~ q_ij * s_j.
//
// The default scale s_j = max_i |W_ij| / L puts the largest weight on the top level, so the
// rounding error is at most s_j / 2. Weights that already lie on a grid (QAT: ternary or
// k-level values times a per-column scale) must come back bit-exact, and max|W|/L can be one
// ulp off the grid's unit after floating-point division, so a few candidate scales are tried
// per column and the first one that reproduces every entry exactly wins:
//   1. max|W| / L                       (full level range)
//   2. |w| / |q| of the smallest nonzero level under (1)  (the grid unit, recovered from an entry)
//   3. g / floor(L / k_max), 4. g       (only if every |W_ij| is an integer multiple k of the
//                                        smallest nonzero magnitude g; (3) spreads the grid over
//                                        as many levels as fit, (4) is the grid itself)
// If none is exact (ordinary float weights) the column uses (1).
// Cost: a constant number of passes over the stored entries; nothing is densified.

import type { BlockMatrix } from "../ir/types.js";

// Hot loops call these per weight/value; a module-level binding avoids a global `Math`
// lookup per call, which is slow inside vm contexts (jest runs tests in one).
const { abs, round, max, min, floor } = Math;

export interface QuantizedMatrix {
  /** Same block layout, entries replaced by q * colScale (the dequantized weights). */
  weight: BlockMatrix;
  colScale: Float64Array;
  /** Columns whose weights were reproduced exactly (already on a level grid). */
  exactColumns: number;
}

const N_CANDIDATES = 4;

export function quantizeMatrix(m: BlockMatrix, maxLevel: number): QuantizedMatrix {
  const L = maxLevel;
  const nCols = m.cols;
  // Each pass below is a plain loop over every block's entries (no visitor callback: a
  // call per weight through a shared, megamorphic callback dominated this pass on large
  // models). Entries are visited in the same order in every pass.
  const maxAbs = new Float64Array(nCols);
  const minNz = new Float64Array(nCols).fill(Infinity);
  for (const b of m.blocks) {
    const d = b.data;
    for (let r = 0, e = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++, e++) {
        const j = b.col + c;
        const a = abs(d[e]!);
        if (a > maxAbs[j]!) maxAbs[j] = a;
        if (a > 0 && a < minNz[j]!) minNz[j] = a;
      }
    }
  }

  // Is every magnitude an integer multiple of the smallest one (within float rounding)?
  const onGrid = new Uint8Array(nCols).fill(1);
  for (const b of m.blocks) {
    const d = b.data;
    for (let r = 0, e = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++, e++) {
        const j = b.col + c;
        const a = abs(d[e]!);
        if (a === 0 || !onGrid[j]) continue;
        const ratio = a / minNz[j]!;
        const k = round(ratio);
        if (abs(ratio - k) > 1e-9 * k) onGrid[j] = 0;
      }
    }
  }

  // Candidate scales, column-major: cand[j * N + c]; NaN = not applicable.
  const cand = new Float64Array(nCols * N_CANDIDATES).fill(NaN);
  for (let j = 0; j < nCols; j++) {
    if (maxAbs[j] === 0) continue;
    const full = maxAbs[j]! / L;
    cand[j * N_CANDIDATES] = full;
    const qMin = round(minNz[j]! / full);
    if (qMin > 0) cand[j * N_CANDIDATES + 1] = minNz[j]! / qMin;
    const kMax = round(maxAbs[j]! / minNz[j]!);
    if (onGrid[j] && kMax <= L) {
      cand[j * N_CANDIDATES + 2] = minNz[j]! / floor(L / kMax);
      cand[j * N_CANDIDATES + 3] = minNz[j]!;
    }
  }

  // Which candidates reproduce every entry of their column. A NaN candidate never does; a
  // column whose candidates have all missed is not tested further (`open`).
  const exact = new Uint8Array(nCols * N_CANDIDATES);
  const open = new Uint8Array(nCols);
  for (let j = 0; j < nCols; j++) {
    for (let c = 0; c < N_CANDIDATES; c++) {
      const ok = Number.isNaN(cand[j * N_CANDIDATES + c]!) ? 0 : 1;
      exact[j * N_CANDIDATES + c] = ok;
      open[j] |= ok;
    }
  }
  for (const b of m.blocks) {
    const d = b.data;
    for (let r = 0, e = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++, e++) {
        const j = b.col + c;
        const w = d[e]!;
        if (w === 0 || !open[j]) continue; // round(0) = 0 is exact for every scale
        let still = 0;
        for (let t = 0; t < N_CANDIDATES; t++) {
          const k = j * N_CANDIDATES + t;
          if (!exact[k]) continue;
          const s = cand[k]!;
          const q = round(w / s);
          if (abs(q) > L || q * s !== w) exact[k] = 0;
          else still = 1;
        }
        open[j] = still;
      }
    }
  }

  const colScale = new Float64Array(nCols);
  let exactColumns = 0;
  for (let j = 0; j < nCols; j++) {
    // An all-zero column needs no scale; 1 keeps downstream arithmetic finite.
    if (maxAbs[j] === 0) {
      colScale[j] = 1;
      exactColumns++;
      continue;
    }
    colScale[j] = cand[j * N_CANDIDATES]!;
    for (let c = 0; c < N_CANDIDATES; c++) {
      if (exact[j * N_CANDIDATES + c]) {
        colScale[j] = cand[j * N_CANDIDATES + c]!;
        exactColumns++;
        break;
      }
    }
  }

  const blocks = m.blocks.map((b) => {
    const src = b.data;
    const data = new Array<number>(src.length);
    for (let r = 0, e = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++, e++) {
        const s = colScale[b.col + c]!;
        // Clamp guards the last ulp: |w|/s can exceed L by rounding when s = max|W|/L.
        const q = max(-L, min(L, round(src[e]! / s)));
        data[e] = q * s;
      }
    }
    return { row: b.row, col: b.col, rows: b.rows, cols: b.cols, data };
  });
  return { weight: { rows: m.rows, cols: m.cols, blocks }, colScale, exactColumns };
}
