// Runs sweep jobs on a pool of worker threads (one job at a time per worker, handed out as
// workers free up, so uneven jobs balance), or in-process for workers = 1. Worker threads
// load compiled JavaScript (./worker.js next to this module in dist/); the in-process path
// runs the very same job function, which is how tests run sweeps from the TypeScript source.

import { Worker } from "node:worker_threads";
import { UserError, type Diagnostic, type UserErrorKind } from "../common/errors.js";
import { runJob, type SweepContext, type SweepJob } from "./job.js";

export type WorkerReply =
  | { index: number; metric: number }
  | { index: number; error: { user: true; kind: UserErrorKind; diagnostics: Diagnostic[]; message: string } | { user: false; message: string } };

export interface PoolOptions {
  workers: number;
  /** Use worker threads even for one worker (benchmarks compare 1 vs N threads). */
  forceThreads?: boolean;
  /** Called after every finished job with the number done so far. */
  onProgress?: (done: number) => void;
}

function rebuild(reply: Extract<WorkerReply, { error: unknown }>): Error {
  const e = reply.error;
  return e.user ? new UserError(e.kind, e.diagnostics) : new Error(`internal error in a sweep worker: ${e.message}`);
}

function runInProcess(ctx: SweepContext, jobs: SweepJob[], onProgress?: (done: number) => void): number[] {
  const out = new Array<number>(jobs.length);
  jobs.forEach((job, i) => {
    out[i] = runJob(ctx, job);
    onProgress?.(i + 1);
  });
  return out;
}

function runThreads(ctx: SweepContext, jobs: SweepJob[], workers: number, onProgress?: (done: number) => void): Promise<number[]> {
  const url = new URL("./worker.js", import.meta.url);
  const out = new Array<number>(jobs.length);
  const byIndex = new Map(jobs.map((j, i) => [j.index, i]));
  return new Promise((resolve, reject) => {
    const pool: Worker[] = [];
    let next = 0;
    let done = 0;
    let failed = false;
    /** Workers we ended ourselves (no jobs left): their exit is not a failure. */
    const retired = new Set<Worker>();
    const retire = (w: Worker): void => {
      retired.add(w);
      void w.terminate();
    };
    const stop = (err: Error): void => {
      if (failed) return;
      failed = true;
      for (const w of pool) void w.terminate();
      reject(err);
    };
    const feed = (w: Worker): void => {
      if (next < jobs.length) w.postMessage(jobs[next++]);
      else retire(w);
    };
    for (let i = 0; i < Math.min(workers, jobs.length); i++) {
      const w = new Worker(url, { workerData: ctx });
      pool.push(w);
      w.on("message", (reply: WorkerReply) => {
        if (failed) return;
        if ("error" in reply) return stop(rebuild(reply));
        out[byIndex.get(reply.index)!] = reply.metric;
        done++;
        onProgress?.(done);
        if (done === jobs.length) {
          for (const p of pool) retire(p);
          resolve(out);
        } else feed(w);
      });
      w.on("error", (e) => stop(new Error(`internal error: a sweep worker crashed: ${e.message}`)));
      w.on("exit", (code) => {
        if (!retired.has(w) && !failed && done < jobs.length) stop(new Error(`internal error: a sweep worker exited with code ${code}`));
      });
      feed(w);
    }
    if (jobs.length === 0) resolve(out);
  });
}

/** Metrics of `jobs`, in job order. */
export async function runJobs(ctx: SweepContext, jobs: SweepJob[], opts: PoolOptions): Promise<number[]> {
  if (!opts.forceThreads && (opts.workers <= 1 || jobs.length <= 1)) return runInProcess(ctx, jobs, opts.onProgress);
  return runThreads(ctx, jobs, opts.workers, opts.onProgress);
}
