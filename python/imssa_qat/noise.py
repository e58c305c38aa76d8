"""Device noise for training (noise injection), from the target's noise parameters.

The chip model (docs/NOISE.md, src/noise/) maps a level q in [-L, L] to a differential pair
of conductances between gMin and gMax:
    q > 0: g+ = gMin + q/L (gMax - gMin), g- = gMin;  q < 0: mirrored;  q = 0: both at gMin
and the effective level of a pair is (g+ - g-) * L / (gMax - gMin). Injected here:

- programming: g -> max(0, g + N(0, sigma(g))), sigma(g) = scale * gMax * max(0, c0 + c1 g/gMax + c2 (g/gMax)^2),
  drawn once per forward pass (one programmed chip per batch), for every weight and for the
  level-0 cells of every piece (a piece's rows x its columns; MatmulSim.zero_cells);
- drift: g -> g (t/t0)^-nu for t > t0 with nu ~ N(nu, nuSigma) per device; with
  `compensate` the outputs are rescaled by the mean conductance ratio (global drift
  compensation), so a uniform nu cancels;
- faults: devices stuck at gMin / gMax with the given rates;
- read: per MVM and column, Gaussian with variance sum_i code_i^2 * 2 (sigma * gMax * L/(gMax - gMin))^2
  over every row the piece drives (both devices of every cell, zero cells included);
- output: per MVM and column, N(0, sigma * outRange) added before the ADC.

Not modelled in training: 1/f read noise, IR drop, DAC/ADC offsets and nonlinearity, the
per-crossbar (rather than per-matrix) drift compensation, and cells outside every piece that
an MVM window covers (two pieces driven by one mvm). The interpreter's noise simulation
(docs/NOISE.md) has them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch

DEFAULT_T0 = 20.0
DEFAULT_T = 3600.0


@dataclass
class NoiseModel:
    g_min: float
    g_max: float
    programming: Optional[Dict[str, float]] = None
    read_sigma: float = 0.0
    drift: Optional[Dict[str, Any]] = None
    output_sigma: float = 0.0
    faults: Optional[Dict[str, float]] = None
    scale: float = 1.0
    generator: Optional[torch.Generator] = field(default=None, repr=False)

    @staticmethod
    def from_config(config, scale: float = 1.0, seed: Optional[int] = None) -> "NoiseModel":
        """The target's noise blocks from a QatConfig; `scale` multiplies every sigma."""
        raw = config.raw["target"]
        n = raw.get("noise", {})
        gen = None
        if seed is not None:
            gen = torch.Generator()
            gen.manual_seed(seed)
        return NoiseModel(
            g_min=float(raw["crossbar"]["gMinUs"]), g_max=float(raw["crossbar"]["gMaxUs"]),
            programming=n.get("programming"), read_sigma=float(n.get("read", {}).get("sigma", 0.0)),
            drift=n.get("drift"), output_sigma=float(n.get("output", {}).get("sigma", 0.0)),
            faults=n.get("faults"), scale=scale, generator=gen)

    # ---- helpers --------------------------------------------------------------------------

    def _normal(self, shape, dtype) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=dtype)

    def _uniform(self, shape, dtype) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, dtype=dtype)

    def level_unit(self, L: int) -> float:
        """Levels per microsiemens."""
        return L / (self.g_max - self.g_min)

    # ---- chip (per forward pass) ----------------------------------------------------------

    def perturb_levels(self, q: torch.Tensor, L: int) -> torch.Tensor:
        """Effective levels of the pairs holding q (same shape), one programmed chip."""
        if L <= 0:
            return torch.zeros_like(q)
        dt = q.dtype
        span = self.g_max - self.g_min
        qd = q.detach()
        gp = torch.where(qd > 0, self.g_min + qd / L * span, torch.full_like(qd, self.g_min))
        gm = torch.where(qd < 0, self.g_min - qd / L * span, torch.full_like(qd, self.g_min))
        g = torch.stack([gp, gm])
        target = g.clone()
        p = self.programming
        if p is not None:
            c0, c1, c2 = float(p.get("c0", 0)), float(p.get("c1", 0)), float(p.get("c2", 0))
            s = float(p.get("scale", 1.0)) * self.scale
            x = g / self.g_max
            sigma = s * self.g_max * torch.clamp(c0 + c1 * x + c2 * x * x, min=0)
            g = torch.clamp(g + sigma * self._normal(g.shape, dt), min=0)
        f = self.faults
        if f is not None and (f.get("stuckAtGMin", 0) > 0 or f.get("stuckAtGMax", 0) > 0):
            u = self._uniform(g.shape, dt)
            lo, hi = float(f.get("stuckAtGMin", 0)), float(f.get("stuckAtGMax", 0))
            g = torch.where(u < lo, torch.full_like(g, self.g_min), torch.where(u < lo + hi, torch.full_like(g, self.g_max), g))
        d = self.drift
        if d is not None:
            t, t0 = float(d.get("tSeconds", DEFAULT_T)), float(d.get("t0Seconds", DEFAULT_T0))
            nu, nu_sigma = float(d.get("nu", 0)), float(d.get("nuSigma", 0))
            if t > t0 and (nu > 0 or nu_sigma > 0):
                nus = torch.clamp(nu + nu_sigma * self._normal(g.shape, dt), min=0) if nu_sigma > 0 else torch.full_like(g, nu)
                factor = torch.pow(torch.tensor(t / t0, dtype=dt), -nus)
                drifted = g * factor
                if d.get("compensate", False):
                    drifted = drifted * (g.sum() / drifted.sum().clamp(min=1e-30))
                g = drifted
        delta = (g[0] - g[1]) - (target[0] - target[1])
        return q + delta * self.level_unit(L)

    # ---- per MVM --------------------------------------------------------------------------

    def read_std(self, row_code_sq: torch.Tensor, L: int) -> torch.Tensor:
        """Std of the analog column sum (code x level units) from sum_i code_i^2 over the piece's rows."""
        if self.read_sigma <= 0:
            return torch.zeros_like(row_code_sq)
        cell = self.read_sigma * self.scale * self.g_max * self.level_unit(L)
        return torch.sqrt(2 * row_code_sq) * cell

    @property
    def active(self) -> bool:
        p = self.programming or {}
        return bool(self.read_sigma > 0 or self.output_sigma > 0 or any(float(p.get(k, 0)) != 0 for k in ("c0", "c1", "c2"))
                    or (self.drift and float(self.drift.get("nuSigma", 0)) > 0)
                    or (self.faults and (self.faults.get("stuckAtGMin", 0) > 0 or self.faults.get("stuckAtGMax", 0) > 0)))
