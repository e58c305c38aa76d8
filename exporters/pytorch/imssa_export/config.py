"""Model configuration shared by the training model, the step module and the exporters."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

DISCRETIZATIONS = ("zoh", "bilinear")


@dataclass
class S4DConfig:
    """Shape and options of a state-spaces style S4D model (example.py's S4Model).

    d_input   features per time step fed to the encoder
    d_model   H, channels of every S4D layer
    n_layers  number of residual S4D blocks
    d_state   N, state size per channel (N/2 complex modes)
    d_output  decoder outputs (classes)
    prenorm   LayerNorm before the S4D layer (True) or after the residual add (False,
              example.py's default)
    pool      mean over time before the decoder (example.py always pools); False gives a
              per-step decoder output
    disc      "zoh" (the minimal s4d.py) or "bilinear"
    quant     None or "ternary": dense weights on a per-output-feature ternary grid
    """

    d_input: int = 1
    d_model: int = 64
    n_layers: int = 4
    d_state: int = 64
    d_output: int = 10
    prenorm: bool = False
    pool: bool = True
    disc: str = "zoh"
    dropout: float = 0.0
    dt_min: float = 0.001
    dt_max: float = 0.1
    eps: float = 1e-5
    quant: Optional[str] = None

    def __post_init__(self) -> None:
        if self.disc not in DISCRETIZATIONS:
            raise ValueError(f"disc must be one of {DISCRETIZATIONS}, not {self.disc!r}")
        if self.d_state % 2 != 0:
            raise ValueError(f"d_state (N) must be even (N/2 complex modes), not {self.d_state}")
        if self.quant not in (None, "ternary"):
            raise ValueError(f"quant must be None or 'ternary', not {self.quant!r}")

    @property
    def modes(self) -> int:
        return self.d_state // 2

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "S4DConfig":
        names = {f.name for f in dataclasses.fields(S4DConfig)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config keys: {unknown}")
        return S4DConfig(**dict(d))


def config_from_state_dict(sd: Mapping[str, Any], **options: Any) -> S4DConfig:
    """Infers the shape part of the config from an example.py state_dict.

    The options that shapes cannot tell (prenorm, pool, disc, eps, quant) come from
    `options`; they default to example.py's choices (post-norm, pooling, zoh).
    """
    if "encoder.weight" not in sd or "decoder.weight" not in sd:
        raise ValueError("state_dict lacks encoder.weight / decoder.weight: not an example.py S4Model")
    d_model, d_input = (int(x) for x in sd["encoder.weight"].shape)
    d_output = int(sd["decoder.weight"].shape[0])
    n_layers = 0
    while f"s4_layers.{n_layers}.kernel.log_A_real" in sd:
        n_layers += 1
    if n_layers == 0:
        raise ValueError("state_dict has no s4_layers.0.kernel.log_A_real")
    d_state = 2 * int(sd["s4_layers.0.kernel.log_A_real"].shape[-1])
    return S4DConfig(d_input=d_input, d_model=d_model, n_layers=n_layers, d_state=d_state,
                     d_output=d_output, **options)
