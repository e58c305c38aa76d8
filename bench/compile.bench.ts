// Compiler scaling: synthetic S4D models from ten thousand to ten million weights compiled
// for a bench-local xbar256 target with 1024 tiles. Each size runs in its own child process
// so that its peak resident set (process.resourceUsage().maxRSS) is its own. Reports the
// time of every phase (front end with seeded initialization, lowering, quantization, tiling,
// emission, container encoding) and compares the time per weight of the largest size with
// that at one million weights.
//
// Calibration runs the float model over the calibration sequences: its cost is weights x
// steps, not the compiler's own scaling. The compile phases therefore quantize with a
// minimal calibration set (one sequence of CAL_STEPS steps of the default distribution), and
// calibration on the documented default set (8 sequences x 64 steps) is timed on its own, up
// to CALIBRATE_MAX_WEIGHTS unless --calibrate-all.
//
// H is at most 512: wider layers need more than the 65536 words of local memory a tile can
// address (the compiler rejects H = 1024 on any xbar256 derivative), so 10M weights take
// 16 layers.
//
//   npm run bench                                     (all sizes up to 10M weights)
//   node build/bench/bench/compile.bench.js --quick   (up to 100k weights)
//   node build/bench/bench/compile.bench.js --child=s1M   (one size, JSON)

import { spawnSync } from "node:child_process";
import { PerformanceObserver } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { encodeProgram } from "../src/backend/container.js";
import { emitProgram } from "../src/backend/emit.js";
import { checkModel } from "../src/ir/validate.js";
import { calibrate, defaultCalibration } from "../src/passes/calibrate.js";
import { lower } from "../src/passes/lower.js";
import { quantize } from "../src/passes/quantize.js";
import { tile } from "../src/passes/tile.js";
import { cpuSince, fmt, flagValue, hasFlag, intFlag, machineNote, QUICK, si, table, timed } from "./common.js";
import { bigTarget, estimatedWeights, syntheticModel, type SyntheticSpec } from "./models.js";

const SIZES: SyntheticSpec[] = [
  { name: "s10k", H: 32, N: 32, layers: 2, dIn: 1, dOut: 10 },
  { name: "s100k", H: 128, N: 64, layers: 2, dIn: 1, dOut: 10 },
  { name: "s1M", H: 256, N: 64, layers: 6, dIn: 1, dOut: 10 },
  { name: "s3M", H: 512, N: 64, layers: 6, dIn: 1, dOut: 10 },
  { name: "s10M", H: 512, N: 64, layers: 16, dIn: 1, dOut: 10 },
];
const TILES = 1024;
const CAL_STEPS = 4;
const CALIBRATE_MAX_WEIGHTS = 1.5e6;

interface ChildResult {
  name: string;
  weights: number;
  crossbars: number;
  /** Wall seconds per phase. */
  phases: Record<string, number>;
  /** CPU seconds per phase (all threads: includes concurrent garbage collection). */
  phasesCpu: Record<string, number>;
  total: number;
  /** CPU seconds of the compile phases (all threads, garbage collection included). */
  cpu: number;
  maxRssMB: number;
  /** Main-thread garbage-collection pauses during the compile phases, seconds (perf_hooks "gc" entries; concurrent marking on other threads is not in it). */
  gcPause: number;
}

/** Child: compile one size phase by phase and print one JSON line. */
function child(name: string): void {
  const spec = SIZES.find((s) => s.name === name);
  if (!spec) throw new Error(`unknown size ${name}`);
  const target = bigTarget(TILES);
  const phases: Record<string, number> = {};
  const phasesCpu: Record<string, number> = {};
  /** Runs one phase, recording its wall and CPU seconds. */
  const phase = <T>(name: string, fn: () => T): T => {
    const c = process.cpuUsage();
    const r = timed(fn);
    phasesCpu[name] = cpuSince(c);
    phases[name] = r.seconds;
    return r.value;
  };
  // GC entries arrive asynchronously, after the synchronous phases below: they are collected
  // until the compile ends (`gcUntil`) and the result is printed on a later turn (a timer:
  // the observer's deliveries come after setImmediate callbacks).
  const gcStarts: number[] = [];
  const gcDurations: number[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcStarts.push(e.startTime);
      gcDurations.push(e.duration);
    }
  });
  gcObserver.observe({ entryTypes: ["gc"] });
  const gcFrom = performance.now();
  const c0 = process.cpuUsage();
  const front = phase("frontEnd", () => syntheticModel(spec));
  const lowered = phase("lower", () => lower(front));
  phase("check", () => checkModel(lowered, "lowered"));
  const minimal = defaultCalibration(lowered)
    .slice(0, 1)
    .map((seq) => Object.fromEntries(Object.entries(seq).map(([k, v]) => [k, v.slice(0, CAL_STEPS)])));
  const quantized = phase("quantize", () => quantize(lowered, target, minimal));
  const plan = phase("tile", () => tile(quantized, target));
  const program = phase("emit", () => emitProgram(quantized, plan, target, { compilerVersion: "bench" }));
  phase("encode", () => encodeProgram(program));
  const cpu = cpuSince(c0) - phasesCpu.check!; // checkModel is not a compile phase here
  const gcUntil = performance.now();
  let weights = 0;
  for (const m of plan.perMatrix) weights += m.nonzeros;
  // The default calibration set on its own (quantize would run it on the mode-stabilized model).
  if (weights <= CALIBRATE_MAX_WEIGHTS || hasFlag("calibrate-all")) phase("calibrate", () => calibrate(lowered, null));
  const total = phases.frontEnd! + phases.lower! + phases.quantize! + phases.tile! + phases.emit! + phases.encode!;
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  setTimeout(() => {
    gcObserver.disconnect();
    let gcPause = 0;
    gcStarts.forEach((t, k) => {
      if (t >= gcFrom && t < gcUntil) gcPause += gcDurations[k]! / 1000;
    });
    const r: ChildResult = { name, weights, crossbars: plan.crossbars.length, phases, phasesCpu, total, cpu, maxRssMB, gcPause };
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }, 10);
}

function parent(): void {
  const limit = intFlag("timeout", QUICK ? 60 : 300);
  const sizes = QUICK ? SIZES.slice(0, 2) : SIZES;
  const self = fileURLToPath(import.meta.url);
  const results: (ChildResult | { name: string; error: string; estimate: number })[] = [];
  for (const s of sizes) {
    const r = spawnSync(process.execPath, ["--max-old-space-size=4096", self, `--child=${s.name}`], { encoding: "utf8", timeout: limit * 1000, maxBuffer: 1 << 24 });
    const line = r.stdout?.trim().split("\n").pop() ?? "";
    if (r.status === 0 && line.startsWith("{")) results.push(JSON.parse(line) as ChildResult);
    else results.push({ name: s.name, estimate: estimatedWeights(s), error: r.error ? `timeout after ${limit} s` : `exit ${r.status}: ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" / ")}` });
  }
  const phaseNames = ["frontEnd", "lower", "quantize", "tile", "emit", "encode"];
  const rows = results.map((r) => {
    const spec = SIZES.find((s) => s.name === r.name)!;
    const shape = `H=${spec.H} N=${spec.N} L=${spec.layers}`;
    if ("error" in r) return [r.name, shape, `~${si(r.estimate, 1)}`, "-", ...phaseNames.map(() => "-"), "-", "-", "-", "-", "-", "-", "-", r.error];
    return [
      r.name,
      shape,
      si(r.weights, 2),
      String(r.crossbars),
      ...phaseNames.map((p) => fmt(r.phasesCpu[p] ?? 0, 2)),
      fmt(r.total, 2),
      fmt(r.cpu, 2),
      si(r.weights / r.total, 2),
      si(r.weights / r.cpu, 2),
      fmt(r.maxRssMB, 0),
      fmt(r.gcPause, 2),
      r.phasesCpu.calibrate === undefined ? "-" : fmt(r.phasesCpu.calibrate, 2),
      r.phasesCpu.calibrate === undefined ? "-" : si((r.weights * 8 * 64) / r.phasesCpu.calibrate, 1),
    ];
  });
  process.stdout.write(
    [
      `compiler scaling on a bench-local target (xbar256 with ${TILES} tiles), one child process per size; CPU seconds per phase (robust on a shared machine; all threads, so concurrent garbage collection counts); quantize with a 1 x ${CAL_STEPS}-step calibration set; total = front end + lower + quantize + tile + emit + encode; "GC pause s" = main-thread garbage-collection pauses during those phases (perf_hooks "gc" entries); "default calibration" = calibrate() on 8 x 64 steps on its own (CPU seconds; MAC/s = weights x 512 / CPU s; sizes above ${si(CALIBRATE_MAX_WEIGHTS, 1)} weights only with --calibrate-all)`,
      "",
      table(["model", "shape", "weights", "xbars", ...phaseNames.map((p) => `${p} cpu s`), "total s wall", "total s cpu", "weights/s wall", "weights/s cpu", "peak RSS MB", "GC pause s", "default calibration cpu s", "calibration MAC/s"], rows),
      "",
    ].join("\n"),
  );
  const ok = results.filter((r): r is ChildResult => !("error" in r));
  const at1M = ok.find((r) => r.name === "s1M");
  const biggest = ok[ok.length - 1];
  const lines: string[] = [];
  if (at1M && biggest && biggest !== at1M) {
    const perW = (r: ChildResult): number => r.cpu / r.weights;
    const ratio = perW(biggest) / perW(at1M);
    lines.push(`cpu time per weight, ${biggest.name} / s1M: ${fmt(ratio, 2)}x (target <= 1.5x: ${ratio <= 1.5 ? "ok" : "BELOW TARGET"}; wall: ${fmt(biggest.total / biggest.weights / (at1M.total / at1M.weights), 2)}x)`);
    const rate = biggest.weights / biggest.cpu;
    lines.push(`throughput at ${biggest.name}: ${si(rate, 2)} weights per cpu second, ${si(biggest.weights / biggest.total, 2)} per wall second (target >= 5 M: ${rate >= 5e6 ? "ok" : "BELOW TARGET"})`);
    lines.push(`peak RSS at ${biggest.name}: ${fmt(biggest.maxRssMB, 0)} MB (target < 2048: ${biggest.maxRssMB < 2048 ? "ok" : "BELOW TARGET"})`);
  }
  if (results.some((r) => "error" in r)) lines.push("sizes with an error or timeout have no numbers; raise the limit with --timeout=SECONDS");
  lines.push(machineNote(), "");
  process.stdout.write(lines.join("\n"));
}

const childName = flagValue("child");
if (childName !== undefined) child(childName);
else parent();
