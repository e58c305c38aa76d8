"""QATModel: a state-spaces S4D model (imssa_export.S4Model) run the way the chip runs it.

The configuration's graph (the compiled program's lowered ops) is executed step by step
over the sequence with the model's own parameters: crossbar matmuls through MatmulSim
(pieces, DAC, levels, ADC, partial sums), the rest as the vector unit computes it. The
trainable parameters stay those of the wrapped model, under their state-spaces names, so
the usual optimizer, checkpoint and exporter code keeps working.

    qat = QATModel(model, "qat.json")      # mode "train": float32, straight-through
    qat.recalibrate(calib_inputs)          # ranges as the compiler will calibrate them
    loss = F.cross_entropy(qat(x), y)      # x [B, T, d_in]
    qat.set_mode("exact")                  # float64, bit-for-bit the interpreter (noise off)

Modes: see crossbar.py. In "exact" mode every value the chip stores is rounded to float32
exactly where the interpreter rounds it (src/interp/vector.ts, crossbar.ts).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import QatConfig
from .crossbar import F32, F64, MODES, MatmulSim, QuantError
from .matrices import quantize_entries
from .noise import NoiseModel
from .numerics import fround

SQRT1_2 = math.sqrt(0.5)


def _gelu64(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU in float64 (src/common/erf.ts: erf for x >= 0, erfc for x < 0)."""
    z = x * SQRT1_2
    return torch.where(x >= 0, 0.5 * x * (1 + torch.erf(z)), 0.5 * x * torch.erfc(-z))


def _sigmoid64(x: torch.Tensor) -> torch.Tensor:
    """src/interp/math.ts sigmoid: 1/(1+exp(-x)) for x >= 0, e/(1+e) with e = exp(x) below."""
    pos = 1 / (1 + torch.exp(-x.clamp(min=0)))
    e = torch.exp(x.clamp(max=0))
    return torch.where(x >= 0, pos, e / (1 + e))


class QATModel(nn.Module):
    def __init__(self, model: nn.Module, config: Union[str, Mapping[str, Any], QatConfig], mode: str = "train",
                 noise: Optional[NoiseModel] = None, snap: bool = True, extra: Optional[Mapping[str, torch.Tensor]] = None):
        super().__init__()
        self.model = model
        # tensors the compiled model has but the wrapped module does not (e.g. s4_layers.i.kernel.B
        # from scale_states): fixed, used by name like the module's parameters, exported with them
        self.extra: Dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in (extra or {}).items()}
        # dense scales snapped to 20 significant bits (train/calibrate modes): the scales the
        # exported grid weights will compile to (export.py)
        self.snap = snap
        self.config = config if isinstance(config, QatConfig) else QatConfig(config)
        self.sims = [MatmulSim(m, self.config) for m in self.config.matmuls]
        self.mode = mode
        self.noise = noise
        # current calibration (train mode): per matmul (inRange, outRange[cols]); starts at the compiled one
        self.ranges: List[Tuple[float, torch.Tensor]] = [
            (float(m["inRange"]), torch.tensor(m["outRange"], dtype=F64)) for m in self.config.matmuls]
        self._outputs = self.config.raw["model"]["outputs"]

    def set_mode(self, mode: str) -> "QATModel":
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        return self

    # ---- parameters ----------------------------------------------------------------------

    def params(self) -> Dict[str, torch.Tensor]:
        p = dict(self.model.named_parameters())
        for k, v in self.model.named_buffers():
            p.setdefault(k, v)
        for k, v in self.extra.items():
            p.setdefault(k, v)
        return p

    # ---- running the graph ---------------------------------------------------------------

    def forward(self, x: torch.Tensor, mode: Optional[str] = None) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """x [B, T, d_in] -> the model output(s): [B, d] for a final output, [B, T, d] for a step output.

        With one model output the tensor itself, otherwise a dict by output name.
        """
        outs = self.run(x, mode or self.mode)
        return outs[self._outputs[0]["name"]] if len(self._outputs) == 1 else outs

    def run(self, x: torch.Tensor, mode: str, observe: Optional[List[Dict[str, Any]]] = None) -> Dict[str, torch.Tensor]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        cfg = self.config
        dt = F32 if mode == "train" else F64
        exact = mode == "exact" and cfg.digital_float32
        r = fround if exact else (lambda t: t)
        params = self.params()
        noise = self.noise if mode in ("train", "exact") else None
        preps = [sim.prepare(params, mode, self.ranges[k], noise, self.snap) for k, sim in enumerate(self.sims)]
        B, T = x.shape[0], x.shape[1]
        x = x.to(F32).to(dt)  # inputs are float32 on the chip
        inputs = cfg.raw["model"]["inputs"]
        if len(inputs) != 1 or x.shape[2] != inputs[0]["size"]:
            raise ValueError(f"expected input [B, T, {inputs[0]['size']}] for input {inputs[0]['name']!r}")
        states = {s["name"]: torch.zeros(B, s["size"], dtype=dt) for s in cfg.raw["model"]["state"]}
        step_out = {o["name"]: [] for o in self._outputs if o["section"] == "step"}
        graph = cfg.graph
        vals: Dict[str, torch.Tensor] = {}
        for t in range(T):
            vals = {inputs[0]["name"]: x[:, t, :]}
            nxt = dict(states)
            for op in graph["step"]:
                self._op(op, vals, states, nxt, preps, params, mode, r, T, noise, observe)
            states = nxt
            for o in self._outputs:
                if o["section"] == "step":
                    step_out[o["name"]].append(vals[o["value"]])
        fvals: Dict[str, torch.Tensor] = {}
        for op in graph["final"]:
            self._op(op, fvals, states, states, preps, params, mode, r, T, noise, observe, fallback=vals)
        result = {}
        for o in self._outputs:
            if o["section"] == "step":
                result[o["name"]] = torch.stack(step_out[o["name"]], 1)
            else:
                result[o["name"]] = fvals[o["value"]] if o["value"] in fvals else vals[o["value"]]
        return result

    def _op(self, op, vals, states, nxt, preps, params, mode, r, T, noise, observe, fallback=None) -> None:
        kind = op["op"]
        get = (lambda n: vals[n] if n in vals else fallback[n]) if fallback is not None else (lambda n: vals[n])
        out = op["out"]
        if kind == "matmul":
            k = op["matmul"]
            xin = torch.cat([get(n) for n in op["xs"]], 1)
            obs = observe[k] if observe is not None else None
            vals[out] = self.sims[k].forward(xin, preps[k], noise, obs)
        elif kind == "slice":
            vals[out] = get(op["x"])[:, op["start"]: op["start"] + op["length"]]
        elif kind == "concat":
            vals[out] = torch.cat([get(n) for n in op["xs"]], 1)
        elif kind == "state_read":
            vals[out] = states[op["state"]]
        elif kind == "state_write":
            nxt[op["state"]] = get(op["x"])
        elif kind == "add":
            vals[out] = r(get(op["a"]) + get(op["b"]))
        elif kind == "mul":
            vals[out] = r(get(op["a"]) * get(op["b"]))
        elif kind == "affine":
            x = get(op["x"])
            if "params" in op:
                s = params[op["params"]["scale"]].reshape(-1).to(x.dtype)
                b = params[op["params"]["shift"]].reshape(-1).to(x.dtype)
            else:
                s = torch.tensor(op["scale"], dtype=x.dtype)
                b = torch.tensor(op["shift"], dtype=x.dtype)
            vals[out] = r(r(x * r(s)) + r(b))
        elif kind == "normalize":
            vals[out] = self._normalize(get(op["x"]), float(op["eps"]), mode)
        elif kind == "gelu":
            x = get(op["x"])
            vals[out] = r(_gelu64(x)) if mode != "train" else F.gelu(x)
        elif kind == "sigmoid":
            x = get(op["x"])
            vals[out] = r(_sigmoid64(x)) if mode != "train" else torch.sigmoid(x)
        elif kind == "tanh":
            vals[out] = r(torch.tanh(get(op["x"])))
        elif kind == "relu":
            vals[out] = torch.relu(get(op["x"]))
        elif kind == "glu":
            x = get(op["x"])
            h = x.shape[1] // 2
            a, b = x[:, :h], x[:, h:]
            vals[out] = r(a * r(_sigmoid64(b))) if mode != "train" else a * torch.sigmoid(b)
        elif kind == "div_steps":
            vals[out] = r(get(op["x"]) / T)
        else:
            raise ValueError(f"unknown op {kind}")

    def _normalize(self, x: torch.Tensor, eps: float, mode: str) -> torch.Tensor:
        n = x.shape[1]
        if mode != "exact" or not self.config.digital_float32:
            mean = x.mean(1, keepdim=True)
            var = ((x - mean) ** 2).mean(1, keepdim=True)
            return (x - mean) / torch.sqrt(var + eps)
        # src/interp/vector.ts layerNorm: sequential float32 sums
        r = fround
        s = x.new_zeros(x.shape[0])
        for i in range(n):
            s = r(s + x[:, i])
        mean = r(s / n).unsqueeze(1)
        d = r(x - mean)
        sq = x.new_zeros(x.shape[0])
        dd = r(d * d)
        for i in range(n):
            sq = r(sq + dd[:, i])
        var = r(sq / n)
        sd = r(torch.sqrt(r(var + r(torch.tensor(eps, dtype=F64)))))
        return r(d / sd.unsqueeze(1))

    # ---- calibration ---------------------------------------------------------------------

    @torch.no_grad()
    def calibrate(self, inputs: torch.Tensor, batch: int = 256) -> List[Tuple[float, torch.Tensor]]:
        """The ranges the compiler's calibration gives on `inputs` [B, T, d_in] for the current weights.

        Abs-max of every matmul's input (one DAC range) and pre-bias output per column over
        the weight-quantized model in float64 without DAC/ADC, times the margin; a signal
        that never moved gets the configuration's unobservedRange (calibrate.ts, quantize.ts).
        """
        obs: List[Dict[str, Any]] = [{} for _ in self.sims]
        for i in range(0, inputs.shape[0], batch):
            self.run(inputs[i: i + batch], "calibrate", obs)
        margin, unobserved = self.config.margin, self.config.unobserved_range
        ranges = []
        for k, o in enumerate(obs):
            a_in = o.get("in", 0.0)
            a_out = o.get("out", torch.zeros(self.sims[k].n_cols, dtype=F64))
            r_in = a_in * margin if a_in > 0 else unobserved
            r_out = torch.where(a_out > 0, a_out * margin, torch.full_like(a_out, unobserved))
            ranges.append((r_in, r_out))
        return ranges

    def recalibrate(self, inputs: torch.Tensor) -> None:
        """Sets the training ranges to what the compiler will calibrate on `inputs`."""
        self.ranges = self.calibrate(inputs)

    # ---- checks against the configuration --------------------------------------------------

    def check_config(self, strict: bool = True) -> List[str]:
        """Compares this model's weights with the ones the configuration was compiled from.

        Per matmul: the compiler's scales for these weights (dense: as they are or as
        exported on the level grid; S4D: the fused matrix, whose dequantized weights may
        differ from the compiler's in the last bits because exp/sin/cos differ between
        math libraries), the levels under the configuration's scales (sha256 of the
        nonzero levels) and the S4D stability repairs. Returns the problems found (empty:
        the configuration is this model's); strict raises QuantError instead.
        """
        problems = []
        params = self.params()
        for sim in self.sims:
            m = sim.m
            if sim.L == 0:
                continue
            with torch.no_grad():
                w = sim.spec.values(params)
            s = sim.compiler_scales(params, snap=False)
            basis = "latent"
            if sim.spec.kind == "dense":
                if not torch.equal(s, sim.cfg_scales):
                    basis = "grid"
                    if not torch.equal(sim.compiler_scales(params, snap=True), sim.cfg_scales):
                        d = float(((s - sim.cfg_scales).abs() / sim.cfg_scales).max())
                        problems.append(f"{sim.layer}: column scales differ from the compiled ones (max rel {d:.3g})")
            else:
                # a column holding one weight w: max|W|/L reproduces it exactly or not depending
                # on the last bit of w, and then the compiler picks w/L (level L) or w (level 1);
                # compare the dequantized weights rather than the scales
                q_mine, s_mine, _ = quantize_entries(sim.spec, w, sim.L)
                q_cfg, _, _ = quantize_entries(sim.spec, w, sim.L, sim.cfg_scales)
                wm = q_mine * s_mine[sim.spec.cols]
                wc = q_cfg * sim.cfg_scales[sim.spec.cols]
                d = float((wm - wc).abs().max() / w.abs().max().clamp(min=1e-300))
                if d > 1e-12:
                    problems.append(f"{sim.layer}: quantized weights differ from the compiled ones (max rel {d:.3g})")
            n, h, repairs = sim.levels_digest(params, basis)
            if n != m["nonzeros"] or h != m["levelsSha256"]:
                problems.append(f"{sim.layer}: levels differ from the compiled ones ({n} vs {m['nonzeros']} nonzeros)")
            if sim.spec.kind == "s4d":
                cfg_rep = [(r["mode"], tuple(r["levels"])) for r in m["s4d"]["repairs"]]
                mine = [(r["mode"], tuple(r["levels"])) for r in repairs]
                if cfg_rep != mine:
                    problems.append(f"{sim.layer}: S4D repairs differ ({len(mine)} here, {len(cfg_rep)} compiled)")
        if strict and problems:
            raise QuantError("; ".join(problems))
        return problems
