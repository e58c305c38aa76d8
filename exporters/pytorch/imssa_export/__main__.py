"""Command line: export a trained example.py checkpoint to ONNX for imssa-compile.

    PYTHONPATH=exporters/pytorch python3 -m imssa_export checkpoint/ckpt.pth -o model.onnx
    ... --form scan --opset 17 --prenorm --disc bilinear --safetensors model.safetensors

The checkpoint may be a torch.save'd state_dict, example.py's {'model': state_dict, ...}
dict, or a .safetensors file. Shapes come from the tensors; what they cannot tell
(--prenorm, --no-pool, --disc, --eps, --ternary) must match how the model was trained.
"""

from __future__ import annotations

import argparse
import sys

import torch

from .config import config_from_state_dict
from .export import NAME_STYLES, export_scan, export_step, export_state_dict
from .safetensors import load_safetensors, save_safetensors
from .step import ARRANGEMENTS


def load_checkpoint(path: str):
    if path.endswith(".safetensors"):
        return load_safetensors(path)
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: expected a state_dict (or example.py's {{'model': state_dict}}), got {type(obj).__name__}")
    # DataParallel / DistributedDataParallel prefix
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m imssa_export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help=".pth/.pt (torch.save) or .safetensors with example.py's tensor names")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--form", choices=("step", "scan"), default="step",
                   help="step: one time step with state inputs/outputs; scan: whole sequence (Scan) [step]")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset, 13..17 with torch 1.13 [13]")
    p.add_argument("--prenorm", action="store_true", help="model was trained with --prenorm (default: post-norm)")
    p.add_argument("--no-pool", action="store_true", help="no mean pooling: one decoder output per step")
    p.add_argument("--disc", choices=("zoh", "bilinear"), default="zoh", help="discretization [zoh]")
    p.add_argument("--eps", type=float, default=1e-5, help="LayerNorm epsilon [1e-5]")
    p.add_argument("--ternary", action="store_true", help="model trained with ternary QAT (dense weights s_j*t)")
    p.add_argument("--qdq", action="store_true", help="with --ternary: dense weights through QuantizeLinear/DequantizeLinear")
    p.add_argument("--dq", action="store_true", help="with --ternary: dense weights as int8 levels read by DequantizeLinear")
    p.add_argument("--arrangement", choices=ARRANGEMENTS, default="halves", help="state layout [halves]")
    p.add_argument("--names", choices=NAME_STYLES, default="in_out",
                   help="state names: in_out (X_in/X_out), past_present (past_X/present_X), next (X/X_next) [in_out]")
    p.add_argument("--time-major", action="store_true", help="scan form: transpose to [T, B, d] and scan axis 0")
    p.add_argument("--safetensors", help="also write the (exported) weights as safetensors, for `params from`")
    p.add_argument("--no-check", action="store_true", help="skip the step-vs-convolution check")
    a = p.parse_args(argv)

    if (a.qdq or a.dq) and not a.ternary:
        p.error("--qdq / --dq need --ternary")
    if a.dq and a.form == "scan":
        p.error("--dq is available for step graphs only")
    sd = load_checkpoint(a.checkpoint)
    cfg = config_from_state_dict(sd, prenorm=a.prenorm, pool=not a.no_pool, disc=a.disc, eps=a.eps,
                                 quant="ternary" if a.ternary else None)
    kw = dict(arrangement=a.arrangement, names=a.names, qdq="dq" if a.dq else a.qdq, check=not a.no_check)
    if a.form == "scan":
        info = export_scan(sd, cfg, a.output, a.opset, time_major=a.time_major, **kw)
    else:
        info = export_step(sd, cfg, a.output, a.opset, **kw)
    if a.safetensors:
        save_safetensors(export_state_dict(sd, cfg), a.safetensors, {"format": "pt", "config": cfg.to_json()})
    print(f"wrote {a.output}: {info['form']} graph, opset {a.opset}, {cfg.n_layers} layers, H={cfg.d_model}, "
          f"N={cfg.d_state}, {cfg.disc}; input {info['input']}, output {info['output']} ({info['readout']})")
    for i, o in info["states"]:
        print(f"  state {i} -> {o}")
    if not a.no_check:
        print(f"  step recurrence vs convolution form: max abs diff {info['check_error']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
