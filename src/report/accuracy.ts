// What a run on real inputs says about numerics: each output against the float64 reference
// of the model-level IR (when the model is given) and ADC saturations per layer.

import type { IoBuffer, Program } from "../backend/program.js";
import { fail } from "../common/errors.js";
import type { RunReport } from "../interp/report.js";
import type { RunResult } from "../interp/run.js";
import type { Model } from "../ir/types.js";
import { sequencesFromBatch } from "../pipeline.js";
import { evaluateSequence } from "../reference/evaluate.js";
import { argmaxAgreement, compareArrays, type ErrorMetrics } from "../verify/metrics.js";
import { symbolLayers } from "./layers.js";

export interface OutputResult {
  name: string;
  section: "step" | "final";
  /** [B, T, width] for step outputs, [B, width] for final ones. */
  shape: number[];
  min: number;
  max: number;
  meanAbs: number;
  /** Final outputs wider than 1 read as class scores: argmax per sequence. */
  predicted: number[] | null;
  /** Against the float64 reference; null without a model. */
  reference: (ErrorMetrics & { argmaxAgreement: number | null }) | null;
}

export interface LayerSaturation {
  layer: string;
  saturations: number;
  conversions: number;
}

/** A model and the file it came from (for messages). */
export interface ReferenceModel {
  model: Model;
  file: string;
}

/** Output `buf` of an interpreter result laid out as rows of all `bufs` side by side. */
function extract(data: Float32Array, rows: number, bufs: readonly IoBuffer[], buf: IoBuffer): Float64Array {
  const total = bufs.reduce((s, b) => s + b.size, 0);
  const offset = bufs.slice(0, bufs.indexOf(buf)).reduce((s, b) => s + b.size, 0);
  const out = new Float64Array(rows * buf.size);
  for (let r = 0; r < rows; r++) for (let i = 0; i < buf.size; i++) out[r * buf.size + i] = data[r * total + offset + i]!;
  return out;
}

function argmaxRows(a: Float64Array, width: number): number[] {
  const out: number[] = [];
  for (let r = 0; r * width < a.length; r++) {
    let best = 0;
    for (let i = 1; i < width; i++) if (a[r * width + i]! > a[r * width + best]!) best = i;
    out.push(best);
  }
  return out;
}

/** The model must be the one the program was compiled from: same name, input and outputs. */
function checkModel(p: Program, ref: ReferenceModel): void {
  const { model, file } = ref;
  const bad = (msg: string): never => fail("usage", `${msg}; pass the model the program was compiled from`, { file });
  if (model.name !== p.modelName) bad(`model '${model.name}' is not the program's model '${p.modelName}'`);
  const input = p.io.inputs[0]!;
  // Unrolled programs (Program.unroll = k) hold k time steps per input buffer.
  if (model.inputs.length !== 1 || model.inputs[0]!.size * (p.unroll ?? 1) !== input.size) bad(`the model's inputs do not match the program's input '${input.name}' of width ${input.size}`);
  for (const [section, bufs] of [["step", p.io.stepOutputs], ["final", p.io.finalOutputs]] as const)
    for (const b of bufs) if (!model.outputs.some((o) => o.name === b.name && o.section === section)) bad(`the model has no ${section} output '${b.name}'`);
}

/**
 * Every output of the run, compared with the reference when `ref` is given. `input` is the
 * run's [B, T, d] batch.
 */
export function outputResults(p: Program, run: RunResult, input: Float32Array, shape: [number, number, number], inputFile: string, ref: ReferenceModel | null): OutputResult[] {
  const [B, T] = shape;
  if (ref) checkModel(p, ref);
  const reference = ref ? sequencesFromBatch(ref.model, input, shape, inputFile).map((s) => evaluateSequence(ref.model, s)) : null;
  const results: OutputResult[] = [];
  // run.step is per time step: an unrolled program's step buffers hold k time steps each.
  const stepOutputs = p.io.stepOutputs.map((b) => ({ ...b, size: b.size / (p.unroll ?? 1) }));
  for (const [section, bufs, data] of [["step", stepOutputs, run.step], ["final", p.io.finalOutputs, run.final]] as const) {
    if (data === null) continue;
    const rows = section === "step" ? B * T : B;
    for (const buf of bufs) {
      const actual = extract(data, rows, bufs, buf);
      let expected: Float64Array | null = null;
      if (reference) {
        const e = new Float64Array(actual.length);
        reference.forEach((r, b) => {
          if (section === "step") r.step[buf.name]!.forEach((v, t) => e.set(v, (b * T + t) * buf.size));
          else e.set(r.final[buf.name]!, b * buf.size);
        });
        expected = e;
      }
      const classes = section === "final" && buf.size > 1;
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      let sumAbs = 0;
      for (const v of actual) {
        min = Math.min(min, v);
        max = Math.max(max, v);
        sumAbs += Math.abs(v);
      }
      results.push({
        name: buf.name,
        section,
        shape: section === "step" ? [B, T, buf.size] : [B, buf.size],
        min,
        max,
        meanAbs: sumAbs / actual.length,
        predicted: classes ? argmaxRows(actual, buf.size) : null,
        reference: expected ? { ...compareArrays(actual, expected), argmaxAgreement: classes ? argmaxAgreement(actual, expected, buf.size) : null } : null,
      });
    }
  }
  return results;
}

/** ADC saturations of the run summed per layer (every conversion happens in some layer's mvm). */
export function saturationByLayer(p: Program, report: RunReport): LayerSaturation[] {
  const layers = symbolLayers(p);
  const index = new Map(p.symbols.map((s, i) => [s, i]));
  const out = new Map<string, LayerSaturation>();
  for (const e of report.saturation.perSymbol) {
    const layer = layers.get(index.get(e.symbol) ?? -1) ?? e.symbol;
    const row = out.get(layer) ?? { layer, saturations: 0, conversions: 0 };
    row.saturations += e.saturations;
    row.conversions += e.conversions;
    out.set(layer, row);
  }
  return [...out.values()];
}
