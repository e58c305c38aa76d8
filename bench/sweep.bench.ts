// Sweep throughput: seeds per second of a Monte-Carlo noise sweep of the digits-size example
// (examples/digits.s4d on xbar64 with the target's noise, 2 sequences of 64 steps per run)
// in-process, on 1 worker thread and on 2 worker threads, with the 1 -> 2 thread speedup.
// The results of all three must be identical (they are checked).
//
//   npm run bench                         (builds with tsconfig.bench.json, runs every bench)
//   node build/bench/bench/sweep.bench.js --seeds=16

import "../src/common/polyfill.js";
import { availableParallelism } from "node:os";
import { readFloatNpy } from "../src/common/npy.js";
import { runProgram } from "../src/interp/run.js";
import { noiseFromTarget } from "../src/noise/spec.js";
import { compile, loadModel } from "../src/pipeline.js";
import type { SweepContext, SweepJob } from "../src/sweep/job.js";
import { outputsOf } from "../src/sweep/metric.js";
import { runJobs } from "../src/sweep/pool.js";
import { loadTarget } from "../src/target/load.js";

const SEQUENCES = 2;

function flag(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  const v = arg === undefined ? fallback : Number(arg.slice(name.length + 3));
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${arg}`);
  return v;
}

/** Wall time, and CPU time of the whole process (all threads): their ratio is the cores the run actually got. */
async function timed(ctx: SweepContext, jobs: SweepJob[], workers: number, threads: boolean): Promise<{ seconds: number; cores: number; metrics: number[] }> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const metrics = await runJobs(ctx, jobs, { workers, forceThreads: threads });
  const cpu = process.cpuUsage(c0);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, cores: (cpu.user + cpu.system) / 1e6 / seconds, metrics };
}

async function main(): Promise<void> {
  const seeds = flag("seeds", 12);
  const target = loadTarget("xbar64");
  const program = compile(loadModel("examples/digits.s4d"), target).program;
  const x = readFloatNpy("examples/digits-input.npy");
  const [, T, d] = x.shape as [number, number, number];
  const input = x.data.slice(0, SEQUENCES * T * d);
  const shape: [number, number, number] = [SEQUENCES, T, d];
  const baseline = outputsOf(runProgram(program, input, shape));
  const ctx: SweepContext = { program, file: "digits", input, shape, base: noiseFromTarget(target.noise), param: "programming.scale", metric: { kind: "error", baseline } };
  const jobs: SweepJob[] = Array.from({ length: seeds }, (_, i) => ({ index: i, value: 1, seed: i }));

  await runJobs(ctx, jobs.slice(0, 1), { workers: 1 }); // JIT warm-up of the in-process path
  // One run without and with noise: what the noise simulation itself costs.
  const t0 = process.hrtime.bigint();
  runProgram(program, input, shape);
  const t1 = process.hrtime.bigint();
  runProgram(program, input, shape, { noise: { model: ctx.base, seed: 0 } });
  const t2 = process.hrtime.bigint();
  const inProcess = await timed(ctx, jobs, 1, false);
  const one = await timed(ctx, jobs, 1, true);
  const two = await timed(ctx, jobs, 2, true);
  const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  if (!same(inProcess.metrics, one.metrics) || !same(one.metrics, two.metrics)) throw new Error("sweep results differ between in-process and threaded runs");

  const rate = (r: { seconds: number; cores: number }): string =>
    `${(seeds / r.seconds).toFixed(2)} seeds/s (${r.seconds.toFixed(2)} s; ${r.cores.toFixed(2)} cores busy, ${((r.cores * r.seconds) / seeds).toFixed(3)} CPU s per seed)`;
  process.stdout.write(
    [
      `sweep benchmark: ${program.modelName} on ${target.name} (${program.crossbars.length} crossbars), target noise, ${SEQUENCES} sequences x ${T} steps per run, ${seeds} seeds`,
      `  one run: ${(Number(t1 - t0) / 1e6).toFixed(0)} ms noise off, ${(Number(t2 - t1) / 1e6).toFixed(0)} ms with the target's noise (chip programming included)`,
      `  in-process (--workers 1): ${rate(inProcess)}`,
      `  1 worker thread:          ${rate(one)}`,
      `  2 worker threads:         ${rate(two)}`,
      `  speedup 2 threads / 1 thread: ${(one.seconds / two.seconds).toFixed(2)}x`,
      `  (${availableParallelism()} cores; "cores busy" below the thread count means other processes competed for them;`,
      "   equal CPU s per seed across thread counts means the threads add no overhead, so seeds/s scales with free cores)",
      "",
    ].join("\n"),
  );
}

await main();
