// The convolution form of S4D, an independent check of the recurrent step form used by the
// evaluator. It shares only the discretized dB with it: the powers dA^l come from closed
// forms (exp(l dt A) for ZOH, exp(l log dA) with an accurately computed log for bilinear),
// never from repeated state updates.
//
//   K_l[h] = 2 Re sum_m C_m dB_m dA_m^l,   y[k][h] = sum_{l<=k} K_l[h] u[k-l][h] + D[h] u[k][h]
//
// `evaluateConvolutionForm` runs a whole model-level model layer by layer (each op over the
// whole sequence), with every s4d op in convolution form.

import { cmul, complex, type Complex } from "../common/complex.js";
import { UserError, type SourceLocation } from "../common/errors.js";
import { discretizeS4D, s4dContinuousA, s4dTimesteps } from "../common/s4d-math.js";
import type { Model, S4DOp } from "../ir/types.js";
import type { SequenceResult } from "./evaluate.js";
import { denseInto, gluInto, layerNormInto, unaryFunction, unaryInto } from "./kernels.js";

/** log(dA) of mode i, i.e. dA^l = exp(l * log dA). */
function logDA(op: S4DOp, i: number, dt: number): Complex {
  const A = s4dContinuousA(op, i);
  const x = dt * A.re;
  const y = dt * A.im;
  if (op.discretization === "zoh") return complex(x, y);
  // dA = (1 + z/2) / (1 - z/2): |dA|^2 = 1 + 2x / |1 - z/2|^2 exactly, so log|dA| comes from
  // log1p without the cancellation of log(|dA|) for |dA| close to 1.
  const den = (1 - x / 2) ** 2 + (y / 2) ** 2;
  return complex(0.5 * Math.log1p((2 * x) / den), Math.atan2(y / 2, 1 + x / 2) + Math.atan2(y / 2, 1 - x / 2));
}

/** S4D convolution kernel K[h*T + l], l = 0..T-1 (without the D skip term). */
export function s4dKernel(op: S4DOp, T: number, loc?: SourceLocation): Float64Array {
  const { dB } = discretizeS4D(op, loc);
  const dt = s4dTimesteps(op, loc);
  const { channels: H, modes: M } = op;
  const K = new Float64Array(H * T);
  for (let h = 0; h < H; h++) {
    for (let m = 0; m < M; m++) {
      const i = h * M + m;
      const cb = cmul(complex(op.C.re.data[i], op.C.im.data[i]), complex(dB.re[i], dB.im[i]));
      const lg = logDA(op, i, dt[h]);
      for (let l = 0; l < T; l++) {
        // Re(cb * exp(l lg)) = e^{l Re lg} (Re cb cos(l Im lg) - Im cb sin(l Im lg))
        const mag = Math.exp(l * lg.re);
        const ang = l * lg.im;
        K[h * T + l] += 2 * mag * (cb.re * Math.cos(ang) - cb.im * Math.sin(ang));
      }
    }
  }
  return K;
}

/** Applies one s4d op to a whole sequence u (T vectors of length H) in convolution form. */
export function convolveS4D(op: S4DOp, u: readonly Float64Array[], loc?: SourceLocation): Float64Array[] {
  const T = u.length;
  const H = op.channels;
  for (const [t, v] of u.entries()) {
    if (v.length !== H) throw new UserError("semantic", `s4d "${op.out}": step ${t} input has length ${v.length}, expected ${H}`, loc ?? { file: "<ir>" });
  }
  const K = s4dKernel(op, T, loc);
  const y = Array.from({ length: T }, () => new Float64Array(H));
  for (let h = 0; h < H; h++) {
    const Kh = K.subarray(h * T, (h + 1) * T);
    const D = op.D.data[h];
    for (let k = 0; k < T; k++) {
      let acc = D * u[k][h];
      for (let l = 0; l <= k; l++) acc += Kh[l] * u[k - l][h];
      y[k][h] = acc;
    }
  }
  return y;
}

/**
 * Evaluates a model-level model layer by layer with s4d in convolution form. Same inputs and
 * result shape as evaluateSequence; lowered-level ops are rejected.
 */
export function evaluateConvolutionForm(model: Model, inputs: Record<string, Float64Array[]>): SequenceResult {
  const file = `<model ${model.name}>`;
  const seqs = new Map<string, Float64Array[]>();
  for (const inp of model.inputs) {
    const seq = inputs[inp.name];
    if (!seq) throw new UserError("usage", `missing values for input "${inp.name}"`, { file });
    seqs.set(inp.name, seq);
  }
  const T = seqs.size > 0 ? [...seqs.values()][0]!.length : 0;
  const get = (name: string, path: string): Float64Array[] => {
    const v = seqs.get(name);
    if (!v) throw new UserError("semantic", `unknown value "${name}"`, { file, path });
    return v;
  };
  // Applies a per-step vector function over the whole sequence.
  const map = (xs: Float64Array[][], size: number, f: (out: Float64Array, ...args: Float64Array[]) => void): Float64Array[] =>
    Array.from({ length: xs[0]!.length }, (_, t) => {
      const out = new Float64Array(size);
      f(out, ...xs.map((x) => x[t]!));
      return out;
    });

  const evalOps = (section: "step" | "final", values: Map<string, Float64Array[]>): void => {
    model.sections[section].forEach((op, index) => {
      const path = `/sections/${section}/${index}`;
      const x = (name: string): Float64Array[] => {
        const v = values.get(name);
        if (!v) throw new UserError("semantic", `unknown value "${name}" in the ${section} section`, { file, path });
        return v;
      };
      let result: Float64Array[];
      switch (op.op) {
        case "s4d":
          result = convolveS4D(op, x(op.x), { file, path });
          break;
        case "linear": {
          const w = Float64Array.from(op.weight.data);
          const b = op.bias ? Float64Array.from(op.bias.data) : null;
          result = map([x(op.x)], op.weight.shape[0]!, (out, v) => denseInto(w, b, v!, out));
          break;
        }
        case "layernorm": {
          const g = Float64Array.from(op.gamma.data);
          const b = Float64Array.from(op.beta.data);
          result = map([x(op.x)], g.length, (out, v) => layerNormInto(v!, g, b, op.eps, out));
          break;
        }
        case "gelu":
        case "sigmoid":
        case "tanh":
        case "relu": {
          const f = unaryFunction(op.op);
          const xs = x(op.x);
          result = map([xs], xs[0]!.length, (out, v) => unaryInto(f, v!, out));
          break;
        }
        case "glu": {
          const xs = x(op.x);
          result = map([xs], xs[0]!.length / 2, (out, v) => gluInto(v!, out));
          break;
        }
        case "add":
        case "mul": {
          const a = x(op.a);
          const mul = op.op === "mul";
          result = map([a, x(op.b)], a[0]!.length, (out, p, q) => {
            for (let i = 0; i < out.length; i++) out[i] = mul ? p![i] * q![i] : p![i] + q![i];
          });
          break;
        }
        case "meanpool": {
          const src = seqs.get(op.x);
          if (!src) throw new UserError("semantic", `unknown step value "${op.x}"`, { file, path });
          const mean = new Float64Array(src[0]!.length);
          for (const v of src) for (let i = 0; i < mean.length; i++) mean[i] += v[i];
          for (let i = 0; i < mean.length; i++) mean[i] /= T;
          result = [mean];
          break;
        }
        default:
          throw new UserError("unsupported", `the convolution form evaluates model-level ops only, not "${op.op}"`, { file, path });
      }
      values.set(op.out, result);
    });
  };

  evalOps("step", seqs);
  const finals = new Map<string, Float64Array[]>();
  evalOps("final", finals);

  const step: Record<string, Float64Array[]> = {};
  const final: Record<string, Float64Array> = {};
  for (const o of model.outputs) {
    if (o.section === "step") step[o.name] = get(o.value, "/outputs");
    else {
      const v = finals.get(o.value);
      if (!v) throw new UserError("semantic", `unknown final value "${o.value}"`, { file, path: "/outputs" });
      final[o.name] = v[0]!;
    }
  }
  return { step, final };
}
