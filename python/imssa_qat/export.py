"""Exporting a QAT-trained model so imssa-compile maps its weights exactly.

Dense weights are written on their level grid: W = q * s with the scales of the last
training forward pass (the compiler's policy max|W|/L, snapped to 20 significant bits so
that q * s is exact in float32 and float64 and the compiler's first scale candidate
max|W|/L = s reproduces every entry; src/passes/quant-weights.ts). S4D parameters,
biases and LayerNorm parameters are written as they are: the compiler forms and quantizes
the fused S4D matrix itself, exactly as the training forward pass did.

    export_safetensors(qat, "tuned.safetensors")        # float64 tensors, state-spaces names
    write_s4d(cfg, "tuned.s4d", "tuned.safetensors")     # a DSL model that loads them
    export_onnx(qat, cfg, "tuned.onnx")                  # via imssa_export (float32 graph)
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import torch

from .crossbar import F64
from .matrices import DenseSpec
from .model import QATModel


def grid_state_dict(qat: QATModel, dtype: torch.dtype = F64) -> Dict[str, torch.Tensor]:
    """The wrapped model's state_dict with every quantized dense weight replaced by q * s."""
    sd = {k: v.detach().clone() for k, v in qat.model.state_dict().items()}
    for k, v in qat.extra.items():
        sd.setdefault(k, v.detach().clone())
    params = qat.params()
    for sim in qat.sims:
        if not isinstance(sim.spec, DenseSpec) or sim.L == 0 or not qat.config.quantized:
            continue
        with torch.no_grad():
            _, grid = sim.deploy_scales(sim.spec.values(params), snap=True)
            grid = grid.reshape(sim.n_rows, sim.n_cols).t()  # [out, in]
        name = sim.spec.weight
        grid32 = grid.to(torch.float32)
        if not torch.equal(grid32.to(F64), grid):
            raise AssertionError(f"{name}: grid weights are not exact in float32")
        sd[name] = grid.reshape(sd[name].shape)
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}


def export_safetensors(qat: QATModel, path: str, dtype: torch.dtype = F64, metadata: Optional[Mapping[str, str]] = None) -> Dict[str, torch.Tensor]:
    """Writes grid_state_dict(qat) as safetensors (for the DSL's `params from`). Returns it."""
    from imssa_export import save_safetensors

    sd = grid_state_dict(qat, dtype)
    save_safetensors(sd, path, metadata=dict(metadata or {"exporter": "imssa_qat"}))
    return sd


def s4d_text(cfg, weights_file: str, name: str = "model", levels: Optional[Mapping[str, int]] = None,
             input_name: str = "x", output_name: str = "logits") -> str:
    """A model DSL text for an imssa_export.S4DConfig whose parameters come from `weights_file`.

    `levels` maps layer names (encoder, s4_layers.i, s4_layers.i.output_linear.0, decoder) to
    a weight-level request (@levels(n), e.g. 3 = ternary) written before that layer.
    """
    levels = dict(levels or {})

    def ann(layer: str) -> str:
        n = levels.get(layer)
        return f"@levels({n}) " if n else ""

    H, N = cfg.d_model, cfg.d_state
    norm = "prenorm" if cfg.prenorm else "postnorm"
    lines = [
        f"// Written by imssa_qat.export.s4d_text: an S4Model (d_input {cfg.d_input}, H {H}, N {N}, {cfg.n_layers} layers,",
        f"// {norm}, {'mean pooling, ' if cfg.pool else ''}{cfg.disc}) with the parameters of {os.path.basename(weights_file)}.",
        f"model {name} {{",
        f"  input {input_name}[{cfg.d_input}];",
        f"  output {output_name};",
        f"  params from \"{weights_file}\";",
        "",
        f"  {ann('encoder')}linear({H});",
    ]
    for i in range(cfg.n_layers):
        lines += [
            f"  residual {norm}(eps = {cfg.eps!r}) {{",
            f"    {ann(f's4_layers.{i}')}s4d(N = {N}, discretization = {cfg.disc});",
            "    gelu;",
            f"    {ann(f's4_layers.{i}.output_linear.0')}linear({2 * H});",
            "    glu;",
            "  }",
        ]
    if cfg.pool:
        lines.append("  meanpool;")
    lines += [f"  {ann('decoder')}linear({cfg.d_output});", "}", ""]
    return "\n".join(lines)


def write_s4d(cfg, path: str, weights_file: str, name: str = "model", qat: Optional[QATModel] = None, **kw) -> None:
    """Writes s4d_text(...) to `path`; with `qat`, its configuration's level requests are kept.

    `weights_file` is written into the model as given (relative paths resolve from the .s4d file's directory).
    """
    levels = kw.pop("levels", None)
    if levels is None and qat is not None:
        levels = {m["layer"]: m["requestedLevels"] for m in qat.config.matmuls if "requestedLevels" in m and "layer" in m}
    with open(path, "w", encoding="utf-8") as f:
        f.write(s4d_text(cfg, weights_file, name, levels, **kw))


def export_onnx(qat: QATModel, cfg, path: str, **kw):
    """ONNX export of the grid weights through imssa_export.export_step (float32 constants).

    Dense weights stay exact (they are exact in float32). The S4D recurrence is written as
    float32 dA, dB constants by the exporter, so its compiled levels can differ from the
    DSL path's in entries that sit on a rounding boundary; the bit-exact round trip is the
    safetensors + DSL path.
    """
    from imssa_export import export_step

    sd = grid_state_dict(qat, torch.float32)
    return export_step(sd, cfg, path, **kw)


def scale_states(sd: Mapping[str, torch.Tensor], disc: str = "zoh", max_scale: float = 4.0,
                 target: float = 0.5) -> Dict[str, torch.Tensor]:
    """Rescales every S4D mode's state so its input weight dB survives weight rounding.

    Mode k's state x -> c_k x gives dB -> c_k dB and C -> C / c_k (dA unchanged): the same
    float model (y is unchanged), but on a crossbar dB shares its column scale with dA
    (|dA| ~ 1), so a small |dB| rounds to level 0 and the mode never sees its input
    (docs/QUANTIZATION.md). c_k = clamp(target * |dA| / |dB|, 1, max_scale); larger states
    cost DAC resolution of the layer input (one DAC range per crossbar matrix), hence the
    cap. Returns a copy of the float32 state_dict with kernel.B (c_k as a complex [H, M, 2];
    multiplied into an existing B) and kernel.C / c_k. The DSL loads kernel.B; the wrapped
    S4Model has no B, so pass the B tensors to QATModel(..., extra=...).
    """
    from imssa_export import discretize

    out = {k: v.detach().clone() for k, v in sd.items()}
    i = 0
    while f"s4_layers.{i}.kernel.log_A_real" in sd:
        p = f"s4_layers.{i}.kernel."
        f64 = lambda n: sd[p + n].detach().to(torch.float64)
        B = None
        if p + "B" in sd:
            Bt = f64("B")
            B = torch.complex(Bt[..., 0], Bt[..., 1])
        dA, dB = discretize(f64("log_dt"), f64("log_A_real"), f64("A_imag"), disc, B)
        c = (target * dA.abs() / dB.abs().clamp(min=1e-30)).clamp(1.0, max_scale).to(torch.float32).to(torch.float64)
        newB = (B if B is not None else torch.ones_like(dA)) * c
        out[p + "B"] = torch.stack([newB.real, newB.imag], -1).to(torch.float32)
        out[p + "C"] = (f64("C") / c.unsqueeze(-1)).to(torch.float32)
        i += 1
    return out
