// S4D discretization (state-spaces/s4 conventions), shared by the reference evaluator, the
// convolution form and the lowering pass. Everything is float64; arrays of complex numbers
// are split into re/im halves, channel-major: entry (h, m) lives at index h*M + m.

import { cdiv, cexp, cexpm1, cmul, complex, cscale, type Complex } from "./complex.js";
import { UserError, type SourceLocation } from "./errors.js";
import type { S4DOp, Tensor } from "../ir/types.js";

export interface SplitComplex {
  re: Float64Array;
  im: Float64Array;
}

export interface DiscreteS4D {
  /** Discrete state transition per (channel, mode), [H*M]. */
  dA: SplitComplex;
  /** Discrete input matrix per (channel, mode), [H*M]. */
  dB: SplitComplex;
}

function defaultLocation(op: S4DOp): SourceLocation {
  return { file: "<ir>", path: op.layer ?? op.out };
}

function checkTensor(t: Tensor, expected: number, what: string, op: S4DOp, loc: SourceLocation): void {
  const product = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== expected || product !== expected) {
    throw new UserError(
      "semantic",
      `s4d "${op.out}": ${what} must have ${expected} entries (H=${op.channels}, M=${op.modes}), got shape [${t.shape.join(", ")}] with ${t.data.length} values`,
      loc,
    );
  }
  for (const v of t.data) {
    if (!Number.isFinite(v)) throw new UserError("semantic", `s4d "${op.out}": ${what} contains a non-finite value (${v})`, loc);
  }
}

/** Checks that every parameter of an s4d op has the size its channels/modes imply. */
export function checkS4DOp(op: S4DOp, loc: SourceLocation = defaultLocation(op)): void {
  const { channels: H, modes: M } = op;
  if (!Number.isInteger(H) || H < 1 || !Number.isInteger(M) || M < 1) {
    throw new UserError("semantic", `s4d "${op.out}": channels and modes must be positive integers, got H=${H}, M=${M}`, loc);
  }
  checkTensor(op.timescale.value, H, op.timescale.kind, op, loc);
  checkTensor(op.logAReal, H * M, "logAReal", op, loc);
  checkTensor(op.AImag, H * M, "AImag", op, loc);
  if (op.B) {
    checkTensor(op.B.re, H * M, "B.re", op, loc);
    checkTensor(op.B.im, H * M, "B.im", op, loc);
  }
  checkTensor(op.C.re, H * M, "C.re", op, loc);
  checkTensor(op.C.im, H * M, "C.im", op, loc);
  checkTensor(op.D, H, "D", op, loc);
  if (op.discretization !== "zoh" && op.discretization !== "bilinear") {
    throw new UserError("semantic", `s4d "${op.out}": unknown discretization "${String(op.discretization)}" (expected zoh or bilinear)`, loc);
  }
}

/** Step size per channel: exp(log_dt) or dt as given. */
export function s4dTimesteps(op: S4DOp, loc: SourceLocation = defaultLocation(op)): Float64Array {
  const dt = new Float64Array(op.channels);
  for (let h = 0; h < op.channels; h++) {
    const v = op.timescale.value.data[h];
    dt[h] = op.timescale.kind === "log_dt" ? Math.exp(v) : v;
    if (!(dt[h] > 0) || !Number.isFinite(dt[h])) {
      throw new UserError("semantic", `s4d "${op.out}": channel ${h} has step size dt = ${dt[h]} (must be positive and finite)`, loc);
    }
  }
  return dt;
}

/** Continuous A = -exp(logAReal) + i AImag of entry (h, m) at index i = h*M + m. */
export function s4dContinuousA(op: S4DOp, i: number): Complex {
  return complex(-Math.exp(op.logAReal.data[i]), op.AImag.data[i]);
}

/** B of entry i (1 when the op has no B). */
export function s4dB(op: S4DOp, i: number): Complex {
  return op.B ? complex(op.B.re.data[i], op.B.im.data[i]) : complex(1, 0);
}

/**
 * Discretizes an s4d op:
 *   zoh:      dA = exp(dt A),                 dB = B (exp(dt A) - 1) / A
 *   bilinear: dA = (1 + dt A/2) / (1 - dt A/2), dB = B dt / (1 - dt A/2)
 * Throws a UserError (kind "semantic") if the op's parameters have the wrong sizes.
 */
export function discretizeS4D(op: S4DOp, loc: SourceLocation = defaultLocation(op)): DiscreteS4D {
  checkS4DOp(op, loc);
  const { channels: H, modes: M } = op;
  const dt = s4dTimesteps(op, loc);
  const dA = { re: new Float64Array(H * M), im: new Float64Array(H * M) };
  const dB = { re: new Float64Array(H * M), im: new Float64Array(H * M) };
  for (let h = 0; h < H; h++) {
    for (let m = 0; m < M; m++) {
      const i = h * M + m;
      const A = s4dContinuousA(op, i);
      const B = s4dB(op, i);
      const z = cscale(A, dt[h]);
      let a: Complex;
      let b: Complex;
      if (op.discretization === "zoh") {
        a = cexp(z);
        // (exp(dt A) - 1)/A -> dt as A -> 0; A is 0 only if exp(logAReal) underflowed.
        b = A.re === 0 && A.im === 0 ? cscale(B, dt[h]) : cmul(B, cdiv(cexpm1(z), A));
      } else {
        const den = complex(1 - z.re / 2, -z.im / 2);
        a = cdiv(complex(1 + z.re / 2, z.im / 2), den);
        b = cdiv(cscale(B, dt[h]), den);
      }
      dA.re[i] = a.re;
      dA.im[i] = a.im;
      dB.re[i] = b.re;
      dB.im[i] = b.im;
    }
  }
  return { dA, dB };
}
