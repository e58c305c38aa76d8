// What a sweep measures per run: classification accuracy against labels, or, without
// labels, the relative RMS error of the outputs against the noise-free run of the same
// program: ||y - y0||_2 / ||y0||_2 over every output value.

import { UserError } from "../common/errors.js";
import type { RunResult } from "../interp/run.js";

export type MetricSpec =
  | {
      kind: "accuracy";
      /** Class index per sequence ([B], scored on final outputs) or per step ([B, T], on step outputs). */
      labels: Int32Array;
      on: "final" | "step";
    }
  | {
      kind: "error";
      /** Noise-free outputs: step outputs then final outputs, as outputsOf concatenates them. */
      baseline: Float32Array;
    };

export function metricName(m: MetricSpec): string {
  return m.kind === "accuracy" ? "accuracy" : "relative output error";
}

/** Every output value of a run: step outputs, then final outputs. */
export function outputsOf(r: RunResult): Float32Array {
  const a = r.step ?? new Float32Array(0);
  const b = r.final ?? new Float32Array(0);
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Fraction of rows of `scores` ([n, width]) whose largest entry is at the label (first maximum wins). */
export function accuracy(scores: Float32Array, width: number, labels: Int32Array): number {
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (scores[r * width + c]! > scores[r * width + best]!) best = c;
    if (best === labels[r]) correct++;
  }
  return labels.length > 0 ? correct / labels.length : 0;
}

export function relativeError(y: Float32Array, baseline: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    const d = y[i]! - baseline[i]!;
    num += d * d;
    den += baseline[i]! * baseline[i]!;
  }
  // All-zero reference outputs: fall back to the absolute RMS error.
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num / Math.max(1, y.length));
}

export function evaluateMetric(m: MetricSpec, r: RunResult): number {
  if (m.kind === "error") return relativeError(outputsOf(r), m.baseline);
  if (m.on === "final") return accuracy(r.final!, r.finalShape![1], m.labels);
  return accuracy(r.step!, r.stepShape![2], m.labels);
}

/**
 * Checks labels ([B] or [B, T], integer class indices) against the program's outputs and
 * picks what they score. `file` names the labels file in messages.
 */
export function labelMetric(labels: ArrayLike<number>, shape: readonly number[], batch: number, steps: number, outputs: { step: number; final: number }, file: string): MetricSpec {
  let on: "final" | "step";
  let width: number;
  if (shape.length === 1 && shape[0] === batch) {
    if (outputs.final === 0) throw new UserError("usage", `labels of shape [${batch}] score final outputs, but the program has none (give [B, T] labels for step outputs)`, { file });
    on = "final";
    width = outputs.final;
  } else if (shape.length === 2 && shape[0] === batch && shape[1] === steps) {
    if (outputs.step === 0) throw new UserError("usage", `labels of shape [${batch}, ${steps}] score step outputs, but the program has none`, { file });
    on = "step";
    width = outputs.step;
  } else {
    throw new UserError("usage", `labels must have shape [${batch}] (one class per sequence) or [${batch}, ${steps}] (one per step), got [${shape.join(", ")}]`, { file });
  }
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const v = Number(labels[i]);
    if (!Number.isInteger(v) || v < 0 || v >= width)
      throw new UserError("usage", `label ${i} is ${v}, not a class index in [0, ${width}) (the program has ${width} outputs)`, { file });
    out[i] = v;
  }
  return { kind: "accuracy", labels: out, on };
}
