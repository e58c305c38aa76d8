// Everything the report shows, gathered once: the compile summary rebuilt from the program,
// one interpreter run (the given inputs, or one all-zero sequence: timing and energy do not
// depend on the data), the schedule of its first step (the one `imssa-run --trace` writes)
// and, with real inputs, output errors and ADC saturations.

import type { Program } from "../backend/program.js";
import { fail } from "../common/errors.js";
import type { RunReport } from "../interp/report.js";
import { runProgram } from "../interp/run.js";
import { timelineFromTrace, type Timeline } from "../interp/trace.js";
import { checkProgram } from "../interp/verify.js";
import { formatSummary, type CompileSummary } from "../summary.js";
import type { Target } from "../target/types.js";
import { outputResults, saturationByLayer, type LayerSaturation, type OutputResult, type ReferenceModel } from "./accuracy.js";
import { compileSummaryOf } from "./layout.js";

/**
 * Steps of the all-zero sequence run when no input is given (docs/REPORT.md). Only the
 * per-inference figures (cycles, energy, latency of a sequence) depend on it.
 */
export const DEFAULT_STEPS = 64;

export interface ReportInput {
  /** [B, T, d_in] row-major. */
  data: Float32Array;
  shape: [number, number, number];
  file: string;
}

export interface ReportOptions {
  programFile: string;
  /** null: one all-zero sequence of `steps` steps. */
  input: ReportInput | null;
  steps?: number;
  /** The model-level IR, for output errors against the float64 reference. */
  reference?: ReferenceModel | null;
}

export interface ReportData {
  programFile: string;
  program: Program;
  target: Target;
  summary: CompileSummary;
  /** The compile summary exactly as imssa-compile prints it. */
  summaryText: string;
  run: RunReport;
  /** Where the run's inputs came from: a file, or null for the zero sequence. */
  inputFile: string | null;
  /** The traced section runs of the first sequence (init, first step, final). */
  timeline: Timeline;
  /** With real inputs only. */
  outputs: OutputResult[] | null;
  saturation: LayerSaturation[] | null;
  /** Whether the outputs were compared with a reference model. */
  referenceFile: string | null;
}

export function collectReport(p: Program, opts: ReportOptions): ReportData {
  const file = opts.programFile;
  const target = checkProgram(p, file);
  const summary = compileSummaryOf(p, target, file);
  if (p.io.inputs.length !== 1) fail("unsupported", `the program has ${p.io.inputs.length} inputs; the report runs programs with exactly one input`, { file });
  const steps = opts.steps ?? DEFAULT_STEPS;
  if (!(Number.isInteger(steps) && steps >= 1)) fail("usage", `the number of steps must be a positive integer, found ${steps}`);
  const input: ReportInput = opts.input ?? { data: new Float32Array(steps * p.io.inputs[0]!.size), shape: [1, steps, p.io.inputs[0]!.size], file: "<zero sequence>" };
  const run = runProgram(p, input.data, input.shape, { trace: true, file, inputFile: input.file });
  const real = opts.input !== null;
  return {
    programFile: file,
    program: p,
    target,
    summary,
    summaryText: formatSummary(summary),
    run: run.report,
    inputFile: real ? input.file : null,
    timeline: timelineFromTrace(run.trace!),
    outputs: real ? outputResults(p, run, input.data, input.shape, input.file, opts.reference ?? null) : null,
    saturation: real ? saturationByLayer(p, run.report) : null,
    referenceFile: real && opts.reference ? opts.reference.file : null,
  };
}
