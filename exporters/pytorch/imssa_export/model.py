"""A state-spaces style S4D model for training (convolution form, FFT).

Parameter names are those of state-spaces/s4 example.py (S4Model with the minimal S4D layer),
so checkpoints move both ways without renaming:

    encoder.weight [H, d_in], encoder.bias [H]
    s4_layers.{i}.D [H]
    s4_layers.{i}.kernel.log_dt [H]
    s4_layers.{i}.kernel.C [H, N/2, 2]            (view_as_real of a complex [H, N/2])
    s4_layers.{i}.kernel.log_A_real [H, N/2]
    s4_layers.{i}.kernel.A_imag [H, N/2]
    s4_layers.{i}.output_linear.0.weight [2H, H, 1], .bias [2H]   (1x1 Conv1d, then GLU)
    norms.{i}.weight [H], norms.{i}.bias [H]
    decoder.weight [d_out, H], decoder.bias [d_out]

Block i:  z = LN_i(x) if prenorm else x;  z = GLU(Conv1x1(GELU(S4D(z))));  x = x + z;
          x = LN_i(x) if postnorm.   Then optional mean over time and the decoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import S4DConfig
from .discretize import ssm_kernel
from .quant import TernaryConv1d, TernaryLinear


class S4DKernel(nn.Module):
    """Diagonal SSM parameters (S4D-Lin initialization) and the convolution kernel."""

    def __init__(self, H: int, N: int, disc: str, dt_min: float, dt_max: float):
        super().__init__()
        M = N // 2
        self.disc = disc
        self.log_dt = nn.Parameter(torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        # complex standard normal: each part has variance 1/2
        self.C = nn.Parameter(torch.randn(H, M, 2) * math.sqrt(0.5))
        self.log_A_real = nn.Parameter(torch.full((H, M), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(M, dtype=torch.float32).repeat(H, 1))

    def forward(self, L: int) -> torch.Tensor:
        C = torch.complex(self.C[..., 0], self.C[..., 1])
        return ssm_kernel(self.log_dt, C, self.log_A_real, self.A_imag, L, self.disc)


class S4D(nn.Module):
    """S4D layer on (B, H, L): SSM convolution + D skip, GELU, 1x1 Conv1d H->2H, GLU."""

    def __init__(self, cfg: S4DConfig):
        super().__init__()
        H = cfg.d_model
        self.D = nn.Parameter(torch.randn(H))
        self.kernel = S4DKernel(H, cfg.d_state, cfg.disc, cfg.dt_min, cfg.dt_max)
        self.activation = nn.GELU()  # exact (erf) GELU
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        conv = TernaryConv1d if cfg.quant == "ternary" else nn.Conv1d
        self.output_linear = nn.Sequential(conv(H, 2 * H, kernel_size=1), nn.GLU(dim=-2))

    def forward(self, u: torch.Tensor):
        L = u.shape[-1]
        k = self.kernel(L)  # (H, L)
        # linear (not circular) convolution through zero-padded FFTs of length 2L
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
        y = y + u * self.D.unsqueeze(-1)
        y = self.dropout(self.activation(y))
        return self.output_linear(y), None


class S4Model(nn.Module):
    """example.py's S4Model with optional pooling; input (B, L, d_in).

    Output (B, d_out) when cfg.pool, else (B, L, d_out).
    """

    def __init__(self, cfg: S4DConfig):
        super().__init__()
        self.cfg = cfg
        lin = TernaryLinear if cfg.quant == "ternary" else nn.Linear
        self.encoder = lin(cfg.d_input, cfg.d_model)
        self.s4_layers = nn.ModuleList([S4D(cfg) for _ in range(cfg.n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(cfg.d_model, eps=cfg.eps) for _ in range(cfg.n_layers)])
        self.dropouts = nn.ModuleList([nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
                                       for _ in range(cfg.n_layers)])
        self.decoder = lin(cfg.d_model, cfg.d_output)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d_in) -> (B, L, H): everything before pooling and the decoder."""
        x = self.encoder(x).transpose(-1, -2)  # (B, H, L)
        for layer, norm, dropout in zip(self.s4_layers, self.norms, self.dropouts):
            z = x
            if self.cfg.prenorm:
                z = norm(z.transpose(-1, -2)).transpose(-1, -2)
            z, _ = layer(z)
            x = dropout(z) + x
            if not self.cfg.prenorm:
                x = norm(x.transpose(-1, -2)).transpose(-1, -2)
        return x.transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if self.cfg.pool:
            h = h.mean(dim=1)
        return self.decoder(h)
