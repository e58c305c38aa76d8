// Interpreter vs ONNX Runtime: the same S4D step model run by onnxruntime-node (float32,
// one session.run per step, state outputs fed back, one intra-op thread like the
// interpreter) and by the interpreter (the ONNX front end's compile for xbar64, noise off),
// in steps per second over sequences of 256 steps. Models: the committed digits-size
// fixture (test/fixtures/onnx/digits64_op13.onnx: H=64, N=64, 2 layers) and step graphs
// built in TypeScript (bench/onnx-step.ts) at H=64 and H=256 with 4 layers. The larger ones
// need more crossbars than xbar64 has: they run on xbar64 with more tiles (same crossbars,
// numerics and timing). The last column checks that both ran the same model: the graph
// compiled for the float "ideal" target against ORT, relative to ORT's largest output.
//
//   npm run bench
//   node build/bench/bench/ort.bench.js --quick

import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { compileOnnxBytes } from "../src/frontend/onnx/index.js";
import { Rng } from "../src/common/rng.js";
import { runProgram } from "../src/interp/run.js";
import { compile } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import type { Target } from "../src/target/types.js";
import { cpuSince, fmt, intFlag, machineNote, QUICK, since, table, verdict } from "./common.js";
import { bigTarget } from "./models.js";
import { buildStepGraph, type StepGraph } from "./onnx-step.js";

const T = 256;

interface Case {
  name: string;
  graph: StepGraph;
  /** The graph's y is averaged over the steps into the program's final output (imssa.readout = mean). */
  meanReadout: boolean;
  dIn: number;
  target: Target;
  /** Ratio target, or null to report only. */
  goal: number | null;
}

function cases(): Case[] {
  const fixture = "test/fixtures/onnx/digits64_op13.onnx";
  const digits: StepGraph = {
    bytes: new Uint8Array(readFileSync(fixture)),
    input: "u",
    output: "y",
    states: [
      { in: "s0_in", out: "s0_out", shape: [64, 64] },
      { in: "s1_in", out: "s1_out", shape: [64, 64] },
    ],
  };
  const xbar64 = loadTarget("xbar64");
  const list: Case[] = [
    { name: "digits64 fixture H=64 N=64 L=2", graph: digits, meanReadout: true, dIn: 1, target: xbar64, goal: 1.0 },
    { name: "generated H=64 N=64 L=2", graph: buildStepGraph({ H: 64, N: 64, layers: 2, dIn: 1, dOut: 10, seed: 1 }), meanReadout: false, dIn: 1, target: xbar64, goal: null },
  ];
  if (!QUICK) list.push({ name: "generated H=256 N=64 L=4", graph: buildStepGraph({ H: 256, N: 64, layers: 4, dIn: 1, dOut: 10, seed: 2 }), meanReadout: false, dIn: 1, target: bigTarget(256, "xbar64"), goal: null });
  return list;
}

async function ortRun(g: StepGraph, xs: Float32Array, B: number, dIn: number): Promise<{ seconds: number; cpu: number; y: Float32Array }> {
  const s = await ort.InferenceSession.create(g.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" });
  const run = async (b: number, steps: number, ys: Float32Array | null): Promise<void> => {
    let states: Record<string, ort.Tensor> = {};
    for (const p of g.states) states[p.in] = new ort.Tensor("float32", new Float32Array(p.shape.reduce((a, c) => a * c, 1)), [1, ...p.shape]);
    for (let t = 0; t < steps; t++) {
      const u = new ort.Tensor("float32", xs.slice((b * T + t) * dIn, (b * T + t + 1) * dIn), [1, dIn]);
      const out = await s.run({ [g.input]: u, ...states });
      const next: Record<string, ort.Tensor> = {};
      for (const p of g.states) next[p.in] = out[p.out]!;
      states = next;
      if (ys) {
        const y = out[g.output]!.data as Float32Array;
        ys.set(y, (b * T + t) * y.length);
      }
    }
  };
  await run(0, 16, null); // warm-up
  const probe = await s.run({
    [g.input]: new ort.Tensor("float32", new Float32Array(dIn), [1, dIn]),
    ...Object.fromEntries(g.states.map((p) => [p.in, new ort.Tensor("float32", new Float32Array(p.shape.reduce((a, c) => a * c, 1)), [1, ...p.shape])])),
  });
  const dOut = (probe[g.output]!.data as Float32Array).length;
  const y = new Float32Array(B * T * dOut);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let b = 0; b < B; b++) await run(b, T, y);
  const cpu = cpuSince(c0);
  const seconds = since(t0);
  await s.release();
  return { seconds, cpu, y };
}

function relErr(a: Float32Array, b: Float32Array): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    maxRef = Math.max(maxRef, Math.abs(b[i]!));
  }
  return maxRef > 0 ? maxDiff / maxRef : maxDiff;
}

async function main(): Promise<void> {
  const B = intFlag("sequences", QUICK ? 1 : 2);
  const rows: string[][] = [];
  for (const c of cases()) {
    const rng = new Rng(3);
    const xs = Float32Array.from({ length: B * T * c.dIn }, () => rng.uniform());
    const program = compile(compileOnnxBytes(c.graph.bytes, c.name), c.target).program;
    runProgram(program, xs.subarray(0, 16 * c.dIn), [1, 16, c.dIn]); // warm-up (JIT)
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    runProgram(program, xs, [B, T, c.dIn]);
    const interpCpu = cpuSince(c0);
    const interpSeconds = since(t0);
    const o = await ortRun(c.graph, xs, B, c.dIn);
    // Same model? The graph compiled for the float "ideal" target must match ORT to float32
    // rounding (the xbar64 run differs by its 4-bit quantization, which says nothing about
    // sameness). Per-step outputs, or their mean over the steps for the mean readout.
    const ideal = runProgram(compile(compileOnnxBytes(c.graph.bytes, c.name), loadTarget("ideal")).program, xs, [B, T, c.dIn]);
    let err: number;
    if (c.meanReadout) {
      const d = ideal.final!.length / B;
      const mean = new Float32Array(B * d);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < d; j++) mean[b * d + j]! += o.y[(b * T + t) * d + j]! / T;
      err = relErr(ideal.final!, mean);
    } else err = relErr(ideal.step!, o.y);
    const ratio = o.seconds / interpSeconds;
    const cpuRatio = o.cpu / interpCpu;
    rows.push([
      c.name,
      `${c.target.name} (${program.crossbars.length} xbars)`,
      fmt((B * T) / o.seconds, 0),
      fmt((B * T) / interpSeconds, 0),
      fmt(ratio, 2),
      fmt((B * T) / o.cpu, 0),
      fmt((B * T) / interpCpu, 0),
      fmt(cpuRatio, 2),
      c.goal === null ? "report" : verdict(cpuRatio, c.goal),
      err.toExponential(1),
    ]);
  }
  process.stdout.write(
    [
      `interpreter vs onnxruntime-node ${ort.env.versions.common ?? ""}: steps/s over ${B} sequence(s) of ${T} steps, batch 1, noise off; ORT: float32, graph optimizations "all", 1 thread, one session.run per step`,
      "",
      table(["model", "interpreter target", "ORT steps/s wall", "interp steps/s wall", "interp/ORT wall", "ORT steps/s cpu", "interp steps/s cpu", "interp/ORT cpu", "target (cpu)", "same model: ideal vs ORT rel. diff"], rows),
      "",
      machineNote(),
      "",
    ].join("\n"),
  );
}

await main();
