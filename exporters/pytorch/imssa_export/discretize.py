"""Discretization of the diagonal S4D system (written from the formulas, see docs/ONNX.md).

Continuous system per channel h and mode n:
    A = -exp(log_A_real) + i * A_imag,   dt = exp(log_dt[h]),   B = 1 (unless given)
ZOH:       dA = exp(dt*A),                       dB = B * (exp(dt*A) - 1) / A
Bilinear:  dA = (1 + dt*A/2) / (1 - dt*A/2),     dB = B * dt / (1 - dt*A/2)
Recurrence (new state feeds the output):
    x_k = dA * x_{k-1} + dB * u_k,    y_k = 2 * Re(sum_n C_n x_k,n) + D * u_k
Convolution form of the same map: y = K * u + D u with K[l] = 2 Re(sum_n C_n dB_n dA_n^l).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch


def continuous_A(log_A_real: torch.Tensor, A_imag: torch.Tensor) -> torch.Tensor:
    """A = -exp(log_A_real) + i*A_imag, complex of the inputs' precision."""
    return torch.complex(-torch.exp(log_A_real), A_imag)


def discretize(log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor,
               disc: str, B: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (dA, dB), complex [H, M]. Differentiable; precision follows the inputs.

    log_dt [H], log_A_real [H, M], A_imag [H, M], B complex [H, M] or None (= 1).
    """
    A = continuous_A(log_A_real, A_imag)
    dtA = A * torch.exp(log_dt).unsqueeze(-1)
    if disc == "zoh":
        dA = torch.exp(dtA)
        dB = (dA - 1.0) / A
    elif disc == "bilinear":
        den = 1.0 - dtA / 2.0
        dA = (1.0 + dtA / 2.0) / den
        dB = torch.exp(log_dt).unsqueeze(-1) / den
    else:
        raise ValueError(f"unknown discretization {disc!r}")
    if B is not None:
        dB = dB * B
    return dA, dB


def ssm_kernel(log_dt: torch.Tensor, C: torch.Tensor, log_A_real: torch.Tensor,
               A_imag: torch.Tensor, L: int, disc: str) -> torch.Tensor:
    """Convolution kernel K [H, L], K[h, l] = 2 Re(sum_n C dB dA^l). C is complex [H, M]."""
    dA, dB = discretize(log_dt, log_A_real, A_imag, disc)
    # dA^l through exp(l * log dA): the principal log is exact up to 2*pi*i, which exp undoes.
    l = torch.arange(L, device=dA.device, dtype=log_dt.dtype)
    powers = torch.exp(torch.log(dA).unsqueeze(-1) * l)  # [H, M, L]
    return 2.0 * torch.einsum("hm,hml->hl", C * dB, powers).real


def step_constants(sd, prefix: str, disc: str):
    """Float64 constants of one layer's recurrence from a state_dict.

    Returns dict with a_re, a_im, b_re, b_im, c_re, c_im [H, M] and d [H] (all float64).
    """
    f64 = lambda name: sd[f"{prefix}{name}"].detach().to(torch.float64).cpu()
    log_dt = f64("kernel.log_dt").reshape(-1)
    H = log_dt.shape[0]
    log_A_real = f64("kernel.log_A_real").reshape(H, -1)
    A_imag = f64("kernel.A_imag").reshape(H, -1)
    C = f64("kernel.C").reshape(H, -1, 2)
    B = None
    if f"{prefix}kernel.B" in sd:
        Bt = f64("kernel.B").reshape(H, -1, 2)
        B = torch.complex(Bt[..., 0], Bt[..., 1])
    dA, dB = discretize(log_dt, log_A_real, A_imag, disc, B)
    return {
        "a_re": dA.real, "a_im": dA.imag,
        "b_re": dB.real, "b_im": dB.imag,
        "c_re": C[..., 0], "c_im": C[..., 1],
        "d": f64("D").reshape(H),
    }
