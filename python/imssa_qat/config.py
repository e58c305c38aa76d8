"""Reading a qat.json written by `imssa-compile --emit qat-config` (schema: ir/qat.schema.json).

The configuration is kept as the parsed JSON (plain dicts and lists); QatConfig adds the
checks this package relies on and a few accessors. Every number is the compiler's float64
value bit for bit (JSON numbers in shortest round-trip form).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Union

FORMAT = "imssa-qat"
VERSION = 1
S4D_LAYOUT = "imssa.s4d-fused.v1"

OPS = {"matmul", "slice", "concat", "affine", "normalize", "state_read", "state_write", "add", "mul",
       "gelu", "sigmoid", "tanh", "relu", "glu", "div_steps"}


class QatConfigError(ValueError):
    pass


class QatConfig:
    """A validated qat.json. `raw` is the parsed JSON."""

    def __init__(self, data: Union[str, Mapping[str, Any]]):
        if isinstance(data, str):
            with open(data, "r", encoding="utf-8") as f:
                raw = json.load(f)
            self.path: Optional[str] = data
        else:
            raw = copy.deepcopy(dict(data))
            self.path = None
        self.raw: Dict[str, Any] = raw
        self._check()

    # ---- checks -------------------------------------------------------------------------

    def _fail(self, msg: str) -> None:
        where = f"{self.path}: " if self.path else ""
        raise QatConfigError(where + msg)

    def _check(self) -> None:
        r = self.raw
        if r.get("format") != FORMAT or r.get("version") != VERSION:
            self._fail(f"not an imssa QAT configuration of version {VERSION} (format {r.get('format')!r}, version {r.get('version')!r})")
        for key in ("model", "target", "numerics", "calibration", "matmuls", "graph"):
            if key not in r:
                self._fail(f"missing {key!r}")
        n = r["numerics"]
        if n["kind"] == "quantized":
            if n["rounding"]["signals"] != "half-away-from-zero" or n["rounding"]["weights"] != "half-up":
                self._fail(f"unknown rounding rules {n['rounding']}")
        for k, m in enumerate(r["matmuls"]):
            if m["origin"] == "s4d" and m.get("s4d", {}).get("layout") != S4D_LAYOUT:
                self._fail(f"matmul {m['name']}: unknown S4D layout {m.get('s4d', {}).get('layout')!r} (this package knows {S4D_LAYOUT})")
            if len(m["colScale"]) != m["cols"] or len(m["outRange"]) != m["cols"]:
                self._fail(f"matmul {m['name']}: colScale/outRange length differs from cols {m['cols']}")
            for p in m["pieces"]:
                if not (len(p["cols"]) == len(p["colScale"]) == len(p["outRange"]) == len(p["partial"])):
                    self._fail(f"matmul {m['name']}: a piece's column arrays differ in length")
        for section in ("step", "final"):
            for op in r["graph"][section]:
                if op["op"] not in OPS:
                    self._fail(f"unknown op {op['op']!r} ({op['out']}) in the {section} section")

    # ---- accessors ----------------------------------------------------------------------

    @property
    def quantized(self) -> bool:
        return self.raw["numerics"]["kind"] == "quantized"

    @property
    def dac_max(self) -> int:
        return int(self.raw["numerics"]["dac"]["maxCode"])

    @property
    def adc_max(self) -> int:
        return int(self.raw["numerics"]["adc"]["maxCode"])

    @property
    def digital_float32(self) -> bool:
        return self.raw["numerics"]["digitalPrecision"] == "float32"

    @property
    def matmuls(self) -> List[Dict[str, Any]]:
        return self.raw["matmuls"]

    @property
    def graph(self) -> Dict[str, List[Dict[str, Any]]]:
        return self.raw["graph"]

    @property
    def margin(self) -> float:
        return float(self.raw["calibration"]["margin"])

    @property
    def unobserved_range(self) -> float:
        return float(self.raw["calibration"]["unobservedRange"])

    def matmul_by_layer(self, layer: str) -> Dict[str, Any]:
        for m in self.matmuls:
            if m.get("layer") == layer:
                return m
        raise KeyError(layer)

    def check_calibration_file(self, path: str) -> None:
        """Raises if `path` is not the file the configuration was calibrated on (sha256)."""
        f = self.raw["calibration"].get("file")
        if f is None:
            self._fail("the configuration was not calibrated on a file (calibration.source is "
                       f"{self.raw['calibration']['source']!r})")
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        if digest != f["sha256"]:
            self._fail(f"{path} is not the calibration file of this configuration ({f['path']}, sha256 {f['sha256'][:12]}...)")

    def to_json(self) -> str:
        return json.dumps(self.raw)
