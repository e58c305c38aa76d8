"""Writes test/fixtures/qat/: a model fine-tuned with imssa_qat and the fake-quantized outputs
the compiled program must reproduce (test/qat-roundtrip.test.ts). Run via
scripts/gen-qat-fixtures.sh (needs /usr/bin/python3 with torch, numpy, sklearn, and a built
dist/ for imssa-compile).

The loop it runs is the one of docs/QAT.md, on a small model (H 8, N 64, 2 layers: every S4D
channel is 65 x 65, larger than a 64 x 64 crossbar, so columns are summed from two pieces):

 1. float training (convolution form) on the digits data, a few epochs;
 2. imssa-compile --emit qat-config with the calibration inputs      -> train.qat.json
 3. QAT fine-tuning with that configuration (recalibrated after every epoch);
 4. export (grid weights)                                            -> model.safetensors, model.s4d
 5. imssa-compile --emit qat-config of the exported model, same calibration -> qat.json
 6. the fake-quantized model in exact mode with qat.json on inputs.npy -> expected.npy
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from imssa_export import S4DConfig, S4Model, save_safetensors

from . import QATModel, export_safetensors, write_s4d

CFG = S4DConfig(d_input=1, d_model=8, n_layers=2, d_state=64, d_output=10, dt_min=0.01, dt_max=0.5)


def compile_config(root: str, model: str, calib: str, out: str) -> None:
    # The committed fixture is the direct recurrence form, named explicitly so that it does not
    # depend on the compiler's default (python/test_qat.py round-trips the residual form).
    cmd = ["node", os.path.join(root, "dist", "cli", "compile.js"), model, "--target", "xbar64",
           "--recurrence", "direct", "--calibrate", calib, "--emit", "qat-config", "-o", out, "-q"]
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = args.out
    os.makedirs(out, exist_ok=True)
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images.reshape(-1, 64, 1) / 16.0).astype(np.float32))
    y = torch.from_numpy(d.target.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    train, test = perm[:1400], perm[1400:]
    xtr, ytr = x[train], y[train]
    calib = os.path.join(out, "calib.npy")
    np.save(calib, xtr[:32].numpy())
    np.save(os.path.join(out, "inputs.npy"), x[test[:16]].numpy())

    # 1. float training
    model = S4Model(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for epoch in range(30):
        p = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = p[i: i + 64]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = float((model(x[test]).argmax(-1) == y[test]).float().mean())
    print(f"float model: test accuracy {acc:.3f}")
    tmp = os.path.join(out, "tmp")
    os.makedirs(tmp, exist_ok=True)
    save_safetensors({k: v.detach() for k, v in model.state_dict().items()}, os.path.join(tmp, "float.safetensors"))
    write_s4d(CFG, os.path.join(tmp, "float.s4d"), "float.safetensors", name="qat_fixture")

    # 2.-3. QAT with the compiled configuration
    train_cfg = os.path.join(out, "train.qat.json")
    compile_config(args.root, os.path.join(tmp, "float.s4d"), calib, train_cfg)
    qat = QATModel(model, train_cfg)
    qat.recalibrate(torch.from_numpy(np.load(calib)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(3):
        p = torch.randperm(len(xtr), generator=g)[:512]
        for i in range(0, len(p), 64):
            idx = p[i: i + 64]
            loss = F.cross_entropy(qat(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        qat.recalibrate(torch.from_numpy(np.load(calib)))
        print(f"QAT epoch {epoch + 1}: loss {float(loss):.3f}")

    # 4.-5. export and compile the deployment configuration
    export_safetensors(qat, os.path.join(out, "model.safetensors"), dtype=torch.float32)
    write_s4d(CFG, os.path.join(out, "model.s4d"), "model.safetensors", name="qat_fixture", qat=qat)
    deploy_cfg = os.path.join(out, "qat.json")
    compile_config(args.root, os.path.join(out, "model.s4d"), calib, deploy_cfg)

    # 6. the fake-quantized outputs (exact mode) with the deployment configuration
    qat = QATModel(model, deploy_cfg)
    problems = qat.check_config(strict=False)
    if problems:
        sys.exit("the compiled configuration does not match the exported weights: " + "; ".join(problems))
    with torch.no_grad():
        expected = qat(torch.from_numpy(np.load(os.path.join(out, "inputs.npy"))), mode="exact")
    np.save(os.path.join(out, "expected.npy"), expected.numpy().astype(np.float32))
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    print(f"wrote {out}: expected outputs {tuple(expected.shape)}, "
          f"accuracy on the 16 inputs {float((expected.argmax(-1) == y[test[:16]]).float().mean()):.3f}")


if __name__ == "__main__":
    main()
