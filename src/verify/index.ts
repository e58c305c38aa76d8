// imssa-verify's core: compile, run the interpreter and the float64 reference on the same
// inputs, and compare every output against the bound the target's quantization implies.

import type { IoBuffer } from "../backend/program.js";
import { runProgram } from "../interp/run.js";
import type { Model } from "../ir/types.js";
import { compile, sequencesFromBatch, type CompileResult } from "../pipeline.js";
import { evaluateSequence } from "../reference/evaluate.js";
import type { LoadedPlugin } from "../target/plugin.js";
import type { Target } from "../target/types.js";
import { errorBounds } from "./bound.js";
import { chunkOutputs, chunkSequence, padSequence } from "../passes/unroll.js";
import type { RecurrenceForm } from "../passes/residual.js";
import { argmaxAgreement, compareArrays, type ErrorMetrics } from "./metrics.js";

export interface OutputCheck extends ErrorMetrics {
  name: string;
  section: "step" | "final";
  width: number;
  /** Final outputs are read as class scores: fraction of sequences whose argmax agrees. */
  argmaxAgreement: number | null;
  bound: number;
  pass: boolean;
}

export interface VerifyResult {
  compiled: CompileResult;
  outputs: OutputCheck[];
  boundMethod: "float32+weight-levels" | "quantization-noise" | "tolerance";
  pass: boolean;
  batch: number;
  steps: number;
}

export interface VerifyOptions {
  calibration: Record<string, Float64Array[]>[] | null;
  /** Overrides the derived bounds: allowed max abs error for every output. */
  tolerance?: number;
  inputFile: string;
  /** The target's plugin, for plugin targets (src/target/plugin.ts loadTargetWithPlugin). */
  plugin?: LoadedPlugin | null;
  /** Time steps per program step (imssa-verify --unroll, src/passes/unroll.ts); default 1. */
  unroll?: number;
  /** S4D recurrence form on the crossbars (src/passes/residual.ts); default the compiler's. */
  recurrence?: RecurrenceForm;
  /** Device pairs per weight (src/passes/slice-weights.ts); default the target's. */
  weightSlices?: number;
}

/** Slices output `name` out of an interpreter result laid out [rows, total width] by `bufs` order. */
function extract(data: Float32Array, rows: number, bufs: IoBuffer[], name: string): Float64Array {
  const total = bufs.reduce((s, b) => s + b.size, 0);
  let offset = 0;
  for (const b of bufs) {
    if (b.name === name) {
      const out = new Float64Array(rows * b.size);
      for (let r = 0; r < rows; r++) for (let i = 0; i < b.size; i++) out[r * b.size + i] = data[r * total + offset + i]!;
      return out;
    }
    offset += b.size;
  }
  throw new Error(`internal error: program has no output '${name}'`);
}

export function verifyModel(model: Model, target: Target, input: Float32Array, shape: readonly number[], opts: VerifyOptions): VerifyResult {
  const sequences = sequencesFromBatch(model, input, shape, opts.inputFile);
  const B = sequences.length;
  const T = sequences[0]![model.inputs[0]!.name]!.length;
  const d = model.inputs[0]!.size;
  const plugin = opts.plugin ?? null;
  const k = opts.unroll ?? 1;
  const compiled = compile(model, target, { calibration: opts.calibration, plugin, unroll: k, ...(opts.recurrence ? { recurrence: opts.recurrence } : {}), ...(opts.weightSlices !== undefined ? { weightSlices: opts.weightSlices } : {}) });
  const run = runProgram(compiled.program, input, [B, T, d], { inputFile: opts.inputFile, plugin });
  const reference = sequences.map((s) => evaluateSequence(model, s));
  // An unrolled quantized IR runs k time steps per step: its bound is derived on the chunked
  // (zero-padded, as the runtime does) sequences against the source model's padded reference.
  const boundsOn = (): ReturnType<typeof errorBounds> => {
    if (k === 1) return errorBounds(compiled.quantized, compiled.plan, compiled.program, target, sequences, reference);
    const padded = sequences.map((s) => padSequence(s, k));
    const padRef = padded.map((s, b) => (T % k === 0 ? reference[b]! : evaluateSequence(model, s)));
    return errorBounds(compiled.quantized, compiled.plan, compiled.program, target, padded.map((s) => chunkSequence(s, k)), padRef.map((r) => chunkOutputs(r, k)));
  };
  const bounds = opts.tolerance === undefined ? boundsOn() : null;

  const outputs: OutputCheck[] = [];
  for (const out of model.outputs) {
    const isStep = out.section === "step";
    // The runtime un-chunks unrolled step outputs: k time steps per buffer -> buffers of size / k.
    const bufs = (isStep ? compiled.program.io.stepOutputs : compiled.program.io.finalOutputs).map((b) => (isStep ? { ...b, size: b.size / k } : b));
    const data = isStep ? run.step : run.final;
    if (!data) throw new Error(`internal error: interpreter produced no ${out.section} outputs`);
    const rows = isStep ? B * T : B;
    const actual = extract(data, rows, bufs, out.name);
    const width = actual.length / rows;
    const expected = new Float64Array(actual.length);
    reference.forEach((r, b) => {
      if (isStep) r.step[out.name]!.forEach((v, t) => expected.set(v, (b * T + t) * width));
      else expected.set(r.final[out.name]!, b * width);
    });
    const m = compareArrays(actual, expected);
    const bound = opts.tolerance ?? (isStep ? bounds!.step[out.name]! : bounds!.final[out.name]!);
    outputs.push({
      ...m,
      name: out.name,
      section: out.section,
      width,
      argmaxAgreement: !isStep && width > 1 ? argmaxAgreement(actual, expected, width) : null,
      bound,
      pass: m.maxAbsError <= bound,
    });
  }
  return {
    compiled,
    outputs,
    boundMethod: bounds ? bounds.method : "tolerance",
    pass: outputs.every((o) => o.pass),
    batch: B,
    steps: T,
  };
}

const num = (x: number): string => (Number.isFinite(x) ? x.toExponential(3) : String(x));

export function formatVerify(r: VerifyResult, modelName: string, targetName: string): string {
  const k = r.compiled.program.unroll ?? 1;
  const lines = [`imssa-verify: ${modelName} on ${targetName}, ${r.batch} sequence(s) x ${r.steps} steps${k > 1 ? ` (unrolled ${k} steps per program step)` : ""}, bound: ${r.boundMethod}`];
  lines.push(`  ${"output".padEnd(12)} ${"section".padEnd(7)} ${"max abs err".padStart(11)} ${"rel max err".padStart(11)} ${"RMS err".padStart(10)} ${"SNR dB".padStart(7)} ${"argmax".padStart(7)} ${"bound".padStart(10)}  verdict`);
  for (const o of r.outputs) {
    const snr = Number.isFinite(o.snrDb) ? o.snrDb.toFixed(1) : "inf";
    const am = o.argmaxAgreement === null ? "-" : `${(100 * o.argmaxAgreement).toFixed(1)}%`;
    lines.push(
      `  ${o.name.padEnd(12)} ${o.section.padEnd(7)} ${num(o.maxAbsError).padStart(11)} ${num(o.relativeMaxError).padStart(11)} ${num(o.rmsError).padStart(10)} ${snr.padStart(7)} ${am.padStart(7)} ${num(o.bound).padStart(10)}  ${o.pass ? "ok" : "EXCEEDS BOUND"}`,
    );
  }
  lines.push(r.pass ? "verification passed" : "verification FAILED: the interpreter's error exceeds the bound");
  return `${lines.join("\n")}\n`;
}
