// Worker thread of the sweep pool (src/sweep/pool.ts): receives the sweep context once as
// workerData, then runs one job per message and posts its metric (or its error) back.

import { parentPort, workerData } from "node:worker_threads";
import { isUserError } from "../common/errors.js";
import { runJob, type SweepContext, type SweepJob } from "./job.js";
import type { WorkerReply } from "./pool.js";

const ctx = workerData as SweepContext;
const port = parentPort;
if (port === null) throw new Error("internal error: src/sweep/worker.ts must run as a worker thread");

port.on("message", (job: SweepJob) => {
  let reply: WorkerReply;
  try {
    reply = { index: job.index, metric: runJob(ctx, job) };
  } catch (e) {
    // Class identity does not cross threads: send what rebuilding the error needs.
    reply = isUserError(e)
      ? { index: job.index, error: { user: true, kind: e.kind, diagnostics: e.diagnostics, message: e.message } }
      : { index: job.index, error: { user: false, message: e instanceof Error ? (e.stack ?? e.message) : String(e) } };
  }
  port.postMessage(reply);
});
