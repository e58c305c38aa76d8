#!/usr/bin/env python3
"""The QAT workflow of docs/QAT.md on scikit-learn's digits (8x8 images as 64-step pixel sequences).

    python3 examples/digits-qat.py data  --out DIR      # DIR/{train,test,calib}-{x,y}.npy
    python3 examples/digits-qat.py float --out DIR      # float training -> DIR/float.{safetensors,s4d}
    python3 examples/digits-qat.py qat   --out DIR --config DIR/float.qat.json
                                                        # QAT fine-tuning -> DIR/qat.{safetensors,s4d}
    python3 examples/digits-qat.py scale --out DIR --name scaled
                                                        # per-mode state scaling -> DIR/scaled.{safetensors,s4d}
    python3 examples/digits-qat.py accuracy DIR/out.npy --labels DIR/test-y.npy
    python3 examples/digits-qat.py exact DIR/qat.s4d DIR/qat.qat.json --input DIR/test-x.npy -o DIR/exact.npy

The model: imssa_export.S4Model (state-spaces/s4 example.py shape), d_input 1, H 32, N 32,
2 post-norm layers, mean pooling, 10 classes. Seeds are fixed; on 2 CPU cores `float` takes
about a minute and `qat` a few minutes. Run with Debian's /usr/bin/python3 (torch, numpy,
sklearn, onnx). The full sequence of commands and the results: docs/QAT.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "exporters", "pytorch"))

from imssa_export import S4DConfig, S4Model, load_safetensors  # noqa: E402
from imssa_qat import NoiseModel, QATModel, QatConfig, export_safetensors, scale_states, write_s4d  # noqa: E402

CFG = S4DConfig(d_input=1, d_model=32, n_layers=2, d_state=32, d_output=10, prenorm=False, pool=True, disc="zoh")
SSM_PARAMS = ("log_dt", "log_A_real", "A_imag")


def load_data(out: str):
    p = lambda n: os.path.join(out, n)
    return {k: torch.from_numpy(np.load(p(f"{k}.npy"))) for k in ("train-x", "train-y", "test-x", "test-y", "calib-x")}


def cmd_data(args) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    os.makedirs(args.out, exist_ok=True)
    d = load_digits()
    x = (d.images.reshape(-1, 64, 1) / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    # calibration: 128 training sequences (the compiler's --calibrate and imssa_qat's recalibrate use the same file)
    arrays = {"train-x": xtr, "train-y": ytr, "test-x": xte, "test-y": yte, "calib-x": xtr[:128]}
    for k, v in arrays.items():
        np.save(os.path.join(args.out, f"{k}.npy"), v)
    print(f"train {len(xtr)}, test {len(xte)}, calibration {len(arrays['calib-x'])} sequences in {args.out}")


def param_groups(model, lr: float, ssm_lr: float):
    ssm = [p for n, p in model.named_parameters() if n.split(".")[-1] in SSM_PARAMS]
    rest = [p for n, p in model.named_parameters() if n.split(".")[-1] not in SSM_PARAMS]
    return [{"params": rest, "lr": lr, "weight_decay": 0.01}, {"params": ssm, "lr": ssm_lr, "weight_decay": 0.0}]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


def cmd_float(args) -> None:
    torch.manual_seed(args.seed)
    data = load_data(args.out)
    model = S4Model(S4DConfig(**{**CFG.__dict__, "dt_min": args.dt_min, "dt_max": args.dt_max}))
    opt = torch.optim.AdamW(param_groups(model, args.lr, args.lr / 3), lr=args.lr)
    xtr, ytr = data["train-x"], data["train-y"]
    steps = args.epochs * math.ceil(len(xtr) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.lr / 3], total_steps=steps)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), args.batch):
            idx = perm[i: i + args.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            model.eval()
            with torch.no_grad():
                acc = accuracy(model(data["test-x"]), data["test-y"])
            print(f"epoch {epoch + 1}: loss {float(loss):.4f}, float test accuracy {acc:.4f} ({time.time() - t0:.0f} s)")
    save(model, args.out, "float")


def save(model, out: str, name: str, qat: QATModel = None) -> None:
    st = os.path.join(out, f"{name}.safetensors")
    if qat is None:
        from imssa_export import save_safetensors
        save_safetensors({k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}, st)
        write_s4d(CFG, os.path.join(out, f"{name}.s4d"), f"{name}.safetensors", name=f"digits_{name}")
    else:
        export_safetensors(qat, st, dtype=torch.float32)
        write_s4d(CFG, os.path.join(out, f"{name}.s4d"), f"{name}.safetensors", name=f"digits_{name}", qat=qat)
    print(f"wrote {st} and {os.path.join(out, name + '.s4d')}")


def load_model(path: str):
    """(S4Model, extra tensors): kernel.B (from `scale`) is not an S4Model parameter."""
    model = S4Model(CFG)
    sd = {k: v.to(torch.float32) for k, v in load_safetensors(path).items()}
    extra = {k: v for k, v in sd.items() if k.endswith(".kernel.B")}
    model.load_state_dict({k: v for k, v in sd.items() if k not in extra})
    return model, extra


def evaluate(qat: QATModel, x: torch.Tensor, y: torch.Tensor, mode: str, batch: int = 120) -> float:
    with torch.no_grad():
        out = torch.cat([qat(x[i: i + batch], mode=mode) for i in range(0, len(x), batch)])
    return accuracy(out, y)


def cmd_qat(args) -> None:
    torch.manual_seed(args.seed)
    data = load_data(args.out)
    model, extra = load_model(args.init or os.path.join(args.out, "float.safetensors"))
    noise = NoiseModel.from_config(QatConfig(args.config), scale=args.noise) if args.noise > 0 else None
    qat = QATModel(model, args.config, noise=noise, extra=extra)
    calib = data["calib-x"]
    qat.recalibrate(calib)
    xtr, ytr = data["train-x"], data["train-y"]
    print(f"before QAT: fake-quantized test accuracy {evaluate(qat, data['test-x'], data['test-y'], 'train'):.4f}")
    opt = torch.optim.AdamW(param_groups(model, args.lr, args.ssm_lr), lr=args.lr)
    steps = args.epochs * math.ceil(len(xtr) / args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr))
        total = 0.0
        for i in range(0, len(xtr), args.batch):
            idx = perm[i: i + args.batch]
            loss = F.cross_entropy(qat(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        qat.recalibrate(calib)  # the ranges the compiler will calibrate for these weights
        acc = evaluate(qat, data["test-x"], data["test-y"], "train")
        what = "with noise" if noise is not None else "noise off"
        print(f"epoch {epoch + 1}: loss {total / len(xtr):.4f}, fake-quantized test accuracy ({what}) {acc:.4f} ({time.time() - t0:.0f} s)")
    qat.noise = None
    save(model, args.out, args.name, qat)


def cmd_scale(args) -> None:
    """Per-mode state scaling (imssa_qat.scale_states): the same float model, dB on more levels."""
    sd = load_safetensors(args.init or os.path.join(args.out, "float.safetensors"))
    scaled = scale_states({k: v.to(torch.float32) for k, v in sd.items()}, CFG.disc, args.max_scale)
    from imssa_export import save_safetensors
    st = os.path.join(args.out, f"{args.name}.safetensors")
    save_safetensors(scaled, st)
    write_s4d(CFG, os.path.join(args.out, f"{args.name}.s4d"), f"{args.name}.safetensors", name=f"digits_{args.name}")
    print(f"wrote {st} and {os.path.join(args.out, args.name + '.s4d')}")


def cmd_accuracy(args) -> None:
    out = np.load(args.outputs)
    y = np.load(args.labels)
    print(f"{float((out.argmax(-1) == y).mean()):.4f}")


def cmd_exact(args) -> None:
    """The fake-quantized model in exact mode: what the interpreter computes (noise off)."""
    d = os.path.dirname(os.path.abspath(args.model))
    with open(args.model) as f:
        text = f.read()
    st = text.split('params from "', 1)[1].split('"', 1)[0]
    model, extra = load_model(os.path.join(d, st))
    qat = QATModel(model, args.config, extra=extra)
    problems = qat.check_config(strict=False)
    if problems:
        print("warning: " + "; ".join(problems), file=sys.stderr)
    x = torch.from_numpy(np.load(args.input))
    with torch.no_grad():
        y = torch.cat([qat(x[i: i + 60], mode="exact") for i in range(0, len(x), 60)])
    np.save(args.output, y.numpy().astype(np.float32))
    print(f"wrote {args.output} {tuple(y.shape)}")


def main() -> None:
    torch.set_num_threads(1)  # faster than 2 OpenMP threads for these small tensors
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data"); p.add_argument("--out", required=True); p.set_defaults(fn=cmd_data)
    p = sub.add_parser("float"); p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=60); p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2); p.add_argument("--seed", type=int, default=0)
    # 64-step sequences: larger steps than S4D's default [0.001, 0.1], and dB = (exp(dt A) - 1)/A
    # only survives weight rounding (it shares its column scale with |dA| ~ 1) for larger dt
    p.add_argument("--dt-min", type=float, default=0.01); p.add_argument("--dt-max", type=float, default=0.5)
    p.set_defaults(fn=cmd_float)
    p = sub.add_parser("qat"); p.add_argument("--out", required=True); p.add_argument("--config", required=True)
    p.add_argument("--init", help="initial weights (default OUT/float.safetensors)"); p.add_argument("--name", default="qat")
    p.add_argument("--epochs", type=int, default=8); p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3); p.add_argument("--ssm-lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="train with the target's noise times this factor (0: off)")
    p.set_defaults(fn=cmd_qat)
    p = sub.add_parser("scale"); p.add_argument("--out", required=True); p.add_argument("--init", help="default OUT/float.safetensors")
    p.add_argument("--name", default="scaled"); p.add_argument("--max-scale", type=float, default=4.0); p.set_defaults(fn=cmd_scale)
    p = sub.add_parser("accuracy"); p.add_argument("outputs"); p.add_argument("--labels", required=True); p.set_defaults(fn=cmd_accuracy)
    p = sub.add_parser("exact"); p.add_argument("model"); p.add_argument("config"); p.add_argument("--input", required=True)
    p.add_argument("-o", "--output", required=True); p.set_defaults(fn=cmd_exact)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
