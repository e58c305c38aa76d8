// The interpreter's fast crossbar kernels against straightforward forms of the same
// formulas (src/backend/program.ts): the branch-free conversion and the sparse (CSC) sums
// must give the same bits as the plain code they replace, zero cells and odd windows included.

import { describe, expect, test } from "@jest/globals";
import type { CrossbarImage } from "../src/backend/program.js";
import { Rng } from "../src/common/rng.js";
import { makeCrossbar, roundClamp, roundHalfAway, sparseCols } from "../src/interp/crossbar.js";

/** The plain form roundClamp replaces. */
function plainRoundClamp(t: number, M: number): number {
  const c = roundHalfAway(t);
  return c > M ? M : c < -M ? -M : c;
}

describe("roundClamp", () => {
  test("equals clamp(roundHalfAway) bit for bit, signed zeros, ties, NaN and infinities included", () => {
    const special = [0, -0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994, 126.5, -126.5, 127.5, -127.5, 1e300, -1e300, 5e-324, -5e-324, NaN, Infinity, -Infinity];
    const rng = new Rng(5);
    const values = [...special];
    for (let i = 0; i < 5000; i++) {
      const u = rng.uniform();
      values.push((rng.uniform() - 0.5) * 400 * u * u);
      values.push(Math.round((rng.uniform() - 0.5) * 600) / 2); // exact ties
    }
    // One and two ulps either side of ties and of the clamp bounds (the rounding decides there),
    // and values where 2t or t + 1/2 are no longer exact.
    const bits = new Float64Array(1);
    const word = new BigInt64Array(bits.buffer);
    for (const base of [0.5, 1.5, 2.5, 3.5, 7.5, 8.5, 63.5, 126.5, 127.5, 128.5, 2046.5, 2047.5, 2048.5, 2 ** 51 + 0.5, 2 ** 52, 2 ** 53])
      for (const d of [-2n, -1n, 1n, 2n]) {
        bits[0] = base;
        word[0] += d;
        values.push(bits[0], -bits[0]);
      }
    for (const M of [1, 7, 127, 2047])
      for (const t of values) {
        const got = roundClamp(t, M);
        const want = plainRoundClamp(t, M);
        if (!Object.is(got, want)) throw new Error(`roundClamp(${t}, ${M}) = ${got}, want ${want}`);
      }
  });
});

/** MVM of one image over a window by the program.ts formulas, dense and without shortcuts (float64 sums of integers, exact). */
function referenceMvm(img: CrossbarImage, x: Float32Array, w: { rowStart: number; rows: number; colStart: number; cols: number }, D: number, Q: number): Float32Array {
  const levels = img.weights.kind === "levels" ? img.weights.levels : new Int16Array(0);
  const out = new Float32Array(w.cols);
  for (let j = 0; j < w.cols; j++) {
    const col = w.colStart + j;
    let s = 0;
    for (let r = 0; r < w.rows; r++) s += plainRoundClamp((x[r]! / img.inRange[w.rowStart + r]!) * D, D) * levels[(w.rowStart + r) * img.cols + col]!;
    const v = (s * img.colScale[col]!) / D;
    const range = img.outRange[col]!;
    out[j] = (plainRoundClamp((v / range) * Q, Q) * range) / Q;
  }
  return out;
}

describe("sparse crossbar kernel", () => {
  const rows = 24;
  const cols = 20;
  const rng = new Rng(9);
  const levels = new Int16Array(rows * cols);
  for (let i = 0; i < levels.length; i++) if (rng.uniform() < 0.1) levels[i] = Math.round((rng.uniform() * 2 - 1) * 15) || 1;
  const img: CrossbarImage = {
    id: 0,
    tile: 0,
    rows,
    cols,
    weights: { kind: "levels", levels },
    inRange: Float32Array.from({ length: rows }, () => 0.5 + rng.uniform()),
    colScale: Float32Array.from({ length: cols }, () => 0.01 + 0.05 * rng.uniform()),
    outRange: Float32Array.from({ length: cols }, () => 0.2 + rng.uniform()),
  };

  test("a 10% dense image is stored sparse; a dense one is not", () => {
    expect(sparseCols(levels, rows, cols)).not.toBeNull();
    expect(sparseCols(new Int16Array(rows * cols).fill(3), rows, cols)).toBeNull();
  });

  test.each([
    ["full window", { rowStart: 0, rows, colStart: 0, cols }],
    ["row and column sub-window", { rowStart: 5, rows: 11, colStart: 3, cols: 9 }],
    ["single cell", { rowStart: 7, rows: 1, colStart: 19, cols: 1 }],
  ])("matches the dense formulas bit for bit: %s", (_, win) => {
    const D = 127;
    const Q = 127;
    const xb = makeCrossbar(img, { kind: "quantized", deviceLevels: 16, dacBits: 8, adcBits: 8 });
    for (let trial = 0; trial < 20; trial++) {
      const mem = new Float32Array(64);
      for (let r = 0; r < win.rows; r++) mem[r] = trial === 0 ? 0 : (rng.uniform() * 2 - 1) * 1.5; // trial 0: all-zero input
      if (trial === 1) mem[win.rows - 1] = NaN; // a NaN input reaches every column through the zero cells
      if (trial === 2) mem[0] = -Infinity;
      const want = referenceMvm(img, mem.slice(0, win.rows), win, D, Q);
      xb.mvm(mem, { ...win, src: 0, dst: 32, acc: false }, Math.fround);
      const got = mem.slice(32, 32 + win.cols);
      for (let j = 0; j < win.cols; j++) if (!Object.is(got[j], want[j])) throw new Error(`column ${j}: ${got[j]} != ${want[j]}`);
    }
  });
});
