#!/usr/bin/env python3
"""Trains the QAT classification fixture scan_cls_qat_op17 and exports it (test/fixtures/onnx/).

    python3 exporters/pytorch/train_digits_qat.py [--out test/fixtures/onnx] [--work DIR]
        [--cli dist/cli/compile.js] [--target xbar64]

scan_cls (train_digits.py, float-trained) keeps the ONNX Runtime argmax on only about 94% of
the 200 held-out digits when compiled for xbar64 (31 weight levels): post-training
quantization of a float model hits the level limit (docs/QUANTIZATION.md "Residual
recurrence form"). This script fine-tunes the same architecture with imssa_qat against the
target's exact numerics (docs/QAT.md), aiming at the compiled ONNX file keeping the argmax of
its own float graph. It gets to 0.955 on xbar64, not to issue #5's 0.99 (docs/ONNX.md "QAT
classifier fixture" has the numbers and what limits them). Steps:

1. Start from the committed float weights (scan_cls.safetensors, written by make_fixtures.py).
2. Set both post-norm LayerNorms' affine parameters to the identity (weight 1, bias 0) and
   freeze them, then fine-tune in float (convolution form). Why: the ONNX front end folds a
   LayerNorm's scale and shift into the matmul that reads the normalized value (the next
   S4D's input rows and a bias; the decoder through the mean pooling), while the DSL path
   (which the QAT configuration is compiled from: imssa_qat needs state-spaces parameter
   names) applies them on the vector unit. With an identity affine both paths compile to the
   same crossbar matrices, so what QAT trained against is what the ONNX file compiles to.
3. Compile the QAT configuration (imssa-compile --emit qat-config) for the target with the
   calibration set the tests use (digits_train64_rows.input.npy) in the compiler's default
   recurrence form (residual), and fine-tune with imssa_qat.QATModel. The loss asks two
   things: the fake-quantized chip model classifies (cross entropy on the labels), and it
   agrees with the float graph that will be exported (cross entropy of the float model on the
   labels plus the relative squared difference of the two models' logits), because the
   fixture's check is the chip's argmax against ONNX Runtime's float argmax, not against the
   labels. The float graph uses the dense weights on their exported level grid
   (straight-through), as the ONNX file will. Ranges are recalibrated after every epoch
   (docs/QAT.md). The epoch whose chip agrees best with the float graph on a validation set
   is kept: the 250 test-split sequences the fixture does not hold (test[200:450]); the
   fixture's own 200 sequences decide nothing.
4. Export the weights on the level grid and recompile the configuration. If the compiler's
   choices that training takes from the configuration moved (the per-mode state scale
   factors, which follow the calibrated state ranges, or the crossbar pieces), train another
   round (lower learning rate) against the new configuration. Of all rounds (including the
   float model's post-training quantization), the one whose compiled chip (exact mode with
   its own configuration, i.e. what imssa-run computes) agrees best on the validation set is
   exported.
5. Export the ONNX Scan graph (opset 17, the arrangement of scan_cls_op17) and its PyTorch
   reference outputs on scan_cls_op17.input.npy (the same 200 test sequences, not duplicated),
   the weights as scan_cls_qat.safetensors and a DSL model scan_cls_qat.s4d, and add (or
   replace) the fixture's entry in fixtures.json.

Deterministic: fixed seeds, one thread, torch.use_deterministic_algorithms; a rerun on the same
machine writes the same bytes. Needs a built CLI (npm run build) and Debian's python3-torch,
python3-onnx, python3-numpy, python3-sklearn. About 8 to 12 minutes on a shared 2-core machine.
Model selection uses test-split sequences 200..449 only; the fixture's 200 decide nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))

from imssa_export import S4Model, export_scan, load_safetensors, reference_output, save_safetensors  # noqa: E402
from imssa_qat import QATModel, export_safetensors, grid_state_dict  # noqa: E402
from imssa_qat.matrices import DenseSpec  # noqa: E402
from train_digits import (DATASET, SCAN_CLS, SPLIT_TEXT, TrainSpec, as_sequences, deterministic,  # noqa: E402
                          digits_split, train)

NAME = "scan_cls_qat_op17"
WEIGHTS = "scan_cls_qat"             # scan_cls_qat.safetensors / scan_cls_qat.s4d
FLOAT_WEIGHTS = "scan_cls.safetensors"
INPUT = "scan_cls_op17.input.npy"    # the 200 test sequences, (pixel / 16, row / 8) per step
CALIBRATION = "digits_train64_rows.input.npy"
LABELS = "digits_test200.labels.npy"

# Float fine-tuning with identity LayerNorm affines (step 2).
FLOAT_SPEC = TrainSpec(epochs=40, lr=3e-3, ssm_lr=1e-3, seed=45)
# QAT (step 3): Adam, cosine schedule per round, batch 32.
QAT_EPOCHS = (14, 6)                 # first round, further rounds (when the configuration moved)
QAT_LR, QAT_SSM_LR, QAT_BATCH, QAT_SEED = 1e-3, 5e-4, 32, 46
AGREE_WEIGHT = 100.0                 # weight of the relative squared logit difference chip vs float graph
MAX_ROUNDS = 3
# Validation (picks the epoch and the round): the 250 test-split sequences the fixture does not
# hold (test[200:450]); the fixture's 200 (test[:200]) decide nothing.
VAL = slice(200, 450)
SSM = ("log_dt", "log_A_real", "A_imag")


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- model and data -------------------------------------------------------------------------

def load_float(fixtures: str) -> S4Model:
    model = S4Model(SCAN_CLS)
    sd = load_safetensors(os.path.join(fixtures, FLOAT_WEIGHTS))
    model.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()})
    return model


def freeze_identity_norms(model: S4Model) -> None:
    """LayerNorm affine = identity, not trained (see the module docstring, step 2). The last
    block's affine only feeds the mean pooling and the (affine) decoder, so it is first folded
    into the decoder exactly (W diag(g), b + W beta: the same float model); the first block's
    also feeds the residual path and the next S4D, so it is simply reset and fine-tuning
    recovers the accuracy."""
    with torch.no_grad():
        last = model.norms[-1]
        model.decoder.bias.add_(model.decoder.weight @ last.bias)
        model.decoder.weight.mul_(last.weight.reshape(1, -1))
        for norm in model.norms:
            norm.weight.fill_(1.0)
            norm.bias.zero_()
            norm.weight.requires_grad_(False)
            norm.bias.requires_grad_(False)


def write_dsl(path: str, weights_file: str) -> None:
    """The DSL model of scan_cls (make_fixtures.dsl_model's text) loading `weights_file`."""
    from make_fixtures import dsl_model

    text = dsl_model(WEIGHTS, SCAN_CLS, weights_file, "x", "logits")
    text = text.replace("Generated by exporters/pytorch/make_fixtures.py", "Generated by exporters/pytorch/train_digits_qat.py")
    with open(path, "w") as f:
        f.write(text)


def compile_config(cli: str, s4d: str, out: str, target: str, calibration: str) -> None:
    """imssa-compile s4d --target T --calibrate C --emit qat-config -o out (default recurrence form)."""
    cmd = ["node", cli, s4d, "--target", target, "--calibrate", calibration, "--emit", "qat-config", "-o", out, "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"train_digits_qat: {' '.join(cmd)} failed:\n{r.stderr}")


def save_state(model: S4Model, qat: QATModel, path: str) -> Dict[str, torch.Tensor]:
    """float32 weights; with `qat`, dense weights on their level grid (what the chip maps exactly)."""
    if qat is None:
        sd = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
        save_safetensors(sd, path, {"format": "pt", "config": SCAN_CLS.to_json()})
        return sd
    return export_safetensors(qat, path, dtype=torch.float32,
                              metadata={"format": "pt", "config": SCAN_CLS.to_json(), "exporter": "imssa_qat"})


# ---- the float graph the ONNX file computes ------------------------------------------------------

def grid_overrides(qat: QATModel) -> Dict[str, torch.Tensor]:
    """Dense weights on their exported level grid with a straight-through gradient
    (export.grid_state_dict, differentiable): the weights the ONNX file will hold."""
    params = qat.params()
    out = {}
    for sim in qat.sims:
        if not isinstance(sim.spec, DenseSpec) or sim.L == 0:
            continue
        w = params[sim.spec.weight]
        with torch.no_grad():
            _, grid = sim.deploy_scales(sim.spec.values(params), snap=True)
            grid = grid.reshape(sim.n_rows, sim.n_cols).t().reshape(w.shape).to(w.dtype)
        out[sim.spec.weight] = w + (grid - w).detach()
    return out


def float_graph(qat: QATModel, x: torch.Tensor) -> torch.Tensor:
    from torch.nn.utils.stateless import functional_call

    return functional_call(qat.model, grid_overrides(qat), (x,))


def agree_loss(chip: torch.Tensor, flt: torch.Tensor) -> torch.Tensor:
    """Relative squared logit difference between the chip and the float graph, per sequence
    |chip - float|^2 / (|float|^2 + 1), mean over the batch. An argmax flips where the chip's
    logit error exceeds the float margin, so the error itself is made small on every input,
    not only where the labels say; relative, so that shrinking the logits does not pay."""
    num = ((chip - flt) ** 2).sum(-1)
    den = (flt.detach() ** 2).sum(-1) + 1.0
    return (num / den).mean()


@torch.no_grad()
def agreement(qat: QATModel, x: torch.Tensor, mode: str = "exact", batch: int = 200) -> Tuple[float, torch.Tensor, torch.Tensor]:
    """(argmax agreement, chip logits, float-graph logits): chip = exact mode (what the interpreter computes)."""
    chip = torch.cat([qat(x[i:i + batch], mode=mode) for i in range(0, len(x), batch)]).to(torch.float32)
    flt = torch.cat([float_graph(qat, x[i:i + batch]) for i in range(0, len(x), batch)])
    return float((chip.argmax(-1) == flt.argmax(-1)).double().mean()), chip, flt


def structure_changes(trained: str, recompiled: str) -> List[str]:
    """What train mode takes from the configuration rather than from the current weights, and
    that differs between the configuration trained against and the recompiled one: the S4D
    state scale factors and recurrence form, and the crossbar pieces (which rows and columns
    each holds, partial sums). Scales, levels, repairs and ranges train mode derives itself
    (the compiler's policy and calibration), so they are not compared."""
    a, b = (json.load(open(p)) for p in (trained, recompiled))
    out = []
    for ma, mb in zip(a["matmuls"], b["matmuls"]):
        sa, sb = ma.get("s4d", {}), mb.get("s4d", {})
        if sa.get("stateScale") != sb.get("stateScale") or sa.get("recurrence") != sb.get("recurrence"):
            out.append(f"{ma['layer']}: state scale factors")
        shape = lambda m: [(p["tile"], p["rows"], p["cols"], p["partial"]) for p in m["pieces"]]
        if shape(ma) != shape(mb):
            out.append(f"{ma['layer']}: crossbar pieces")
    return out


# ---- QAT ---------------------------------------------------------------------------------------

def qat_round(qat: QATModel, xs: torch.Tensor, ys: torch.Tensor, val: torch.Tensor, calib: torch.Tensor,
              epochs: int, seed: int, lr: float) -> float:
    """Trains `epochs` epochs on (xs, ys); keeps the epoch whose chip model (train mode, which
    equals exact mode here up to rare last-bit differences) agrees best with the float graph on
    the held-out training sequences `val`. Returns that agreement."""
    model = qat.model
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    ssm = [p for n, p in named if n.split(".")[-1] in SSM]
    rest = [p for n, p in named if n.split(".")[-1] not in SSM]
    opt = torch.optim.Adam([{"params": rest, "lr": lr}, {"params": ssm, "lr": lr * QAT_SSM_LR / QAT_LR}])
    steps = epochs * math.ceil(len(xs) / QAT_BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    best = (-1.0, 0.0, None, None)  # (agreement, -relative error, state_dict, ranges)
    for epoch in range(epochs):
        perm = torch.randperm(len(xs), generator=g)
        totals = np.zeros(3)
        for i in range(0, len(xs), QAT_BATCH):
            idx = perm[i:i + QAT_BATCH]
            chip = qat(xs[idx], mode="train")
            flt = float_graph(qat, xs[idx])
            parts = (F.cross_entropy(chip, ys[idx]), F.cross_entropy(flt, ys[idx]), agree_loss(chip, flt))
            loss = parts[0] + parts[1] + AGREE_WEIGHT * parts[2]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            totals += np.array([float(p) for p in parts]) * len(idx)
        qat.recalibrate(calib)  # the ranges the compiler will calibrate for these weights
        # train mode: exact mode needs the weights the configuration was compiled from
        a, chip, flt = agreement(qat, val, mode="train")
        rel = float(agree_loss(chip, flt))
        t = totals / len(xs)
        log(f"  epoch {epoch + 1:2d}: ce(chip) {t[0]:.4f} ce(float) {t[1]:.4f} rel.sq {t[2]:.5f}; held-out: "
            f"argmax agreement chip vs float graph {a:.4f}, rel.sq {rel:.5f} ({time.time() - t0:.0f} s)")
        if (a, -rel) > best[:2]:
            best = (a, -rel, {k: v.detach().clone() for k, v in model.state_dict().items()}, qat.ranges)
    model.load_state_dict(best[2])
    qat.ranges = best[3]
    return best[0]


def main() -> None:
    global FLOAT_SPEC, QAT_EPOCHS, AGREE_WEIGHT, QAT_LR, QAT_SSM_LR
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "onnx"), help="fixture directory")
    ap.add_argument("--work", help="scratch directory for the intermediate models and configurations (default: a temporary one)")
    ap.add_argument("--cli", default=os.path.join(ROOT, "dist", "cli", "compile.js"), help="imssa-compile (built)")
    ap.add_argument("--target", default="xbar64")
    # the recipe (defaults: the committed fixture's); the manifest records the values used
    ap.add_argument("--float-epochs", type=int, default=FLOAT_SPEC.epochs)
    ap.add_argument("--qat-epochs", type=int, default=QAT_EPOCHS[0])
    ap.add_argument("--agree-weight", type=float, default=AGREE_WEIGHT)
    ap.add_argument("--qat-lr", type=float, default=QAT_LR)
    args = ap.parse_args()
    FLOAT_SPEC = TrainSpec(**{**FLOAT_SPEC.__dict__, "epochs": args.float_epochs})
    QAT_EPOCHS = (args.qat_epochs, QAT_EPOCHS[1])
    AGREE_WEIGHT = args.agree_weight
    QAT_SSM_LR, QAT_LR = QAT_SSM_LR * args.qat_lr / QAT_LR, args.qat_lr
    if not os.path.isfile(args.cli):
        raise SystemExit(f"train_digits_qat: {args.cli} is missing; run npm run build first")
    work = args.work or tempfile.mkdtemp(prefix="imssa-qat-fixture-")
    os.makedirs(work, exist_ok=True)
    out = args.out
    calib_file = os.path.join(out, CALIBRATION)
    t_start = time.time()

    with deterministic():
        torch.manual_seed(0)
        model = load_float(out)
        x_tr, y_tr, x_te, y_te = digits_split()
        xs, ys = as_sequences(x_tr, SCAN_CLS.d_input), torch.from_numpy(y_tr)
        xval = as_sequences(x_te[VAL], SCAN_CLS.d_input)
        calib = torch.from_numpy(np.load(calib_file))
        assert torch.equal(calib, xs[:64]), f"{CALIBRATION} is not the first 64 training sequences"

        # step 2: identity LayerNorm affines, float fine-tuning
        freeze_identity_norms(model)
        log(f"float fine-tuning with identity LayerNorm affines ({FLOAT_SPEC.epochs} epochs)")
        stats = train(model, FLOAT_SPEC, log=True)
        log(f"  float: train accuracy {stats['train_accuracy']:.4f}, test accuracy {stats['test_accuracy']:.4f}")
        st = os.path.join(work, "round0.safetensors")
        save_state(model, None, st)
        write_dsl(os.path.join(work, "round0.s4d"), "round0.safetensors")

        # steps 3 and 4: QAT rounds against the configuration of the previous round's model,
        # until the recompiled configuration has the structure trained against; the round whose
        # compiled chip (exact mode, its own configuration) agrees best with the float graph on
        # the held-out training sequences is exported
        config = os.path.join(work, "round0.qat.json")
        compile_config(args.cli, os.path.join(work, "round0.s4d"), config, args.target, calib_file)
        qat = QATModel(model, config)
        done = [(agreement(qat, xval, mode="exact")[0], 0)]
        log(f"round 0 (float fine-tuned, post-training quantization): held-out agreement {done[0][0]:.4f}")
        for rnd in range(1, MAX_ROUNDS + 1):
            qat = QATModel(model, config)
            qat.recalibrate(calib)
            epochs = QAT_EPOCHS[0] if rnd == 1 else QAT_EPOCHS[1]
            log(f"QAT round {rnd} against {os.path.basename(config)} ({epochs} epochs)")
            kept = qat_round(qat, xs, ys, xval, calib, epochs, QAT_SEED + rnd,
                             QAT_LR if rnd == 1 else QAT_LR / 4)
            st = os.path.join(work, f"round{rnd}.safetensors")
            save_state(model, qat, st)
            # continue from the exported grid weights (the same model: the chip maps them exactly)
            model.load_state_dict({k: v.to(torch.float32) for k, v in load_safetensors(st).items()})
            write_dsl(os.path.join(work, f"round{rnd}.s4d"), f"round{rnd}.safetensors")
            config = os.path.join(work, f"round{rnd}.qat.json")
            compile_config(args.cli, os.path.join(work, f"round{rnd}.s4d"), config, args.target, calib_file)
            qat = QATModel(model, config)
            problems = qat.check_config(strict=False)
            assert not problems, problems
            a = agreement(qat, xval, mode="exact")[0]
            done.append((a, rnd))
            log(f"round {rnd}: kept the epoch with held-out agreement {kept:.4f} (train mode); compiled: {a:.4f}")
            moved = structure_changes(os.path.join(work, f"round{rnd - 1}.qat.json"), config)
            if not moved:
                log(f"round {rnd}: the recompiled configuration has the structure trained against")
                break
            log(f"round {rnd}: the compiler's choices moved ({'; '.join(moved)}); another round")
        best_a, rnd = max(done, key=lambda t: (t[0], t[1]))
        log(f"exporting round {rnd} (held-out agreement of the compiled chip {best_a:.4f})")
        model.load_state_dict({k: v.to(torch.float32) for k, v in load_safetensors(os.path.join(work, f"round{rnd}.safetensors")).items()})
        config = os.path.join(work, f"round{rnd}.qat.json")

        # step 5: export
        qat = QATModel(model, config)
        assert not qat.check_config(strict=False)
        x200 = torch.from_numpy(np.load(os.path.join(out, INPUT)))
        assert torch.equal(x200, as_sequences(x_te[:200], SCAN_CLS.d_input)), f"{INPUT} is not the first 200 test sequences"
        labels = torch.from_numpy(np.load(os.path.join(out, LABELS)))
        sd = grid_state_dict(qat, torch.float32)
        save_safetensors(sd, os.path.join(out, f"{WEIGHTS}.safetensors"), {"format": "pt", "config": SCAN_CLS.to_json(),
                                                                          "exporter": "imssa_qat"})
        write_dsl(os.path.join(out, f"{WEIGHTS}.s4d"), f"{WEIGHTS}.safetensors")
        info = export_scan(sd, SCAN_CLS, os.path.join(out, f"{NAME}.onnx"), opset=17, arrangement="halves", names="in_out")
        y200 = reference_output(info, SCAN_CLS, x200)
        with torch.no_grad():
            from imssa_export.export import conv_model
            conv = conv_model(info["state_dict"], SCAN_CLS)(x200)
        err = float((conv - y200).abs().max())
        assert err < 1e-5 * max(1.0, float(y200.abs().max())), f"{NAME}: reference vs convolution form {err}"
        np.save(os.path.join(out, f"{NAME}.output.npy"), np.ascontiguousarray(y200.numpy().astype(np.float32)))

        _, chip, _ = agreement(qat, x200)  # exact mode: what imssa-run computes for the DSL model
        chip_vs_ref = float((chip.argmax(-1) == y200.argmax(-1)).double().mean())
        float_acc = float((y200.argmax(-1) == labels).double().mean())
        chip_acc = float((chip.argmax(-1) == labels).double().mean())
        model.eval()
        test_acc = float((torch.cat([conv_model(info["state_dict"], SCAN_CLS)(as_sequences(x_te, 2))]).argmax(-1)
                          == torch.from_numpy(y_te)).double().mean())
        seconds = time.time() - t_start
        log(f"{NAME}: exported graph on the 200 fixture sequences: accuracy {float_acc:.4f}; chip ({args.target}, "
            f"exact mode of the DSL configuration) accuracy {chip_acc:.4f}, argmax agreement with the exported "
            f"graph {chip_vs_ref:.4f}; float test accuracy (450) {test_acc:.4f}; {seconds:.0f} s")

        entry = manifest_entry(info, x200, y200, test_acc, float_acc, chip_vs_ref, rnd, len(done) - 1, args.target)
        update_manifest(os.path.join(out, "fixtures.json"), entry)


def manifest_entry(info: Dict[str, Any], x: torch.Tensor, y: torch.Tensor, test_acc: float, acc200: float,
                   chip_agree: float, exported: int, rounds: int, target: str) -> Dict[str, Any]:
    return {
        "name": NAME,
        "file": f"{NAME}.onnx",
        "expect": "accept",
        "form": info["form"],
        "opset": info["opset"],
        "input": info["input"],
        "output": info["output"],
        "states": [{"in": i, "out": o, "shape": ["batch" if d == -1 else d for d in s]}
                   for (i, o), s in zip(info["states"], info["state_shapes"])],
        "state_names": "in_out",
        "arrangement": info["arrangement"],
        "readout": info["readout"],
        "layernorm": "LayerNormalization",
        "config": json.loads(SCAN_CLS.to_json()),
        "data": {"input": INPUT, "input_shape": list(x.shape), "output": f"{NAME}.output.npy", "output_shape": list(y.shape)},
        "check_error": info["check_error"],
        "time_major": info["time_major"],
        "exercises": "a quantization-aware-trained classifier (scan_cls architecture and Scan form, LayerNorm affines "
                     f"fixed at the identity) for {target}: how well the compiled chip keeps ONNX Runtime's argmax "
                     "after QAT (test/onnx-qat-argmax.test.ts; issue #5 asks for 0.99)",
        "safetensors": f"{WEIGHTS}.safetensors",
        "dsl": f"{WEIGHTS}.s4d",
        "trained": {
            "dataset": DATASET + "; d_input 2: (pixel / 16, row / 8) per step, row = t // 8",
            "split": SPLIT_TEXT,
            "training": f"train_digits_qat.py: from scan_cls.safetensors; LayerNorm affines set to the identity and "
                        f"frozen, float fine-tuning {FLOAT_SPEC.epochs} epochs; then imssa_qat against the {target} "
                        f"qat-config (default recurrence form, calibration {CALIBRATION}), {rounds} round(s) "
                        f"({QAT_EPOCHS[0]} epochs, then {QAT_EPOCHS[1]} per further round at a quarter of the learning "
                        f"rate; round {exported} exported), Adam lr {QAT_LR:g} "
                        f"(SSM {QAT_SSM_LR:g}), batch {QAT_BATCH}, seed {QAT_SEED}; loss: cross entropy of the "
                        f"fake-quantized model and of the float graph plus {AGREE_WEIGHT:g} x their relative squared logit difference; the epoch and round whose chip agrees best with the float graph on test-split sequences 200..449 (not in the fixture) are kept",
            "qat_target": target,
            "calibration": CALIBRATION,
            "test_accuracy": round(test_acc, 6),
            "test_count": 450,
            "test200_accuracy": round(acc200, 6),
            # exact mode with the DSL model's configuration (imssa-run on scan_cls_qat.s4d); the ONNX
            # file's compile can differ where the compiler's S4D repair decision is a tie
            "dsl_chip_agreement_test200": round(chip_agree, 6),
            "labels": LABELS,
            "inputs": "the first 200 test-split sequences, in split order (the input file of scan_cls_op17)",
        },
    }


def update_manifest(path: str, entry: Dict[str, Any]) -> None:
    """Replaces (or appends) this fixture's entry in fixtures.json, keeping every other entry."""
    with open(path) as f:
        manifest = json.load(f)
    fixtures: List[Dict[str, Any]] = manifest["fixtures"]
    names = [e["name"] for e in fixtures]
    if NAME in names:
        fixtures[names.index(NAME)] = entry
    else:
        fixtures.insert(names.index("scan_cls_op17") + 1 if "scan_cls_op17" in names else len(fixtures), entry)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
