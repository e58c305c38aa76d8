#!/usr/bin/env node
// npm run fuzz: the long fuzz run of every input surface (test/fuzz/surfaces.mjs) against
// the built dist/ modules. Each case must succeed or fail with a UserError; an uncaught
// exception, a hang (no answer within --timeout) or running out of memory is a bug.
//
//   node scripts/fuzz.mjs [--cases N] [--surface name[,name]] [--seed S] [--timeout ms] [--jobs J] [--no-cli]
//
// After the in-process surfaces, 24 end-to-end runs of the commands on fuzzed files check
// exit statuses (0 or 1, messages without stack traces); --no-cli skips them.
// Every surface runs in a worker thread with a memory cap; the main thread is the watchdog.
// Cases are generated deterministically from (seed, surface, case index), so a failure is
// reproducible with the same --seed, and after a hang the worker restarts at the next case.
// Failing inputs are saved under the directory printed at the end. Exit status 1 on any
// uncaught exception, hang or out-of-memory, 0 otherwise.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CHUNK = 100; // cases generated per fast-check sample call

/** fast-check seed of the chunk of cases [c * CHUNK, (c + 1) * CHUNK) of a surface. */
const chunkSeed = (seed, surfaceIndex, c) => (seed * 7919 + surfaceIndex * 104729 + c * 15485863) | 0;

/** Regenerates case i of a surface (for saving the input of a case that hung or crashed the worker). */
async function saveCase(made, name, seed, i, failures) {
  const fc = (await import("fast-check")).default;
  const { encodeCase } = await import(pathToFileURL(join(ROOT, "test/fuzz/surfaces.mjs")).href);
  const index = made.findIndex((s) => s.name === name);
  const input = fc.sample(made[index].arbitrary, { seed: chunkSeed(seed, index, Math.floor(i / CHUNK)), numRuns: CHUNK })[i % CHUNK];
  const { ext, data } = encodeCase(input);
  const file = join(failures, `${name}-seed${seed}-case${i}.${ext}`);
  writeFileSync(file, data);
  return file;
}

async function loadLib() {
  const d = (p) => import(pathToFileURL(join(ROOT, "dist", p)).href);
  const [container, checksum, errors, json, npy, dsl, onnx, st, run, verify, irJson, pipeline, load, proto] = await Promise.all([
    d("backend/container.js"),
    d("backend/checksum.js"),
    d("common/errors.js"),
    d("common/json.js"),
    d("common/npy.js"),
    d("frontend/dsl/index.js"),
    d("frontend/onnx/index.js"),
    d("frontend/safetensors.js"),
    d("interp/run.js"),
    d("interp/verify.js"),
    d("ir/json.js"),
    d("pipeline.js"),
    d("target/load.js"),
    import("onnx-proto"),
  ]);
  const { readFileSync } = await import("node:fs");
  const dslFile = (f) => [readFileSync(join(ROOT, f), "utf8"), join(ROOT, f)];
  return {
    isUserError: errors.isUserError,
    parseNpy: npy.parseNpy,
    toFloat64: npy.toFloat64,
    decodeProgram: container.decodeProgram,
    encodeProgram: container.encodeProgram,
    checkProgram: verify.checkProgram,
    runProgram: run.runProgram,
    crc32: checksum.crc32,
    sha256Hex: json.sha256Hex,
    freshProgramBytes: () => {
      const model = dsl.compileDslSource(...dslFile("test/fuzz/small.s4d"));
      return container.encodeProgram(pipeline.compile(model, load.loadTarget(join(ROOT, "test/fuzz/xbar8.json")), { sourceName: "small.s4d" }).program);
    },
    targetFromJson: load.targetFromJson,
    compile: (model, target) => pipeline.compile(model, target, { sourceName: "fuzz" }),
    tinyModel: () => dsl.compileDslSource(...dslFile("examples/tiny.s4d")),
    compileDslSource: dsl.compileDslSource,
    parseModelJson: irJson.parseModelJson,
    onnxProto: (proto.default ?? proto).onnx,
    compileOnnxBytes: onnx.compileOnnxBytes,
    decodeSafetensors: st.decodeSafetensors,
  };
}

// ---- worker: runs cases [start, cases) of one surface ------------------------------------------

async function workerMain() {
  const { surface: name, seed, start, cases, scratch, failures } = workerData;
  const fc = (await import("fast-check")).default;
  const { classify, encodeCase, makeSurfaces } = await import(pathToFileURL(join(ROOT, "test/fuzz/surfaces.mjs")).href);
  const lib = await loadLib();
  const surfaces = makeSurfaces({ root: ROOT, scratch, lib });
  const surfaceIndex = surfaces.findIndex((s) => s.name === name);
  const surface = surfaces[surfaceIndex];
  let chunk = -1;
  let values = [];
  for (let i = start; i < cases; i++) {
    const c = Math.floor(i / CHUNK);
    if (c !== chunk) {
      chunk = c;
      values = fc.sample(surface.arbitrary, { seed: chunkSeed(seed, surfaceIndex, c), numRuns: CHUNK });
    }
    const input = values[i % CHUNK];
    parentPort.postMessage({ type: "start", i });
    const r = classify(() => surface.run(input), lib.isUserError);
    if (r.outcome === "uncaught") {
      // The same format as the fixed corpus: copy the file to test/fuzz/corpus/<surface>/ to keep it.
      const { ext, data } = encodeCase(input);
      const file = join(failures, `${name}-seed${seed}-case${i}.${ext}`);
      writeFileSync(file, data);
      const e = r.error;
      parentPort.postMessage({ type: "done", i, outcome: "uncaught", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e), stack: e instanceof Error ? e.stack : undefined, file });
    } else parentPort.postMessage({ type: "done", i, outcome: r.outcome });
  }
  parentPort.postMessage({ type: "end" });
}

// ---- main: watchdog and table ------------------------------------------------------------------

function parseArgs(argv) {
  const opts = { cases: 10000, surfaces: null, seed: 1, timeout: 20000, jobs: 1, noCli: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${a}: "${v}" is not a non-negative integer`);
      return n;
    };
    if (a === "--cases") opts.cases = int(next());
    else if (a === "--surface") opts.surfaces = [...(opts.surfaces ?? []), ...next().split(",")];
    else if (a === "--seed") opts.seed = int(next());
    else if (a === "--timeout") opts.timeout = int(next());
    else if (a === "--jobs") opts.jobs = Math.max(1, int(next()));
    else if (a === "--no-cli") opts.noCli = true;
    else if (a === "--help" || a === "-h") {
      process.stdout.write("usage: node scripts/fuzz.mjs [--cases N] [--surface name[,name]] [--seed S] [--timeout ms] [--jobs J] [--no-cli]\n");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

/** Runs one surface to completion, restarting its worker after a hang or a crash. */
function runSurface(name, opts, scratch, failures, made) {
  const stats = { name, cases: 0, ok: 0, user: 0, uncaught: 0, hang: 0, oom: 0, ms: 0, examples: [] };
  const t0 = Date.now();
  return new Promise((resolve) => {
    const startWorker = (start) => {
      if (start >= opts.cases) {
        stats.ms = Date.now() - t0;
        resolve(stats);
        return;
      }
      let current = start;
      let settled = false;
      const worker = new Worker(fileURLToPath(import.meta.url), {
        workerData: { surface: name, seed: opts.seed, start, cases: opts.cases, scratch: join(scratch, name), failures },
        resourceLimits: { maxOldGenerationSizeMb: 2048 },
        stdout: true,
        stderr: true,
      });
      let timer;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          stats.hang++;
          stats.cases++;
          const i = current;
          process.stderr.write(`fuzz: ${name}: case ${i} gave no answer within ${opts.timeout} ms (hang)\n`);
          void worker
            .terminate()
            .then(() => saveCase(made, name, opts.seed, i, failures))
            .then((file) => {
              if (stats.examples.length < 10) stats.examples.push(`case ${i}: no answer within ${opts.timeout} ms (hang) (input: ${file})`);
              startWorker(i + 1);
            });
        }, opts.timeout);
      };
      arm();
      worker.on("message", (m) => {
        if (m.type === "start") {
          current = m.i;
          arm();
        } else if (m.type === "done") {
          stats.cases++;
          stats[m.outcome]++;
          if (m.outcome === "uncaught" && stats.examples.length < 10) stats.examples.push(`case ${m.i}: ${m.message} (input: ${m.file})\n      ${(m.stack ?? "").split("\n").slice(1, 4).join("\n      ")}`);
        } else if (m.type === "end") {
          settled = true;
          clearTimeout(timer);
          void worker.terminate().then(() => startWorker(opts.cases));
        }
      });
      worker.on("error", (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const oom = e.code === "ERR_WORKER_OUT_OF_MEMORY";
        stats.cases++;
        if (oom) stats.oom++;
        else stats.uncaught++;
        const i = current;
        process.stderr.write(`fuzz: ${name}: case ${i} killed the worker: ${e.code ?? ""} ${e.message}\n`);
        void saveCase(made, name, opts.seed, i, failures).then((file) => {
          if (stats.examples.length < 10) stats.examples.push(`case ${i}: worker died: ${e.code ?? ""} ${e.message} (input: ${file})`);
          startWorker(i + 1);
        });
      });
      worker.on("exit", () => clearTimeout(timer));
    };
    startWorker(0);
  });
}

/**
 * A few end-to-end runs of the real commands on fuzzed files: the exit status must be 0 or 1
 * (never 2 or a crash) and a failure must print messages without a stack trace.
 */
async function cliChecks(opts, scratch, lib) {
  const { spawnSync } = await import("node:child_process");
  const fc = (await import("fast-check")).default;
  const { makeSurfaces } = await import(pathToFileURL(join(ROOT, "test/fuzz/surfaces.mjs")).href);
  const surfaces = new Map(makeSurfaces({ root: ROOT, scratch: join(scratch, "cli-probe"), lib }).map((s) => [s.name, s]));
  const dir = join(scratch, "cli");
  mkdirSync(dir, { recursive: true });
  const stats = { name: "cli (e2e)", cases: 0, ok: 0, user: 0, uncaught: 0, hang: 0, oom: 0, ms: 0, examples: [] };
  const t0 = Date.now();
  const plans = [
    ["npy", "x.npy", (f) => ["run", "test/fixtures/xbin/sample-v1.xbin", "--input", f, "-o", join(dir, "y.npy")]],
    ["xbin", "p.xbin", (f) => ["run", f, "--input", "examples/tiny-input.npy", "-o", join(dir, "y.npy")]],
    ["xbin", "p.xbin", (f) => ["disasm", f, "-o", join(dir, "p.asm")]],
    ["target", "t.json", (f) => ["compile", "examples/tiny.s4d", "--target", f, "-o", join(dir, "t.xbin"), "-q"]],
    ["dsl", "m.s4d", (f) => ["compile", f, "--emit", "ir", "-o", join(dir, "m.json")]],
    ["onnx", "m.onnx", (f) => ["compile", f, "--emit", "ir", "-o", join(dir, "o.json")]],
  ];
  for (const [k, [surface, name, args]] of plans.entries()) {
    const values = fc.sample(surfaces.get(surface).arbitrary, { seed: opts.seed + k, numRuns: 4 });
    for (const v of values) {
      const file = join(dir, name);
      writeFileSync(file, v instanceof Uint8Array || typeof v === "string" ? v : v.text);
      const argv = args(file);
      const r = spawnSync(process.execPath, [join(ROOT, "dist/cli", `${argv[0]}.js`), ...argv.slice(1)], { cwd: ROOT, encoding: "utf8", timeout: opts.timeout });
      stats.cases++;
      const clean = !/internal error|\n\s+at /.test(r.stderr ?? "");
      if (r.status === 0 && clean) stats.ok++;
      else if (r.status === 1 && clean && (r.stderr ?? "").trim() !== "") stats.user++;
      else {
        if (r.error?.code === "ETIMEDOUT") stats.hang++;
        else stats.uncaught++;
        if (stats.examples.length < 10) stats.examples.push(`imssa-${argv.join(" ")}: status ${r.status} ${r.signal ?? ""}\n      ${(r.stderr ?? "").split("\n").slice(0, 3).join("\n      ")}`);
      }
    }
  }
  stats.ms = Date.now() - t0;
  return stats;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`fuzz: ${e.message}\n`);
    process.exit(2);
  }
  const scratch = mkdtempSync(join(tmpdir(), "imssa-fuzz-"));
  const failures = join(scratch, "failures");
  mkdirSync(failures);
  const { makeSurfaces } = await import(pathToFileURL(join(ROOT, "test/fuzz/surfaces.mjs")).href);
  const made = makeSurfaces({ root: ROOT, scratch: join(scratch, "probe"), lib: await loadLib() });
  const all = made.map((s) => s.name);
  const names = opts.surfaces ?? made.filter((s) => !s.optIn).map((s) => s.name);
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    process.stderr.write(`fuzz: unknown surface ${unknown.join(", ")} (surfaces: ${all.join(", ")})\n`);
    process.exit(2);
  }
  process.stderr.write(`fuzz: ${opts.cases} cases per surface, seed ${opts.seed}, surfaces ${names.join(", ")}\n`);

  const results = [];
  const queue = [...names];
  const runNext = async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      const s = await runSurface(n, opts, scratch, failures, made);
      process.stderr.write(`fuzz: ${n}: ${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s\n`);
      results.push(s);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.jobs, names.length) }, runNext));
  results.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
  if (!opts.noCli) results.push(await cliChecks(opts, scratch, await loadLib()));

  const rows = [["surface", "cases", "ok", "user error", "uncaught", "hang", "oom", "seconds"], ...results.map((s) => [s.name, s.cases, s.ok, s.user, s.uncaught, s.hang, s.oom, (s.ms / 1000).toFixed(1)].map(String))];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    process.stdout.write(`${r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join("  ")}\n`);
    if (i === 0) process.stdout.write(`${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  }
  const bad = results.filter((s) => s.uncaught + s.hang + s.oom > 0);
  for (const s of bad) {
    process.stdout.write(`\n${s.name}:\n`);
    for (const e of s.examples) process.stdout.write(`  ${e}\n`);
  }
  if (bad.length > 0) process.stdout.write(`\nfailing inputs saved in ${failures}\n`);
  else rmSync(scratch, { recursive: true, force: true });
  process.exitCode = bad.length > 0 ? 1 : 0;
}

if (isMainThread) await main();
else await workerMain();
