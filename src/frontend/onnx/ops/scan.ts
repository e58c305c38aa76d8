// Scan: the sequence form of a step graph. Its body is evaluated once, symbolically, as one
// time step: state variables become state sources (their next values are recorded for
// planning), scan inputs are the per-step slices of whole-sequence tensors, scan outputs
// become whole-sequence tensors again, and the final state values become final-section
// sources (the IR state after the last step).

import { EMPTY, single, type LinForm } from "../forms.js";
import { affine, fullShape, type Operand, type SeqTensor } from "../operand.js";
import { fmtShape, invalid, unsupported } from "../problem.js";
import { normAxis, sameShape, sizeOf } from "../tensor.js";
import { need } from "./args.js";
import { attrGraph, attrInt, attrInts, type OpFn } from "./context.js";

export const scan: OpFn = (ctx, inputs) => {
  if (ctx.ref.path.includes(" > ")) unsupported(`a Scan inside a Scan body is not supported`);
  const body = attrGraph(ctx, "body");
  const M = attrInt(ctx, "num_scan_inputs", 0);
  const N = inputs.length - M;
  if (M < 1 || N < 0) invalid(`num_scan_inputs is ${M}, but the node has ${inputs.length} inputs`);
  const K = body.outputs.length - N;
  if (body.inputs.length !== N + M) invalid(`the body has ${body.inputs.length} inputs, but Scan passes ${N} state and ${M} scan inputs`);
  if (K < 0) invalid(`the body has ${body.outputs.length} outputs, fewer than the ${N} state variables`);
  const inAxes = attrInts(ctx, "scan_input_axes") ?? new Array<number>(M).fill(0);
  const outAxes = attrInts(ctx, "scan_output_axes") ?? new Array<number>(K).fill(0);
  for (const name of ["scan_input_directions", "scan_output_directions"]) {
    if ((attrInts(ctx, name) ?? []).some((d) => d !== 0)) unsupported(`${name}: reverse scanning is not supported (steps run forward in time)`);
  }

  const bodyInputs: Operand[] = [];
  const states = [];
  for (let i = 0; i < N; i++) {
    const init = need(inputs, i, `initial value of state ${body.inputs[i]!.name}`);
    if (init.kind !== "const") unsupported(`the initial value of Scan state "${body.inputs[i]!.name}" must be a constant (the IR starts every state at zero)`);
    if (init.data.some((v) => v !== 0)) unsupported(`the initial value of Scan state "${body.inputs[i]!.name}" is not zero; the IR starts every state at zero`);
    const inName = body.inputs[i]!.name;
    const outName = body.outputs[i]!.name;
    const n = sizeOf(init.shape);
    const s = ctx.sym.add("state", n, "step", inName, ctx.ref, { inName, outName, shape: init.shape });
    states.push(s);
    const f = new Array<LinForm>(n);
    for (let k = 0; k < n; k++) f[k] = single(s.base + k);
    bodyInputs.push(affine(init.shape, "step", new Float64Array(n), f));
  }
  for (let j = 0; j < M; j++) {
    const x = need(inputs, N + j, `scan input ${j}`);
    if (x.kind !== "seq") {
      unsupported(`scan input ${j} must be a whole-sequence graph input (possibly transposed); found a tensor of shape ${fmtShape(fullShape(x))} computed inside the graph`);
    }
    const axis = normAxis(inAxes[j] ?? 0, x.inner.shape.length + 1, "scan_input_axes");
    if (axis !== x.axis) unsupported(`scan input ${j} is scanned along axis ${axis}, but its time axis is axis ${x.axis}`);
    bodyInputs.push(x.inner);
  }

  const outs = ctx.evalBody(body, bodyInputs);
  states.forEach((s, i) => {
    const y = outs[i]!;
    if (y.kind === "seq") throw new Error("internal error: body output is a sequence");
    if (!sameShape(y.shape, s.shape)) {
      invalid(`body output "${s.outName}" (next value of state "${s.inName}") has shape ${fmtShape(y.shape)}, but the state has shape ${fmtShape(s.shape)}`);
    }
    const c = y.kind === "const" ? y.data : y.c;
    const f = y.kind === "const" ? new Array<LinForm>(y.data.length).fill(EMPTY) : y.f;
    s.next = ctx.sym.request("step", c, f, s.outName);
  });
  const finals: Operand[] = states.map((s) => {
    const src = ctx.sym.add("finalstate", s.size, "final", `${s.outName}.final`, ctx.ref, { of: s.id });
    const f = new Array<LinForm>(s.size);
    for (let k = 0; k < s.size; k++) f[k] = single(src.base + k);
    return affine(s.shape, "final", new Float64Array(s.size), f);
  });
  const scanned: SeqTensor[] = outs.slice(N).map((y, k) => {
    if (y.kind === "seq") throw new Error("internal error: body output is a sequence");
    if (y.kind === "affine" && y.section !== "step") unsupported(`scan output ${k} is not computed per step`);
    return { kind: "seq", axis: normAxis(outAxes[k] ?? 0, y.shape.length + 1, "scan_output_axes"), inner: y };
  });
  return [...finals, ...scanned];
};
