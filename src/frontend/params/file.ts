// `params from "file.safetensors"`: parameters read from a checkpoint with the tensor names
// of state-spaces/s4 example.py (S4Model with the minimal S4D layer of models/s4/s4d.py):
//   <linear>.weight [out, in] or [out, in, 1] (Conv1d with kernel 1), <linear>.bias [out]
//   <norm>.weight [W], <norm>.bias [W]
//   <s4d>.kernel.log_dt [H], .kernel.log_A_real [H, M], .kernel.A_imag [H, M],
//   <s4d>.kernel.C [H, M, 2] (view_as_real), optional .kernel.B [H, M, 2], <s4d>.D [H] or [1, H]
// Layer prefixes come from the checker (default names or explicit layer names).

import type { Diagnostic, SourceLocation } from "../../common/errors.js";
import type { Tensor } from "../../ir/types.js";
import type { SafeTensor } from "../safetensors.js";
import { tensor, type LayerNormParams, type LayerNormRequest, type LinearParams, type LinearRequest, type ParamSource, type S4DParamsIR, type S4DRequest } from "./source.js";

const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;

export class FileParamSource implements ParamSource {
  readonly diagnostics: Diagnostic[] = [];
  readonly description: string;
  private readonly used = new Set<string>();

  /**
   * @param tensors contents of the checkpoint
   * @param fileLabel how to name the checkpoint in messages (the path as the user wrote it)
   */
  constructor(
    private readonly tensors: Map<string, SafeTensor>,
    private readonly fileLabel: string,
  ) {
    this.description = `from ${fileLabel}`;
  }

  /** Tensors of the checkpoint that no layer asked for (often a sign of a naming mismatch). */
  unusedTensors(): string[] {
    return [...this.tensors.keys()].filter((k) => !this.used.has(k)).sort();
  }

  /**
   * Fetches `name`, accepting any of `shapes` (the first is the one we report); values are
   * returned in row-major order of that shape (the accepted variants only add unit dims).
   * On failure records a diagnostic and returns zeros.
   */
  private take(name: string, shapes: number[][], what: string, at: SourceLocation, optional = false): Float64Array | undefined {
    const want = shapes[0]!;
    const count = want.reduce((a, b) => a * b, 1);
    const t = this.tensors.get(name);
    if (t === undefined) {
      if (optional) return undefined;
      const hint = this.similarNames(name);
      this.diagnostics.push({
        message: `tensor "${name}" (shape ${fmt(want)}) for ${what} not found in ${this.fileLabel}${hint.length ? `; similar names in the file: ${hint.map((h) => `"${h}"`).join(", ")}` : ""}`,
        location: at,
      });
      return new Float64Array(count);
    }
    this.used.add(name);
    if (!shapes.some((s) => s.length === t.shape.length && s.every((d, i) => d === t.shape[i]))) {
      const alt = shapes.length > 1 ? ` (or ${shapes.slice(1).map(fmt).join(" or ")})` : "";
      this.diagnostics.push({
        message: `tensor "${name}" in ${this.fileLabel} has shape ${fmt(t.shape)}, but ${what} expects ${fmt(want)}${alt}`,
        location: at,
      });
      return new Float64Array(count);
    }
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      this.diagnostics.push({ message: `tensor "${name}" in ${this.fileLabel} holds a non-finite value (${t.data[bad]}) at flat index ${bad}`, location: at });
      return new Float64Array(count);
    }
    return t.data;
  }

  private similarNames(name: string): string[] {
    const tail = name.split(".").slice(-2).join(".");
    return [...this.tensors.keys()].filter((k) => k !== name && (k.endsWith(`.${name}`) || name.endsWith(`.${k}`) || k.endsWith(`.${tail}`))).slice(0, 3);
  }

  linear(req: LinearRequest): LinearParams {
    const { name, inFeatures: i, outFeatures: o, at } = req;
    const what = `linear layer "${name}" (${i} -> ${o})`;
    const weight = tensor([o, i], this.take(`${name}.weight`, [[o, i], [o, i, 1]], what, at)!);
    if (!req.bias) return { weight };
    return { weight, bias: tensor([o], this.take(`${name}.bias`, [[o]], what, at)!) };
  }

  layernorm(req: LayerNormRequest): LayerNormParams {
    const { name, width: w, at } = req;
    const what = `layernorm "${name}" (width ${w})`;
    return {
      gamma: tensor([w], this.take(`${name}.weight`, [[w]], what, at)!),
      beta: tensor([w], this.take(`${name}.bias`, [[w]], what, at)!),
    };
  }

  s4d(req: S4DRequest): S4DParamsIR {
    const { name, H, N, at } = req;
    const M = N / 2;
    const what = `s4d layer "${name}" (H=${H}, N=${N})`;
    const k = `${name}.kernel`;
    const complex = (data: Float64Array): { re: Tensor; im: Tensor } => {
      const re = new Array<number>(H * M);
      const im = new Array<number>(H * M);
      for (let j = 0; j < H * M; j++) {
        re[j] = data[2 * j]!;
        im[j] = data[2 * j + 1]!;
      }
      return { re: { shape: [H, M], data: re }, im: { shape: [H, M], data: im } };
    };
    const B = this.take(`${k}.B`, [[H, M, 2], [1, H, M, 2]], what, at, true);
    return {
      timescale: { kind: "log_dt", value: tensor([H], this.take(`${k}.log_dt`, [[H], [H, 1]], what, at)!) },
      logAReal: tensor([H, M], this.take(`${k}.log_A_real`, [[H, M], [1, H, M]], what, at)!),
      AImag: tensor([H, M], this.take(`${k}.A_imag`, [[H, M], [1, H, M]], what, at)!),
      ...(B !== undefined ? { B: complex(B) } : {}),
      C: complex(this.take(`${k}.C`, [[H, M, 2], [1, H, M, 2]], what, at)!),
      D: tensor([H], this.take(`${name}.D`, [[H], [1, H]], what, at)!),
    };
  }
}
