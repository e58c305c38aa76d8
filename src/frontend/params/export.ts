// The inverse of FileParamSource: the parameters of a model-level IR as safetensors tensors
// under state-spaces/s4 names. Used to write example checkpoints and to check that
// `params init` and `params from` agree on names and layouts.

import { assert } from "../../common/errors.js";
import type { Model, Tensor } from "../../ir/types.js";
import type { TensorToWrite, WritableDtype } from "../safetensors.js";

export function exportParams(model: Model, dtype: WritableDtype = "F32"): Map<string, TensorToWrite> {
  assert(model.level === "model", `exportParams needs a model-level IR, got ${model.level}`);
  const out = new Map<string, TensorToWrite>();
  const put = (name: string, shape: number[], data: ArrayLike<number>) => {
    assert(!out.has(name), `two layers export tensor ${name}`);
    out.set(name, { dtype, shape, data });
  };
  const interleave = (re: Tensor, im: Tensor) => {
    const d = new Array<number>(2 * re.data.length);
    re.data.forEach((v, j) => {
      d[2 * j] = v;
      d[2 * j + 1] = im.data[j]!;
    });
    return d;
  };
  for (const op of [...model.sections.step, ...model.sections.final]) {
    if (op.op !== "linear" && op.op !== "layernorm" && op.op !== "s4d") continue;
    assert(op.layer !== undefined, `weight op ${op.out} has no layer name`);
    const p = op.layer;
    switch (op.op) {
      case "linear":
        // The 1x1 convolution inside an S4D block is a Conv1d in PyTorch: [out, in, 1].
        put(`${p}.weight`, /\.output_linear\.0$/.test(p) ? [...op.weight.shape, 1] : op.weight.shape, op.weight.data);
        if (op.bias) put(`${p}.bias`, op.bias.shape, op.bias.data);
        break;
      case "layernorm":
        put(`${p}.weight`, op.gamma.shape, op.gamma.data);
        put(`${p}.bias`, op.beta.shape, op.beta.data);
        break;
      case "s4d": {
        const [H, M] = [op.channels, op.modes];
        const ts = op.timescale;
        put(`${p}.kernel.log_dt`, [H], ts.kind === "log_dt" ? ts.value.data : ts.value.data.map(Math.log));
        put(`${p}.kernel.log_A_real`, [H, M], op.logAReal.data);
        put(`${p}.kernel.A_imag`, [H, M], op.AImag.data);
        put(`${p}.kernel.C`, [H, M, 2], interleave(op.C.re, op.C.im));
        if (op.B) put(`${p}.kernel.B`, [H, M, 2], interleave(op.B.re, op.B.im));
        put(`${p}.D`, [H], op.D.data);
        break;
      }
    }
  }
  return out;
}
