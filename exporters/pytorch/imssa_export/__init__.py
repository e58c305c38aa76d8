"""imssa_export: export state-spaces style S4D models (PyTorch) to ONNX graphs imssa compiles.

    from imssa_export import S4DConfig, S4Model, export_step, export_scan
"""

from .config import S4DConfig, config_from_state_dict
from .discretize import discretize, ssm_kernel, step_constants
from .export import (check_step_against_convolution, export_scan, export_step, reference_output,
                     state_names)
from .model import S4D, S4DKernel, S4Model
from .quant import TernaryConv1d, TernaryLinear, check_ternary, ternarize_state_dict
from .safetensors import load_safetensors, save_safetensors
from .step import StepModel

__all__ = [
    "S4DConfig", "config_from_state_dict", "discretize", "ssm_kernel", "step_constants",
    "check_step_against_convolution", "export_scan", "export_step", "reference_output", "state_names",
    "S4D", "S4DKernel", "S4Model", "TernaryConv1d", "TernaryLinear", "check_ternary",
    "ternarize_state_dict", "load_safetensors", "save_safetensors", "StepModel",
]
