// One run of a sweep: the program with the base noise model, the swept parameter set to one
// value and one chip seed, scored by the sweep's metric. The same function runs in worker
// threads (src/sweep/worker.ts) and in-process (workers = 1), so results never depend on
// where a job ran.

import type { Program } from "../backend/program.js";
import { runProgram } from "../interp/run.js";
import { resolveNoiseKey } from "../noise/parse.js";
import type { NoiseModel } from "../noise/spec.js";
import { evaluateMetric, type MetricSpec } from "./metric.js";

/** Everything a worker needs, sent once per worker (structured clone). */
export interface SweepContext {
  program: Program;
  /** Program file name for messages. */
  file: string;
  input: Float32Array;
  shape: [number, number, number];
  /** The noise model every run starts from (--noise, default: the target's). */
  base: NoiseModel;
  /** Canonical noise key of the swept parameter. */
  param: string;
  metric: MetricSpec;
}

export interface SweepJob {
  /** Position in the job list (results come back by index). */
  index: number;
  value: number;
  /** Chip seed; the read seed is the same (see src/noise/streams.ts). */
  seed: number;
}

/** The base model with the swept parameter set. */
export function modelFor(base: NoiseModel, param: string, value: number): NoiseModel {
  const m = structuredClone(base);
  const k = resolveNoiseKey(param, "--param");
  (m[k.part] as unknown as Record<string, number>)[k.field] = value;
  return m;
}

export function runJob(ctx: SweepContext, job: SweepJob): number {
  const model = modelFor(ctx.base, ctx.param, job.value);
  const r = runProgram(ctx.program, ctx.input, ctx.shape, { file: ctx.file, noise: { model, seed: job.seed } });
  return evaluateMetric(ctx.metric, r);
}
