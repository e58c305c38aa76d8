#!/usr/bin/env python3
"""Self-checks of imssa_qat (plain asserts, no pytest):

    /usr/bin/python3 python/test_qat.py            # all checks
    /usr/bin/python3 python/test_qat.py -k exact   # only checks whose name contains "exact"

Needs python3-torch, python3-numpy and python3-onnx (Debian; imssa_export imports onnx).
The round-trip checks that compile and run models need node and a built dist/ (npm run
build); they are skipped without them. Not part of imssa's CI, which needs no Python: the
committed fixtures (test/fixtures/qat) are checked there from the TypeScript side.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "exporters", "pytorch"))

from imssa_export import S4DConfig, S4Model, config_from_state_dict, load_safetensors, save_safetensors  # noqa: E402
from imssa_qat import (NoiseModel, QATModel, QatConfig, export_safetensors, grid_state_dict, round_half_away,  # noqa: E402
                       round_half_up, s4d_text, scale_states, snap_scale)
from imssa_qat.matrices import compiler_column_scales, repair_levels, repair_levels_residual, residual_fallback, spectral_radius2  # noqa: E402

FIXTURES = os.path.join(ROOT, "test", "fixtures", "qat")
F64 = torch.float64


# ---- helpers ---------------------------------------------------------------------------------

def fixture_model():
    sd = load_safetensors(os.path.join(FIXTURES, "model.safetensors"))
    cfg = config_from_state_dict(sd)
    m = S4Model(cfg)
    m.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()})
    return m, cfg, sd


def have_node() -> bool:
    return shutil.which("node") is not None and os.path.exists(os.path.join(ROOT, "dist", "cli", "compile.js"))


def node(tool: str, *args: str) -> None:
    subprocess.run(["node", os.path.join(ROOT, "dist", "cli", f"{tool}.js"), *args], check=True)


class Skip(Exception):
    pass


# ---- rounding and scales ------------------------------------------------------------------------

def test_rounding_rules():
    t = lambda xs: torch.tensor(xs, dtype=F64)
    # JavaScript Math.round: ties toward +infinity
    up = round_half_up(t([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, -0.3, 2.4999999999999996]))
    assert up.tolist() == [-2, -1, 0, 1, 2, 3, 0, 0, 2], up.tolist()
    # the chip: ties away from zero, symmetric
    away = round_half_away(t([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -126.5, 126.49]))
    assert away.tolist() == [-3, -2, -1, 1, 2, 3, -127, 126], away.tolist()


def test_snapped_scales_give_exact_float32_grids():
    g = torch.Generator().manual_seed(1)
    s = snap_scale(torch.exp(torch.randn(1000, generator=g, dtype=F64) * 3))
    q = torch.arange(-15, 16, dtype=F64)
    w = s[:, None] * q[None, :]
    assert torch.equal(w.to(torch.float32).to(F64), w), "q * s is not exact in float32"
    # and the compiler's first candidate max|W| / L recovers s exactly
    assert torch.equal(w.abs().amax(1) / 15, s)


def test_compiler_scales_recover_grids():
    g = torch.Generator().manual_seed(2)
    n_cols, rows = 12, 9
    cols = torch.arange(n_cols).repeat(rows)
    s = snap_scale(torch.rand(n_cols, generator=g, dtype=F64) + 0.1)
    # ternary grid (L = 1) and a 5-level grid on a 15-level device
    for L, k in ((1, 1), (15, 2)):
        q = torch.randint(-k, k + 1, (rows * n_cols,), generator=g).to(F64)
        q[:n_cols] = k  # every column uses its top level
        w = q * s[cols]
        got, exact = compiler_column_scales(w, cols, n_cols, L)
        assert bool(exact.all())
        assert torch.equal(torch.round(w / got[cols]) * got[cols], w)


def test_s4d_repair_is_the_fewest_steps_toward_zero():
    rng = random.Random(3)
    checked = 0
    for _ in range(3000):
        r, th = 0.97 + 0.0299 * rng.random(), rng.random() * math.pi
        f = [r * math.cos(th), r * math.sin(th), -r * math.sin(th), r * math.cos(th)]
        s = [max(abs(f[0]), abs(f[2]), 0.01) / 15, max(abs(f[1]), abs(f[3]), 0.01) / 15]
        sc = [s[0], s[1], s[0], s[1]]
        q = [float(round(f[e] / sc[e])) for e in range(4)]
        if spectral_radius2(*[q[e] * sc[e] for e in range(4)]) < 1:
            continue
        fix, k, radius = repair_levels(q, sc, f)
        assert radius < 1 and spectral_radius2(*[fix[e] * sc[e] for e in range(4)]) < 1
        assert sum(abs(fix[e] - q[e]) for e in range(4)) == k
        assert all(abs(fix[e]) <= abs(q[e]) for e in range(4)), "steps go toward zero"
        # no block with fewer steps toward zero is stable
        mag = [int(abs(v)) for v in q]
        sgn = [(v > 0) - (v < 0) for v in q]
        for d in itertools.product(*[range(min(mg, k - 1) + 1) for mg in mag]):
            if sum(d) < k:
                cand = [(q[e] - sgn[e] * d[e]) * sc[e] for e in range(4)]
                assert not (spectral_radius2(*cand) < 1), (q, d, k)
        checked += 1
    assert checked > 100, checked


def test_residual_repair_hand_derived():
    """quant-s4d.ts residual rule, the numbers of test/residual.test.ts: s = 0.01, L = 15,
    dA - I = [-0.004, 0.026, -0.026, -0.004] rounds to [0, 3, -3, 0], I + q s has radius
    sqrt(1.0009) >= 1; one step d0 = -1 gives radius sqrt(0.9909) (d3 = -1 ties, comes later)."""
    s = [0.01] * 4
    f = [-0.004, 0.026, -0.026, -0.004]
    q = [0.0, 3.0, -3.0, 0.0]
    assert spectral_radius2(1 + q[0] * s[0], q[1] * s[1], q[2] * s[2], 1 + q[3] * s[3]) >= 1
    bound = residual_fallback(q, s, 15)
    # diagonal levels nearest -1/s = -100, clamped to -15: |0 - -15| + 3 + 3 + |0 - -15| steps away
    assert bound == 36
    fix, k, radius = repair_levels_residual(q, s, f, 15, bound)
    assert fix == [-1.0, 3.0, -3.0, 0.0] and k == 1
    assert abs(radius - math.sqrt(0.9909)) < 1e-12
    # no stable diagonal level when s >= 2
    assert residual_fallback([0.0, 0.0, 0.0, 0.0], [2.5] * 4, 15) is None


# ---- the committed fixture ----------------------------------------------------------------------

def test_fixture_exact_mode_equals_committed_outputs():
    m, _, _ = fixture_model()
    qat = QATModel(m, os.path.join(FIXTURES, "qat.json"))
    assert qat.check_config(strict=False) == []
    x = torch.from_numpy(np.load(os.path.join(FIXTURES, "inputs.npy")))
    expected = np.load(os.path.join(FIXTURES, "expected.npy"))
    with torch.no_grad():
        y = qat(x, mode="exact").numpy()
    assert y.shape == expected.shape
    assert np.array_equal(y.astype(np.float32), expected), np.abs(y - expected).max()


def test_fixture_python_calibration_equals_the_compilers():
    m, _, _ = fixture_model()
    cfg = QatConfig(os.path.join(FIXTURES, "qat.json"))
    cfg.check_calibration_file(os.path.join(FIXTURES, "calib.npy"))
    qat = QATModel(m, cfg)
    ranges = qat.calibrate(torch.from_numpy(np.load(os.path.join(FIXTURES, "calib.npy"))))
    for (r_in, r_out), mm in zip(ranges, cfg.matmuls):
        assert abs(r_in - mm["inRange"]) <= 1e-12 * mm["inRange"], (mm["name"], r_in, mm["inRange"])
        want = torch.tensor(mm["outRange"], dtype=F64)
        assert float(((r_out - want).abs() / want).max()) <= 1e-12, mm["name"]


def test_fixture_export_is_idempotent():
    m, _, sd = fixture_model()
    qat = QATModel(m, os.path.join(FIXTURES, "qat.json"))
    grid = grid_state_dict(qat, torch.float32)
    for k, v in sd.items():
        assert torch.equal(grid[k], v.to(torch.float32)), k


def test_fixture_onnx_export():
    import onnx
    from onnx import numpy_helper
    from imssa_qat import export_onnx

    m, cfg, sd = fixture_model()
    qat = QATModel(m, os.path.join(FIXTURES, "qat.json"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        export_onnx(qat, cfg, path)
        model = onnx.load(path)
    inits = [numpy_helper.to_array(t) for t in model.graph.initializer]
    # the decoder weight [10, 8] appears as it was exported (grid values, exact in float32)
    dec = sd["decoder.weight"].numpy()
    assert any(a.shape == dec.shape and np.array_equal(a, dec) for a in inits) or \
        any(a.shape == dec.T.shape and np.array_equal(a, dec.T) for a in inits)


def test_training_mode_gradients_reach_every_parameter():
    m, _, _ = fixture_model()
    qat = QATModel(m, os.path.join(FIXTURES, "qat.json"))
    x = torch.from_numpy(np.load(os.path.join(FIXTURES, "inputs.npy")))[:8]
    loss = F.cross_entropy(qat(x), torch.arange(8) % 10)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0, f"no gradient reaches {name}"
    # training mode approximates the chip (float32, ties to even, plain LayerNorm)
    with torch.no_grad():
        t, e = qat(x, mode="train"), qat(x, mode="exact")
    assert float((t - e).abs().max() / e.abs().max()) < 0.5


def test_noise_injection_is_seeded():
    m, _, _ = fixture_model()
    cfg = QatConfig(os.path.join(FIXTURES, "qat.json"))
    x = torch.from_numpy(np.load(os.path.join(FIXTURES, "inputs.npy")))[:4]
    outs = []
    for seed in (5, 5, 6):
        qat = QATModel(m, cfg, noise=NoiseModel.from_config(cfg, seed=seed))
        with torch.no_grad():
            outs.append(qat(x))
    clean = QATModel(m, cfg)
    with torch.no_grad():
        c = clean(x)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])
    assert not torch.equal(outs[0], c)


# ---- full loops through imssa-compile and imssa-run (need node and dist/) ----------------------------

def _roundtrip(cfg: S4DConfig, levels, train_steps: int, tmp: str, compile_args=()) -> float:
    torch.manual_seed(4)
    calib = os.path.join(FIXTURES, "calib.npy")
    inputs = os.path.join(FIXTURES, "inputs.npy")
    m = S4Model(cfg)
    save_safetensors({k: v.detach() for k, v in m.state_dict().items()}, os.path.join(tmp, "m0.safetensors"))
    with open(os.path.join(tmp, "m0.s4d"), "w") as f:
        f.write(s4d_text(cfg, "m0.safetensors", "m0", levels))
    node("compile", os.path.join(tmp, "m0.s4d"), *compile_args, "--calibrate", calib, "--emit", "qat-config", "-o", os.path.join(tmp, "m0.json"), "-q")
    qat = QATModel(m, os.path.join(tmp, "m0.json"))
    x = torch.from_numpy(np.load(calib))
    qat.recalibrate(x)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(train_steps):
        out = qat(x[:8])
        loss = out.pow(2).mean() if out.dim() == 3 else F.cross_entropy(out, torch.arange(8) % out.shape[-1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    export_safetensors(qat, os.path.join(tmp, "m1.safetensors"), dtype=torch.float32)
    with open(os.path.join(tmp, "m1.s4d"), "w") as f:
        f.write(s4d_text(cfg, "m1.safetensors", "m1", levels))
    node("compile", os.path.join(tmp, "m1.s4d"), *compile_args, "--calibrate", calib, "--emit", "qat-config", "-o", os.path.join(tmp, "m1.json"), "-q")
    node("compile", os.path.join(tmp, "m1.s4d"), *compile_args, "--calibrate", calib, "-o", os.path.join(tmp, "m1.xbin"), "-q")
    node("run", os.path.join(tmp, "m1.xbin"), "--input", inputs, "--output", os.path.join(tmp, "y.npy"))
    qat = QATModel(m, os.path.join(tmp, "m1.json"))
    assert qat.check_config(strict=False) == [], qat.check_config(strict=False)
    # the training side's own calibration is the compiler's
    for (r_in, _), mm in zip(qat.calibrate(x), qat.config.matmuls):
        assert abs(r_in - mm["inRange"]) <= 1e-12 * mm["inRange"]
    with torch.no_grad():
        mine = qat(torch.from_numpy(np.load(inputs)), mode="exact").numpy()
    ref = np.load(os.path.join(tmp, "y.npy")).astype(np.float64)
    return float(np.abs(mine - ref).max() / np.abs(ref).max())


def test_roundtrip_pooled_postnorm_zoh():
    if not have_node():
        raise Skip("node or dist/ missing")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = S4DConfig(d_input=1, d_model=12, n_layers=2, d_state=16, d_output=10)
        assert _roundtrip(cfg, None, 3, tmp) == 0.0


def test_roundtrip_prenorm_bilinear_per_step_with_level_requests():
    if not have_node():
        raise Skip("node or dist/ missing")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = S4DConfig(d_input=1, d_model=12, n_layers=2, d_state=16, d_output=3, prenorm=True, pool=False, disc="bilinear")
        levels = {"s4_layers.0.output_linear.0": 3, "decoder": 7, "s4_layers.1": 15}
        assert _roundtrip(cfg, levels, 3, tmp) == 0.0


def test_roundtrip_residual_and_direct_recurrence():
    """Both S4D recurrence forms (imssa-compile --recurrence): the residual configuration holds
    dA - I (s4d.recurrence = residual) and the graph's add; fake quantization must equal the chip."""
    if not have_node():
        raise Skip("node or dist/ missing")
    cfg = S4DConfig(d_input=1, d_model=12, n_layers=2, d_state=16, d_output=10, dt_min=0.01, dt_max=0.5)
    for form in ("residual", "direct"):
        with tempfile.TemporaryDirectory() as tmp:
            assert _roundtrip(cfg, None, 3, tmp, ("--recurrence", form)) == 0.0, form
            with open(os.path.join(tmp, "m1.json")) as f:
                c = json.load(f)
            s4d = [m for m in c["matmuls"] if m["origin"] == "s4d"]
            assert len(s4d) == 2 and all(m["s4d"].get("recurrence", "direct") == form for m in s4d)


def test_roundtrip_dense_partial_sums():
    """H = 80: every dense layer has more than 64 inputs or outputs (row-split partial sums)."""
    if not have_node():
        raise Skip("node or dist/ missing")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = S4DConfig(d_input=1, d_model=80, n_layers=1, d_state=4, d_output=10)
        assert _roundtrip(cfg, None, 2, tmp) == 0.0


def test_roundtrip_scaled_states():
    """scale_states keeps the float model and round-trips through kernel.B (QATModel extra=)."""
    if not have_node():
        raise Skip("node or dist/ missing")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(5)
        cfg = S4DConfig(d_input=1, d_model=12, n_layers=2, d_state=16, d_output=10, dt_min=0.01, dt_max=0.5)
        m = S4Model(cfg)
        calib = os.path.join(FIXTURES, "calib.npy")
        inputs = os.path.join(FIXTURES, "inputs.npy")
        sd = {k: v.detach() for k, v in m.state_dict().items()}
        scaled = scale_states(sd, cfg.disc, 4.0)
        B = {k: v for k, v in scaled.items() if k.endswith("kernel.B")}
        assert len(B) == 2 and float(B["s4_layers.0.kernel.B"][..., 0].max()) > 1
        for tag, tensors in (("plain", sd), ("scaled", scaled)):
            save_safetensors(tensors, os.path.join(tmp, f"{tag}.safetensors"))
            with open(os.path.join(tmp, f"{tag}.s4d"), "w") as f:
                f.write(s4d_text(cfg, f"{tag}.safetensors", tag))
            node("compile", os.path.join(tmp, f"{tag}.s4d"), "--calibrate", calib, "--emit", "qat-config", "-o", os.path.join(tmp, f"{tag}.json"), "-q")
        node("compile", os.path.join(tmp, "scaled.s4d"), "--calibrate", calib, "-o", os.path.join(tmp, "scaled.xbin"), "-q")
        node("run", os.path.join(tmp, "scaled.xbin"), "--input", inputs, "--output", os.path.join(tmp, "y.npy"))
        ms = S4Model(cfg)
        ms.load_state_dict({k: v for k, v in scaled.items() if k not in B})
        plain = QATModel(m, os.path.join(tmp, "plain.json"))
        qs = QATModel(ms, os.path.join(tmp, "scaled.json"), extra=B)
        assert qs.check_config(strict=False) == []
        x = torch.from_numpy(np.load(inputs))
        with torch.no_grad():
            a, b = plain(x, mode="float"), qs(x, mode="float")
            assert float((a - b).abs().max() / a.abs().max()) < 1e-5, "state scaling changed the float model"
            y = qs(x, mode="exact").numpy()
        assert np.array_equal(y.astype(np.float32), np.load(os.path.join(tmp, "y.npy")))
        grid = grid_state_dict(qs, torch.float32)
        assert all(torch.equal(grid[k], v) for k, v in B.items())


# ---- runner ---------------------------------------------------------------------------------

def main() -> int:
    torch.set_num_threads(1)
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f) and only in n]
    failed = skipped = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok    {name}")
        except Skip as e:
            skipped += 1
            print(f"skip  {name}: {e}")
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"FAIL  {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
