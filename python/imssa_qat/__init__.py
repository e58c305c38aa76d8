"""imssa_qat: quantization-aware training with a compiled target's exact numerics.

    imssa-compile model.s4d --target xbar64 --calibrate calib.npy --emit qat-config -o qat.json

    from imssa_export import S4DConfig, S4Model
    from imssa_qat import QATModel, export_safetensors, write_s4d
    qat = QATModel(model, "qat.json")      # wraps an imssa_export.S4Model (state-spaces names)
    qat.recalibrate(calib)                 # the compiler's ranges for the current weights
    ... train qat(x) with any optimizer ...
    export_safetensors(qat, "tuned.safetensors"); write_s4d(cfg, "tuned.s4d", "tuned.safetensors", qat=qat)

See python/README.md and docs/QAT.md.
"""

import os
import sys

try:  # the model definition and exporter live in exporters/pytorch of the same repository
    import imssa_export  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(_here, "..", "..", "exporters", "pytorch"))
    import imssa_export  # noqa: F401

from .config import QatConfig, QatConfigError  # noqa: E402
from .crossbar import MatmulSim, QuantError  # noqa: E402
from .export import export_onnx, export_safetensors, grid_state_dict, s4d_text, scale_states, write_s4d  # noqa: E402
from .model import QATModel  # noqa: E402
from .noise import NoiseModel  # noqa: E402
from .numerics import fround, round_half_away, round_half_up, snap_scale  # noqa: E402

__all__ = [
    "QatConfig", "QatConfigError", "MatmulSim", "QuantError", "QATModel", "NoiseModel",
    "export_onnx", "export_safetensors", "grid_state_dict", "s4d_text", "scale_states", "write_s4d",
    "fround", "round_half_away", "round_half_up", "snap_scale",
]
