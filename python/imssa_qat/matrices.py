"""The crossbar matrices of a model and the compiler's weight quantization, in PyTorch.

Matrices are in crossbar orientation (rows = inputs, columns = outputs) and stored as
their structural entries (COO, the entries the compiler's block matrices hold):

- dense (linear / 1x1 Conv1d): every (i, j), W[i][j] = weight[j, i];
- S4D (src/passes/lower-s4d.ts, layout imssa.s4d-fused.v1), H channels, M modes,
  mode k = h*M + m, S = 2HM:
      W[2k][2k] = Re dA   W[2k][2k+1] = Im dA   W[2k+1][2k] = -Im dA   W[2k+1][2k+1] = Re dA
      W[S+h][2k] = Re dB c_k  W[S+h][2k+1] = Im dB c_k
      W[2k][S+h] = 2p / c_k   W[2k+1][S+h] = -2q / c_k        (p + iq = C dA)
      W[S+h][S+h] = 2 sum_m Re(C dB) + D_h
  with c_k the configuration's stateScale (src/passes/scale-states.ts, powers of two),
  and, in the residual recurrence form (s4d.recurrence = "residual", src/passes/residual.ts),
  Re dA - 1 instead of Re dA on the diagonal (the graph's add op adds the previous state),
  with the discretization of src/common/s4d-math.ts written with the same float64 operations
  (exp/cos/sin/expm1, Smith's complex division), so the values agree with the compiler's to
  the last bit up to differences between the math libraries' exp/sin/cos.

Weight quantization (src/passes/quant-weights.ts, quant-s4d.ts): per-column scales with the
exact-grid candidates, levels with Math.round, and the S4D stability repair.
"""

from __future__ import annotations

import hashlib
import math
from typing import List, Mapping, Optional, Tuple

import numpy as np
import torch

from .numerics import round_half_up, weight_levels

F64 = torch.float64


# ---- structure -----------------------------------------------------------------------------

class MatrixSpec:
    """Structural entries of one matmul: rows[k], cols[k] (LongTensors)."""

    kind = "?"

    def __init__(self, n_rows: int, n_cols: int, rows: torch.Tensor, cols: torch.Tensor):
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.rows = rows
        self.cols = cols

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def values(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class DenseSpec(MatrixSpec):
    kind = "dense"

    def __init__(self, matmul: Mapping):
        p = matmul["params"]
        self.weight = p["weight"]
        self.bias = p.get("bias")
        R, C = matmul["rows"], matmul["cols"]
        i = torch.arange(R).repeat_interleave(C)
        j = torch.arange(C).repeat(R)
        super().__init__(R, C, i, j)

    def values(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        w = params[self.weight].to(F64)
        w = w.reshape(self.n_cols, self.n_rows)  # [out, in] (a Conv1d's trailing 1 dropped)
        return w.t().reshape(-1)


class S4DSpec(MatrixSpec):
    kind = "s4d"

    def __init__(self, matmul: Mapping):
        info = matmul["s4d"]
        p = matmul["params"]
        self.names = p
        self.H, self.M = int(info["channels"]), int(info["modes"])
        self.disc = info["discretization"] or "zoh"
        self.timescale = p.get("timescale", "log_dt")
        H, M = self.H, self.M
        S = 2 * H * M
        self.S = S
        k = torch.arange(H * M)
        h = k // M
        base = 2 * k
        # dA entries, per mode [re->re, re->im, im->re, im->im]
        a_rows = torch.stack([base, base, base + 1, base + 1], 1).reshape(-1)
        a_cols = torch.stack([base, base + 1, base, base + 1], 1).reshape(-1)
        b_rows = torch.stack([S + h, S + h], 1).reshape(-1)
        b_cols = torch.stack([base, base + 1], 1).reshape(-1)
        c_rows = torch.stack([base, base + 1], 1).reshape(-1)
        c_cols = torch.stack([S + h, S + h], 1).reshape(-1)
        d = torch.arange(H)
        rows = torch.cat([a_rows, b_rows, c_rows, S + d])
        cols = torch.cat([a_cols, b_cols, c_cols, S + d])
        super().__init__(S + H, S + H, rows, cols)
        self.n_modes = H * M
        # per-mode state scale of src/passes/scale-states.ts (powers of two; absent: unscaled)
        # residual recurrence form: the state block holds dA - I (absent: direct form)
        self.residual = info.get("recurrence") == "residual"
        scale = info.get("stateScale")
        self.state_scale = torch.tensor(scale if scale is not None else [1.0] * (H * M), dtype=F64).reshape(H, M)

    def discretize(self, params: Mapping[str, torch.Tensor]):
        """(ar, ai, br, bi) [H, M] float64, as src/common/s4d-math.ts computes them."""
        H, M = self.H, self.M
        ts = params[self.names["logDt"]].to(F64).reshape(H, 1)
        dt = torch.exp(ts) if self.timescale == "log_dt" else ts
        Ar = -torch.exp(params[self.names["logAReal"]].to(F64).reshape(H, M))
        Ai = params[self.names["AImag"]].to(F64).reshape(H, M)
        if self.names.get("B"):
            Bt = params[self.names["B"]].to(F64).reshape(H, M, 2)
            Br, Bi = Bt[..., 0], Bt[..., 1]
        else:
            Br, Bi = None, None
        zr, zi = Ar * dt, Ai * dt
        if self.disc == "zoh":
            m = torch.exp(zr)
            ar, ai = m * torch.cos(zi), m * torch.sin(zi)
            s = torch.sin(zi / 2)
            er = torch.expm1(zr) * torch.cos(zi) - 2 * s * s
            ei = torch.exp(zr) * torch.sin(zi)
            qr, qi = _cdiv(er, ei, Ar, Ai)
            if Br is not None:
                qr, qi = Br * qr - Bi * qi, Br * qi + Bi * qr
            zero_a = (Ar == 0) & (Ai == 0)
            if bool(zero_a.any()):
                b0r, b0i = (Br, Bi) if Br is not None else (torch.ones_like(Ar), torch.zeros_like(Ar))
                qr = torch.where(zero_a, b0r * dt, qr)
                qi = torch.where(zero_a, b0i * dt, qi)
            br, bi = qr, qi
        else:
            dr, di = 1 - zr / 2, -zi / 2
            ar, ai = _cdiv(1 + zr / 2, zi / 2, dr, di)
            if Br is not None:
                nr, ni = Br * dt, Bi * dt
            else:
                nr, ni = dt.expand(H, M), torch.zeros_like(zr)
            br, bi = _cdiv(nr, ni, dr, di)
        return ar, ai, br, bi

    def values(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        H, M = self.H, self.M
        ar, ai, br, bi = self.discretize(params)
        C = params[self.names["C"]].to(F64).reshape(H, M, 2)
        cr, ci = C[..., 0], C[..., 1]
        D = params[self.names["D"]].to(F64).reshape(H)
        # residual form: Re dA - 1 in float64, the compiler's W[i][i] += -1 (same IEEE operation)
        ad = ar - 1 if self.residual else ar
        a = torch.stack([ad, ai, -ai, ad], -1).reshape(-1)
        # state scaling x~ = c x: dB * c, C / c (exact, c a power of two); the D entry uses the unscaled products
        sc = self.state_scale
        b = torch.stack([br * sc, bi * sc], -1).reshape(-1)
        p = cr * ar - ci * ai
        q = cr * ai + ci * ar
        c = torch.stack([2 * p / sc, -2 * q / sc], -1).reshape(-1)
        # 2 Re(sum_m C dB) + D, summed over m in order like the compiler
        cdb = torch.zeros(H, dtype=F64)
        for m in range(M):
            cdb = cdb + (cr[:, m] * br[:, m] - ci[:, m] * bi[:, m])
        return torch.cat([a, b, c, 2 * cdb + D])

    def block_slices(self) -> Tuple[slice, ...]:
        """Entry ranges of the dA blocks, B row, C column and D entries."""
        n = self.n_modes
        return slice(0, 4 * n), slice(4 * n, 6 * n), slice(6 * n, 8 * n), slice(8 * n, 8 * n + self.H)


def _cdiv(ar, ai, br, bi):
    """(ar + i ai) / (br + i bi) by Smith's algorithm (src/common/complex.ts cdiv)."""
    first = br.abs() >= bi.abs()
    one = torch.ones_like(br)
    # each branch with a harmless denominator where it is not taken (no inf/nan in gradients)
    br1 = torch.where(first, br, one)
    bi2 = torch.where(first, one, bi)
    r1 = bi / br1
    den1 = br1 + bi * r1
    re1, im1 = (ar + ai * r1) / den1, (ai - ar * r1) / den1
    r2 = br / bi2
    den2 = br * r2 + bi2
    re2, im2 = (ar * r2 + ai) / den2, (ai * r2 - ar) / den2
    return torch.where(first, re1, re2), torch.where(first, im1, im2)


def matrix_spec(matmul: Mapping) -> MatrixSpec:
    if "params" not in matmul:
        raise ValueError(f"matmul {matmul['name']} ({matmul.get('layer')}) has no parameter names in the configuration")
    if matmul["origin"] == "s4d":
        return S4DSpec(matmul)
    return DenseSpec(matmul)


# ---- per-column scales (quant-weights.ts) ---------------------------------------------------

def _scatter(values: torch.Tensor, index: torch.Tensor, n: int, reduce: str, init: float) -> torch.Tensor:
    out = torch.full((n,), init, dtype=values.dtype)
    return out.scatter_reduce(0, index, values, reduce=reduce, include_self=True)


def compiler_column_scales(w: torch.Tensor, cols: torch.Tensor, n_cols: int, L: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The compiler's per-column scales of the entries `w` (float64, no gradient).

    Returns (scales [n_cols], exact [n_cols] bool: the column is on a level grid).
    """
    w = w.detach().to(F64)
    a = w.abs()
    inf = float("inf")
    max_abs = _scatter(a, cols, n_cols, "amax", 0.0)
    min_nz = _scatter(torch.where(a > 0, a, torch.full_like(a, inf)), cols, n_cols, "amin", inf)
    nz = a > 0
    # every magnitude an integer multiple of the smallest one?
    r = a / min_nz[cols]
    k = round_half_up(r)
    bad = nz & ((r - k).abs() > 1e-9 * k)
    on_grid = _scatter(bad.to(F64), cols, n_cols, "amax", 0.0) == 0
    full = max_abs / L
    q_min = round_half_up(min_nz / full)
    cand2 = torch.where(q_min > 0, min_nz / q_min, torch.full_like(full, float("nan")))
    k_max = round_half_up(max_abs / min_nz)
    grid_ok = on_grid & (k_max <= L)
    cand3 = torch.where(grid_ok, min_nz / torch.floor(L / k_max), torch.full_like(full, float("nan")))
    cand4 = torch.where(grid_ok, min_nz, torch.full_like(full, float("nan")))
    cands = [full, cand2, cand3, cand4]
    scales = full.clone()
    chosen = torch.zeros(n_cols, dtype=torch.bool)
    for c in cands:
        s = c[cols]
        q = round_half_up(w / s)
        ok_entry = ~nz | ((q.abs() <= L) & (q * s == w) & ~torch.isnan(s))
        ok = (_scatter((~ok_entry).to(F64), cols, n_cols, "amax", 0.0) == 0) & ~torch.isnan(c)
        take = ok & ~chosen
        scales = torch.where(take, c, scales)
        chosen = chosen | take
    zero = max_abs == 0
    scales = torch.where(zero, torch.ones_like(scales), scales)
    return scales, chosen | zero


# ---- S4D stability repair (quant-s4d.ts) ------------------------------------------------------

def spectral_radius2(a: float, b: float, c: float, d: float) -> float:
    half = (a + d) / 2
    det = a * d - b * c
    disc = half * half - det
    if disc < 0:
        return math.sqrt(det)
    return abs(half) + math.sqrt(disc)


def _radius_t(a, b, c, d):
    half = (a + d) / 2
    det = a * d - b * c
    disc = half * half - det
    return torch.where(disc < 0, torch.sqrt(det.clamp(min=0)), half.abs() + torch.sqrt(disc.clamp(min=0)))


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def repair_levels(levels: List[float], scale: List[float], target: List[float]) -> Tuple[List[float], int, float]:
    """quant-s4d.ts repairLevels: fewest steps toward zero to radius < 1, least error, first in order."""
    mag = [abs(v) for v in levels]
    dirs = [_sign(v) for v in levels]
    total = int(sum(mag))
    for k in range(1, total + 1):
        best = None
        best_err = math.inf
        best_r = math.nan
        for d0 in range(0, int(min(k, mag[0])) + 1):
            for d1 in range(0, int(min(k - d0, mag[1])) + 1):
                for d2 in range(0, int(min(k - d0 - d1, mag[2])) + 1):
                    d3 = k - d0 - d1 - d2
                    if d3 > mag[3]:
                        continue
                    cand = [levels[0] - dirs[0] * d0, levels[1] - dirs[1] * d1,
                            levels[2] - dirs[2] * d2, levels[3] - dirs[3] * d3]
                    w = [cand[e] * scale[e] for e in range(4)]
                    r = spectral_radius2(w[0], w[1], w[2], w[3])
                    if not (r < 1):
                        continue
                    err = (w[0] - target[0]) ** 2 + (w[1] - target[1]) ** 2 + (w[2] - target[2]) ** 2 + (w[3] - target[3]) ** 2
                    if err < best_err:
                        best_err, best, best_r = err, cand, r
        if best is not None:
            return best, k, best_r
    raise RuntimeError("S4D mode repair found no stable block")


def repair_levels_residual(levels: List[float], scale: List[float], target: List[float], L: int,
                           max_steps: int) -> Optional[Tuple[List[float], int, float]]:
    """quant-s4d.ts repairResidualLevels: the block is I + q*s; single-level steps in either
    direction with |level| <= L, fewest first, least error, first in the order d0 = -k..k,
    d1 = -(k-|d0|).., d2 = .., d3 = -r then +r."""
    for k in range(1, max_steps + 1):
        best = None
        best_err = math.inf
        best_r = math.nan

        def visit(e: int, left: int, d: List[int]):
            nonlocal best, best_err, best_r
            if e == 3:
                for last in ([0] if left == 0 else [-left, left]):
                    dd = d + [last]
                    cand = [levels[i] + dd[i] for i in range(4)]
                    if any(abs(c) > L for c in cand):
                        continue
                    w = [cand[i] * scale[i] for i in range(4)]
                    r = spectral_radius2(1 + w[0], w[1], w[2], 1 + w[3])
                    if not (r < 1):
                        continue
                    err = (w[0] - target[0]) ** 2 + (w[1] - target[1]) ** 2 + (w[2] - target[2]) ** 2 + (w[3] - target[3]) ** 2
                    if err < best_err:
                        best_err, best, best_r = err, cand, r
                return
            for v in range(-left, left + 1):
                visit(e + 1, left - abs(v), d + [v])

        visit(0, k, [])
        if best is not None:
            return best, k, best_r
    return None


def residual_fallback(levels: List[float], scale: List[float], L: int) -> Optional[int]:
    """quant-s4d.ts residualFallback: steps to the diagonal block with levels nearest -1/s, or None."""
    l0 = max(-L, min(L, float(round_half_up(torch.tensor(-1 / scale[0], dtype=F64)))))
    l3 = max(-L, min(L, float(round_half_up(torch.tensor(-1 / scale[3], dtype=F64)))))
    if not (spectral_radius2(1 + l0 * scale[0], 0, 0, 1 + l3 * scale[3]) < 1):
        return None
    return int(abs(l0 - levels[0]) + abs(levels[1]) + abs(levels[2]) + abs(l3 - levels[3]))


def repair_s4d(spec: S4DSpec, w: torch.Tensor, q: torch.Tensor, scales: torch.Tensor, L: int = 0):
    """Applies the stability repair to the levels q (float64 [nnz], modified copy).

    Returns (q, repairs) with repairs a list of dicts {mode, roundedLevels, levels}.
    Residual form: the blocks are I + entries, repaired by repair_levels_residual (needs L).
    """
    n = spec.n_modes
    f = w.detach()[: 4 * n].reshape(n, 4)
    lv = q[: 4 * n].reshape(n, 4)
    cols = spec.cols[: 4 * n].reshape(n, 4)
    s = scales[cols]
    eye = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=F64) if spec.residual else torch.zeros(4, dtype=F64)
    fi = f + eye
    f_rad = _radius_t(fi[:, 0], fi[:, 1], fi[:, 2], fi[:, 3])
    w_q = lv * s + eye
    q_rad = _radius_t(w_q[:, 0], w_q[:, 1], w_q[:, 2], w_q[:, 3])
    # the exact (scalar) rule decides; the tensor radii only preselect candidates
    maybe = torch.nonzero((f_rad < 1 + 1e-9) & ~(q_rad < 1 - 1e-9)).reshape(-1).tolist()
    out = q.clone()
    repairs = []
    for mode in maybe:
        fv = [float(x) for x in f[mode]]
        qv = [float(x) for x in lv[mode]]
        sv = [float(x) for x in s[mode]]
        one = 1.0 if spec.residual else 0.0
        if not (spectral_radius2(one + fv[0], fv[1], fv[2], one + fv[3]) < 1):
            continue
        wq = [qv[e] * sv[e] for e in range(4)]
        if spectral_radius2(one + wq[0], wq[1], wq[2], one + wq[3]) < 1:
            continue
        if spec.residual:
            bound = residual_fallback(qv, sv, L)
            got = None if bound is None else repair_levels_residual(qv, sv, fv, L, bound)
            if got is None:
                raise RuntimeError(f"S4D mode {mode} cannot be kept stable in the residual recurrence form")
            fix = got[0]
        else:
            fix, _, _ = repair_levels(qv, sv, fv)
        out[4 * mode: 4 * mode + 4] = torch.tensor(fix, dtype=out.dtype)
        repairs.append({"mode": mode, "roundedLevels": [int(x) for x in qv], "levels": [int(x) for x in fix]})
    return out, repairs


def unstable_in_float(spec: S4DSpec, w: torch.Tensor) -> int:
    n = spec.n_modes
    f = w.detach()[: 4 * n].reshape(n, 4).tolist()
    one = 1.0 if spec.residual else 0.0
    return sum(1 for v in f if not (spectral_radius2(one + v[0], v[1], v[2], one + v[3]) < 1))


# ---- levels --------------------------------------------------------------------------------

def quantize_entries(spec: MatrixSpec, w: torch.Tensor, L: int, scales: Optional[torch.Tensor] = None,
                     repairs: Optional[List[dict]] = None):
    """The compiler's levels of entries w (float64): (levels [nnz], scales [n_cols], repairs).

    scales=None computes them with the compiler's policy; otherwise the given ones are used.
    S4D: repairs=None applies the stability rule; a list (a configuration's) sets those
    modes' levels as given and leaves every other mode as rounded.
    """
    if scales is None:
        scales, _ = compiler_column_scales(w, spec.cols, spec.n_cols, L)
    q = weight_levels(w.detach().to(F64), scales[spec.cols], L)
    if isinstance(spec, S4DSpec):
        if repairs is None:
            q, repairs = repair_s4d(spec, w, q, scales, L)
        else:
            q = q.clone()
            for r in repairs:
                k = int(r["mode"])
                q[4 * k: 4 * k + 4] = torch.tensor([float(v) for v in r["levels"]], dtype=q.dtype)
    return q, scales, list(repairs or [])


def levels_digest(spec: MatrixSpec, q: torch.Tensor) -> Tuple[int, str]:
    """(nonzeros, sha256) of the (row, col, level) int32 LE triples in row-major order."""
    nz = q != 0
    rows, cols, lv = spec.rows[nz], spec.cols[nz], q[nz]
    order = torch.argsort(rows * spec.n_cols + cols)
    trip = torch.stack([rows[order], cols[order], lv[order].to(torch.int64)], 1).numpy().astype("<i4")
    return int(nz.sum()), hashlib.sha256(np.ascontiguousarray(trip).tobytes()).hexdigest()
