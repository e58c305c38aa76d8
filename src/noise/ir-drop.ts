// IR drop: the wires of a crossbar have resistance, so a cell does not see the full DAC
// voltage. Geometry: word line i is driven from the column-0 end and passes every pair;
// bit lines run from row 0 down to the ADC (a virtual ground) below the last physical row.
// Both devices of a pair sit at the pair's position; the positive devices of column j share
// bit line j+, the negative ones bit line j-. Cells outside the MVM window draw no current.
//
// First-order model (one Jacobi step of the resistive network from the ideal voltages,
// exact to first order in the wire resistance r):
//   cell current at ideal voltage         i_ij = V_i g_ij
//   word-line drop at pair j of row i     dW_ij = r * sum over segments s from the driver up
//                                                 to pair j of (current of the pairs beyond s)
//   bit-line rise at row i of line j+     dB_ij = r * sum over segments s from row i down to
//                                                 the ADC of (current of the cells above s)
//   cell voltage                          V_ij = V_i - dW_ij - dB_ij
// so the attenuation grows with the distance to the driver and the ADC and with the total
// current the lines carry. Voltages are in DAC code units and conductances in levels
// (g * L / (gMax - gMin)); r = wireOhms * 1e-6 uS/S / (levels per uS) is then dimensionless.

import type { ProgrammedCrossbar } from "./chip.js";

export interface IrWindow {
  rowStart: number;
  rows: number;
  colStart: number;
  cols: number;
}

/** Wire resistance in level units (see above). */
export function irDropRatio(wireOhms: number, levelsPerUs: number): number {
  return (wireOhms * 1e-6) / levelsPerUs;
}

/** Scratch buffers sized for one crossbar image. */
export class IrDropScratch {
  readonly wordDrop: Float64Array;
  readonly prefixPlus: Float64Array;
  readonly prefixMinus: Float64Array;
  constructor(rows: number, cols: number) {
    this.wordDrop = new Float64Array(rows * cols);
    this.prefixPlus = new Float64Array(rows);
    this.prefixMinus = new Float64Array(rows);
  }
}

/**
 * Analog column sums (in code x level units) of one MVM under IR drop, and the read-noise
 * variance of each sum when `vars` is given. `volts[r]` is the DAC output of window row r;
 * `physRows` the crossbar's physical row count (the bit lines run to its end).
 */
export function irDropSums(
  chip: ProgrammedCrossbar,
  volts: Float64Array,
  w: IrWindow,
  physRows: number,
  r: number,
  sums: Float64Array,
  vars: Float64Array | null,
  scratch: IrDropScratch,
): void {
  const gp = chip.gPlus!;
  const gm = chip.gMinus!;
  const vp = chip.varPlus;
  const vm = chip.varMinus;
  const stride = chip.cols;
  const { rowStart, rows, colStart, cols } = w;
  const wl = scratch.wordDrop;

  // Word lines: the segments from the driver to the first pair of the window carry the whole
  // row current; after each pair the current drops by what that pair drew.
  for (let i = 0; i < rows; i++) {
    const v = volts[i]!;
    const o = i * cols;
    if (v === 0) {
      wl.fill(0, o, o + cols);
      continue;
    }
    const base = (rowStart + i) * stride + colStart;
    let total = 0;
    for (let j = 0; j < cols; j++) total += v * (gp[base + j]! + gm[base + j]!);
    let beyond = total;
    let drop = r * (colStart + 1) * total;
    wl[o] = drop;
    for (let j = 1; j < cols; j++) {
      beyond -= v * (gp[base + j - 1]! + gm[base + j - 1]!);
      drop += r * beyond;
      wl[o + j] = drop;
    }
  }

  // Bit lines: the segment below window row m carries the current of rows 0..m; below the
  // window (tail segments down to the ADC) it carries the whole column current.
  const tail = physRows - rowStart - rows;
  const pp = scratch.prefixPlus;
  const pm = scratch.prefixMinus;
  for (let j = 0; j < cols; j++) {
    let accP = 0;
    let accM = 0;
    for (let i = 0; i < rows; i++) {
      const v = volts[i]!;
      const idx = (rowStart + i) * stride + colStart + j;
      accP += v * gp[idx]!;
      accM += v * gm[idx]!;
      pp[i] = accP;
      pm[i] = accM;
    }
    let riseP = tail * accP;
    let riseM = tail * accM;
    let s = 0;
    let variance = 0;
    for (let i = rows - 1; i >= 0; i--) {
      riseP += pp[i]!;
      riseM += pm[i]!;
      const idx = (rowStart + i) * stride + colStart + j;
      const u = volts[i]! - wl[i * cols + j]!;
      const up = u - r * riseP;
      const um = u - r * riseM;
      s += up * gp[idx]! - um * gm[idx]!;
      if (vars !== null) variance += up * up * vp![idx]! + um * um * vm![idx]!;
    }
    sums[j] = s;
    if (vars !== null) vars[j] = variance;
  }
}
