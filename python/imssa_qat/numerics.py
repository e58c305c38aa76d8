"""Rounding rules of the compiler and the chip, and their straight-through fake-quantizers.

The chip (src/interp/crossbar.ts, src/backend/program.ts) rounds signals half away from
zero and the compiler rounds weights with JavaScript's Math.round (ties toward +infinity).
Both are reproduced exactly here for float64 tensors; torch.round (ties to even) is not
used on its own.

Straight-through estimators: the forward value is the rounded (and clipped) one, the
gradient is that of the unrounded expression, and zero where the value was clipped (the
output does not move when a clipped input moves).
"""

from __future__ import annotations

import torch


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """JavaScript Math.round: the nearest integer, ties toward +infinity (exact in float64)."""
    f = torch.floor(x)
    return f + ((x - f) >= 0.5).to(x.dtype)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero (the chip's DAC/ADC rule): sign(x) * round_half_up(|x|)."""
    return torch.sign(x) * round_half_up(torch.abs(x))


def fround(x: torch.Tensor) -> torch.Tensor:
    """Rounds to float32 and back: what storing into the chip's float32 memory does."""
    return x.to(torch.float32).to(x.dtype)


def ste(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """`value` forward, the gradient of `surrogate` backward."""
    return surrogate + (value - surrogate).detach()


def quantize_code(t: torch.Tensor, max_code: int, train: bool) -> torch.Tensor:
    """clamp(round(t), -max_code, max_code) for t already in code units.

    train=False: round half away from zero, exactly the chip's rule (float64 tensors).
    train=True: a clipped straight-through estimator (gradient 1 inside the range, 0 where
    clipped) with torch.round; its ties-to-even differ from the chip only on exact ties,
    which float32 training values practically never hit.
    """
    if not train:
        return torch.clamp(round_half_away(t), -max_code, max_code)
    c = torch.clamp(t, -max_code, max_code)
    return c + (torch.round(c) - c).detach()


def weight_levels(w: torch.Tensor, scale: torch.Tensor, max_level: int) -> torch.Tensor:
    """clamp(round_half_up(w / scale), -L, L): the compiler's weight levels (no gradient)."""
    return torch.clamp(round_half_up(w / scale), -max_level, max_level)


def snap_scale(s: torch.Tensor, bits: int = 20) -> torch.Tensor:
    """s rounded to `bits` significant bits (float64 result).

    A scale with at most 20 significant bits times an integer level |q| <= 15 is exact in
    float32 (24-bit significand), so weights exported as q * s are on the grid in float32
    and float64 alike, and the compiler's first scale candidate max|W| / L gives s back
    exactly when some |q| = L (quant-weights.ts).
    """
    s = s.to(torch.float64)
    m, e = torch.frexp(s)
    return torch.ldexp(torch.round(m * (1 << bits)) / (1 << bits), e)
