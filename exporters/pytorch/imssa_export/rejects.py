"""Graphs imssa must reject, for negative tests of the ONNX front end."""

from __future__ import annotations

import io
import json

import onnx
import torch
import torch.nn as nn


class TanhRecurrence(nn.Module):
    """x_out = tanh(a * x_in + u @ B^T), y = x_out @ C^T: the state passes through a
    nonlinearity inside the recurrence, so the update is not an affine map of (x_in, u) and
    cannot become a crossbar matrix."""

    def __init__(self, d_in: int, H: int, d_out: int):
        super().__init__()
        self.register_buffer("a", torch.rand(H) * 0.9)
        self.register_buffer("B", torch.randn(H, d_in))
        self.register_buffer("C", torch.randn(d_out, H) / H ** 0.5)

    def forward(self, u: torch.Tensor, x: torch.Tensor):
        x = torch.tanh(self.a * x + u @ self.B.t())
        return x @ self.C.t(), x

    @torch.no_grad()
    def run(self, xs: torch.Tensor) -> torch.Tensor:
        x = torch.zeros(xs.shape[0], self.a.shape[0])
        ys = []
        for t in range(xs.shape[1]):
            y, x = self(xs[:, t], x)
            ys.append(y)
        return torch.stack(ys, dim=1)


def export_tanh_recurrence(m: TanhRecurrence, path: str, opset: int = 13) -> None:
    d_in = m.B.shape[1]
    H = m.a.shape[0]
    buf = io.BytesIO()
    names_in, names_out = ["u", "h_in"], ["y", "h_out"]
    with torch.no_grad():
        torch.onnx.export(m, (torch.zeros(2, d_in), torch.zeros(2, H)), buf, opset_version=opset,
                          input_names=names_in, output_names=names_out,
                          dynamic_axes={n: {0: "batch"} for n in names_in + names_out})
    model = onnx.load_from_string(buf.getvalue())
    model.metadata_props.append(onnx.StringStringEntryProto(key="imssa.form", value="step"))
    model.metadata_props.append(onnx.StringStringEntryProto(key="imssa.states", value=json.dumps([["h_in", "h_out"]])))
    model.graph.doc_string = "Nonlinear recurrence h_out = tanh(a*h_in + B u): imssa must reject it"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
