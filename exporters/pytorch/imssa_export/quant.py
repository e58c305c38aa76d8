"""Ternary quantization-aware training for the dense layers (encoder, output_linear, decoder).

Every output feature j (a row of a Linear weight [out, in], an output channel of the 1x1
Conv1d weight [2H, H, 1]) is represented as w_j = s_j * t_j with t_j in {-1, 0, 1} and a
scale s_j > 0. On a crossbar (rows = inputs, columns = outputs) that is one digital scale
per column and three device levels, which imssa represents exactly.

Ternarization (threshold rule of ternary weight networks, per output feature):
    delta_j = 0.7 * mean(|w_j|),  t_j = sign(w_j) * [|w_j| > delta_j],
    s_j = mean(|w_j| over the entries with t != 0)   (1 if there are none).
During training the forward pass uses s*t and the gradient goes straight through to the
latent float weight (STE). The state_dict keeps the latent weights under the usual names;
`ternarize_state_dict` materializes s*t for export.
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

THRESHOLD = 0.7

# Dense weights of an example.py S4Model, by name pattern.
def dense_weight_names(sd: Iterable[str]) -> list:
    return sorted(k for k in sd if k in ("encoder.weight", "decoder.weight")
                  or (k.startswith("s4_layers.") and k.endswith(".output_linear.0.weight")))


def ternary_parts(w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(scale [out], levels like w in {-1, 0, 1}) for a weight whose dim 0 is the output."""
    flat = w.detach().reshape(w.shape[0], -1)
    mag = flat.abs()
    delta = THRESHOLD * mag.mean(dim=1, keepdim=True)
    keep = mag > delta
    t = torch.sign(flat) * keep
    count = keep.sum(dim=1)
    s = torch.where(count > 0, (mag * keep).sum(dim=1) / count.clamp(min=1), torch.ones_like(count, dtype=flat.dtype))
    return s, t.reshape(w.shape)


def ternarize(w: torch.Tensor) -> torch.Tensor:
    """s*t with the straight-through estimator (the value is s*t, the gradient is identity)."""
    s, t = ternary_parts(w)
    q = t * s.reshape((-1,) + (1,) * (w.dim() - 1))
    return w + (q - w).detach()


class TernaryLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, ternarize(self.weight), self.bias)


class TernaryConv1d(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, ternarize(self.weight), self.bias)


def ternarize_state_dict(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Copy of sd with every dense weight replaced by its exact float32 s*t."""
    out = dict(sd)
    for k in dense_weight_names(sd):
        s, t = ternary_parts(sd[k].to(torch.float32))
        out[k] = (t * s.reshape((-1,) + (1,) * (t.dim() - 1))).to(torch.float32)
    return out


def check_ternary(w: torch.Tensor) -> torch.Tensor:
    """Asserts that w is s_j * t_j exactly; returns the scales s (0 allowed for zero rows)."""
    flat = w.reshape(w.shape[0], -1)
    s = flat.abs().max(dim=1).values
    for j in range(flat.shape[0]):
        vals = set(flat[j].tolist())
        sj = float(s[j])
        assert vals <= {sj, -sj, 0.0}, f"row {j} is not on a ternary grid: {sorted(vals)[:6]}"
    return s
