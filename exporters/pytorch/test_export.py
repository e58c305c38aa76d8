#!/usr/bin/env python3
"""Self-checks of imssa_export (plain asserts, no pytest):

    python3 exporters/pytorch/test_export.py

Needs python3-torch, python3-onnx, python3-numpy (Debian). Not part of imssa's CI, which
needs no Python; the committed fixtures are checked there from the TypeScript side.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import tempfile
import traceback

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from imssa_export import (S4DConfig, S4Model, StepModel, check_step_against_convolution, check_ternary,  # noqa: E402
                          config_from_state_dict, discretize, export_scan, export_step, load_safetensors,
                          reference_output, save_safetensors, ternarize_state_dict)
from imssa_export.rejects import TanhRecurrence, export_tanh_recurrence  # noqa: E402
from imssa_export.step import ARRANGEMENTS  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "test", "fixtures", "onnx")


def model(cfg: S4DConfig, seed: int = 0) -> S4Model:
    torch.manual_seed(seed)
    m = S4Model(cfg)
    with torch.no_grad():
        for layer in m.s4_layers:
            layer.kernel.log_A_real.add_(0.3 * torch.randn_like(layer.kernel.log_A_real))
        for n in m.norms:
            n.weight.add_(0.2 * torch.randn_like(n.weight))
            n.bias.add_(0.1 * torch.randn_like(n.bias))
    return m.eval()


def test_state_dict_names():
    """Exactly the tensor names of state-spaces/s4 example.py's S4Model."""
    cfg = S4DConfig(d_input=3, d_model=8, n_layers=2, d_state=6, d_output=5)
    sd = S4Model(cfg).state_dict()
    want = {"encoder.weight": [8, 3], "encoder.bias": [8], "decoder.weight": [5, 8], "decoder.bias": [5]}
    for i in range(2):
        p = f"s4_layers.{i}."
        want.update({p + "D": [8], p + "kernel.log_dt": [8], p + "kernel.C": [8, 3, 2],
                     p + "kernel.log_A_real": [8, 3], p + "kernel.A_imag": [8, 3],
                     p + "output_linear.0.weight": [16, 8, 1], p + "output_linear.0.bias": [16],
                     f"norms.{i}.weight": [8], f"norms.{i}.bias": [8]})
    assert {k: list(v.shape) for k, v in sd.items()} == want, sorted(sd)
    assert config_from_state_dict(sd) == S4DConfig(d_input=3, d_model=8, n_layers=2, d_state=6, d_output=5)


def test_discretization_formulas():
    """ZOH dA/dB against the matrix exponential of the real 2x2 form; bilinear against its
    definition (I - dt/2 A)^-1 (I + dt/2 A), (I - dt/2 A)^-1 dt B."""
    log_dt = torch.tensor([math.log(0.3)], dtype=torch.float64)
    lar = torch.tensor([[math.log(0.7)]], dtype=torch.float64)
    aim = torch.tensor([[2.5]], dtype=torch.float64)
    a_re, a_im, dt = -0.7, 2.5, 0.3
    Areal = torch.tensor([[a_re, -a_im], [a_im, a_re]], dtype=torch.float64)
    # augmented matrix exponential gives both exp(dt A) and the ZOH input integral
    aug = torch.zeros(3, 3, dtype=torch.float64)
    aug[:2, :2] = dt * Areal
    aug[0, 2] = dt  # B = 1 (real part)
    E = torch.matrix_exp(aug)
    dA, dB = discretize(log_dt, lar, aim, "zoh")
    assert abs(dA.real.item() - E[0, 0].item()) < 1e-12 and abs(dA.imag.item() - E[1, 0].item()) < 1e-12
    assert abs(dB.real.item() - E[0, 2].item()) < 1e-12 and abs(dB.imag.item() - E[1, 2].item()) < 1e-12
    I = torch.eye(2, dtype=torch.float64)
    inv = torch.linalg.inv(I - dt / 2 * Areal)
    bA = inv @ (I + dt / 2 * Areal)
    bB = inv @ torch.tensor([dt, 0.0], dtype=torch.float64)
    dA, dB = discretize(log_dt, lar, aim, "bilinear")
    assert abs(dA.real.item() - bA[0, 0].item()) < 1e-12 and abs(dA.imag.item() - bA[1, 0].item()) < 1e-12
    assert abs(dB.real.item() - bB[0].item()) < 1e-12 and abs(dB.imag.item() - bB[1].item()) < 1e-12


def test_step_matches_convolution():
    """The real-arithmetic recurrence equals the FFT convolution form (< 1e-5, float32) for
    both discretizations, every state arrangement, pre/post-norm, pooled or not."""
    worst = 0.0
    for disc, arr, prenorm, pool in itertools.product(("zoh", "bilinear"), ARRANGEMENTS, (False, True), (False, True)):
        cfg = S4DConfig(d_input=2, d_model=6, n_layers=2, d_state=8, d_output=3, prenorm=prenorm, pool=pool,
                        disc=disc, dt_min=0.01, dt_max=0.5)
        m = model(cfg, seed=len(arr) + 10 * prenorm + 100 * pool)
        sd = m.state_dict()
        for head in ("decoder", "features"):
            step = StepModel(sd, cfg, arrangement=arr, head=head, fold_two=pool)
            worst = max(worst, check_step_against_convolution(sd, cfg, step, T=24, batch=3, tol=1e-5))
    # and a long sequence with slow modes, where float32 error accumulates most
    cfg = S4DConfig(d_input=1, d_model=16, n_layers=1, d_state=32, d_output=2, pool=False, dt_min=1e-3, dt_max=0.1)
    m = model(cfg, 3)
    worst = max(worst, check_step_against_convolution(m.state_dict(), cfg, StepModel(m.state_dict(), cfg), T=200))
    print(f"    worst step-vs-convolution difference {worst:.2g}")


def test_convolution_matches_direct_sum():
    """The FFT convolution equals y_k = sum_j K[k-j] u_j + D u_k computed directly (float64)."""
    cfg = S4DConfig(d_input=1, d_model=3, n_layers=1, d_state=4, d_output=1, disc="bilinear", dt_min=0.05, dt_max=0.5)
    m = model(cfg).double()
    layer = m.s4_layers[0]
    u = torch.randn(2, 3, 11, dtype=torch.float64)
    K = layer.kernel(11)
    direct = torch.zeros_like(u)
    for k in range(11):
        for j in range(k + 1):
            direct[..., k] += K[:, k - j] * u[..., j]
    direct += u * layer.D.unsqueeze(-1)
    fft = torch.fft.irfft(torch.fft.rfft(u, n=22) * torch.fft.rfft(K, n=22), n=22)[..., :11] + u * layer.D.unsqueeze(-1)
    assert float((fft - direct).abs().max()) < 1e-12


def _ops(path):
    return [n.op_type for n in onnx.load(path).graph.node]


def test_exports_pass_checker():
    with tempfile.TemporaryDirectory() as d:
        cfg = S4DConfig(d_input=2, d_model=4, n_layers=2, d_state=4, d_output=3, pool=True, dt_min=0.01, dt_max=0.5)
        m = model(cfg)
        x = torch.randn(2, 9, 2)
        for opset in (13, 17):
            for arr, names in zip(ARRANGEMENTS, ("in_out", "past_present", "next", "in_out")):
                p = os.path.join(d, f"s_{opset}_{arr}.onnx")
                info = export_step(m, cfg, p, opset, arrangement=arr, names=names)
                onnx.checker.check_model(onnx.load(p), full_check=True)
                g = onnx.load(p).graph
                assert [i.name for i in g.input] == ["u"] + [a for a, _ in info["states"]]
                assert [o.name for o in g.output] == ["y"] + [b for _, b in info["states"]]
                assert ("LayerNormalization" in _ops(p)) == (opset >= 17)
                assert float((reference_output(info, cfg, x) - m(x)).abs().max()) < 1e-5
            for tm in (False, True):
                p = os.path.join(d, f"scan_{opset}_{tm}.onnx")
                info = export_scan(m, cfg, p, opset, time_major=tm)
                onnx.checker.check_model(onnx.load(p), full_check=True)
                ops = _ops(p)
                assert "Scan" in ops and ops[-2:] == ["ReduceMean", "Gemm"], ops
                assert float((reference_output(info, cfg, x) - m(x)).abs().max()) < 1e-5
        # unpooled scan: the Scan output is the model output
        cfg2 = S4DConfig(d_input=1, d_model=4, n_layers=1, d_state=4, d_output=2, pool=False)
        m2 = model(cfg2)
        p = os.path.join(d, "scan_seq.onnx")
        info = export_scan(m2, cfg2, p, 13)
        assert _ops(p)[-1] == "Scan"
        x2 = torch.randn(2, 7, 1)
        assert float((reference_output(info, cfg2, x2) - m2(x2)).abs().max()) < 1e-5
        # the rejected fixture's graph is valid ONNX
        p = os.path.join(d, "tanh.onnx")
        export_tanh_recurrence(TanhRecurrence(1, 3, 1), p)
        assert "Tanh" in _ops(p)


def test_ternary():
    """QAT weights become exact s_j * t; the QDQ variant carries t in {-1, 0, 1} and s_j."""
    cfg = S4DConfig(d_input=3, d_model=8, n_layers=1, d_state=4, d_output=2, pool=False, quant="ternary")
    m = model(cfg)
    x = torch.randn(4, 10, 3)
    loss = m(x).pow(2).mean()
    loss.backward()
    assert m.encoder.weight.grad is not None and float(m.encoder.weight.grad.abs().sum()) > 0  # STE passes gradients
    sd = ternarize_state_dict(m.state_dict())
    for k in ("encoder.weight", "s4_layers.0.output_linear.0.weight", "decoder.weight"):
        check_ternary(sd[k])
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.onnx")
        export_step(m, cfg, p, 13)
        inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(p).graph.initializer}
        for k in ("encoder_w", "l0_out_w", "decoder_w"):
            check_ternary(torch.from_numpy(inits[k].copy()))
        p = os.path.join(d, "q.onnx")
        export_step(m, cfg, p, 13, qdq=True)
        g = onnx.load(p).graph
        ops = [n.op_type for n in g.node]
        assert ops.count("QuantizeLinear") == 3 and ops.count("DequantizeLinear") == 3, ops
        inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for k in ("encoder", "l0_out", "decoder"):
            levels = inits[f"{k}_w"] / inits[f"{k}_scale"][:, None]
            assert set(np.unique(levels).tolist()) <= {-1.0, 0.0, 1.0}
        p = os.path.join(d, "dq.onnx")
        info = export_step(m, cfg, p, 13, qdq="dq")
        g = onnx.load(p).graph
        ops = [n.op_type for n in g.node]
        assert "QuantizeLinear" not in ops and ops.count("DequantizeLinear") == 3 and "Identity" not in ops, ops
        inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for k in ("encoder", "l0_out", "decoder"):
            q = inits[f"{k}_w_quantized"]
            assert q.dtype == np.int8 and set(np.unique(q).tolist()) <= {-1, 0, 1} and f"{k}_w" not in inits
        try:
            export_step(model(S4DConfig(d_input=1, d_model=4, n_layers=1, d_state=4, d_output=1)),
                        S4DConfig(d_input=1, d_model=4, n_layers=1, d_state=4, d_output=1), p, 13, qdq=True)
        except ValueError as e:
            assert "ternary" in str(e)
        else:
            raise AssertionError("qdq export of float weights must fail")


def test_safetensors_roundtrip():
    cfg = S4DConfig(d_input=1, d_model=4, n_layers=1, d_state=4, d_output=2)
    sd = model(cfg).state_dict()
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.safetensors")
        save_safetensors(sd, p, {"format": "pt"})
        raw = open(p, "rb").read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        assert (8 + n) % 8 == 0 and header["__metadata__"] == {"format": "pt"}
        assert header["encoder.weight"] == {"dtype": "F32", "shape": [4, 1], "data_offsets": header["encoder.weight"]["data_offsets"]}
        back = load_safetensors(p)
        assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
        assert len(raw) == 8 + n + sum(v.numel() * 4 for v in sd.values())


def test_committed_fixtures():
    """The committed fixtures (if present) are valid ONNX and match their manifest."""
    manifest = os.path.join(FIXTURES, "fixtures.json")
    if not os.path.exists(manifest):
        print("    (no committed fixtures found, skipped)")
        return
    for f in json.load(open(manifest))["fixtures"]:
        m = onnx.load(os.path.join(FIXTURES, f["file"]))
        onnx.checker.check_model(m, full_check=True)
        assert m.opset_import[0].version == f["opset"], f["name"]
        g = m.graph
        assert g.input[0].name == f["input"] and g.output[0].name == f["output"], f["name"]
        if f["form"] == "step":
            assert [i.name for i in g.input[1:]] == [s["in"] for s in f["states"]], f["name"]
            assert [o.name for o in g.output[1:]] == [s["out"] for s in f["states"]], f["name"]
        x = np.load(os.path.join(FIXTURES, f["data"]["input"]))
        y = np.load(os.path.join(FIXTURES, f["data"]["output"]))
        assert list(x.shape) == f["data"]["input_shape"] and list(y.shape) == f["data"]["output_shape"]
        assert x.dtype == np.float32 and y.dtype == np.float32
        if "safetensors" in f:
            sd = load_safetensors(os.path.join(FIXTURES, f["safetensors"]))
            cfg = S4DConfig.from_dict(f["config"])
            assert config_from_state_dict(sd, prenorm=cfg.prenorm, pool=cfg.pool, disc=cfg.disc,
                                          dt_min=cfg.dt_min, dt_max=cfg.dt_max, quant=cfg.quant) == cfg
            # the checkpoint reproduces the reference outputs through the convolution form
            from imssa_export.export import conv_model
            with torch.no_grad():
                out = conv_model(sd, cfg)(torch.from_numpy(x))
            scale = max(1.0, float(np.abs(y).max()))  # trained classifiers: logits of size 10..50
            assert float((out - torch.from_numpy(y)).abs().max()) < 1e-5 * scale, f["name"]


def main() -> int:
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
