// ONNX Runtime as the numeric reference for ONNX graphs: whole-graph runs, and step graphs
// run step by step with their state outputs fed back as the next step's state inputs.

import * as ort from "onnxruntime-node";

export interface Array32 {
  shape: number[];
  data: Float32Array;
}

/**
 * ORT's extended graph optimizations rewrite DequantizeLinear + MatMul into a dynamically
 * quantized matmul (activations rounded to 8 bits), which is not what the graph computes;
 * the reference runs with the basic (semantics-preserving) optimizations only.
 */
export async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { graphOptimizationLevel: "basic" });
}

export async function run(s: ort.InferenceSession, feeds: Record<string, Array32>): Promise<Record<string, Array32>> {
  const inputs: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) inputs[k] = new ort.Tensor("float32", Float32Array.from(v.data), v.shape);
  const out = await s.run(inputs);
  const res: Record<string, Array32> = {};
  for (const [k, v] of Object.entries(out)) res[k] = { shape: [...v.dims], data: Float32Array.from(v.data as Float32Array) };
  return res;
}

export interface StatePair {
  in: string;
  out: string;
  /** Shape without the batch dimension. */
  shape: number[];
}

/**
 * Runs a step graph over xs [B, T, d] from zero states, batch dim first on every tensor.
 * Returns each non-state output as [B, T, width].
 */
export async function runSteps(bytes: Uint8Array, input: string, states: readonly StatePair[], xs: Float32Array, B: number, T: number, d: number): Promise<Record<string, Array32>> {
  const s = await session(bytes);
  const cur = new Map<string, Float32Array>(states.map((p) => [p.in, new Float32Array(B * p.shape.reduce((a, b) => a * b, 1))]));
  const outs: Record<string, Float32Array[]> = {};
  for (let t = 0; t < T; t++) {
    const u = new Float32Array(B * d);
    for (let b = 0; b < B; b++) u.set(xs.subarray((b * T + t) * d, (b * T + t + 1) * d), b * d);
    const feeds: Record<string, Array32> = { [input]: { shape: [B, d], data: u } };
    for (const p of states) feeds[p.in] = { shape: [B, ...p.shape], data: cur.get(p.in)! };
    const res = await run(s, feeds);
    for (const p of states) cur.set(p.in, res[p.out]!.data);
    for (const [k, v] of Object.entries(res)) {
      if (states.some((p) => p.out === k)) continue;
      (outs[k] ??= []).push(v.data);
    }
  }
  const result: Record<string, Array32> = {};
  for (const [k, steps] of Object.entries(outs)) {
    const w = steps[0]!.length / B;
    const data = new Float32Array(B * T * w);
    steps.forEach((v, t) => {
      for (let b = 0; b < B; b++) data.set(v.subarray(b * w, (b + 1) * w), (b * T + t) * w);
    });
    result[k] = { shape: [B, T, w], data };
  }
  return result;
}
