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

/**
 * The arrays one crossbar's IR-drop sums read, laid out for them: gp + gm per cell
 * (row-major, as the word lines walk it; the float64 sum of the two float32 conductances is
 * exactly what adding them on the fly gives) and the conductances and read variances
 * column-major, so that the bit-line sweeps walk contiguous memory. Same values, same
 * operations in the same order: the sums are bit-identical to reading the chip's arrays.
 */
interface IrDropLayout {
  chip: ProgrammedCrossbar;
  gSum: Float64Array;
  gPlusT: Float32Array;
  gMinusT: Float32Array;
  varPlusT: Float32Array | null;
  varMinusT: Float32Array | null;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}

function layoutOf(chip: ProgrammedCrossbar): IrDropLayout {
  const gp = chip.gPlus!;
  const gm = chip.gMinus!;
  const gSum = new Float64Array(gp.length);
  for (let i = 0; i < gp.length; i++) gSum[i] = gp[i]! + gm[i]!;
  const { rows, cols } = chip;
  return {
    chip,
    gSum,
    gPlusT: transpose(gp, rows, cols),
    gMinusT: transpose(gm, rows, cols),
    varPlusT: chip.varPlus === null ? null : transpose(chip.varPlus, rows, cols),
    varMinusT: chip.varMinus === null ? null : transpose(chip.varMinus, rows, cols),
  };
}

/** Scratch buffers sized for one crossbar image, and the layout of the chip last used with them. */
export class IrDropScratch {
  /** Word-line drops of the window, column-major (window column j, row i at j * rows + i). */
  readonly wordDrop: Float64Array;
  readonly prefixPlus: Float64Array;
  readonly prefixMinus: Float64Array;
  private layout: IrDropLayout | null = null;
  constructor(rows: number, cols: number) {
    this.wordDrop = new Float64Array(rows * cols);
    this.prefixPlus = new Float64Array(2 * rows);
    this.prefixMinus = new Float64Array(2 * rows);
  }

  /** The layout of `chip`, built on its first use (chips are fixed once programmed). */
  layoutFor(chip: ProgrammedCrossbar): IrDropLayout {
    if (this.layout === null || this.layout.chip !== chip) this.layout = layoutOf(chip);
    return this.layout;
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
  const { gSum, gPlusT: gp, gMinusT: gm, varPlusT: vp, varMinusT: vm } = scratch.layoutFor(chip);
  const stride = chip.cols;
  const height = chip.rows;
  const { rowStart, rows, colStart, cols } = w;
  const wl = scratch.wordDrop;

  // Word lines: the segments from the driver to the first pair of the window carry the whole
  // row current; after each pair the current drops by what that pair drew.
  for (let i = 0; i < rows; i++) {
    const v = volts[i]!;
    if (v === 0) {
      for (let j = 0; j < cols; j++) wl[j * rows + i] = 0;
      continue;
    }
    const base = (rowStart + i) * stride + colStart;
    let total = 0;
    for (let j = 0; j < cols; j++) total += v * gSum[base + j]!;
    let beyond = total;
    let drop = r * (colStart + 1) * total;
    wl[i] = drop;
    for (let j = 1; j < cols; j++) {
      beyond -= v * gSum[base + j - 1]!;
      drop += r * beyond;
      wl[j * rows + i] = drop;
    }
  }

  // Bit lines: the segment below window row m carries the current of rows 0..m; below the
  // window (tail segments down to the ADC) it carries the whole column current.
  const tail = physRows - rowStart - rows;
  const pp = scratch.prefixPlus;
  const pm = scratch.prefixMinus;
  // Two columns per pass: each column's sums are latency-bound chains of dependent
  // additions, so interleaving two independent columns runs both at about the cost of one.
  // Every column sees exactly its own operations in its own order (same bits).
  let j = 0;
  for (; j + 1 < cols; j += 2) {
    // Cells (rowStart + i, colStart + j) and (.., colStart + j + 1) of the column-major arrays;
    // rows i of the two columns' word-line drops. prefix*[rows + i] holds the second column.
    const ca = (colStart + j) * height + rowStart;
    const cb = ca + height;
    const wa = j * rows;
    const wb = wa + rows;
    let accPa = 0;
    let accMa = 0;
    let accPb = 0;
    let accMb = 0;
    for (let i = 0; i < rows; i++) {
      const v = volts[i]!;
      accPa += v * gp[ca + i]!;
      accMa += v * gm[ca + i]!;
      accPb += v * gp[cb + i]!;
      accMb += v * gm[cb + i]!;
      pp[i] = accPa;
      pm[i] = accMa;
      pp[rows + i] = accPb;
      pm[rows + i] = accMb;
    }
    let risePa = tail * accPa;
    let riseMa = tail * accMa;
    let risePb = tail * accPb;
    let riseMb = tail * accMb;
    let sa = 0;
    let sb = 0;
    if (vars === null) {
      for (let i = rows - 1; i >= 0; i--) {
        const v = volts[i]!;
        risePa += pp[i]!;
        riseMa += pm[i]!;
        risePb += pp[rows + i]!;
        riseMb += pm[rows + i]!;
        const ua = v - wl[wa + i]!;
        const ub = v - wl[wb + i]!;
        sa += (ua - r * risePa) * gp[ca + i]! - (ua - r * riseMa) * gm[ca + i]!;
        sb += (ub - r * risePb) * gp[cb + i]! - (ub - r * riseMb) * gm[cb + i]!;
      }
    } else {
      let va = 0;
      let vb = 0;
      for (let i = rows - 1; i >= 0; i--) {
        const v = volts[i]!;
        risePa += pp[i]!;
        riseMa += pm[i]!;
        risePb += pp[rows + i]!;
        riseMb += pm[rows + i]!;
        const ua = v - wl[wa + i]!;
        const ub = v - wl[wb + i]!;
        const upa = ua - r * risePa;
        const uma = ua - r * riseMa;
        const upb = ub - r * risePb;
        const umb = ub - r * riseMb;
        sa += upa * gp[ca + i]! - uma * gm[ca + i]!;
        sb += upb * gp[cb + i]! - umb * gm[cb + i]!;
        va += upa * upa * vp![ca + i]! + uma * uma * vm![ca + i]!;
        vb += upb * upb * vp![cb + i]! + umb * umb * vm![cb + i]!;
      }
      vars[j] = va;
      vars[j + 1] = vb;
    }
    sums[j] = sa;
    sums[j + 1] = sb;
  }
  for (; j < cols; j++) {
    const cb = (colStart + j) * height + rowStart;
    const wb = j * rows;
    let accP = 0;
    let accM = 0;
    for (let i = 0; i < rows; i++) {
      const v = volts[i]!;
      accP += v * gp[cb + i]!;
      accM += v * gm[cb + i]!;
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
      const u = volts[i]! - wl[wb + i]!;
      const up = u - r * riseP;
      const um = u - r * riseM;
      s += up * gp[cb + i]! - um * gm[cb + i]!;
      if (vars !== null) variance += up * up * vp![cb + i]! + um * um * vm![cb + i]!;
    }
    sums[j] = s;
    if (vars !== null) vars[j] = variance;
  }
}
