"""One crossbar matmul as the chip computes it: pieces, DAC, integer MVM, ADC, partial sums.

Per matmul of the configuration, every structural weight entry (i, j) belongs to the piece
that holds row i and column j; a *slot* is one (piece, column) pair, i.e. one ADC reading.
Per MVM (src/backend/program.ts, src/interp/crossbar.ts):

    code_i = clamp(round_half_away(x_i / dacRange * D), -D, D)
    s      = sum over the slot's entries of code_i * q_ij              (exact integers)
    v      = s * slotColScale / D
    y      = clamp(round_half_away(v / slotOutRange * Q), -Q, Q) * slotOutRange / Q
    column = the slots' y added digitally (order and rounding: MatmulSim._accumulate_exact)

The integer sums run as one batched matmul over the matrix's connected components (an S4D
layer: one per channel), padded to the largest; no [batch, nonzeros] tensor is formed.

Modes (`prepare(..., mode)`):
    exact      float64, the configuration's scales and image values, float32 rounding
               wherever the chip stores a value: bit-for-bit the interpreter (noise off)
    train      float32, straight-through estimators, scales from the compiler's policy on
               the current weights, ranges from the model's current calibration
    calibrate  float64, dequantized weights q * s, no DAC/ADC: the compiler's calibration run
    float      float64, float weights, no quantization at all
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .config import QatConfig
from .matrices import MatrixSpec, compiler_column_scales, levels_digest, matrix_spec, quantize_entries
from .noise import NoiseModel
from .numerics import fround, quantize_code, snap_scale, ste, weight_levels

warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")

F64 = torch.float64
F32 = torch.float32
MODES = ("exact", "train", "calibrate", "float")


class QuantError(RuntimeError):
    pass


class MatmulSim:
    def __init__(self, matmul: Mapping[str, Any], config: QatConfig):
        self.m = matmul
        self.name = matmul["name"]
        self.layer = matmul.get("layer", matmul["name"])
        self.config = config
        self.spec: MatrixSpec = matrix_spec(matmul)
        self.L = int(matmul["maxLevel"])
        self.n_cols = int(matmul["cols"])
        self.n_rows = int(matmul["rows"])
        self.bias_name = matmul["params"].get("bias") if matmul["params"]["kind"] == "dense" else None
        self._build_slots()
        self._build_components()
        self._build_accumulation()
        self.cfg_scales = torch.tensor(matmul["colScale"], dtype=F64)
        self.cfg_repairs = matmul["s4d"]["repairs"] if "s4d" in matmul else None
        self.last_repairs: List[dict] = []

    # ---- structure --------------------------------------------------------------------------

    def _build_slots(self) -> None:
        pieces = self.m["pieces"]
        rows = self.spec.rows.tolist()
        cols = self.spec.cols.tolist()
        slot_index: Dict[Any, int] = {}
        slot_col: List[int] = []
        slot_piece: List[int] = []
        slot_pos: List[int] = []
        col_pieces: Dict[int, List[Tuple[int, int]]] = defaultdict(list)
        rowsets = [set(p["rows"]) for p in pieces]
        for p, piece in enumerate(pieces):
            for b, j in enumerate(piece["cols"]):
                slot_index[(p, b)] = len(slot_col)
                slot_col.append(j)
                slot_piece.append(p)
                slot_pos.append(b)
                col_pieces[j].append((p, b))
        entry_slot = []
        virtual = 0
        for i, j in zip(rows, cols):
            key = None
            for p, b in col_pieces.get(j, ()):
                if i in rowsets[p]:
                    key = (p, b)
                    break
            if key is None:
                # An entry no piece holds (level 0 when compiled): give its column a virtual slot.
                key = ("virtual", j)
                if key not in slot_index:
                    slot_index[key] = len(slot_col)
                    slot_col.append(j)
                    slot_piece.append(-1)
                    slot_pos.append(-1)
                    virtual += 1
            entry_slot.append(slot_index[key])
        self.n_slots = len(slot_col)
        self.n_real_slots = self.n_slots - virtual
        self.entry_slot = torch.tensor(entry_slot, dtype=torch.long)
        self.slot_col = torch.tensor(slot_col, dtype=torch.long)
        self.slot_piece = torch.tensor(slot_piece, dtype=torch.long)
        nan = float("nan")
        cs, orng, part = [], [], []
        for p, b in zip(slot_piece, slot_pos):
            if p < 0:
                cs.append(nan), orng.append(nan), part.append(False)
            else:
                cs.append(pieces[p]["colScale"][b]), orng.append(pieces[p]["outRange"][b]), part.append(pieces[p]["partial"][b])
        self.cfg_slot_colscale = torch.tensor(cs, dtype=F64)
        self.cfg_slot_outrange = torch.tensor(orng, dtype=F64)
        self.cfg_slot_partial = torch.tensor(part, dtype=torch.bool)
        dacs = {float(p["dacRange"]) for p in pieces}
        if len(dacs) > 1:
            raise QuantError(f"matmul {self.name}: pieces have different DAC ranges {sorted(dacs)}")
        self.cfg_dac_range = dacs.pop() if dacs else float(self.m["inRange"])
        # piece -> rows incidence, for read noise (sum of code^2 over every row a piece drives)
        pr_rows, pr_piece = [], []
        for p, piece in enumerate(pieces):
            pr_rows += piece["rows"]
            pr_piece += [p] * len(piece["rows"])
        self.n_pieces = len(pieces)
        self.piece_rows = torch.sparse_coo_tensor(torch.tensor([pr_piece, pr_rows], dtype=torch.long).reshape(2, -1),
                                                  torch.ones(len(pr_rows), dtype=F64), (max(1, self.n_pieces), self.n_rows)).coalesce()

    def _build_components(self) -> None:
        """Connected components of the entries over rows + slots; batched-matmul layout."""
        R = self.n_rows
        parent = list(range(R + self.n_slots))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        rows = self.spec.rows.tolist()
        slots = self.entry_slot.tolist()
        for i, s in zip(rows, slots):
            a, b = find(i), find(R + s)
            if a != b:
                parent[a] = b
        comp_of: Dict[int, int] = {}
        comp_rows: List[List[int]] = []
        comp_slots: List[List[int]] = []

        def comp(node: int) -> int:
            r = find(node)
            if r not in comp_of:
                comp_of[r] = len(comp_rows)
                comp_rows.append([])
                comp_slots.append([])
            return comp_of[r]

        used_rows = sorted(set(rows))
        for i in used_rows:
            comp_rows[comp(i)].append(i)
        for s in range(self.n_slots):
            comp_slots[comp(R + s)].append(s)
        C = len(comp_rows)
        Rmax = max(len(r) for r in comp_rows)
        Kmax = max(len(k) for k in comp_slots)
        row_local = {}
        rows_pad = torch.full((C, Rmax), R, dtype=torch.long)  # R = the appended zero column
        for c, rl in enumerate(comp_rows):
            for r, i in enumerate(rl):
                row_local[i] = r
            rows_pad[c, : len(rl)] = torch.tensor(rl)
        slot_c = torch.empty(self.n_slots, dtype=torch.long)
        slot_k = torch.empty(self.n_slots, dtype=torch.long)
        for c, sl in enumerate(comp_slots):
            for k, s in enumerate(sl):
                slot_c[s], slot_k[s] = c, k
        self.C, self.Rmax, self.Kmax = C, Rmax, Kmax
        self.rows_pad = rows_pad
        self.rows_flat = rows_pad.reshape(-1)
        self.ent_c = slot_c[self.entry_slot]
        self.ent_r = torch.tensor([row_local[i] for i in rows], dtype=torch.long)
        self.ent_k = slot_k[self.entry_slot]
        self.slot_flat = slot_c * Kmax + slot_k
        # Cells a piece programs to level 0 (a row of the piece, a column of the piece, no
        # weight): on a noisy chip their devices sit at gMin and are noisy too.
        pieces = self.m["pieces"]
        cells = torch.zeros(C, Rmax, Kmax, dtype=torch.bool)
        for s in range(self.n_real_slots):
            p = pieces[int(self.slot_piece[s])]
            c, k = int(slot_c[s]), int(slot_k[s])
            local = [row_local[i] for i in p["rows"] if i in row_local and comp_of.get(find(i)) == c]
            if local:
                cells[c, torch.tensor(local), k] = True
        cells[self.ent_c, self.ent_r, self.ent_k] = False
        self.zero_cells = cells if bool(cells.any()) else None

    def _build_accumulation(self) -> None:
        """Per column, the chip's order of adding its slots (exact mode), grouped by pattern."""
        pieces = self.m["pieces"]
        home = int(self.m.get("homeTile", 0))
        per_col: Dict[int, List[Tuple[int, int, int, str]]] = defaultdict(list)
        for s in range(self.n_real_slots):
            p = pieces[int(self.slot_piece[s])]
            tile = int(p["tile"])
            group = -1 if tile == home else tile
            per_col[int(self.slot_col[s])].append((group, int(p["order"]), s, p["accumulate"]))
        patterns: Dict[Tuple, Tuple[List[int], List[List[int]]]] = {}
        for j, lst in per_col.items():
            lst.sort()
            groups: List[List[Tuple[int, str]]] = []
            last = None
            for g, _, s, acc in lst:
                if g != last:
                    groups.append([])
                    last = g
                groups[-1].append((s, acc))
            key = tuple(tuple(acc for _, acc in grp) for grp in groups)
            cols, slots = patterns.setdefault(key, ([], []))
            cols.append(j)
            slots.append([s for grp in groups for s, _ in grp])
        self.patterns = [(key, torch.tensor(c, dtype=torch.long), torch.tensor(s, dtype=torch.long)) for key, (c, s) in patterns.items()]
        written = torch.zeros(self.n_cols, dtype=torch.bool)
        written[list(per_col.keys())] = True
        # columns no piece writes hold just the bias (or zero)
        self.written_cols = None if bool(written.all()) else written

    # ---- weights per forward pass -----------------------------------------------------------

    def prepare(self, params: Mapping[str, torch.Tensor], mode: str, ranges: Optional[Tuple[float, torch.Tensor]] = None,
                noise: Optional[NoiseModel] = None, snap: bool = True) -> Dict[str, Any]:
        """Weights and image values for one forward pass (levels are fixed within it)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        w = self.spec.values(params)
        quant = self.config.quantized and self.L > 0
        prep: Dict[str, Any] = {"mode": mode}
        bias = params[self.bias_name].reshape(-1).to(F64) if self.bias_name else None
        if mode == "float" or not quant:
            vals, prep["levels"] = w, None
        else:
            if mode == "exact":
                # as compiled: the configuration's scales and S4D repairs
                q, scales, repairs = quantize_entries(self.spec, w, self.L, self.cfg_scales, self.cfg_repairs)
            else:
                scales, src = self.deploy_scales(w, snap)
                q, scales, repairs = quantize_entries(self.spec, src, self.L, scales)
            self.last_repairs = repairs
            prep["levels"], prep["scales"] = q, scales
            if mode == "calibrate":
                vals = q * scales[self.spec.cols]
            else:
                vals = ste(q, w / scales[self.spec.cols])  # levels; gradient of w / s
                if noise is not None and noise.active:
                    vals = noise.perturb_levels(vals, self.L)
        dt = F32 if mode == "train" else F64
        Wc = torch.zeros(self.C, self.Rmax, self.Kmax, dtype=dt)
        Wc = Wc.index_put((self.ent_c, self.ent_r, self.ent_k), vals.to(dt))
        if noise is not None and noise.active and quant and mode in ("train", "exact") and self.zero_cells is not None:
            zero = noise.perturb_levels(torch.zeros(self.C, self.Rmax, self.Kmax, dtype=F64), self.L)
            Wc = Wc + (zero * self.zero_cells).to(dt)
        prep["W"] = Wc
        prep["bias"] = None if bias is None else bias.to(dt)
        if mode in ("exact", "train") and quant:
            if mode == "exact":
                prep.update(self._exact_images(prep["levels"]))
            else:
                prep.update(self._train_images(prep["levels"], prep["scales"], ranges))
        return prep

    def _exact_images(self, q: torch.Tensor) -> Dict[str, Any]:
        real = self.entry_slot < self.n_real_slots
        if bool(((q != 0) & ~real).any()):
            bad = int(torch.nonzero((q != 0) & ~real)[0])
            raise QuantError(f"matmul {self.name}: weight W[{int(self.spec.rows[bad])}][{int(self.spec.cols[bad])}] has level "
                             f"{int(q[bad])} but no crossbar piece of the configuration holds it: the weights are not the ones compiled")
        n = self.n_real_slots
        return {"dac": self.cfg_dac_range, "slot_cs": self.cfg_slot_colscale[:n], "slot_or": self.cfg_slot_outrange[:n]}

    def _train_images(self, q: torch.Tensor, scales: torch.Tensor, ranges) -> Dict[str, Any]:
        in_range, out_range = ranges
        w_abs = (q * scales[self.spec.cols]).abs().detach()
        abs_sum = torch.zeros(self.n_slots, dtype=F64).index_add(0, self.entry_slot, w_abs)
        nz = (q != 0).to(F64).detach()
        nz_slot = torch.zeros(self.n_slots, dtype=F64).index_add(0, self.entry_slot, nz)
        nz_col = torch.zeros(self.n_cols, dtype=F64).index_add(0, self.spec.cols, nz)
        partial = (nz_slot != nz_col[self.slot_col]) & (abs_sum > 0)
        full = out_range.to(F64)[self.slot_col]
        slot_or = torch.where(partial, in_range * abs_sum, full)
        slot_cs = scales[self.slot_col] * in_range
        return {"dac": float(in_range), "slot_cs": slot_cs.to(F32), "slot_or": slot_or.to(F32)}

    def deploy_scales(self, w: torch.Tensor, snap: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """(scales, weights) the compiler will see for entries w (float64, no gradient).

        Dense matrices with `snap`: the weights are exported on their level grid q * s with s
        the compiler's scale snapped to 20 significant bits (export.py), and the scales are
        the compiler's choice for those grid weights (which can differ from s, e.g. a column
        with one weight may become level 15 instead of level 1; same weight either way).
        S4D matrices: the compiler's scales of the fused matrix itself.
        """
        w = w.detach().to(F64)
        scales, exact = compiler_column_scales(w, self.spec.cols, self.n_cols, self.L)
        if not (snap and self.spec.kind == "dense"):
            return scales, w
        # columns already on a grid the compiler reproduces stay as they are (idempotent export)
        s1 = torch.where(exact, scales, snap_scale(scales))[self.spec.cols]
        grid = weight_levels(w, s1, self.L) * s1
        scales, _ = compiler_column_scales(grid, self.spec.cols, self.n_cols, self.L)
        return scales, grid

    def levels_digest(self, params: Mapping[str, torch.Tensor], basis: str = "latent") -> Tuple[int, str, List[dict]]:
        """(nonzeros, sha256, repairs) of the levels the configuration's scales give these parameters.

        basis "grid": dense weights as exported on their level grid (export.py), "latent": as they are.
        """
        with torch.no_grad():
            w = self.spec.values(params)
            if self.spec.kind == "dense" and basis == "grid":
                w = self.deploy_scales(w, snap=True)[1]
            q, _, repairs = quantize_entries(self.spec, w, self.L, self.cfg_scales)
        n, h = levels_digest(self.spec, q)
        return n, h, repairs

    def compiler_scales(self, params: Mapping[str, torch.Tensor], snap: bool = False) -> torch.Tensor:
        """The scales the compiler will choose for these parameters (as exported, with `snap`)."""
        with torch.no_grad():
            return self.deploy_scales(self.spec.values(params), snap)[0]

    # ---- one MVM ----------------------------------------------------------------------------

    def _slot_sums(self, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        xz = torch.cat([x, x.new_zeros(B, 1)], 1)
        xc = xz.t().index_select(0, self.rows_flat).reshape(self.C, self.Rmax, B)  # [C, Rmax, B]
        s = torch.bmm(xc.transpose(1, 2), W)  # [C, B, Kmax]
        return s.transpose(0, 1).reshape(B, -1).index_select(1, self.slot_flat)

    def forward(self, x: torch.Tensor, prep: Dict[str, Any], noise: Optional[NoiseModel] = None,
                observe: Optional[Dict[str, Any]] = None) -> torch.Tensor:
        mode = prep["mode"]
        B = x.shape[0]
        bias = prep["bias"]
        quant = prep.get("levels") is not None and mode in ("exact", "train")
        if not quant:
            y_slots = self._slot_sums(x, prep["W"])
            y = x.new_zeros(B, self.n_cols).index_add(1, self.slot_col, y_slots)
            if mode == "exact" and self.config.digital_float32:
                # float crossbars: sums of x * float32(W) are stored in float32 (partial-sum order ignored)
                y = fround(y)
            out = y if bias is None else y + bias
            if observe is not None:
                observe["in"] = max(observe.get("in", 0.0), float(x.detach().abs().max()) if x.numel() else 0.0)
                pre = (out - bias) if bias is not None else out
                a = pre.detach().abs().amax(0)
                observe["out"] = a if "out" not in observe else torch.maximum(observe["out"], a)
            return fround(out) if (mode == "exact" and bias is not None and self.config.digital_float32) else out
        train = mode == "train"
        D, Q = self.config.dac_max, self.config.adc_max
        codes = quantize_code(x / prep["dac"] * D, D, train)
        n = self.n_real_slots if mode == "exact" else self.n_slots
        sums = self._slot_sums(codes, prep["W"])[:, :n]
        v = sums * prep["slot_cs"] / D
        slot_or = prep["slot_or"]
        if noise is not None and noise.active:
            if noise.read_sigma > 0 and self.n_pieces > 0:
                sq = torch.sparse.mm(self.piece_rows, (codes.detach().to(F64) ** 2).t()).t()  # [B, pieces]
                piece = self.slot_piece[:n].clamp(min=0)
                std = noise.read_std(sq[:, piece], self.L).to(v.dtype)
                v = v + std * noise._normal(v.shape, v.dtype) * prep["slot_cs"] / D
            if noise.output_sigma > 0:
                v = v + noise.output_sigma * noise.scale * slot_or * noise._normal(v.shape, v.dtype)
        qa = quantize_code(v / slot_or * Q, Q, train)
        y_slots = qa * slot_or / Q
        if mode == "exact":
            y = self._accumulate_exact(y_slots, B)
            if bias is not None:
                b = fround(bias)
                y = fround(y + b) if self.written_cols is None else torch.where(self.written_cols, fround(y + b), b)
            return y
        y = y_slots.new_zeros(B, self.n_cols).index_add(1, self.slot_col[:n], y_slots)
        return y if bias is None else y + bias

    def _accumulate_exact(self, Y: torch.Tensor, B: int) -> torch.Tensor:
        """Adds each column's slots in the chip's order with the chip's float32 roundings."""
        out = Y.new_zeros(B, self.n_cols)
        for key, cols, slots in self.patterns:
            total = None
            pos = 0
            for group in key:
                s = None
                for acc in group:
                    y = Y[:, slots[:, pos]]
                    pos += 1
                    if s is None:
                        s = fround(y)
                    elif acc == "f64":
                        s = fround(s + y)
                    else:
                        s = fround(s + fround(y))
                total = s if total is None else fround(total + s)
            out[:, cols] = total
        return out
