// A Monte-Carlo robustness sweep: for every value of one noise parameter and every chip
// seed, run the program with that noise and score it; aggregate mean ± std per value.

import type { Program } from "../backend/program.js";
import { runProgram } from "../interp/run.js";
import { checkProgram } from "../interp/verify.js";
import { checkNoiseModel } from "../noise/parse.js";
import { noiseSetup } from "../noise/setup.js";
import { describeNoise, type NoiseModel } from "../noise/spec.js";
import type { ParamGrid } from "./grid.js";
import { modelFor, type SweepContext, type SweepJob } from "./job.js";
import { labelMetric, metricName, outputsOf, type MetricSpec } from "./metric.js";
import { runJobs } from "./pool.js";
import { summarize, type SweepTable } from "./table.js";

export interface SweepOptions {
  program: Program;
  /** Program (or model) file name for messages. */
  file: string;
  input: Float32Array;
  shape: [number, number, number];
  /** Class labels ([B] or [B, T]); without them the metric is the error against the noise-free run. */
  labels?: { data: ArrayLike<number>; shape: number[]; file: string };
  base: NoiseModel;
  grid: ParamGrid;
  /** Chip seeds, one run per seed and value. */
  seeds: number[];
  workers: number;
  onProgress?: (done: number, total: number) => void;
}

function metricFor(o: SweepOptions): MetricSpec {
  const io = o.program.io;
  const width = (bufs: { size: number }[]): number => bufs.reduce((a, b) => a + b.size, 0);
  if (o.labels !== undefined) {
    const { data, shape, file } = o.labels;
    return labelMetric(data, shape, o.shape[0], o.shape[1], { step: width(io.stepOutputs), final: width(io.finalOutputs) }, file);
  }
  const clean = runProgram(o.program, o.input, o.shape, { file: o.file });
  return { kind: "error", baseline: outputsOf(clean) };
}

export async function runSweep(o: SweepOptions): Promise<SweepTable> {
  const target = checkProgram(o.program, o.file);
  // Every model of the sweep is checked before any run starts, so a bad value fails fast.
  for (const v of o.grid.values) {
    const m = modelFor(o.base, o.grid.key, v);
    checkNoiseModel(m, "--param");
    noiseSetup(target, { model: m, seed: o.seeds[0] ?? 0 }, o.file);
  }
  const metric = metricFor(o);
  const ctx: SweepContext = { program: o.program, file: o.file, input: o.input, shape: o.shape, base: o.base, param: o.grid.key, metric };
  const jobs: SweepJob[] = [];
  for (const value of o.grid.values) for (const seed of o.seeds) jobs.push({ index: jobs.length, value, seed });
  const metrics = await runJobs(ctx, jobs, { workers: o.workers, onProgress: (done) => o.onProgress?.(done, jobs.length) });
  const perValue = o.grid.values.map((_, i) => metrics.slice(i * o.seeds.length, (i + 1) * o.seeds.length));
  return {
    model: o.program.modelName,
    target: target.name,
    param: o.grid.key,
    metric: metricName(metric),
    noise: describeNoise(o.base),
    seeds: [...o.seeds],
    rows: summarize(o.grid.values, perValue),
    runs: jobs.map((j, i) => ({ value: j.value, seed: j.seed, metric: metrics[i]! })),
  };
}
