"""ONNX export of S4D models for imssa: step graphs (torch.onnx) and Scan sequence graphs.

Step graph (export_step):
    inputs   u [batch, d_in], then the states, e.g. s0_in [batch, H, N]
    outputs  y [batch, d_out] (or the last block's features), then the new states s0_out
    States pair by name: X_in/X_out, past_X/present_X or X/X_next ("names" option).
    A pooled model exports the per-step decoder output with metadata imssa.readout = "mean":
    the model output is the time mean of y (= decoder(mean h), the decoder being affine).

Scan graph (export_scan), built with the onnx helper API around the exported step graph:
    x [batch, T, d_in] -> zero initial states (Shape/Slice/Concat/ConstantOfShape)
    -> Scan(body = step graph, one scan input over time) -> per-step features
    -> ReduceMean over time -> Gemm (decoder) -> logits [batch, d_out]
torch 1.13 cannot produce Scan itself (scripted loops become Loop), hence the helper API.
"""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .config import S4DConfig
from .model import S4Model
from .quant import ternarize_state_dict
from .step import StepModel

NAME_STYLES = ("in_out", "past_present", "next")
EXPORTER = "imssa_export 0.1"
MAX_OPSET = 17  # torch 1.13 exports opsets up to 17


def state_names(bases: Sequence[str], style: str) -> List[Tuple[str, str]]:
    """(input, output) names per state: X_in/X_out, past_X/present_X or X/X_next."""
    if style == "in_out":
        return [(f"{b}_in", f"{b}_out") for b in bases]
    if style == "past_present":
        return [(f"past_{b}", f"present_{b}") for b in bases]
    if style == "next":
        return [(b, f"{b}_next") for b in bases]
    raise ValueError(f"names must be one of {NAME_STYLES}")


def as_state_dict(model_or_state_dict: Union[torch.nn.Module, Mapping[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    if isinstance(model_or_state_dict, torch.nn.Module):
        return {k: v.detach() for k, v in model_or_state_dict.state_dict().items()}
    return {k: (v.detach() if isinstance(v, torch.Tensor) else torch.as_tensor(v)) for k, v in model_or_state_dict.items()}


def export_state_dict(sd: Mapping[str, torch.Tensor], cfg: S4DConfig) -> Dict[str, torch.Tensor]:
    """The weights the exported graph holds: ternary models get their s*t weights."""
    sd = dict(sd)
    if cfg.quant == "ternary":
        sd = ternarize_state_dict(sd)
    return sd


def conv_model(sd: Mapping[str, torch.Tensor], cfg: S4DConfig) -> S4Model:
    m = S4Model(cfg)
    m.load_state_dict(dict(sd), strict=True)
    return m.eval()


def check_step_against_convolution(sd: Mapping[str, torch.Tensor], cfg: S4DConfig, step: StepModel,
                                   T: int = 16, batch: int = 2, seed: int = 0, tol: float = 1e-5) -> float:
    """Max |step recurrence - convolution form| on a seeded random input; raises unless it is
    < tol * max(1, max |convolution output|). The scale keeps the check at float32 rounding for
    trained classifiers whose logits reach tens (absolute for outputs of size <= 1)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, cfg.d_input, generator=gen)
    with torch.no_grad():
        ref = conv_model(sd, cfg)(x)
        if step.head == "features":
            feats, _ = step.run(x)
            dec = conv_model(sd, cfg).decoder
            got = dec(feats.mean(dim=1)) if cfg.pool else dec(feats)
        else:
            ys, _ = step.run(x)
            got = ys.mean(dim=1) if cfg.pool else ys
    err = float((got - ref).abs().max())
    scale = max(1.0, float(ref.abs().max()))
    if not err < tol * scale:
        raise AssertionError(f"step recurrence disagrees with the convolution form: max abs diff {err:.3g} >= "
                             f"{tol:g} * {scale:.3g} (max(1, max |output|))")
    return err


def _set_metadata(model: onnx.ModelProto, props: Mapping[str, str]) -> None:
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))


def _torch_export_step(step: StepModel, cfg: S4DConfig, opset: int, input_name: str, output_name: str,
                       pairs: Sequence[Tuple[str, str]]) -> onnx.ModelProto:
    if not 13 <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} outside 13..{MAX_OPSET} (torch 1.13 exports up to {MAX_OPSET})")
    u = torch.zeros(2, cfg.d_input)
    states = step.zero_states(2)
    ins = [input_name] + [p[0] for p in pairs]
    outs = [output_name] + [p[1] for p in pairs]
    dyn = {n: {0: "batch"} for n in ins + outs}
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(step, (u, *states), buf, opset_version=opset, input_names=ins, output_names=outs,
                          dynamic_axes=dyn, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    # torch's shape inference sometimes leaves a state output dim symbolic (e.g. after
    # Concat); a state output has its input's shape, so declare exactly that.
    by_name = {v.name: v for v in model.graph.input}
    for v in model.graph.output:
        for i, o in pairs:
            if v.name == o:
                v.type.CopyFrom(by_name[i].type)
    return model


def fold_weight_quantize(model: onnx.ModelProto) -> None:
    """Replaces QuantizeLinear(constant float weight) by its int8 result as an initializer, so
    each weight reads int8 levels -> DequantizeLinear (the form onnxruntime's quantization
    tools write). Values are exactly those the QuantizeLinear would produce."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    # torch shares equal constants through Identity nodes: make those plain initializers
    rest = []
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            g.initializer.append(t)
            inits[t.name] = t
        else:
            rest.append(n)
    del g.node[:]
    g.node.extend(rest)
    keep = []
    for n in g.node:
        if n.op_type == "QuantizeLinear" and all(i in inits for i in n.input):
            w = numpy_helper.to_array(inits[n.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
            zp = numpy_helper.to_array(inits[n.input[2]])
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            shape = [1] * w.ndim
            shape[axis] = -1
            if scale.ndim == 1:
                scale = scale.reshape(shape)
                zp = zp.reshape(shape)
            # QuantizeLinear rounds half to even, then saturates to the zero point's type
            q = np.clip(np.rint(w / scale) + zp.astype(np.float64), -128, 127).astype(np.int8)
            name = n.input[0] + "_quantized"
            g.initializer.append(numpy_helper.from_array(q, name))
            for m in g.node:
                for k, i in enumerate(m.input):
                    if i == n.output[0]:
                        m.input[k] = name
            continue
        keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    # drop float weights nothing reads any more, and dead Identity nodes torch leaves behind
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    live = [n for n in g.node if n.op_type != "Identity" or any(o in used for o in n.output)]
    del g.node[:]
    g.node.extend(live)
    used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


def _step_model(model_or_state_dict, cfg: S4DConfig, arrangement: str, head: str, dense: str,
                fold_two: bool, qdq: bool, check: bool, tol: float) -> Tuple[Dict[str, torch.Tensor], StepModel, float]:
    sd = export_state_dict(as_state_dict(model_or_state_dict), cfg)
    step = StepModel(sd, cfg, arrangement=arrangement, head=head, dense=dense, fold_two=fold_two, qdq=qdq).eval()
    err = check_step_against_convolution(sd, cfg, step, tol=tol) if check else float("nan")
    return sd, step, err


def export_step(model_or_state_dict, config: S4DConfig, path: str, opset: int = 13, *,
                arrangement: str = "halves", names: str = "in_out", input_name: str = "u",
                output_name: str = "y", dense: str = "gemm", fold_two: bool = False,
                qdq: Union[bool, str] = False, check: bool = True, tol: float = 1e-5) -> Dict[str, Any]:
    """Exports one time step of an S4Model as an ONNX graph with state inputs/outputs.

    qdq (ternary models only): True / "qdq" routes each dense float weight through
    QuantizeLinear -> DequantizeLinear (what torch exports for fake quantization); "dq"
    stores the int8 levels {-1, 0, 1} as initializers read by DequantizeLinear only.

    The step module is first checked against the convolution form (max abs diff
    < tol * max(1, max |output|)).
    Returns a description: names, state pairs and shapes, the StepModel, the check error.
    """
    cfg = config
    sd, step, err = _step_model(model_or_state_dict, cfg, arrangement, "decoder", dense, fold_two, bool(qdq), check, tol)
    pairs = state_names(step.state_bases(), names)
    model = _torch_export_step(step, cfg, opset, input_name, output_name, pairs)
    if qdq == "dq":
        fold_weight_quantize(model)
    readout = "mean" if cfg.pool else "per_step"
    _set_metadata(model, {
        "imssa.exporter": EXPORTER,
        "imssa.form": "step",
        "imssa.readout": readout,
        "imssa.states": json.dumps([list(p) for p in pairs]),
        "imssa.arrangement": arrangement,
        "imssa.config": cfg.to_json(),
    })
    model.graph.doc_string = (f"One time step of an S4D model ({cfg.n_layers} layers, H={cfg.d_model}, N={cfg.d_state}, "
                              f"{cfg.disc}); readout {readout}")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return {"path": path, "opset": opset, "form": "step", "input": input_name, "output": output_name,
            "states": pairs, "state_shapes": [list(s) for s in step.state_shapes(-1)], "readout": readout,
            "step": step, "state_dict": sd, "check_error": err, "arrangement": arrangement}


def export_scan(model_or_state_dict, config: S4DConfig, path: str, opset: int = 13, *,
                arrangement: str = "halves", names: str = "in_out", time_major: bool = False,
                input_name: str = "x", output_name: Optional[str] = None, dense: str = "gemm",
                fold_two: bool = False, qdq: bool = False, check: bool = True, tol: float = 1e-5) -> Dict[str, Any]:
    """Exports the whole-sequence model: Scan over time with the step graph as body.

    Pooled models: Scan emits the last block's features per step, then ReduceMean over time
    and the decoder Gemm give logits [batch, d_out]. Unpooled: the Scan output itself,
    y [batch, T, d_out]. time_major=True transposes x to [T, batch, d_in] and scans axis 0;
    otherwise the Scan reads axis 1 directly (scan_input_axes / scan_output_axes).
    """
    cfg = config
    head = "features" if cfg.pool else "decoder"
    sd, step, err = _step_model(model_or_state_dict, cfg, arrangement, head, dense, fold_two, qdq, check, tol)
    pairs = state_names(step.state_bases(), names)
    body_model = _torch_export_step(step, cfg, opset, "u", "h" if cfg.pool else "y", pairs)
    body = body_model.graph
    body.name = "s4d_step"
    # Scan body signature: state inputs then scan inputs; state outputs then scan outputs.
    inputs = list(body.input)
    outputs = list(body.output)
    del body.input[:]
    body.input.extend(inputs[1:] + inputs[:1])
    del body.output[:]
    body.output.extend(outputs[1:] + outputs[:1])

    output_name = output_name or ("logits" if cfg.pool else "y")
    H = cfg.d_model
    nodes: List[onnx.NodeProto] = []
    inits: List[onnx.TensorProto] = []
    ax = 0 if time_major else 1
    xin = input_name
    if time_major:
        nodes.append(helper.make_node("Transpose", [input_name], ["x_time_major"], perm=[1, 0, 2]))
        xin = "x_time_major"
    nodes.append(helper.make_node("Shape", [input_name], ["x_shape"]))
    inits += [numpy_helper.from_array(_i64([0]), "zero_1d"), numpy_helper.from_array(_i64([1]), "one_1d")]
    nodes.append(helper.make_node("Slice", ["x_shape", "zero_1d", "one_1d"], ["batch_size"]))
    init_names = []
    for k, shape in enumerate(step.state_shapes(-1)):
        rest = f"state{k}_rest"
        inits.append(numpy_helper.from_array(_i64(list(shape[1:])), rest))
        nodes.append(helper.make_node("Concat", ["batch_size", rest], [f"state{k}_shape"], axis=0))
        nodes.append(helper.make_node("ConstantOfShape", [f"state{k}_shape"], [f"state{k}_init"],
                                      value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])))
        init_names.append(f"state{k}_init")
    scan_out = "features" if cfg.pool else output_name
    scan_attrs: Dict[str, Any] = {"body": body, "num_scan_inputs": 1}
    if not time_major:
        scan_attrs["scan_input_axes"] = [1]
        scan_attrs["scan_output_axes"] = [1]
    nodes.append(helper.make_node("Scan", init_names + [xin],
                                  [f"state{k}_final" for k in range(len(init_names))] + [scan_out], **scan_attrs))
    if cfg.pool:
        nodes.append(helper.make_node("ReduceMean", [scan_out], ["pooled"], axes=[ax], keepdims=0))
        inits.append(numpy_helper.from_array(sd["decoder.weight"].to(torch.float32).numpy(), "decoder.weight"))
        inits.append(numpy_helper.from_array(sd["decoder.bias"].to(torch.float32).numpy(), "decoder.bias"))
        nodes.append(helper.make_node("Gemm", ["pooled", "decoder.weight", "decoder.bias"], [output_name], transB=1))
        out_shape = ["batch", cfg.d_output]
    else:
        out_shape = ["time", "batch", cfg.d_output] if time_major else ["batch", "time", cfg.d_output]
    graph = helper.make_graph(
        nodes, "s4d_sequence",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", "time", cfg.d_input])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)],
        initializer=inits,
        doc_string=(f"S4D sequence model ({cfg.n_layers} layers, H={H}, N={cfg.d_state}, {cfg.disc}): "
                    f"Scan over time{', mean pooling, decoder' if cfg.pool else ''}"))
    model = helper.make_model(graph, opset_imports=list(body_model.opset_import), producer_name="imssa_export",
                              producer_version="0.1")
    model.ir_version = body_model.ir_version
    _set_metadata(model, {
        "imssa.exporter": EXPORTER,
        "imssa.form": "scan",
        "imssa.states": json.dumps([list(p) for p in pairs]),
        "imssa.arrangement": arrangement,
        "imssa.config": cfg.to_json(),
    })
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return {"path": path, "opset": opset, "form": "scan", "input": input_name, "output": output_name,
            "states": pairs, "state_shapes": [list(s) for s in step.state_shapes(-1)],
            "readout": "mean" if cfg.pool else "per_step", "time_major": time_major,
            "step": step, "state_dict": sd, "check_error": err, "arrangement": arrangement}


def _i64(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@torch.no_grad()
def reference_output(info: Mapping[str, Any], cfg: S4DConfig, xs: torch.Tensor) -> torch.Tensor:
    """What the exported graph must compute for xs [B, T, d_in], from the Python step module:
    per-step outputs [B, T, d_out], or [B, d_out] for pooled models."""
    step: StepModel = info["step"]
    ys, _ = step.run(xs)
    if step.head == "features":
        dec = conv_model(info["state_dict"], cfg).decoder
        return dec(ys.mean(dim=1)) if cfg.pool else dec(ys)
    return ys.mean(dim=1) if cfg.pool else ys
