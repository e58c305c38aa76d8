// An S4D step graph built in TypeScript (onnx-proto), for the interpreter-vs-ONNX-Runtime
// benchmark at sizes the committed fixtures do not cover. Same computation as the exporter's
// step graphs (test/fixtures/onnx/digits64_op13.onnx): a Gemm encoder; per layer a diagonal
// complex recurrence on a [B, H, N] state whose last axis holds N/2 real parts then N/2
// imaginary parts ("halves"), the readout 2 Re(C s') + D x, exact GELU (Erf), a Gemm to 2H
// with a GLU, a residual and a post-norm LayerNorm; a Gemm decoder on every step. States
// follow the sK_in / sK_out naming convention the front end recognizes.
//
// Parameters are random but stable: |A| in [0.9, 0.999] so the state neither explodes nor
// vanishes over a 256-step sequence, fan-in scaled linear weights.

import onnxProto from "onnx-proto";
import { Rng } from "../src/common/rng.js";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

export interface StepGraphSpec {
  H: number;
  /** Real state entries per channel (N/2 complex modes). */
  N: number;
  layers: number;
  dIn: number;
  dOut: number;
  seed: number;
}

export interface StepGraph {
  bytes: Uint8Array;
  input: string;
  output: string;
  /** State input/output names and their shape without the batch axis. */
  states: { in: string; out: string; shape: number[] }[];
}

export function buildStepGraph(spec: StepGraphSpec): StepGraph {
  const { H, N, layers, dIn, dOut } = spec;
  if (N % 2 !== 0) throw new Error(`N must be even (N/2 complex modes), got ${N}`);
  const M = N / 2;
  const rng = new Rng(spec.seed);
  const uni = (lo: number, hi: number): number => lo + (hi - lo) * rng.uniform();
  const nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  const inits: ReturnType<typeof onnx.TensorProto.create>[] = [];
  let counter = 0;
  const fresh = (base: string): string => `${base}_${counter++}`;
  const f32 = (name: string, dims: number[], values: ArrayLike<number>): string => {
    inits.push(onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) }));
    return name;
  };
  const i64 = (values: number[]): string => {
    const name = fresh("ints");
    inits.push(onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) }));
    return name;
  };
  const scalar = (v: number): string => f32(fresh("c"), [], [v]);
  const node = (op: string, inputs: string[], outs = 1, attrs: Record<string, number | number[]> = {}, names?: string[]): string[] => {
    const output = names ?? Array.from({ length: outs }, () => fresh(op.toLowerCase()));
    const attribute = Object.entries(attrs).map(([name, v]) =>
      Array.isArray(v) ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v } : { name, type: onnx.AttributeProto.AttributeType.INT, i: v },
    );
    nodes.push(onnx.NodeProto.create({ opType: op, input: inputs, output, name: fresh(op), attribute }));
    return output;
  };
  const op = (o: string, inputs: string[], attrs: Record<string, number | number[]> = {}): string => node(o, inputs, 1, attrs)[0]!;
  const linear = (x: string, name: string, inF: number, outF: number, out?: string): string => {
    const k = 1 / Math.sqrt(inF);
    const w = f32(`${name}_w`, [outF, inF], Array.from({ length: outF * inF }, () => uni(-k, k)));
    const b = f32(`${name}_b`, [outF], Array.from({ length: outF }, () => uni(-k, k)));
    return node("Gemm", [x, w, b], 1, { transB: 1 }, out === undefined ? undefined : [out])[0]!;
  };

  const input = "u";
  const vi = (name: string, dims: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  });
  const inputs = [vi(input, ["batch", dIn])];
  const outputs = [vi("y", ["batch", dOut])];
  const states: StepGraph["states"] = [];

  let x = linear(input, "encoder", dIn, H);
  const sqrtHalf = scalar(Math.SQRT1_2);
  const one = scalar(1);
  const half = scalar(0.5);
  const two = scalar(2);
  const eps = scalar(1e-5);
  const lastAxis = i64([-1]);
  for (let l = 0; l < layers; l++) {
    const sIn = `s${l}_in`;
    const sOut = `s${l}_out`;
    inputs.push(vi(sIn, ["batch", H, N]));
    outputs.push(vi(sOut, ["batch", H, N]));
    states.push({ in: sIn, out: sOut, shape: [H, N] });
    const aRe: number[] = [];
    const aIm: number[] = [];
    for (let i = 0; i < H * M; i++) {
      const r = uni(0.9, 0.999);
      const th = uni(0, Math.PI);
      aRe.push(r * Math.cos(th));
      aIm.push(r * Math.sin(th));
    }
    const p = (name: string, k: number): string => f32(`l${l}_${name}`, [H, M], Array.from({ length: H * M }, () => uni(-k, k)));
    const are = f32(`l${l}_a_re`, [H, M], aRe);
    const aim = f32(`l${l}_a_im`, [H, M], aIm);
    const bre = p("b_re", 0.1);
    const bim = p("b_im", 0.1);
    const cre = p("c_re", 1 / Math.sqrt(M));
    const cim = p("c_im", 1 / Math.sqrt(M));
    const d = f32(`l${l}_d`, [H], Array.from({ length: H }, () => uni(-1, 1)));
    const axis2 = i64([2]);
    const step1 = i64([1]);
    const sre = op("Slice", [sIn, i64([0]), i64([M]), axis2, step1]);
    const sim = op("Slice", [sIn, i64([M]), i64([N]), axis2, step1]);
    const xu = op("Unsqueeze", [x, lastAxis]);
    const nre = op("Add", [op("Sub", [op("Mul", [are, sre]), op("Mul", [aim, sim])]), op("Mul", [bre, xu])]);
    const nim = op("Add", [op("Add", [op("Mul", [aim, sre]), op("Mul", [are, sim])]), op("Mul", [bim, xu])]);
    node("Concat", [nre, nim], 1, { axis: -1 }, [sOut]);
    const prod = op("Sub", [op("Mul", [cre, nre]), op("Mul", [cim, nim])]);
    const yk = op("Add", [op("Mul", [op("ReduceSum", [prod, lastAxis], { keepdims: 0 }), two]), op("Mul", [d, x])]);
    const gelu = op("Mul", [op("Mul", [yk, op("Add", [op("Erf", [op("Mul", [yk, sqrtHalf])]), one])]), half]);
    const z = linear(gelu, `l${l}_out`, H, 2 * H);
    const [z1, z2] = node("Split", [z], 2, { axis: -1 }) as [string, string];
    const r = op("Add", [x, op("Mul", [z1, op("Sigmoid", [z2])])]);
    const centered = op("Sub", [r, op("ReduceMean", [r], { axes: [-1] })]);
    const variance = op("ReduceMean", [op("Mul", [centered, centered])], { axes: [-1] });
    const normed = op("Div", [centered, op("Sqrt", [op("Add", [variance, eps])])]);
    const lnW = f32(`l${l}_ln_w`, [H], Array.from({ length: H }, () => uni(0.5, 1.5)));
    const lnB = f32(`l${l}_ln_b`, [H], Array.from({ length: H }, () => uni(-0.1, 0.1)));
    x = op("Add", [op("Mul", [normed, lnW]), lnB]);
  }
  linear(x, "decoder", H, dOut, "y");
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "imssa-bench",
    opsetImport: [{ domain: "", version: 13 }],
    graph: { name: "s4d_step", node: nodes, initializer: inits, input: inputs, output: outputs },
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), input, output: "y", states };
}
