// Initial parameters of a diagonal S4D layer, following state-spaces/s4:
//   models/s4/s4d.py (S4DKernel) for dt, C, D and S4D-Lin, and
//   src/models/sequence/kernels/dplr.py for S4D-Inv.
// A = -exp(log_A_real) + i*A_imag with log_A_real = log(1/2) (real part -1/2) and
//   lin: A_imag[n] = pi * n
//   inv: A_imag[n] = (N / pi) * (N / (2n + 1) - 1)          n = 0 .. N/2 - 1
// log_dt ~ U[log dt_min, log dt_max), C ~ complex normal with Re, Im ~ N(0, 1/2) (torch.randn
// with dtype cfloat), D ~ N(0, 1), B = 1 (not stored).
// Values are rounded to float32 because that is what a PyTorch checkpoint would hold, and so
// that writing the IR to a float32 binary loses nothing.

import { Rng } from "../common/rng.js";

export type S4DInit = "lin" | "inv";

export interface S4DInitOptions {
  /** Channels (d_model). */
  H: number;
  /** State size N (d_state); N/2 complex modes per channel. Must be even. */
  N: number;
  dtMin: number;
  dtMax: number;
  init: S4DInit;
}

/** Row-major [H] and [H, M] arrays, M = N/2. */
export interface S4DParams {
  logDt: Float64Array;
  logAReal: Float64Array;
  AImag: Float64Array;
  CRe: Float64Array;
  CIm: Float64Array;
  D: Float64Array;
}

/** Imaginary part of the n-th eigenvalue (0-based) for state size N. */
export function s4dImag(init: S4DInit, N: number, n: number): number {
  switch (init) {
    case "lin":
      return Math.PI * n;
    case "inv":
      return (N / Math.PI) * (N / (2 * n + 1) - 1);
  }
}

export function initS4D(opts: S4DInitOptions, rng: Rng): S4DParams {
  const { H, N, dtMin, dtMax, init } = opts;
  const M = N / 2;
  const f = Math.fround;
  // Same draw order as S4D.__init__: D first, then the kernel's log_dt, then C.
  const D = new Float64Array(H);
  for (let h = 0; h < H; h++) D[h] = f(rng.normal());
  const logDt = new Float64Array(H);
  const lo = Math.log(dtMin);
  const hi = Math.log(dtMax);
  for (let h = 0; h < H; h++) logDt[h] = f(rng.uniform() * (hi - lo) + lo);
  const CRe = new Float64Array(H * M);
  const CIm = new Float64Array(H * M);
  const std = Math.SQRT1_2;
  for (let i = 0; i < H * M; i++) {
    CRe[i] = f(rng.normal() * std);
    CIm[i] = f(rng.normal() * std);
  }
  const logAReal = new Float64Array(H * M).fill(f(Math.log(0.5)));
  const AImag = new Float64Array(H * M);
  for (let h = 0; h < H; h++) for (let n = 0; n < M; n++) AImag[h * M + n] = f(s4dImag(init, N, n));
  return { logDt, logAReal, AImag, CRe, CIm, D };
}
