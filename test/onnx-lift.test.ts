// Linear lifting against ONNX Runtime. Seeded random step graphs built from the affine ops
// the front end lifts (MatMul/Gemm with constants, elementwise constants, every movement
// op, reductions, DequantizeLinear weights) in random arrangements, shapes and opsets; the
// lifted IR (evaluated in float64) must reproduce ORT's per-step outputs. Plus the
// nonlinear patterns (GELU in several operand orders, decomposed LayerNorm variants, GLU)
// and the rejection of nonlinearities inside the recurrence.

import { describe, expect, test } from "@jest/globals";
import { isUserError } from "../src/common/errors.js";
import { compileOnnxBytes } from "../src/frontend/onnx/index.js";
import type { Model } from "../src/ir/types.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { DT, GraphBuilder, type AttrValue } from "./helpers/onnx-builder.js";
import { run, runSteps, session } from "./helpers/ort.js";
import { makeRng, type Rng } from "./helpers/random-models.js";

interface Val {
  name: string;
  shape: number[];
}

const MAX_SIZE = 48;
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Random affine ops on a growing graph; every op keeps the value affine in (u, state). */
class RandomAffine {
  constructor(
    readonly b: GraphBuilder,
    readonly rng: Rng,
  ) {}

  get opset(): number {
    return this.b.opset;
  }

  weight(shape: number[], scale = 1): string {
    return this.b.init(this.b.fresh("w"), shape, Array.from({ length: size(shape) }, () => this.rng.normal() * scale));
  }

  /** A constant broadcastable to `shape` (a suffix of it with some dims 1). */
  broadcastConst(shape: number[], nonzero = false): { name: string; shape: number[] } {
    const k = this.rng.int(0, shape.length);
    const cs = shape.slice(shape.length - k).map((d) => (this.rng.next() < 0.3 ? 1 : d));
    const values = Array.from({ length: size(cs) }, () => (nonzero ? this.rng.pick([-1, 1]) * this.rng.uniform(0.5, 2) : this.rng.normal()));
    return { name: this.b.init(this.b.fresh("c"), cs, values), shape: cs };
  }

  axes(name: string, values: number[], asInput: boolean): { inputs: string[]; attrs: Record<string, AttrValue> } {
    return asInput ? { inputs: [this.b.ints(values)], attrs: {} } : { inputs: [], attrs: { [name]: { ints: values } } };
  }

  step(v: Val, pool: Val[]): Val {
    const r = this.rng;
    const b = this.b;
    const rank = v.shape.length;
    const n = size(v.shape);
    const ops: Array<() => Val | undefined> = [
      // MatMul with a constant on the right
      () => {
        if (rank < 1) return undefined;
        const K = v.shape[rank - 1]!;
        const k = r.int(1, 4);
        if ((n / K) * k > MAX_SIZE) return undefined;
        return { name: b.op("MatMul", [v.name, this.weight([K, k], 1 / Math.sqrt(K))]), shape: [...v.shape.slice(0, -1), k] };
      },
      // MatMul with a constant on the left
      () => {
        if (rank < 2) return undefined;
        const M = v.shape[rank - 2]!;
        const k = r.int(1, 4);
        if ((n / M) * k > MAX_SIZE) return undefined;
        return { name: b.op("MatMul", [this.weight([k, M], 1 / Math.sqrt(M)), v.name]), shape: [...v.shape.slice(0, -2), k, v.shape[rank - 1]!] };
      },
      // Gemm with every attribute
      () => {
        if (rank !== 2) return undefined;
        const [M, K] = v.shape as [number, number];
        const N = r.int(1, 5);
        if (M * N > MAX_SIZE) return undefined;
        const transA = r.next() < 0.5;
        const transB = r.next() < 0.5;
        const a = transA ? b.op("Transpose", [v.name], { perm: { ints: [1, 0] } }) : v.name;
        const w = this.weight(transB ? [N, K] : [K, N], 1 / Math.sqrt(K));
        const cShape = r.pick([[N], [1, N], [M, N], [1]]);
        const c = this.weight(cShape);
        return {
          name: b.op("Gemm", [a, w, c], { transA: { i: transA ? 1 : 0 }, transB: { i: transB ? 1 : 0 }, alpha: { f: r.uniform(0.5, 1.5) }, beta: { f: r.uniform(-1, 1) } }),
          shape: [M, N],
        };
      },
      // Add / Sub / Mul / Div with a broadcast constant, either operand order for Add/Sub/Mul
      () => {
        const op = r.pick(["Add", "Sub", "Mul", "Div"]);
        const c = this.broadcastConst(v.shape, op === "Div");
        const first = op !== "Div" && r.next() < 0.5;
        return { name: b.op(op, first ? [c.name, v.name] : [v.name, c.name]), shape: v.shape };
      },
      // Add / Sub of two non-constant values of the same shape
      () => {
        const other = pool.find((p) => p !== v && p.shape.length === v.shape.length && p.shape.every((d, i) => d === v.shape[i]));
        if (!other) return undefined;
        return { name: b.op(r.pick(["Add", "Sub"]), r.next() < 0.5 ? [v.name, other.name] : [other.name, v.name]), shape: v.shape };
      },
      () => ({ name: b.op("Neg", [v.name]), shape: v.shape }),
      () => ({ name: r.next() < 0.5 ? b.op("Identity", [v.name]) : b.op("Cast", [v.name], { to: { i: DT.FLOAT } }), shape: v.shape }),
      // Split along an axis, then pick one part or concatenate the parts reversed
      () => {
        const axes = v.shape.map((d, i) => (d >= 2 ? i : -1)).filter((i) => i >= 0);
        if (axes.length === 0) return undefined;
        const axis = r.pick(axes);
        const d = v.shape[axis]!;
        const parts = r.int(2, Math.min(3, d));
        let sizes: number[];
        let inputs = [v.name];
        let attrs: Record<string, AttrValue> = { axis: { i: r.next() < 0.5 ? axis : axis - rank } };
        if (this.opset >= 18 && r.next() < 0.5) {
          attrs = { ...attrs, num_outputs: { i: parts } };
          const chunk = Math.ceil(d / parts);
          sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
          if (sizes.some((s) => s === 0)) return undefined;
        } else {
          sizes = [];
          let left = d;
          for (let i = 0; i < parts - 1; i++) {
            const s = r.int(1, left - (parts - 1 - i));
            sizes.push(s);
            left -= s;
          }
          sizes.push(left);
          inputs = [v.name, b.ints(sizes)];
        }
        const outs = b.node("Split", inputs, sizes.length, attrs);
        if (r.next() < 0.5) {
          const k = r.int(0, sizes.length - 1);
          const shape = [...v.shape];
          shape[axis] = sizes[k]!;
          return { name: outs[k]!, shape };
        }
        return { name: b.op("Concat", [...outs].reverse(), { axis: { i: axis } }), shape: v.shape };
      },
      // Slice with negative indices and steps
      () => {
        const axis = r.int(0, rank - 1);
        const d = v.shape[axis]!;
        const step = r.pick([1, 1, 2, -1, -2]);
        let start = r.int(0, d - 1);
        let end = step > 0 ? r.int(start + 1, d) : r.int(-1, start - 1);
        const count = step > 0 ? Math.ceil((end - start) / step) : Math.ceil((start - end) / -step);
        if (count < 1) return undefined;
        if (r.next() < 0.3) start -= d;
        if (end >= 0 && r.next() < 0.3 && end !== d) end -= d;
        if (step > 0 && end === d && r.next() < 0.5) end = 2 ** 31;
        if (step < 0 && end === -1) end = -(2 ** 31);
        const shape = [...v.shape];
        shape[axis] = count;
        return { name: b.op("Slice", [v.name, b.ints([start]), b.ints([end]), b.ints([axis]), b.ints([step])]), shape };
      },
      // Concat with a constant or with itself
      () => {
        const axis = r.int(0, rank - 1);
        const extra = r.int(1, 3);
        const cs = [...v.shape];
        cs[axis] = extra;
        if (n + size(cs) > MAX_SIZE) return undefined;
        const other = r.next() < 0.5 ? this.weight(cs) : undefined;
        const shape = [...v.shape];
        shape[axis] = v.shape[axis]! + (other ? extra : v.shape[axis]!);
        if (!other && 2 * n > MAX_SIZE) return undefined;
        return { name: b.op("Concat", other ? [other, v.name] : [v.name, v.name], { axis: { i: axis } }), shape };
      },
      // Reshape (with -1 and 0), Flatten
      () => {
        const dims: number[] = [];
        let left = n;
        while (left > 1 && dims.length < 3) {
          const divs = Array.from({ length: left }, (_, i) => i + 1).filter((k) => left % k === 0);
          const k = r.pick(divs);
          dims.push(k);
          left /= k;
        }
        dims.push(left);
        const spec = [...dims];
        if (r.next() < 0.5) spec[r.int(0, spec.length - 1)] = -1;
        return { name: b.op("Reshape", [v.name, b.ints(spec)]), shape: dims };
      },
      () => {
        const axis = r.int(0, rank);
        return { name: b.op("Flatten", [v.name], { axis: { i: axis } }), shape: [size(v.shape.slice(0, axis)), size(v.shape.slice(axis))] };
      },
      // Unsqueeze, Squeeze
      () => {
        if (rank >= 4) return undefined;
        const axis = r.int(-rank - 1, rank);
        const a = axis < 0 ? axis + rank + 1 : axis;
        const shape = [...v.shape];
        shape.splice(a, 0, 1);
        const { inputs, attrs } = this.axes("axes", [axis], this.opset >= 13);
        return { name: b.op("Unsqueeze", [v.name, ...inputs], attrs), shape };
      },
      () => {
        const ones = v.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
        if (ones.length === 0 || rank === 1) return undefined;
        const axis = r.pick(ones);
        const { inputs, attrs } = this.axes("axes", [axis], this.opset >= 13);
        return { name: b.op("Squeeze", [v.name, ...inputs], attrs), shape: v.shape.filter((_, i) => i !== axis) };
      },
      // Transpose
      () => {
        const perm = v.shape.map((_, i) => i);
        for (let i = perm.length - 1; i > 0; i--) {
          const j = r.int(0, i);
          [perm[i], perm[j]] = [perm[j]!, perm[i]!];
        }
        return { name: b.op("Transpose", [v.name], { perm: { ints: perm } }), shape: perm.map((p) => v.shape[p]!) };
      },
      // Gather with constant (possibly negative, repeated, scalar) indices
      () => {
        const axis = r.int(0, rank - 1);
        const d = v.shape[axis]!;
        const scalar = r.next() < 0.3;
        const count = scalar ? 1 : r.int(1, 4);
        const idx = Array.from({ length: count }, () => r.int(-d, d - 1));
        const shape = [...v.shape.slice(0, axis), ...(scalar ? [] : [count]), ...v.shape.slice(axis + 1)];
        if (size(shape) > MAX_SIZE || shape.length === 0) return undefined;
        const ind = b.init(b.fresh("idx"), scalar ? [] : [count], idx, DT.INT64);
        return { name: b.op("Gather", [v.name, ind], { axis: { i: axis } }), shape };
      },
      // Expand a size-1 axis
      () => {
        const ones = v.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
        if (ones.length === 0) return undefined;
        const axis = r.pick(ones);
        const k = r.int(2, 3);
        if (n * k > MAX_SIZE) return undefined;
        const shape = [...v.shape];
        shape[axis] = k;
        return { name: b.op("Expand", [v.name, b.ints(shape)]), shape };
      },
      // ReduceSum / ReduceMean over random axes
      () => {
        const op = r.pick(["ReduceSum", "ReduceMean"]);
        const axes = v.shape.map((_, i) => i).filter(() => r.next() < 0.5);
        if (axes.length === 0) axes.push(r.int(0, rank - 1));
        const keep = r.next() < 0.5;
        if (!keep && axes.length === rank) return undefined;
        const asInput = op === "ReduceSum" ? this.opset >= 13 : this.opset >= 18;
        const { inputs, attrs } = this.axes("axes", axes, asInput);
        const shape = keep ? v.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : v.shape.filter((_, i) => !axes.includes(i));
        return { name: b.op(op, [v.name, ...inputs], { ...attrs, keepdims: { i: keep ? 1 : 0 } }), shape };
      },
      // MatMul with a DequantizeLinear weight (per-axis int8 grid)
      () => {
        const K = v.shape[rank - 1]!;
        const k = r.int(1, 4);
        if ((n / K) * k > MAX_SIZE) return undefined;
        const q = b.init(b.fresh("wq"), [K, k], Array.from({ length: K * k }, () => r.int(-3, 3)), DT.INT8);
        const scale = b.init(b.fresh("s"), [k], Array.from({ length: k }, () => r.uniform(0.05, 0.3)));
        const zp = b.init(b.fresh("zp"), [k], new Array(k).fill(0), DT.INT8);
        const w = b.op("DequantizeLinear", [q, scale, zp], { axis: { i: 1 } });
        return { name: b.op("MatMul", [v.name, w]), shape: [...v.shape.slice(0, -1), k] };
      },
    ];
    for (let attempt = 0; attempt < 20; attempt++) {
      const out = r.pick(ops)();
      if (out && size(out.shape) > 0 && size(out.shape) <= MAX_SIZE) return out;
    }
    return v;
  }

  /** [1, width] from any value: Flatten then Gemm. */
  project(v: Val, width: number, scale: number): Val {
    const flat = this.b.op("Flatten", [v.name], { axis: { i: 0 } });
    const K = size(v.shape);
    return { name: this.b.op("Gemm", [flat, this.weight([K, width], scale / Math.sqrt(K)), this.weight([width])]), shape: [1, width] };
  }
}

interface Built {
  bytes: Uint8Array;
  du: number;
  n: number;
}

function randomStepGraph(seed: number): Built {
  const rng = makeRng(seed);
  const opset = rng.pick([13, 13, 17, 18, 21]);
  const b = new GraphBuilder(opset);
  const g = new RandomAffine(b, rng);
  const du = rng.int(1, 4);
  const n = rng.int(2, 8);
  const m = rng.int(1, 4);
  const batch = rng.next() < 0.5 ? "batch" : 1;
  const u = { name: b.input("u", [batch, du]), shape: [1, du] };
  const x = { name: b.input("x_in", [batch, n]), shape: [1, n] };
  const pool: Val[] = [u, x];
  let v: Val = { name: b.op("Concat", [u.name, x.name], { axis: { i: 1 } }), shape: [1, du + n] };
  pool.push(v);
  const steps = rng.int(4, 10);
  for (let i = 0; i < steps; i++) {
    v = g.step(v, pool);
    pool.push(v);
  }
  // The next state always reads the old one (a random chain may drop every symbol).
  const flatV = b.op("Flatten", [v.name], { axis: { i: 0 } });
  const next = g.project({ name: b.op("Concat", [flatV, x.name], { axis: { i: 1 } }), shape: [1, size(v.shape) + n] }, n, 0.6);
  b.node("Identity", [next.name], ["x_out"]);
  b.output("x_out", [batch, n]);
  // The output reads an intermediate value and the new state.
  const mid = rng.pick(pool.slice(2));
  let w: Val = mid;
  for (let i = 0; i < rng.int(1, 4); i++) w = g.step(w, pool);
  const flatW = b.op("Flatten", [w.name], { axis: { i: 0 } });
  const joined = { name: b.op("Concat", [flatW, next.name], { axis: { i: 1 } }), shape: [1, size(w.shape) + n] };
  const y = g.project(joined, m, 1);
  b.node("Identity", [y.name], ["y"]);
  b.output("y", [batch, m]);
  return { bytes: b.model(), du, n };
}

function irOutputs(model: Model, xs: Float32Array, T: number, d: number): Float64Array {
  const seq = Array.from({ length: T }, (_, t) => Float64Array.from(xs.subarray(t * d, (t + 1) * d)));
  const res = evaluateSequence(model, { [model.inputs[0]!.name]: seq });
  return Float64Array.from(res.step["y"]!.flatMap((v) => [...v]));
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / Math.max(m, 1e-30);
}

async function compareWithOrt(bytes: Uint8Array, du: number, states: Array<{ in: string; out: string; shape: number[] }>, seed: number, T = 6): Promise<{ err: number; model: Model }> {
  const model = compileOnnxBytes(bytes, `lift-${seed}.onnx`);
  const rng = makeRng(seed + 1000);
  const xs = Float32Array.from({ length: T * du }, () => rng.normal());
  const ort = await runSteps(bytes, "u", states, xs, 1, T, du);
  return { err: relErr(irOutputs(model, xs, T, du), ort["y"]!.data), model };
}

describe("lifting random affine step graphs", () => {
  const seeds = Array.from({ length: 60 }, (_, i) => i + 1);
  test.each(seeds)("seed %i matches ONNX Runtime", async (seed) => {
    const { bytes, du, n } = randomStepGraph(seed);
    const { err, model } = await compareWithOrt(bytes, du, [{ in: "x_in", out: "x_out", shape: [n] }], seed);
    if (process.env["ONNX_REPORT"]) console.log(`random graph ${seed}: ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(1e-5);
    // Everything between input/state and output/next state is affine: no vector nonlinearity.
    const kinds = new Set(model.sections.step.map((o) => o.op));
    for (const k of ["gelu", "sigmoid", "tanh", "relu", "mul", "normalize"]) expect(kinds.has(k as never)).toBe(false);
  });
});

/** A small step graph: u [1, d] -> encoder -> recurrence -> `body` -> y. */
function blockGraph(body: (b: GraphBuilder, h: string, H: number) => string, opset = 17): { bytes: Uint8Array; du: number; H: number } {
  const rng = makeRng(7);
  const b = new GraphBuilder(opset);
  const du = 2;
  const H = 6;
  const w = (shape: number[], s = 1) => b.init(b.fresh("w"), shape, Array.from({ length: size(shape) }, () => rng.normal() * s));
  b.input("u", [1, du]);
  b.input("x_in", [1, H]);
  const enc = b.op("Gemm", ["u", w([H, du]), w([H])], { transB: { i: 1 } });
  const decay = b.init("decay", [H], Array.from({ length: H }, () => rng.uniform(0.3, 0.9)));
  const x = b.op("Add", [b.op("Mul", ["x_in", decay]), enc]);
  b.node("Identity", [x], ["x_out"]);
  b.output("x_out", [1, H]);
  const h = body(b, x, H);
  b.node("MatMul", [h, w([H, 2], 0.5)], ["y"]);
  b.output("y", [1, 2]);
  return { bytes: b.model(), du, H };
}

const c = (b: GraphBuilder, v: number) => b.init(b.fresh("k"), [], [v]);

describe("nonlinear patterns", () => {
  const gelus: Record<string, (b: GraphBuilder, x: string) => string> = {
    "x * 0.5 * (1 + erf(x / sqrt 2))": (b, x) => b.op("Mul", [b.op("Mul", [x, c(b, 0.5)]), b.op("Add", [c(b, 1), b.op("Erf", [b.op("Div", [x, c(b, Math.SQRT2)])])])]),
    "(x * (erf(x * 1/sqrt 2) + 1)) * 0.5": (b, x) => b.op("Mul", [b.op("Mul", [x, b.op("Add", [b.op("Erf", [b.op("Mul", [x, c(b, Math.SQRT1_2)])]), c(b, 1)])]), c(b, 0.5)]),
    "(0.5 + 0.5 erf(x / sqrt 2)) * x": (b, x) => b.op("Mul", [b.op("Add", [c(b, 0.5), b.op("Mul", [c(b, 0.5), b.op("Erf", [b.op("Div", [x, c(b, Math.SQRT2)])])])]), x]),
    "Gelu op (opset 20)": (b, x) => b.op("Gelu", [x]),
  };
  test.each(Object.keys(gelus))("GELU as %s", async (key) => {
    const { bytes, du, H } = blockGraph((b, x) => gelus[key]!(b, x), key.includes("opset 20") ? 20 : 17);
    const { err, model } = await compareWithOrt(bytes, du, [{ in: "x_in", out: "x_out", shape: [H] }], 3);
    expect(err).toBeLessThanOrEqual(1e-5);
    expect(model.sections.step.filter((o) => o.op === "gelu")).toHaveLength(1);
  });

  const norms: Record<string, (b: GraphBuilder, x: string, H: number) => string> = {
    "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add": (b, x, H) => {
      const d = b.op("Sub", [x, b.op("ReduceMean", [x], { axes: { ints: [-1] } })]);
      const v = b.op("ReduceMean", [b.op("Pow", [d, c(b, 2)])], { axes: { ints: [-1] } });
      const n = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [v, c(b, 1e-5)])])]);
      return b.op("Add", [b.op("Mul", [n, b.init("gamma", [H], Array.from({ length: H }, (_, i) => 1 + 0.1 * i))]), b.init("beta", [H], Array.from({ length: H }, (_, i) => 0.05 * i))]);
    },
    "Mul(d, d), Reciprocal, Mul": (b, x) => {
      const d = b.op("Sub", [x, b.op("ReduceMean", [x], { axes: { ints: [1] }, keepdims: { i: 1 } })]);
      const v = b.op("ReduceMean", [b.op("Mul", [d, d])], { axes: { ints: [1] } });
      return b.op("Mul", [b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [c(b, 1e-3), v])])]), d]);
    },
    "LayerNormalization": (b, x, H) => b.op("LayerNormalization", [x, b.init("g2", [H], new Array(H).fill(1.5)), b.init("b2", [H], new Array(H).fill(-0.25))], { epsilon: { f: 1e-5 } }),
  };
  test.each(Object.keys(norms))("LayerNorm as %s", async (key) => {
    // residual + norm after a nonlinearity so the normalized value is not a state
    const { bytes, du, H } = blockGraph((b, x, H) => norms[key]!(b, b.op("Add", [x, b.op("Tanh", [x])]), H));
    const { err, model } = await compareWithOrt(bytes, du, [{ in: "x_in", out: "x_out", shape: [H] }], 4);
    expect(err).toBeLessThanOrEqual(1e-5);
    expect(model.sections.step.filter((o) => o.op === "normalize")).toHaveLength(1);
    // x - mean(x) needs no crossbar: the only matmuls are the encoder, the recurrence and the output
    expect(model.sections.step.filter((o) => o.op === "matmul").length).toBeLessThanOrEqual(3);
  });

  test.each(["decomposed", "LayerNormalization"])("LayerNorm over the last axis of [1, 2, 3] (%s): one normalize per row", async (form) => {
    const { bytes, du, H } = blockGraph((b, x, H) => {
      const rows = b.op("Reshape", [b.op("Tanh", [x]), b.ints([1, 2, H / 2])]);
      let y: string;
      if (form === "LayerNormalization") {
        y = b.op("LayerNormalization", [rows, b.init("g", [H / 2], [1, 2, 3]), b.init("bb", [H / 2], [0, 0.5, -0.5])], { axis: { i: -1 } });
      } else {
        const d = b.op("Sub", [rows, b.op("ReduceMean", [rows], { axes: { ints: [2] } })]);
        const v = b.op("ReduceMean", [b.op("Pow", [d, c(b, 2)])], { axes: { ints: [-1] } });
        y = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [v, c(b, 1e-5)])])]);
      }
      return b.op("Reshape", [y, b.ints([1, H])]);
    });
    const { err, model } = await compareWithOrt(bytes, du, [{ in: "x_in", out: "x_out", shape: [H] }], 6);
    expect(err).toBeLessThanOrEqual(1e-5);
    expect(model.sections.step.filter((o) => o.op === "normalize")).toHaveLength(2);
  });

  test("GLU as Split + Sigmoid + Mul", async () => {
    const { bytes, du, H } = blockGraph((b, x, H) => {
      const rng = makeRng(11);
      const p = b.op("MatMul", [x, b.init("wp", [H, 2 * H], Array.from({ length: 2 * H * H }, () => rng.normal() * 0.4))]);
      const [a, g] = b.node("Split", [p, b.ints([H, H])], 2, { axis: { i: -1 } });
      return b.op("Mul", [a!, b.op("Sigmoid", [g!])]);
    });
    const { err, model } = await compareWithOrt(bytes, du, [{ in: "x_in", out: "x_out", shape: [H] }], 5);
    expect(err).toBeLessThanOrEqual(1e-5);
    expect(model.sections.step.map((o) => o.op)).toEqual(expect.arrayContaining(["sigmoid", "mul"]));
  });
});

describe("nonlinearity inside the recurrence", () => {
  const recurrent = (nl: (b: GraphBuilder, x: string) => string) => {
    const b = new GraphBuilder(13);
    b.input("u", ["batch", 3]);
    b.input("past_h", ["batch", 4]);
    const pre = b.op("Add", [b.op("MatMul", ["past_h", b.init("A", [4, 4], Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 0.5 : 0.1)))]), b.op("MatMul", ["u", b.init("B", [3, 4], new Array(12).fill(0.2))])]);
    b.node("Identity", [nl(b, pre)], ["present_h"]);
    b.node("MatMul", ["present_h", b.init("C", [4, 1], [1, 2, 3, 4])], ["y"]);
    b.output("y", ["batch", 1]);
    b.output("present_h", ["batch", 4]);
    return b.model();
  };

  test.each([
    ["Sigmoid", (b: GraphBuilder, x: string) => b.op("Sigmoid", [x], {}, "the_sigmoid")],
    ["Relu", (b: GraphBuilder, x: string) => b.op("Relu", [x], {}, "the_relu")],
    ["GELU", (b: GraphBuilder, x: string) => b.op("Mul", [b.op("Mul", [x, c(b, 0.5)]), b.op("Add", [c(b, 1), b.op("Erf", [b.op("Div", [x, c(b, Math.SQRT2)])])])], {}, "the_gelu")],
    ["Mul of two states", (b: GraphBuilder, x: string) => b.op("Mul", [x, b.op("Add", [x, c(b, 1)])], {}, "the_mul")],
  ] as const)("%s in the state update is rejected, naming the node", (_k, nl) => {
    let err: unknown;
    try {
      compileOnnxBytes(recurrent(nl), "rec.onnx");
    } catch (e) {
      err = e;
    }
    expect(isUserError(err)).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toMatch(/"the_(sigmoid|relu|gelu|mul)"/);
    expect(msg).toMatch(/state "past_h" -> "present_h" is not affine/);
    expect(msg).not.toMatch(/\n\s+at /);
  });

  test("the same nonlinearity outside the recurrence is accepted", async () => {
    const b = new GraphBuilder(13);
    b.input("u", ["batch", 3]);
    b.input("past_h", ["batch", 4]);
    const next = b.op("Add", [b.op("Mul", ["past_h", b.init("a", [4], [0.5, 0.6, 0.7, 0.8])]), b.op("MatMul", ["u", b.init("B", [3, 4], Array.from({ length: 12 }, (_, i) => 0.1 * i - 0.5))])]);
    b.node("Identity", [next], ["present_h"]);
    b.node("MatMul", [b.op("Sigmoid", [next]), b.init("C", [4, 2], [1, 2, 3, 4, -1, 0, 1, 2])], ["y"]);
    b.output("y", ["batch", 2]);
    b.output("present_h", ["batch", 4]);
    const { err } = await compareWithOrt(b.model(), 3, [{ in: "past_h", out: "present_h", shape: [4] }], 9);
    expect(err).toBeLessThanOrEqual(1e-5);
  });
});

describe("Scan sequence graphs", () => {
  /**
   * x [B, T, d] (or [T, B, d] time-major) -> Scan(state s [B, H]: s' = a*s + x B, h = s' C + D x)
   * -> `after` on the whole-sequence output.
   */
  function scanGraph(opts: { timeMajor: boolean; after: (b: GraphBuilder, hs: string, axis: number) => string[]; finalState?: boolean }): Uint8Array {
    const rng = makeRng(21);
    const [d, H, m] = [2, 5, 3];
    const w = (b: GraphBuilder, shape: number[], s = 0.5) => b.init(b.fresh("w"), shape, Array.from({ length: size(shape) }, () => rng.normal() * s));
    const body = new GraphBuilder(13, "step");
    body.input("s_in", ["batch", H]);
    body.input("x_t", ["batch", d]);
    const next = body.op("Add", [body.op("Mul", ["s_in", body.init("a", [H], Array.from({ length: H }, () => rng.uniform(0.5, 0.95)))]), body.op("MatMul", ["x_t", w(body, [d, H])])]);
    body.node("Identity", [next], ["s_out"]);
    body.node("Add", [body.op("MatMul", [next, w(body, [H, m])]), body.op("MatMul", ["x_t", w(body, [d, m])])], ["h_t"]);
    body.output("s_out", ["batch", H]);
    body.output("h_t", ["batch", m]);

    const b = new GraphBuilder(13);
    b.input("x", ["batch", "time", d]);
    const axis = opts.timeMajor ? 0 : 1;
    const xs = opts.timeMajor ? b.op("Transpose", ["x"], { perm: { ints: [1, 0, 2] } }) : "x";
    // Zero initial state shaped from the input's batch size, as exporters write it.
    const batch = b.op("Slice", [b.op("Shape", ["x"]), b.ints([0]), b.ints([1])]);
    const init = b.op("ConstantOfShape", [b.op("Concat", [batch, b.ints([H])], { axis: { i: 0 } })], { value: { t: { name: "z", dims: [1], dataType: DT.FLOAT, floatData: [0] } } });
    const attrs: Record<string, AttrValue> = { body: { g: body.graph() }, num_scan_inputs: { i: 1 } };
    if (!opts.timeMajor) Object.assign(attrs, { scan_input_axes: { ints: [1] }, scan_output_axes: { ints: [1] } });
    b.node("Scan", [init, xs], ["s_last", "hs"], attrs, "scan");
    for (const o of opts.after(b, "hs", axis)) b.output(o);
    if (opts.finalState) b.output("s_last", ["batch", H]);
    return b.model();
  }

  async function compare(bytes: Uint8Array, T = 7) {
    const model = compileOnnxBytes(bytes, "scan.onnx");
    const rng = makeRng(5);
    const d = model.inputs[0]!.size;
    const xs = Float32Array.from({ length: T * d }, () => rng.normal());
    const ortRes = await run(await session(bytes), { x: { shape: [1, T, d], data: xs } });
    const seq = Array.from({ length: T }, (_, t) => Float64Array.from(xs.subarray(t * d, (t + 1) * d)));
    const ir = evaluateSequence(model, { x: seq });
    const errs: Record<string, number> = {};
    for (const o of model.outputs) {
      const got = o.section === "step" ? Float64Array.from(ir.step[o.name]!.flatMap((v) => [...v])) : ir.final[o.name]!;
      errs[o.name] = relErr(got, ortRes[o.name]!.data);
    }
    return { model, errs };
  }

  test.each([true, false])("per-step outputs and the final state (time-major %s)", async (timeMajor) => {
    const bytes = scanGraph({ timeMajor, after: () => ["hs"], finalState: true });
    const { model, errs } = await compare(bytes);
    expect(Object.keys(errs).sort()).toEqual(["hs", "s_last"]);
    for (const e of Object.values(errs)) expect(e).toBeLessThanOrEqual(1e-5);
    expect(model.outputs.find((o) => o.name === "s_last")!.section).toBe("final");
  });

  test.each([true, false])("mean pooling over time and a Gemm decoder (time-major %s)", async (timeMajor) => {
    const rng = makeRng(3);
    const bytes = scanGraph({
      timeMajor,
      after: (b, hs, axis) => {
        const pooled = b.op("ReduceMean", [hs], { axes: { ints: [axis] }, keepdims: { i: 0 } });
        b.node("Gemm", [pooled, b.init("dec_w", [4, 3], Array.from({ length: 12 }, () => rng.normal())), b.init("dec_b", [4], [0.1, 0.2, 0.3, 0.4])], ["logits"], { transB: { i: 1 } });
        return ["logits"];
      },
    });
    const { model, errs } = await compare(bytes);
    expect(errs["logits"]).toBeLessThanOrEqual(1e-5);
    // The pooled value is accumulated per step and divided once, after the last step.
    expect(model.sections.final.map((o) => o.op)).toEqual(["state_read", "div_steps", "matmul"]);
  });

  test("ReduceSum over time with keepdims, per-step MatMul before pooling", async () => {
    const bytes = scanGraph({
      timeMajor: true,
      after: (b, hs, axis) => {
        const proj = b.op("MatMul", [hs, b.init("p", [3, 2], [1, -1, 0.5, 2, -0.25, 1])]);
        const total = b.op("ReduceSum", [proj, b.ints([axis])], { keepdims: { i: 1 } });
        b.node("Squeeze", [total, b.ints([0])], ["total"]);
        b.node("Relu", [proj], ["proj_relu"]);
        return ["total", "proj_relu"];
      },
    });
    const { errs } = await compare(bytes);
    expect(errs["total"]).toBeLessThanOrEqual(1e-5);
    expect(errs["proj_relu"]).toBeLessThanOrEqual(1e-5);
  });
});

describe("S4D in other arrangements", () => {
  test("an S4D step written as MatMuls with block-diagonal A, B and C lifts to one fused matmul", async () => {
    const rng = makeRng(31);
    const [H, M] = [3, 2];
    const N = 2 * H * M;
    const b = new GraphBuilder(13);
    b.input("u", ["batch", 1]);
    b.input("x_in", ["batch", N]);
    const A = new Array<number>(N * N).fill(0);
    const B = new Array<number>(H * N).fill(0);
    const C = new Array<number>(N * H).fill(0);
    for (let h = 0; h < H; h++) {
      for (let m = 0; m < M; m++) {
        const [r, i] = [2 * (h * M + m), 2 * (h * M + m) + 1];
        const [ar, ai] = [rng.uniform(0.5, 0.9), rng.uniform(-0.4, 0.4)];
        // x' = x @ A with (xr', xi') = (ar xr - ai xi, ai xr + ar xi)
        A[r * N + r] = ar;
        A[i * N + r] = -ai;
        A[r * N + i] = ai;
        A[i * N + i] = ar;
        B[h * N + r] = rng.normal();
        B[h * N + i] = rng.normal();
        C[r * H + h] = 2 * rng.normal();
        C[i * H + h] = -2 * rng.normal();
      }
    }
    const enc = b.op("Gemm", ["u", b.init("We", [H, 1], [0.5, -1, 2]), b.init("be", [H], [0.1, 0, -0.1])], { transB: { i: 1 } }, "encoder");
    const next = b.op("Add", [b.op("MatMul", ["x_in", b.init("A", [N, N], A)]), b.op("MatMul", [enc, b.init("B", [H, N], B)])]);
    b.node("Identity", [next], ["x_out"]);
    b.node("Add", [b.op("MatMul", [next, b.init("C", [N, H], C)]), b.op("Mul", [enc, b.init("D", [H], [0.3, -0.2, 0.1])])], ["y"]);
    b.output("y", ["batch", H]);
    b.output("x_out", ["batch", N]);
    const { err, model } = await compareWithOrt(b.model(), 1, [{ in: "x_in", out: "x_out", shape: [N] }], 13);
    expect(err).toBeLessThanOrEqual(1e-5);
    const mms = model.sections.step.filter((o): o is Extract<typeof o, { op: "matmul" }> => o.op === "matmul");
    expect(mms.map((o) => [o.weight.rows, o.weight.cols, o.origin])).toEqual([
      [1, H, "dense"],
      [N + H, N + H, "s4d"],
    ]);
    // The DSL layout: a 2x2 block per mode, a C column and a B row per channel.
    const blocks = mms[1]!.weight.blocks.map((k) => `${k.rows}x${k.cols}`);
    expect(blocks.filter((k) => k === "2x2")).toHaveLength(H * M);
    expect(blocks.filter((k) => k === `${2 * M}x1`)).toHaveLength(H);
    expect(blocks.filter((k) => k === `1x${2 * M}`)).toHaveLength(H);
  });
});

describe("decoding and graph forms", () => {
  test("typed tensor fields (float, double, int32, int64) and raw data agree with ORT", async () => {
    const b = new GraphBuilder(13);
    b.input("u", ["batch", 3]);
    b.input("h", ["batch", 2]);
    const w32 = b.init("w32", [3, 2], [0.5, -1, 0.25, 2, -0.75, 1], DT.FLOAT, true);
    const w64 = b.op("Cast", [b.init("w64", [2, 2], [0.5, 0.1, -0.2, 0.3], DT.DOUBLE, true)], { to: { i: DT.FLOAT } });
    const shape = b.init("shape", [2], [-1, 2], DT.INT64, true);
    const idx = b.init("idx", [2], [1, 0], DT.INT32, true);
    const next = b.op("Add", [b.op("MatMul", ["h", w64]), b.op("Reshape", [b.op("MatMul", ["u", w32]), shape])]);
    b.node("Identity", [next], ["hN"]);
    b.node("Gather", [next, idx], ["y"], { axis: { i: 1 } });
    b.output("y", ["batch", 2]);
    b.output("hN", ["batch", 2]);
    const { err, model } = await compareWithOrt(b.model(), 3, [{ in: "h", out: "hN", shape: [2] }], 12);
    expect(err).toBeLessThanOrEqual(1e-6);
    // X / XN pairing.
    expect(model.state).toEqual([{ name: "h", size: 2 }]);
  });

  test("an imssa.readout = mean step graph also gives the time mean of its output", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.input("s_in", [1, 2]);
    b.node("Add", [b.op("Mul", ["s_in", b.init("a", [2], [0.5, 0.25])]), "u"], ["s_out"]);
    b.node("MatMul", ["s_out", b.init("w", [2, 1], [1, -1])], ["y"]);
    b.output("y", [1, 1]);
    b.output("s_out", [1, 2]);
    const model = compileOnnxBytes(b.model({ metadata: { "imssa.readout": "mean" } }), "pooled.onnx");
    expect(model.outputs.map((o) => [o.name, o.section])).toEqual([
      ["y", "step"],
      ["y_mean", "final"],
    ]);
    const seq = [Float64Array.of(1, 2), Float64Array.of(-1, 0.5), Float64Array.of(0, 3)];
    const res = evaluateSequence(model, { u: seq });
    const ys = res.step["y"]!.map((v) => v[0]!);
    expect(res.final["y_mean"]![0]).toBeCloseTo(ys.reduce((a, v) => a + v, 0) / ys.length, 12);
  });
});
