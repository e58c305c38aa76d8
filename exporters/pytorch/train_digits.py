#!/usr/bin/env python3
"""Trains the classification fixtures' S4D models on scikit-learn's digits data set.

    python3 exporters/pytorch/train_digits.py [scan_cls|digits64 ...]   (train, print accuracies)

make_fixtures.py imports this module to train `scan_cls` and `digits64` before exporting
them, so the committed class scores are those of a model that actually classifies (their
argmax is meaningful) rather than near ties of a random initialization.

Data: sklearn.datasets.load_digits (1797 8x8 images, bundled with scikit-learn, no download),
split once with train_test_split(test_size=0.25, random_state=0, stratify=None): 1347 train,
450 test. Each image is a sequence of 64 steps, one pixel per step in row-major order,
pixel / 16 in [0, 1]. Models with d_input = 2 get (pixel, row / 8) per step (row = t // 8).

Training: the convolution (FFT) form of S4Model in float32 on the CPU, Adam (no weight
decay) with a cosine learning-rate schedule, cross entropy, batch 32, fixed seeds,
torch.use_deterministic_algorithms(True) and one thread (single-threaded reductions make a
rerun on the same machine give the same weights; it is also the fastest on a busy 2-core
box). The SSM parameters (log_dt, log_A_real, A_imag) get a smaller learning rate, as in
state-spaces/s4 example.py. About 1.5 minutes per model.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from imssa_export import S4DConfig, S4Model  # noqa: E402

SPLIT = {"test_size": 0.25, "random_state": 0}
SPLIT_TEXT = "sklearn.model_selection.train_test_split(test_size=0.25, random_state=0): 1347 train / 450 test"
DATASET = "sklearn.datasets.load_digits (8x8, 10 classes), 64 steps one pixel per step (row-major), pixel / 16"


class deterministic:
    """Context: one thread and deterministic algorithms; restores both afterwards (so the
    other fixtures make_fixtures.py writes are computed as before)."""

    def __init__(self, threads: int = 1):
        self.threads = threads

    def __enter__(self) -> "deterministic":
        self.saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True)
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.saved[0])
        torch.use_deterministic_algorithms(self.saved[1])


def digits_split() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train [n, 64], y_train [n], x_test [m, 64], y_test [m]): pixels / 16 as float32,
    labels int64, in the order train_test_split returns them."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)  # [1797, 64], row-major 8x8
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, **SPLIT)
    return x_tr, y_tr, x_te, y_te


def as_sequences(pixels: np.ndarray, d_input: int) -> torch.Tensor:
    """[n, 64] pixels -> [n, 64, d_input] float32: the pixel, plus row / 8 when d_input == 2."""
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).unsqueeze(-1)
    if d_input == 1:
        return x
    if d_input == 2:
        row = (torch.arange(64, dtype=torch.float32) // 8 / 8.0).reshape(1, 64, 1).expand_as(x)
        return torch.cat([x, row], dim=-1).contiguous()
    raise ValueError(f"digits sequences have d_input 1 or 2, not {d_input}")


@dataclass
class TrainSpec:
    epochs: int
    lr: float = 3e-3
    ssm_lr: float = 1e-3
    batch: int = 32
    seed: int = 0


@torch.no_grad()
def accuracy(model: S4Model, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    model.eval()
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((model(x[i:i + batch]).argmax(dim=-1) == y[i:i + batch]).sum())
    return hits / len(x)


def train(model: S4Model, spec: TrainSpec, log: bool = True) -> Dict[str, float]:
    """Trains `model` (in place) on the digits training split; returns float accuracies."""
    with deterministic():
        return _train(model, spec, log)


def _train(model: S4Model, spec: TrainSpec, log: bool) -> Dict[str, float]:
    cfg = model.cfg
    x_tr, y_tr, x_te, y_te = digits_split()
    xs, ys = as_sequences(x_tr, cfg.d_input), torch.from_numpy(y_tr)
    xt, yt = as_sequences(x_te, cfg.d_input), torch.from_numpy(y_te)
    ssm = [p for n, p in model.named_parameters() if n.split(".")[-1] in ("log_dt", "log_A_real", "A_imag")]
    rest = [p for n, p in model.named_parameters() if n.split(".")[-1] not in ("log_dt", "log_A_real", "A_imag")]
    opt = torch.optim.Adam([{"params": rest, "lr": spec.lr}, {"params": ssm, "lr": spec.ssm_lr}])
    steps_per_epoch = (len(xs) + spec.batch - 1) // spec.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(spec.seed)
    t0 = time.time()
    for epoch in range(spec.epochs):
        model.train()
        perm = torch.randperm(len(xs), generator=g)
        total = 0.0
        for i in range(0, len(xs), spec.batch):
            idx = perm[i:i + spec.batch]
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        if log and (epoch == spec.epochs - 1 or epoch % 5 == 4):
            print(f"  epoch {epoch + 1:3d}: train loss {total / len(xs):.4f}, test acc {accuracy(model, xt, yt):.4f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    return {"train_accuracy": accuracy(model, xs, ys), "test_accuracy": accuracy(model, xt, yt),
            "epochs": spec.epochs, "seconds": time.time() - t0}


# The two trained fixture models: their configs are those of the committed fixtures.
SCAN_CLS = S4DConfig(d_input=2, d_model=8, n_layers=2, d_state=8, d_output=10, pool=True, disc="zoh",
                     dt_min=0.01, dt_max=0.5)
DIGITS64 = S4DConfig(d_input=1, d_model=64, n_layers=2, d_state=64, d_output=10, pool=True, disc="zoh")
SPECS = {"scan_cls": TrainSpec(epochs=150, lr=1e-2, ssm_lr=3e-3, seed=44),
         "digits64": TrainSpec(epochs=40, lr=5e-3, ssm_lr=2e-3, seed=66)}
CONFIGS = {"scan_cls": SCAN_CLS, "digits64": DIGITS64}


def train_named(name: str, model: Optional[S4Model] = None, log: bool = True) -> Tuple[S4Model, Dict[str, float]]:
    """Trains fixture model `name` ("scan_cls" | "digits64"), from `model` if given (e.g. the
    perturbed initialization make_fixtures builds), else from a seeded initialization."""
    if model is None:
        torch.manual_seed(SPECS[name].seed)
        model = S4Model(CONFIGS[name])
    if log:
        print(f"training {name} on digits ({SPECS[name].epochs} epochs)", flush=True)
    stats = train(model, SPECS[name], log=log)
    return model, stats


if __name__ == "__main__":
    for n in sys.argv[1:] or list(SPECS):
        _, s = train_named(n)
        print(f"{n}: train accuracy {s['train_accuracy']:.4f}, test accuracy {s['test_accuracy']:.4f}, "
              f"{s['seconds']:.0f} s")
