// Seeded random model-level IR for tests: S4D ops with realistic parameters and small S4D
// networks (encoder, S4D blocks with GELU / H->2H projection / GLU / residual / LayerNorm,
// optional mean pooling and decoder). Deterministic per seed, so failures reproduce.

import type { Model, Op, S4DOp, Tensor } from "../../src/ir/types.js";

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  uniform(lo: number, hi: number): number;
  /** Standard normal. */
  normal(): number;
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
}

/** mulberry32: tiny, fast, good enough for test data. */
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    normal: () => {
      const u = 1 - next(); // (0, 1], keeps log finite
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (items) => items[Math.floor(next() * items.length)]!,
  };
}

export function randomTensor(rng: Rng, shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Array.from({ length: n }, () => scale * rng.normal()) };
}

export interface RandomS4DOptions {
  channels?: number;
  modes?: number;
  discretization?: "zoh" | "bilinear";
  /** Include a complex B (otherwise B = 1). Default: random. */
  withB?: boolean;
  /** Store the timescale as log_dt or as dt. Default: random. */
  timescale?: "log_dt" | "dt";
  /** A initialization: S4D-Lin, S4D-Inv, or random in a realistic range. Default: random. */
  init?: "lin" | "inv" | "random";
  x?: string;
  out?: string;
  state?: string;
  layer?: string;
}

/** A random s4d op: log_dt uniform in [log 1e-3, log 1e-1], A as S4D-Lin/Inv (perturbed) or random. */
export function randomS4DOp(rng: Rng, opts: RandomS4DOptions = {}): S4DOp {
  const H = opts.channels ?? rng.int(1, 6);
  const M = opts.modes ?? rng.int(1, 8);
  const init = opts.init ?? rng.pick(["lin", "inv", "random"] as const);
  const N = 2 * M;
  const logAReal: number[] = [];
  const AImag: number[] = [];
  for (let h = 0; h < H; h++) {
    for (let m = 0; m < M; m++) {
      if (init === "random") {
        logAReal.push(rng.uniform(Math.log(0.01), Math.log(2)));
        AImag.push(rng.uniform(0, Math.PI * M));
      } else {
        // Trained S4D parameters drift from their initialization; perturb a little.
        logAReal.push(Math.log(0.5) + 0.2 * rng.normal());
        const imag = init === "lin" ? Math.PI * m : (N / Math.PI) * (N / (2 * m + 1) - 1);
        AImag.push(imag * (1 + 0.05 * rng.normal()));
      }
    }
  }
  const logDt = Array.from({ length: H }, () => rng.uniform(Math.log(1e-3), Math.log(1e-1)));
  const kind = opts.timescale ?? rng.pick(["log_dt", "dt"] as const);
  const withB = opts.withB ?? rng.next() < 0.5;
  const layer = opts.layer ?? "s4d";
  const op: S4DOp = {
    op: "s4d",
    out: opts.out ?? `${layer}.y`,
    layer,
    x: opts.x ?? "u",
    state: opts.state ?? `${layer}.state`,
    channels: H,
    modes: M,
    discretization: opts.discretization ?? rng.pick(["zoh", "bilinear"] as const),
    timescale: { kind, value: { shape: [H], data: kind === "log_dt" ? logDt : logDt.map(Math.exp) } },
    logAReal: { shape: [H, M], data: logAReal },
    AImag: { shape: [H, M], data: AImag },
    C: { re: randomTensor(rng, [H, M], Math.SQRT1_2), im: randomTensor(rng, [H, M], Math.SQRT1_2) },
    D: randomTensor(rng, [H]),
  };
  if (withB) op.B = { re: randomTensor(rng, [H, M]), im: randomTensor(rng, [H, M]) };
  return op;
}

/** A model holding one s4d op: input "u" of size H, step output "y". */
export function singleS4DModel(op: S4DOp): Model {
  return {
    irVersion: 1,
    name: "single_s4d",
    level: "model",
    inputs: [{ name: op.x, size: op.channels }],
    outputs: [{ name: "y", value: op.out, section: "step" }],
    state: [{ name: op.state, size: 2 * op.channels * op.modes }],
    sections: { step: [op], final: [] },
  };
}

export interface RandomModelOptions {
  inputSize?: number;
  /** Channels H of the S4D layers. */
  hidden?: number;
  modes?: number;
  layers?: number;
  /** Per layer, or random per layer when absent. */
  discretization?: "zoh" | "bilinear";
  withB?: boolean;
  /** LayerNorm before the S4D layer (pre-norm) or after the residual (post-norm). */
  norm?: "pre" | "post";
  /** "step": decoder per step; "final": mean pooling then decoder; "both". Default random. */
  outputs?: "step" | "final" | "both";
  outputSize?: number;
  name?: string;
}

function linear(rng: Rng, layer: string, x: string, nIn: number, nOut: number): Op {
  return {
    op: "linear",
    out: `${layer}.out`,
    layer,
    x,
    weight: randomTensor(rng, [nOut, nIn], 1 / Math.sqrt(nIn)),
    bias: randomTensor(rng, [nOut], 0.1),
  };
}

function layerNorm(rng: Rng, layer: string, x: string, n: number): Op {
  return {
    op: "layernorm",
    out: `${layer}.out`,
    layer,
    x,
    gamma: { shape: [n], data: Array.from({ length: n }, () => 1 + 0.1 * rng.normal()) },
    beta: randomTensor(rng, [n], 0.1),
    eps: 1e-5,
  };
}

/**
 * A random model-level S4D network: input -> encoder linear -> layers of
 * [pre-norm?] s4d -> gelu -> linear H->2H -> glu -> + residual [-> post-norm?]
 * -> decoder per step and/or meanpool + decoder in the final section.
 */
export function randomModel(rng: Rng, opts: RandomModelOptions = {}): Model {
  const dIn = opts.inputSize ?? rng.int(1, 4);
  const H = opts.hidden ?? rng.int(2, 6);
  const M = opts.modes ?? rng.int(1, 6);
  const L = opts.layers ?? rng.int(1, 2);
  const norm = opts.norm ?? rng.pick(["pre", "post"] as const);
  const outputs = opts.outputs ?? rng.pick(["step", "final", "both"] as const);
  const dOut = opts.outputSize ?? rng.int(1, 3);
  const step: Op[] = [];
  const final: Op[] = [];
  const state: Model["state"] = [];
  const outs: Model["outputs"] = [];

  step.push(linear(rng, "encoder", "input", dIn, H));
  let h = "encoder.out";
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}`;
    let s4dIn = h;
    if (norm === "pre") {
      step.push(layerNorm(rng, `${p}.norm`, h, H));
      s4dIn = `${p}.norm.out`;
    }
    const s4d = randomS4DOp(rng, {
      channels: H,
      modes: M,
      discretization: opts.discretization,
      withB: opts.withB,
      x: s4dIn,
      layer: `${p}.s4d`,
      out: `${p}.s4d.out`,
    });
    state.push({ name: s4d.state, size: 2 * H * M });
    step.push(s4d);
    step.push({ op: "gelu", out: `${p}.gelu.out`, layer: `${p}.gelu`, x: s4d.out });
    step.push(linear(rng, `${p}.proj`, `${p}.gelu.out`, H, 2 * H));
    step.push({ op: "glu", out: `${p}.glu.out`, layer: `${p}.glu`, x: `${p}.proj.out` });
    step.push({ op: "add", out: `${p}.res.out`, layer: `${p}.res`, a: `${p}.glu.out`, b: h });
    h = `${p}.res.out`;
    if (norm === "post") {
      step.push(layerNorm(rng, `${p}.norm`, h, H));
      h = `${p}.norm.out`;
    }
  }
  if (outputs !== "final") {
    step.push(linear(rng, "decoder", h, H, dOut));
    outs.push({ name: "y", value: "decoder.out", section: "step" });
  }
  if (outputs !== "step") {
    final.push({ op: "meanpool", out: "pool.out", layer: "pool", x: h });
    final.push(linear(rng, "head", "pool.out", H, dOut));
    outs.push({ name: "logits", value: "head.out", section: "final" });
  }
  return {
    irVersion: 1,
    name: opts.name ?? "random_s4d_net",
    level: "model",
    inputs: [{ name: "input", size: dIn }],
    outputs: outs,
    state,
    sections: { step, final },
  };
}

/** T random step vectors (standard normal times `scale`) for every model input. */
export function randomInputs(rng: Rng, model: Model, T: number, scale = 1): Record<string, Float64Array[]> {
  const out: Record<string, Float64Array[]> = {};
  for (const inp of model.inputs) {
    out[inp.name] = Array.from({ length: T }, () => Float64Array.from({ length: inp.size }, () => scale * rng.normal()));
  }
  return out;
}

function randomLinear(rng: Rng, layer: string, x: string, nIn: number, nOut: number): Op {
  return { op: "linear", out: `${layer}.out`, layer, x, weight: randomTensor(rng, [nOut, nIn], 1 / Math.sqrt(nIn)), bias: randomTensor(rng, [nOut], 0.1) };
}

/**
 * The digits-size network (random parameters): input 1 -> encoder 64 -> 2 x [s4d H=64 M=32 zoh, gelu,
 * linear 64->128, glu, residual, layernorm] -> meanpool -> decoder 64->10.
 */
export function digitsSizeModel(seed: number, H = 64, M = 32, layers = 2): Model {
  const rng = makeRng(seed);
  const step: Op[] = [randomLinear(rng, "encoder", "input", 1, H)];
  const state: Model["state"] = [];
  let h = "encoder.out";
  for (let i = 0; i < layers; i++) {
    const p = `layers.${i}`;
    const s4d = randomS4DOp(rng, { channels: H, modes: M, discretization: "zoh", init: "lin", x: h, layer: `${p}.s4d`, out: `${p}.s4d.out` });
    state.push({ name: s4d.state, size: 2 * H * M });
    step.push(s4d);
    step.push({ op: "gelu", out: `${p}.gelu.out`, layer: `${p}.gelu`, x: s4d.out });
    step.push(randomLinear(rng, `${p}.proj`, `${p}.gelu.out`, H, 2 * H));
    step.push({ op: "glu", out: `${p}.glu.out`, layer: `${p}.glu`, x: `${p}.proj.out` });
    step.push({ op: "add", out: `${p}.res.out`, layer: `${p}.res`, a: `${p}.glu.out`, b: h });
    const n = `${p}.norm`;
    step.push({
      op: "layernorm",
      out: `${n}.out`,
      layer: n,
      x: `${p}.res.out`,
      gamma: { shape: [H], data: Array.from({ length: H }, () => 1 + 0.1 * rng.normal()) },
      beta: randomTensor(rng, [H], 0.1),
      eps: 1e-5,
    });
    h = `${n}.out`;
  }
  return {
    irVersion: 1,
    name: "digits",
    level: "model",
    inputs: [{ name: "input", size: 1 }],
    outputs: [{ name: "logits", value: "decoder.out", section: "final" }],
    state,
    sections: { step, final: [{ op: "meanpool", out: "pool.out", layer: "pool", x: h }, randomLinear(rng, "decoder", "pool.out", H, 10)] },
  };
}
