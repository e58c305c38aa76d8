"""The recurrent (one time step) form of an S4Model, in real arithmetic, for ONNX export.

    forward(u_t [B, d_in], state_0_in, ..., state_{k-1}_in) -> (y_t, state_0_out, ...)

Per S4D layer, with a = dA, b = dB (computed in float64 from the state_dict, stored as
float32 constants) and x the complex state split into real and imaginary parts:
    x_re' = a_re*x_re - a_im*x_im + b_re*u
    x_im' = a_im*x_re + a_re*x_im + b_im*u
    y     = 2*sum_n(C_re*x_re' - C_im*x_im') + D*u
torch.onnx (1.13) handles complex tensors poorly, hence the real form.

How the real and imaginary parts are laid out in the state tensors ("arrangement") is an
exporter choice; imssa must lift every one of them, so the fixtures use all four:
    halves    one [B, H, N] per layer: [..., :N/2] real, [..., N/2:] imaginary (Slice)
    pairs     one [B, H, N/2, 2] per layer: last axis (re, im) (Gather + Unsqueeze/Concat)
    separate  two [B, H, N/2] per layer, re then im (state names get _re / _im)
    flat      one [B, H*N] per layer laid out [2, H, N/2]: all real parts, then all
              imaginary parts (Split + Reshape, Reshape + Concat)
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import S4DConfig
from .discretize import step_constants
from .quant import check_ternary

ARRANGEMENTS = ("halves", "pairs", "separate", "flat")
HEADS = ("decoder", "features")


class StepModel(nn.Module):
    """One time step of an S4Model.

    head="decoder": y_t = decoder(h_t) (per-step output; for a pooled model the model's
    output is the time mean of y_t, which equals decoder(mean h_t) since the decoder is
    affine). head="features": y_t = h_t, the last block's output (what a Scan body emits
    before ReduceMean and the decoder).
    dense="gemm" exports the dense layers as Gemm, "matmul" as MatMul + Add.
    fold_two bakes the factor 2 of y into the C constants.
    qdq=True routes every dense weight through QuantizeLinear/DequantizeLinear with a
    per-output-feature scale (the weights must be ternary: s_j * t, t in {-1, 0, 1}).
    """

    def __init__(self, sd: Mapping[str, torch.Tensor], cfg: S4DConfig, arrangement: str = "halves",
                 head: str = "decoder", dense: str = "gemm", fold_two: bool = False, qdq: bool = False):
        super().__init__()
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {ARRANGEMENTS}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}")
        if dense not in ("gemm", "matmul"):
            raise ValueError("dense must be 'gemm' or 'matmul'")
        self.cfg = cfg
        self.arrangement = arrangement
        self.head = head
        self.dense = dense
        self.fold_two = fold_two
        self.qdq = qdq
        H, M = cfg.d_model, cfg.modes
        f32 = lambda t: t.detach().to(torch.float32).cpu().clone()

        self._dense_names: List[str] = []
        self._add_dense("encoder", f32(sd["encoder.weight"]).reshape(H, cfg.d_input), f32(sd["encoder.bias"]))
        for i in range(cfg.n_layers):
            p = f"s4_layers.{i}."
            c = step_constants(sd, p, cfg.disc)
            for k in ("a_re", "a_im", "b_re", "b_im"):
                self.register_buffer(f"l{i}_{k}", c[k].to(torch.float32).reshape(H, M))
            two = 2.0 if fold_two else 1.0
            self.register_buffer(f"l{i}_c_re", (two * c["c_re"]).to(torch.float32).reshape(H, M))
            self.register_buffer(f"l{i}_c_im", (two * c["c_im"]).to(torch.float32).reshape(H, M))
            self.register_buffer(f"l{i}_d", c["d"].to(torch.float32).reshape(H))
            self._add_dense(f"l{i}_out", f32(sd[p + "output_linear.0.weight"]).reshape(2 * H, H),
                            f32(sd[p + "output_linear.0.bias"]))
            self.register_buffer(f"l{i}_ln_w", f32(sd[f"norms.{i}.weight"]).reshape(H))
            self.register_buffer(f"l{i}_ln_b", f32(sd[f"norms.{i}.bias"]).reshape(H))
        if head == "decoder":
            self._add_dense("decoder", f32(sd["decoder.weight"]).reshape(cfg.d_output, H), f32(sd["decoder.bias"]))

    # ---- parameters -------------------------------------------------------------------

    def _add_dense(self, name: str, w: torch.Tensor, b: torch.Tensor) -> None:
        self._dense_names.append(name)
        if self.qdq:
            try:
                s = check_ternary(w)
            except AssertionError as e:
                raise ValueError(f"qdq export needs ternary weights (s_j * t, use ternarize_state_dict): {name}: {e}")
            s = torch.where(s > 0, s, torch.ones_like(s))
            self.register_buffer(f"{name}_scale", s.to(torch.float32))
            self.register_buffer(f"{name}_zero", torch.zeros(w.shape[0], dtype=torch.int32))
        self.register_buffer(f"{name}_w", w)
        self.register_buffer(f"{name}_b", b)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        w = getattr(self, f"{name}_w")
        if self.qdq:
            # int8 range: torch 1.13 exports fake quantization only for 8-bit ranges; the
            # values w/s are in {-1, 0, 1}, so the grid is ternary all the same.
            w = torch.fake_quantize_per_channel_affine(w, getattr(self, f"{name}_scale"),
                                                       getattr(self, f"{name}_zero"), 0, -128, 127)
        b = getattr(self, f"{name}_b")
        if self.dense == "gemm":
            return F.linear(x, w, b)
        return torch.matmul(x, w.t()) + b

    # ---- state layout -----------------------------------------------------------------

    def state_shapes(self, batch: int) -> List[Tuple[int, ...]]:
        H, M = self.cfg.d_model, self.cfg.modes
        per_layer = {
            "halves": [(batch, H, 2 * M)],
            "pairs": [(batch, H, M, 2)],
            "separate": [(batch, H, M), (batch, H, M)],
            "flat": [(batch, 2 * H * M)],
        }[self.arrangement]
        return per_layer * self.cfg.n_layers

    def state_bases(self) -> List[str]:
        """Base names of the state tensors, before the X_in / past_X decoration."""
        if self.arrangement == "separate":
            return [f"s{i}_{part}" for i in range(self.cfg.n_layers) for part in ("re", "im")]
        return [f"s{i}" for i in range(self.cfg.n_layers)]

    def zero_states(self, batch: int) -> List[torch.Tensor]:
        return [torch.zeros(s) for s in self.state_shapes(batch)]

    def _unpack(self, states: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        H, M = self.cfg.d_model, self.cfg.modes
        if self.arrangement == "halves":
            s = states[0]
            return s[..., :M], s[..., M:]
        if self.arrangement == "pairs":
            s = states[0]
            return s[..., 0], s[..., 1]
        if self.arrangement == "separate":
            return states[0], states[1]
        re, im = states[0].split(H * M, dim=-1)
        return re.reshape(-1, H, M), im.reshape(-1, H, M)

    def _pack(self, re: torch.Tensor, im: torch.Tensor) -> List[torch.Tensor]:
        if self.arrangement == "halves":
            return [torch.cat([re, im], dim=-1)]
        if self.arrangement == "pairs":
            return [torch.stack([re, im], dim=-1)]
        if self.arrangement == "separate":
            return [re, im]
        H, M = self.cfg.d_model, self.cfg.modes
        return [torch.cat([re.reshape(-1, H * M), im.reshape(-1, H * M)], dim=-1)]

    # ---- one step ---------------------------------------------------------------------

    def ssm_step(self, i: int, u: torch.Tensor, states: Sequence[torch.Tensor]):
        g = lambda k: getattr(self, f"l{i}_{k}")
        xr, xi = self._unpack(states)
        ub = u.unsqueeze(-1)
        nr = g("a_re") * xr - g("a_im") * xi + g("b_re") * ub
        ni = g("a_im") * xr + g("a_re") * xi + g("b_im") * ub
        y = (g("c_re") * nr - g("c_im") * ni).sum(dim=-1)
        if not self.fold_two:
            y = 2.0 * y
        y = y + g("d") * u
        return y, self._pack(nr, ni)

    def forward(self, u: torch.Tensor, *states: torch.Tensor):
        cfg = self.cfg
        per = len(states) // cfg.n_layers
        x = self._linear("encoder", u)
        new_states: List[torch.Tensor] = []
        for i in range(cfg.n_layers):
            ln = lambda v: F.layer_norm(v, (cfg.d_model,), getattr(self, f"l{i}_ln_w"),
                                        getattr(self, f"l{i}_ln_b"), cfg.eps)
            z = ln(x) if cfg.prenorm else x
            z, st = self.ssm_step(i, z, states[i * per:(i + 1) * per])
            new_states.extend(st)
            z = F.glu(self._linear(f"l{i}_out", F.gelu(z)), dim=-1)
            x = x + z
            if not cfg.prenorm:
                x = ln(x)
        y = self._linear("decoder", x) if self.head == "decoder" else x
        return (y, *new_states)

    @torch.no_grad()
    def run(self, xs: torch.Tensor, states: Optional[List[torch.Tensor]] = None):
        """Runs the recurrence over xs [B, T, d_in] from zero state: (ys [B, T, d], states)."""
        states = list(states) if states is not None else self.zero_states(xs.shape[0])
        ys = []
        for t in range(xs.shape[1]):
            y, *states = self(xs[:, t], *states)
            ys.append(y)
        return torch.stack(ys, dim=1), states
