// `params init seed S`: fresh parameters as PyTorch / state-spaces would create them.
//   linear (nn.Linear, and nn.Conv1d with kernel 1): weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))
//   layernorm: gamma = 1, beta = 0
//   s4d: see ../s4d-init.ts
// Each layer draws from its own stream keyed by (seed, layer name); see ../rng.ts.

import type { Diagnostic } from "../../common/errors.js";
import { Rng } from "../../common/rng.js";
import { initS4D } from "../s4d-init.js";
import { tensor, type LayerNormParams, type LayerNormRequest, type LinearParams, type LinearRequest, type ParamSource, type S4DParamsIR, type S4DRequest } from "./source.js";

export class InitParamSource implements ParamSource {
  readonly diagnostics: Diagnostic[] = [];
  readonly description: string;

  constructor(readonly seed: number) {
    this.description = `init seed ${seed}`;
  }

  linear(req: LinearRequest): LinearParams {
    const rng = Rng.forName(this.seed, req.name);
    const bound = 1 / Math.sqrt(req.inFeatures);
    // A plain loop (one draw per element, in index order: the seeded sequence is the same
    // as element-wise Array.from), without a closure call per weight.
    const draw = (n: number): number[] => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(Math.fround(rng.uniformIn(-bound, bound)));
      return out;
    };
    // draw() returns a fresh array nothing else holds: the tensors own it without tensor()'s copy.
    const weight = { shape: [req.outFeatures, req.inFeatures], data: draw(req.outFeatures * req.inFeatures) };
    return req.bias ? { weight, bias: { shape: [req.outFeatures], data: draw(req.outFeatures) } } : { weight };
  }

  layernorm(req: LayerNormRequest): LayerNormParams {
    return { gamma: tensor([req.width], new Array(req.width).fill(1)), beta: tensor([req.width], new Array(req.width).fill(0)) };
  }

  s4d(req: S4DRequest): S4DParamsIR {
    const p = initS4D({ H: req.H, N: req.N, dtMin: req.dtMin, dtMax: req.dtMax, init: req.init }, Rng.forName(this.seed, req.name));
    const M = req.N / 2;
    return {
      timescale: { kind: "log_dt", value: tensor([req.H], p.logDt) },
      logAReal: tensor([req.H, M], p.logAReal),
      AImag: tensor([req.H, M], p.AImag),
      C: { re: tensor([req.H, M], p.CRe), im: tensor([req.H, M], p.CIm) },
      D: tensor([req.H], p.D),
    };
  }
}
