// The whole compiler in one screen: front end -> lower -> quantize -> tile -> emit.
// Each phase lives in its own module; this file only sequences them and picks the front end.

import { extname } from "node:path";
import type { Program } from "./backend/program.js";
import { emitProgram } from "./backend/emit.js";
import { tileForLocality } from "./backend/regroup.js";
import { tile } from "./passes/tile.js";
import { fail } from "./common/errors.js";
import { readFloatNpy } from "./common/npy.js";
import { compileDslFile } from "./frontend/dsl/index.js";
import { compileOnnxFile } from "./frontend/onnx/index.js";
import { readModelFile } from "./ir/json.js";
import type { CrossbarPlan } from "./ir/plan.js";
import type { Model } from "./ir/types.js";
import { checkModel } from "./ir/validate.js";
import { lower } from "./passes/lower.js";
import { quantize } from "./passes/quantize.js";
import { scaleStates } from "./passes/scale-states.js";
import { chunkSequence, unroll } from "./passes/unroll.js";
import { isWeightSliceCount, MAX_WEIGHT_SLICES } from "./passes/slice-weights.js";
import { DEFAULT_RECURRENCE, residualRecurrence, type RecurrenceForm } from "./passes/residual.js";
import { pluginIdentity, type LoadedPlugin } from "./target/plugin.js";
import { splitS4DForPlugin, unquantizeTaken, withoutTaken } from "./target/plugin-split.js";
import { defaultWeightSlices, type Target } from "./target/types.js";

export const COMPILER_VERSION = "0.1.0";

export interface LoadOptions {
  /** ONNX step graphs: explicit (state input, state output) pairs, beyond the naming conventions. */
  state?: Array<[string, string]>;
}

/** Reads a model from any supported front end, chosen by file extension. */
export function loadModel(file: string, opts: LoadOptions = {}): Model {
  const ext = extname(file).toLowerCase();
  if (opts.state?.length && ext !== ".onnx") fail("usage", "--state applies to ONNX models only", { file });
  if (ext === ".s4d") return compileDslFile(file);
  if (ext === ".json") return readModelFile(file);
  if (ext === ".onnx") return compileOnnxFile(file, { state: opts.state });
  return fail("usage", `unknown model file type '${ext || "(none)"}': expected .s4d (model DSL), .onnx or .json (imssa IR)`, { file });
}

/** Parses repeatable `--state IN:OUT` flags. */
export function parseStatePairs(values: readonly string[]): Array<[string, string]> {
  return values.map((v) => {
    const parts = v.split(":");
    if (parts.length !== 2 || !parts[0] || !parts[1]) fail("usage", `--state expects IN:OUT (a state input and output name of the graph), found '${v}'`);
    return [parts[0], parts[1]] as [string, string];
  });
}

/** A batch of sequences [B, T, d] as the evaluator's per-sequence input records. */
export function sequencesFromBatch(model: Model, data: ArrayLike<number>, shape: readonly number[], file: string): Record<string, Float64Array[]>[] {
  if (model.inputs.length !== 1) fail("unsupported", `model '${model.name}' has ${model.inputs.length} inputs; only single-input models take .npy input`, { file });
  const input = model.inputs[0]!;
  const [B, T, d] = shape.length === 3 ? shape : shape.length === 2 ? [1, shape[0]!, shape[1]!] : [0, 0, 0];
  if (shape.length !== 2 && shape.length !== 3) fail("format", `expected an array of shape [B, T, ${input.size}] or [T, ${input.size}], found [${shape.join(", ")}]`, { file });
  if (d !== input.size) fail("format", `input '${input.name}' has width ${input.size}, but the array's last dimension is ${d} (shape [${shape.join(", ")}])`, { file });
  if (T === 0) fail("format", "the array has no time steps", { file });
  const out: Record<string, Float64Array[]>[] = [];
  for (let b = 0; b < B!; b++) {
    const steps: Float64Array[] = [];
    for (let t = 0; t < T!; t++) {
      const base = (b * T! + t) * d;
      steps.push(Float64Array.from({ length: d }, (_, i) => data[base + i]!));
    }
    out.push({ [input.name]: steps });
  }
  return out;
}

export function readCalibration(model: Model, file: string): Record<string, Float64Array[]>[] {
  const { shape, data } = readFloatNpy(file);
  return sequencesFromBatch(model, data, shape, file);
}

export interface CompileResult {
  model: Model;
  lowered: Model;
  quantized: Model;
  plan: CrossbarPlan;
  program: Program;
}

export interface CompileOptions {
  /** Calibration sequences for DAC/ADC ranges; null: the documented default distribution. */
  calibration?: Record<string, Float64Array[]>[] | null;
  /** Name for diagnostics of in-memory IR between passes. */
  sourceName?: string;
  /** Pack S4D channel groups per tile so state and partial sums stay local (docs/SCHEDULE.md); default on. */
  groupChannels?: boolean;
  /** Per-mode S4D state scaling before quantization (default on; src/passes/scale-states.ts). */
  stateScaling?: boolean;
  /** S4D recurrence mapping (src/passes/residual.ts): dA on the crossbar, or dA - I plus a digital add; default DEFAULT_RECURRENCE. */
  recurrence?: RecurrenceForm;
  /** The target's plugin (src/target/plugin.ts loadTargetWithPlugin); required when the target names one. */
  plugin?: LoadedPlugin | null;
  /** Time steps per program step (src/passes/unroll.ts, docs/SCHEDULE.md "Unrolling"); default 1. */
  unroll?: number;
  /** Software-pipeline the tiles' step streams with step delays (src/backend/software-pipeline.ts); default off. */
  pipelineSteps?: boolean;
  /** Device pairs per weight (src/passes/slice-weights.ts, 1..MAX_WEIGHT_SLICES); default: the target's `numerics.weightSlices`, else 1. */
  weightSlices?: number;
}

/**
 * `result` with its program emitted again, software-pipelined (src/backend/software-pipeline.ts):
 * the same quantized IR and crossbar plan, so the same as compiling with `pipelineSteps`
 * (without a target plugin), at the cost of emission only.
 */
export function withPipelinedSteps(result: CompileResult, target: Target): CompileResult {
  const program = emitProgram(result.quantized, result.plan, target, { compilerVersion: COMPILER_VERSION, pipelineSteps: true });
  const steps = result.lowered.unroll ?? 1;
  if (steps !== 1) program.unroll = steps;
  return { ...result, program };
}

export function compile(model: Model, target: Target, opts: CompileOptions = {}): CompileResult {
  const where = opts.sourceName ?? model.name;
  if (model.level === "quantized") return fail("usage", "the IR is already quantized; compile its model-level or lowered IR instead", { file: where });
  // Front ends that lift graphs to matrices themselves (ONNX) hand over lowered IR already.
  const unscaled = model.level === "model" ? lower(model) : model;
  checkModel(unscaled, `${where} (after lowering)`);
  // `lowered` is what quantization starts from (QAT configs re-quantize it), so it carries the state scaling.
  // Residual recurrence form, before state scaling so the scaling sees the matrix that is quantized.
  // Not with a plugin that takes the state update off the crossbars (nothing is rounded there).
  const residual = (opts.recurrence ?? DEFAULT_RECURRENCE) === "residual" && !opts.plugin?.plugin.lowerS4dState;
  const mapped = residual ? residualRecurrence(unscaled) : unscaled;
  if (residual) checkModel(mapped, `${where} (after the residual recurrence mapping)`);
  const scaled = opts.stateScaling === false ? mapped : scaleStates(mapped, target, { calibration: opts.calibration ?? null });
  checkModel(scaled, `${where} (after state scaling)`);
  const plugin = opts.plugin ?? null;
  // k-step unrolling after scaling (exact in float, so the two commute), before quantization.
  const k = opts.unroll ?? 1;
  if (k !== 1 && plugin !== null) return fail("unsupported", `--unroll ${k}: target "${target.name}" has a plugin (${target.plugin}), whose S4D state lowering expects one time step per program step; compile with --unroll 1`, { file: target.source.file });
  const unrolled = k === 1 ? scaled : unroll(scaled, k, where);
  if (k !== 1) checkModel(unrolled, `${where} (after unrolling ${k} steps)`);
  const calibration = k === 1 || !opts.calibration ? (opts.calibration ?? null) : opts.calibration.map((seq) => chunkSequence(seq, k));
  if (target.plugin !== undefined && plugin === null) return fail("unsupported", `target "${target.name}" has a plugin (${target.plugin}), which this command does not load (imssa-compile, imssa-run and imssa-verify do; API: loadTargetWithPlugin)`, { file: target.source.file });
  // A plugin's lowerS4dState takes the S4D state updates off the crossbars (src/target/plugin-split.ts).
  const split = plugin?.plugin.lowerS4dState ? splitS4DForPlugin(unrolled) : null;
  const lowered = split?.model ?? unrolled;
  if (split) checkModel(lowered, `${where} (after splitting S4D layers for target plugin ${plugin!.plugin.name})`);
  const slices = opts.weightSlices ?? defaultWeightSlices(target);
  if (!isWeightSliceCount(slices)) return fail("usage", `weightSlices must be an integer from 1 to ${MAX_WEIGHT_SLICES}, found ${slices}`, { file: where });
  if (slices !== 1 && plugin !== null) return fail("unsupported", `weight slicing (${slices} slices): target "${target.name}" has a plugin (${target.plugin}); compile with --weight-slices 1`, { file: target.source.file });
  const quantizedAll = quantize(lowered, target, calibration, { weightSlices: slices });
  checkModel(quantizedAll, `${where} (after quantization)`);
  // The plugin's matmuls are not on crossbars: float weights, no quant record, no crossbar pieces.
  const quantized = split ? unquantizeTaken(quantizedAll, lowered, split.taken) : quantizedAll;
  const onCrossbars = split ? withoutTaken(quantized, split.taken) : quantized;
  // Channel groups packed per tile (src/backend/regroup.ts, docs/SCHEDULE.md) unless turned off.
  const plan = opts.groupChannels === false ? tile(onCrossbars, target) : tileForLocality(onCrossbars, target);
  const program = emitProgram(quantized, plan, target, {
    compilerVersion: COMPILER_VERSION,
    ...(opts.pipelineSteps ? { pipelineSteps: true } : {}),
    ...(plugin ? { plugin: { loaded: plugin, target, taken: split?.taken ?? new Map(), identity: pluginIdentity(plugin) } } : {}),
  });
  // The IR's own factor: k here, or the one an already unrolled lowered IR (--emit lowered-ir) records.
  const steps = lowered.unroll ?? 1;
  if (steps !== 1) program.unroll = steps;
  return { model, lowered, quantized, plan, program };
}
