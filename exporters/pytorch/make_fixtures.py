#!/usr/bin/env python3
"""Writes the ONNX test fixtures of imssa (test/fixtures/onnx/) with fixed seeds.

    python3 exporters/pytorch/make_fixtures.py [OUT_DIR]     (default: test/fixtures/onnx)

Run through scripts/gen-onnx-fixtures.sh. Needs Debian's python3-torch (1.13),
python3-onnx (1.12) and python3-numpy. Every model is checked (step recurrence against the
convolution form) before export, and every ONNX file passes onnx.checker (full_check).
Writes per fixture NAME: NAME.onnx, NAME.input.npy, NAME.output.npy, and fixtures.json,
a machine-readable manifest of all of them (README.md explains it for people).

The classifiers scan_cls and digits64 are trained first on scikit-learn's digits data set
(train_digits.py; needs python3-sklearn, which bundles the data), so their class scores
have real margins; their inputs are test-split digit sequences, and
digits_test200.{input,labels}.npy hold 200 test sequences with their labels.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from imssa_export import S4DConfig, S4Model, export_scan, export_step, reference_output, save_safetensors  # noqa: E402
from imssa_export.rejects import TanhRecurrence, export_tanh_recurrence  # noqa: E402
from train_digits import (DATASET, DIGITS64, SCAN_CLS, SPECS, SPLIT_TEXT, as_sequences,  # noqa: E402
                          digits_split, train_named)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def perturb(model: S4Model, seed: int) -> S4Model:
    """Moves the parameters off their initial values (LayerNorm 1/0, A = -1/2 + i*pi*n), so a
    front end that ignores a tensor or mixes up two gets caught by the numbers."""
    g = torch.Generator().manual_seed(seed)
    rn = lambda t: torch.randn(t.shape, generator=g)
    with torch.no_grad():
        for i, layer in enumerate(model.s4_layers):
            k = layer.kernel
            k.log_A_real.add_(0.3 * rn(k.log_A_real))
            k.A_imag.add_(0.2 * rn(k.A_imag))
            model.norms[i].weight.copy_(1.0 + 0.2 * rn(model.norms[i].weight))
            model.norms[i].bias.copy_(0.1 * rn(model.norms[i].bias))
    return model


def make_model(cfg: S4DConfig, seed: int) -> S4Model:
    torch.manual_seed(seed)
    return perturb(S4Model(cfg), seed + 1000).eval()


def qat_train(model: S4Model, steps: int, seed: int) -> float:
    """A few steps of quantization-aware training (ternary STE) on a toy target: the
    running mean of the inputs mapped to d_out features. Returns the final loss."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    mix = torch.randn(cfg.d_input, cfg.d_output, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        x = torch.randn(8, 24, cfg.d_input, generator=g)
        target = torch.cumsum(x, dim=1) / torch.arange(1, 25).reshape(1, -1, 1) @ mix
        loss = torch.mean((model(x) - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss)


def shape_of(names_shapes) -> List[Any]:
    return ["batch" if d == -1 else d for d in names_shapes]


def save_npy(path: str, t: torch.Tensor) -> None:
    np.save(path, np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32)))


class Writer:
    def __init__(self, out: str):
        self.out = out
        self.entries: List[Dict[str, Any]] = []
        self.written: Dict[str, Dict[str, torch.Tensor]] = {}

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)

    def data(self, name: str, x: torch.Tensor, y: torch.Tensor) -> Dict[str, Any]:
        save_npy(self.path(f"{name}.input.npy"), x)
        save_npy(self.path(f"{name}.output.npy"), y)
        return {"input": f"{name}.input.npy", "input_shape": list(x.shape),
                "output": f"{name}.output.npy", "output_shape": list(y.shape)}

    def model(self, name: str, kind: str, cfg: S4DConfig, model, x: torch.Tensor, exercises: str,
              safetensors: str = "", **kw: Any) -> Dict[str, Any]:
        path = self.path(f"{name}.onnx")
        fn = export_step if kind == "step" else export_scan
        info = fn(model, cfg, path, **kw)
        y = reference_output(info, cfg, x)
        # the same numbers from the training (convolution) form, as a second opinion
        with torch.no_grad():
            from imssa_export.export import conv_model
            conv = conv_model(info["state_dict"], cfg)(x)
        err = float((conv - y).abs().max())
        # relative to the output scale: trained classifiers have logits of size 10..50
        assert err < 1e-5 * max(1.0, float(y.abs().max())), f"{name}: reference vs convolution form {err}"
        entry: Dict[str, Any] = {
            "name": name,
            "file": f"{name}.onnx",
            "expect": "accept",
            "form": info["form"],
            "opset": info["opset"],
            "input": info["input"],
            "output": info["output"],
            "states": [{"in": i, "out": o, "shape": shape_of(s)}
                       for (i, o), s in zip(info["states"], info["state_shapes"])],
            "state_names": kw.get("names", "in_out"),
            "arrangement": info["arrangement"],
            "readout": info["readout"],
            "layernorm": "LayerNormalization" if info["opset"] >= 17 else "decomposed",
            "config": json.loads(cfg.to_json()),
            "data": self.data(name, x, y),
            "check_error": info["check_error"],
            "exercises": exercises,
        }
        if kind == "scan":
            entry["time_major"] = info["time_major"]
        if kind == "step" and info["readout"] == "mean":
            # the graph's own per-step output, before the time mean (what ONNX Runtime returns
            # step by step); output.npy is its mean over time
            steps, _ = info["step"].run(x)
            assert float((steps.mean(dim=1) - y).abs().max()) == 0.0
            save_npy(self.path(f"{name}.steps.npy"), steps)
            entry["data"]["steps_output"] = f"{name}.steps.npy"
            entry["data"]["steps_output_shape"] = list(steps.shape)
        if safetensors:
            # weights as a checkpoint (example.py names) and a DSL model that loads them, so
            # the DSL path and the ONNX path can be compared on the same numbers
            st = f"{safetensors}.safetensors"
            if safetensors in self.written:
                same = self.written[safetensors]
                assert same.keys() == info["state_dict"].keys() and all(
                    torch.equal(same[k], info["state_dict"][k]) for k in same), f"{st} reused with other weights"
            else:
                save_safetensors(info["state_dict"], self.path(st), {"format": "pt", "config": cfg.to_json()})
                with open(self.path(f"{safetensors}.s4d"), "w") as f:
                    f.write(dsl_model(safetensors, cfg, st, info["input"], info["output"]))
                self.written[safetensors] = info["state_dict"]
            entry["safetensors"] = st
            entry["dsl"] = f"{safetensors}.s4d"
        self.entries.append(entry)
        print(f"{name}: {info['form']} opset {info['opset']}, input {list(x.shape)} -> output {list(y.shape)}, "
              f"step vs conv {info['check_error']:.2g}, {os.path.getsize(path)} bytes")
        return info

    def finish(self) -> None:
        with open(self.path("fixtures.json"), "w") as f:
            json.dump({"generator": "scripts/gen-onnx-fixtures.sh (exporters/pytorch/make_fixtures.py)",
                       "torch": torch.__version__, "fixtures": self.entries}, f, indent=2)
            f.write("\n")


def dsl_model(name: str, cfg: S4DConfig, weights: str, input_name: str, output_name: str) -> str:
    """The same model in imssa's DSL, loading `weights` (written next to it)."""
    tern = "@ternary " if cfg.quant == "ternary" else ""
    norm = "prenorm" if cfg.prenorm else "postnorm"
    lines = [
        f"// Generated by exporters/pytorch/make_fixtures.py: the model of the ONNX fixtures that",
        f"// use {weights}, in the model DSL. Compiling it must give the same outputs (and crossbars).",
        "",
        f"model {name} {{",
        f"  input {input_name}[{cfg.d_input}];",
        f"  output {output_name};",
        f'  params from "{weights}";',
        "",
        f"  {tern}linear({cfg.d_model});" + " " * max(1, 26 - len(tern) - len(str(cfg.d_model))) + "// encoder",
        f"  repeat {cfg.n_layers} {{",
        f"    residual {norm}(eps = {cfg.eps:g}) {{",
        f"      s4d(N = {cfg.d_state}, discretization = {cfg.disc});",
        "      gelu;",
        f"      {tern}linear({2 * cfg.d_model});" + " " * max(1, 22 - len(tern) - len(str(2 * cfg.d_model))) + "// s4_layers.i.output_linear.0",
        "      glu;",
        "    }",
        "  }",
    ]
    if cfg.pool:
        lines.append("  meanpool;")
    lines.append(f"  {tern}linear({cfg.d_output});" + " " * max(1, 26 - len(tern) - len(str(cfg.d_output))) + "// decoder")
    lines.append("}")
    return "\n".join(lines) + "\n"


def seq(seed: int, B: int, T: int, d: int, uniform: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, T, d, generator=g) if uniform else torch.randn(B, T, d, generator=g)


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    w = Writer(out)

    # (a) tiny step model, opset 13, ZOH, state [B, H, N] in halves, names X_in/X_out
    tiny = S4DConfig(d_input=1, d_model=4, n_layers=1, d_state=8, d_output=1, pool=False, disc="zoh",
                     dt_min=0.01, dt_max=0.5)
    w.model("tiny_zoh_op13", "step", tiny, make_model(tiny, 1), seq(101, 2, 16, 1),
            "smallest S4D step graph: Gemm encoder, Slice halves of one [B,H,N] state, "
            "Mul/Add/Sub recurrence, ReduceSum readout, decomposed GELU (Erf), Gemm + Split/Sigmoid/Mul GLU, "
            "residual, decomposed post-norm LayerNorm, Gemm decoder",
            safetensors="tiny_zoh", opset=13, arrangement="halves", names="in_out")

    # (b) same shape, opset 17, bilinear, [B, H, N/2, 2] pairs, past_X/present_X, MatMul+Add, 2 folded into C
    tiny_b = S4DConfig(d_input=1, d_model=4, n_layers=1, d_state=8, d_output=1, pool=False, disc="bilinear",
                       dt_min=0.01, dt_max=0.5)
    w.model("tiny_bilinear_op17", "step", tiny_b, make_model(tiny_b, 2), seq(102, 3, 16, 1),
            "bilinear discretization; state [B,H,N/2,2] with (re, im) on the last axis (Gather, "
            "Unsqueeze+Concat); past_X/present_X names; dense layers as MatMul+Add with a transposed "
            "constant; factor 2 folded into C; LayerNormalization op (opset 17)",
            safetensors="tiny_bilinear", opset=17, arrangement="pairs", names="past_present", dense="matmul",
            fold_two=True)

    # (c) 2-layer prenorm step models: decomposed LayerNorm (13) and LayerNormalization (17)
    pre = S4DConfig(d_input=2, d_model=8, n_layers=2, d_state=8, d_output=3, prenorm=True, pool=False,
                    disc="zoh", dt_min=0.01, dt_max=0.5)
    pre_model = make_model(pre, 3)
    x_pre = seq(103, 2, 20, 2)
    w.model("prenorm2_op13", "step", pre, pre_model, x_pre,
            "2 layers, pre-norm residual blocks; decomposed LayerNorm (ReduceMean/Sub/Pow/ReduceMean/Add/"
            "Sqrt/Div/Mul/Add); state flattened to [B, H*N] laid out [2, H, N/2] (Split + Reshape, "
            "Reshape + Concat)",
            safetensors="prenorm2", opset=13, arrangement="flat", names="in_out")
    w.model("prenorm2_op17", "step", pre, pre_model, x_pre,
            "same weights as prenorm2_op13, LayerNormalization op; real and imaginary parts as separate "
            "state tensors (4 states); X/X_next names",
            safetensors="prenorm2", opset=17, arrangement="separate", names="next")

    # The classifiers below are trained on sklearn's digits; their fixture inputs are test-split
    # sequences. digits_test200.* are the first 200 test sequences (one pixel per step) and labels.
    _, _, pix_test, lab_test = digits_split()
    test200 = torch.from_numpy(lab_test[:200].copy())
    save_npy(w.path("digits_test200.input.npy"), as_sequences(pix_test[:200], 1))
    np.save(w.path("digits_test200.labels.npy"), lab_test[:200].astype(np.int64))
    # Calibration data from the training split (the first 64 train sequences), so measurements
    # on the test sequences do not calibrate on what they measure (scripts/measure-argmax.mjs).
    pix_train = digits_split()[0]
    save_npy(w.path("digits_train64.input.npy"), as_sequences(pix_train[:64], 1))
    save_npy(w.path("digits_train64_rows.input.npy"), as_sequences(pix_train[:64], 2))

    def trained(name: str, stats: Dict[str, float], d_input: int, test_out: torch.Tensor,
                **extra: Any) -> Dict[str, Any]:
        acc200 = float((test_out.argmax(dim=-1) == test200).double().mean())
        print(f"{name}: trained {stats['epochs']} epochs, float test accuracy {stats['test_accuracy']:.4f} "
              f"(train {stats['train_accuracy']:.4f}; exported graph on the 200 fixture sequences {acc200:.4f})")
        return {
            "dataset": DATASET + ("; d_input 2: (pixel / 16, row / 8) per step, row = t // 8" if d_input == 2 else ""),
            "split": SPLIT_TEXT,
            "training": f"train_digits.py: convolution form, float32, Adam, {stats['epochs']} epochs, "
                        f"lr {SPECS[name].lr:g} (SSM parameters {SPECS[name].ssm_lr:g}), batch {SPECS[name].batch}, "
                        f"seed {SPECS[name].seed}",
            "test_accuracy": round(stats["test_accuracy"], 6),
            "test_count": len(lab_test),
            "train_accuracy": round(stats["train_accuracy"], 6),
            "test200_accuracy": round(acc200, 6),
            "labels": "digits_test200.labels.npy",
            **extra,
        }

    # (d) Scan sequence classifier: mean pooling + decoder after the Scan; trained on digits with
    # (pixel, row / 8) per step
    cls = SCAN_CLS
    cls_model, cls_stats = train_named("scan_cls", make_model(cls, 4))
    x_cls = as_sequences(pix_test[:200], cls.d_input)
    info = w.model("scan_cls_op17", "scan", cls, cls_model, x_cls,
            "Scan over axis 1 (scan_input_axes/scan_output_axes = [1]) whose body is the step graph; "
            "zero initial states from Shape/Slice/Concat/ConstantOfShape; ReduceMean over time and a "
            "Gemm decoder after the Scan; post-norm LayerNormalization inside the body",
            safetensors="scan_cls", opset=17, arrangement="halves", names="in_out")
    w.entries[-1]["trained"] = trained("scan_cls", cls_stats, cls.d_input, reference_output(info, cls, x_cls),
                                       inputs="the first 200 test-split sequences, in split order (labels: "
                                              "digits_test200.labels.npy)")

    # (e) ternary QAT: dense weights s_j * t with t in {-1, 0, 1}
    tern = S4DConfig(d_input=3, d_model=8, n_layers=2, d_state=8, d_output=4, pool=False, disc="zoh",
                     dt_min=0.01, dt_max=0.5, quant="ternary")
    tern_model = make_model(tern, 5)
    loss = qat_train(tern_model, 40, 55)
    print(f"ternary QAT toy loss after 40 steps: {loss:.4f}")
    x_tern = seq(105, 2, 16, 3)
    w.model("ternary_op13", "step", tern, tern_model, x_tern,
            "ternary QAT: every dense weight (encoder, output_linear, decoder) is exactly s_j * t with "
            "t in {-1, 0, 1} per output feature, stored as plain float initializers; re/im state "
            "tensors separate; past_X/present_X names",
            safetensors="ternary", opset=13, arrangement="separate", names="past_present")
    w.model("ternary_qdq_op13", "step", tern, tern_model, x_tern,
            "same weights as ternary_op13 but each dense weight goes through QuantizeLinear -> "
            "DequantizeLinear (per-axis scale s_j on axis 0, int8 zero point 0; the quantized values "
            "are -1, 0, 1)",
            safetensors="ternary", opset=13, arrangement="halves", names="in_out", qdq=True)
    w.model("ternary_dq_op13", "step", tern, tern_model, x_tern,
            "same weights again, as int8 initializers holding -1/0/1 read by DequantizeLinear only (per-axis "
            "scale s_j, axis 0; the form onnxruntime's quantization tools write); flat [B, H*N] state",
            safetensors="ternary", opset=13, arrangement="flat", names="past_present", qdq="dq")

    # (f) digits-size model (examples/digits.s4d): step graph + safetensors, and a Scan variant
    # trained on digits; NAME.input.npy holds the first 2 test sequences (small, for the per-step
    # checks), digits_test200.input.npy the first 200 with digits64_test200.output.npy
    dig = DIGITS64
    dig_model, dig_stats = train_named("digits64", make_model(dig, 6))
    x_dig = as_sequences(pix_test[:2], 1)
    info = w.model("digits64_op13", "step", dig, dig_model, x_dig,
            "digits-size model (examples/digits.s4d shape: H=64, N=64, 2 post-norm layers, mean pooling, "
            "10 classes); per-step decoder output with metadata imssa.readout = mean; its state_dict is "
            "digits64.safetensors (example.py names) and digits64.s4d compiles it through the DSL",
            safetensors="digits64", opset=13, arrangement="halves", names="in_out")
    x200 = as_sequences(pix_test[:200], 1)
    y200 = reference_output(info, dig, x200)
    save_npy(w.path("digits64_test200.output.npy"), y200)
    dig_trained = trained("digits64", dig_stats, 1, y200,
                          inputs="the first 2 test-split sequences (labels: the first 2 of digits_test200.labels.npy)",
                          test200={"input": "digits_test200.input.npy", "input_shape": list(x200.shape),
                                   "labels": "digits_test200.labels.npy", "labels_shape": [200],
                                   "output": "digits64_test200.output.npy", "output_shape": list(y200.shape)})
    w.entries[-1]["trained"] = dig_trained
    w.model("digits64_scan_op13", "scan", dig, dig_model, x_dig,
            "the digits64 weights as a Scan sequence graph at opset 13: Transpose to time-major, Scan "
            "over axis 0, ReduceMean over axis 0, Gemm decoder; [B,H,N/2,2] pairs state",
            safetensors="digits64", opset=13, arrangement="pairs", names="past_present", time_major=True)
    w.entries[-1]["trained"] = dig_trained

    # (g) rejected: a nonlinearity inside the recurrence
    torch.manual_seed(7)
    rej = TanhRecurrence(d_in=1, H=4, d_out=1)
    x_rej = seq(107, 2, 16, 1)
    export_tanh_recurrence(rej, w.path("tanh_recurrence_op13.onnx"), 13)
    w.entries.append({
        "name": "tanh_recurrence_op13", "file": "tanh_recurrence_op13.onnx", "expect": "reject",
        "form": "step", "opset": 13, "input": "u", "output": "y",
        "states": [{"in": "h_in", "out": "h_out", "shape": ["batch", 4]}], "state_names": "in_out",
        "readout": "per_step", "data": w.data("tanh_recurrence_op13", x_rej, rej.run(x_rej)),
        "reason": "h_out = tanh(a*h_in + B u): the state passes through Tanh inside the recurrence, "
                  "so the update is not affine in (h_in, u)",
        "exercises": "rejection of a recurrence that is not an affine map (error should name Tanh and h_out)",
    })
    print("tanh_recurrence_op13: step opset 13 (to be rejected)")
    w.finish()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test", "fixtures", "onnx"))
