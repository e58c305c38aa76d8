// Interpreter throughput against a bare dense matvec: simulated MAC/s (every crossbar cell
// an MVM drives counts, zero or not) divided by the MAC/s of a plain Float32Array dense matvec
// over the same crossbar windows in the same process. Two programs: a synthetic step of 16
// quantized 64x64 crossbars (two xbar64 tiles, dense random levels) with vector ops and a
// tile-to-tile message, and examples/digits.s4d compiled for xbar64 (S4D state crossbars are
// about 5% nonzero). Each runs with noise off (the interpreter skips zero cells, which is
// exact there) and with the target's noise (every cell is a programmed device and counts).
//
//   npm run bench
//   node build/bench/bench/interp.bench.js --quick
//   node build/bench/bench/interp.bench.js --steps=2000

import type { Instr } from "../src/backend/isa.js";
import { FORMAT_VERSION, type CrossbarImage, type Program, type TileProgram } from "../src/backend/program.js";
import { Rng } from "../src/common/rng.js";
import { runProgram } from "../src/interp/run.js";
import { loadTarget, targetToJson } from "../src/target/load.js";
import { createHash } from "node:crypto";
import { readFloatNpy } from "../src/common/npy.js";
import { noiseFromTarget } from "../src/noise/spec.js";
import { compile, loadModel } from "../src/pipeline.js";
import { cpuSince, fmt, intFlag, machineNote, QUICK, since, table, verdict } from "./common.js";

const N = 64; // crossbar rows = cols
const PER_TILE = 8;
const TILES = 2;

function buildProgram(): Program {
  const target = loadTarget("xbar64");
  const L = target.crossbar.numerics.kind === "quantized" ? target.crossbar.numerics.deviceLevels - 1 : 1;
  const rng = new Rng(42);
  const rand = (): number => rng.uniform();
  const crossbars: CrossbarImage[] = [];
  for (let id = 0; id < TILES * PER_TILE; id++) {
    const levels = new Int16Array(N * N);
    for (let i = 0; i < levels.length; i++) levels[i] = Math.round((2 * rand() - 1) * L);
    crossbars.push({
      id,
      tile: Math.floor(id / PER_TILE),
      rows: N,
      cols: N,
      weights: { kind: "levels", levels },
      inRange: new Float32Array(N).fill(2),
      colScale: new Float32Array(N).fill(0.05),
      outRange: new Float32Array(N).fill(4),
    });
  }
  // Tile layout: x at 0..64, crossbar outputs at 64.., GELU in place, sum into 1024..1088.
  const OUT = 64;
  const SUM = OUT + PER_TILE * N;
  const tiles: TileProgram[] = [];
  for (let t = 0; t < TILES; t++) {
    const code: Instr[] = [];
    if (t === 0) {
      code.push({ op: "load", dst: 0, global: 0, len: N });
      for (let p = 1; p < TILES; p++) code.push({ op: "send", peer: p, src: 0, len: N, tag: 0 });
    } else {
      code.push({ op: "recv", peer: 0, dst: 0, len: N, tag: 0 });
    }
    for (let k = 0; k < PER_TILE; k++) code.push({ op: "mvm", xbar: t * PER_TILE + k, rowStart: 0, rows: N, colStart: 0, cols: N, src: 0, dst: OUT + k * N, acc: false });
    code.push({ op: "vgelu", dst: OUT, a: OUT, len: PER_TILE * N });
    code.push({ op: "vcopy", dst: SUM, a: OUT, len: N });
    for (let k = 1; k < PER_TILE; k++) code.push({ op: "vadd", dst: SUM, a: SUM, b: OUT + k * N, len: N });
    code.push({ op: "vnorm", dst: SUM, a: SUM, len: N, imm: 1e-5 });
    code.push({ op: "store", global: N + t * N, src: SUM, len: N });
    const empty = { code: [], symbols: [] };
    tiles.push({ memoryWords: SUM + N, constants: [], sections: { init: empty, step: { code, symbols: code.map(() => 0) }, final: { code: [], symbols: [] } } });
  }
  const json = targetToJson(target);
  return {
    formatVersion: FORMAT_VERSION,
    compilerVersion: "bench",
    modelName: "bench-16x64x64",
    target: { name: target.name, sha256: createHash("sha256").update(json).digest("hex"), json },
    io: { inputs: [{ name: "x", size: N, addr: 0 }], stepOutputs: [{ name: "y", size: TILES * N, addr: N }], finalOutputs: [], globalWords: N + TILES * N },
    crossbars,
    tiles,
    symbols: ["bench"],
  };
}

/** One dense float32 matrix per mvm of the step section, window-sized (level * colScale). */
function denseWindows(p: Program): { w: Float32Array; rows: number; cols: number }[] {
  const out: { w: Float32Array; rows: number; cols: number }[] = [];
  const byId = new Map(p.crossbars.map((c) => [c.id, c]));
  for (const t of p.tiles)
    for (const ins of t.sections.step.code) {
      if (ins.op !== "mvm") continue;
      const c = byId.get(ins.xbar)!;
      const w = new Float32Array(ins.rows * ins.cols);
      for (let r = 0; r < ins.rows; r++)
        for (let j = 0; j < ins.cols; j++) {
          const cell = (ins.rowStart + r) * c.cols + ins.colStart + j;
          const v = c.weights.kind === "levels" ? c.weights.levels[cell]! : c.weights.values[cell]!;
          w[r * ins.cols + j] = v * c.colScale[ins.colStart + j]!;
        }
      out.push({ w, rows: ins.rows, cols: ins.cols });
    }
  return out;
}

/** y = x W for every window, x from the step's input (cycled): the bare-metal reference. */
function denseRun(mats: { w: Float32Array; rows: number; cols: number }[], xs: Float32Array, steps: number): { seconds: number; cpu: number; checksum: number } {
  const maxRows = Math.max(1, ...mats.map((m) => m.rows));
  const maxCols = Math.max(1, ...mats.map((m) => m.cols));
  const x = new Float32Array(maxRows);
  const y = new Float32Array(maxCols);
  let checksum = 0;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < maxRows; i++) x[i] = xs[(s * 7 + i) % xs.length]!;
    for (const { w, rows, cols } of mats) {
      y.fill(0, 0, cols);
      for (let i = 0; i < rows; i++) {
        const xi = x[i]!;
        const base = i * cols;
        for (let j = 0; j < cols; j++) y[j] += xi * w[base + j]!;
      }
      checksum += y[0]!;
    }
  }
  return { cpu: cpuSince(c0), seconds: since(t0), checksum };
}

function cellsPerStep(p: Program): number {
  let n = 0;
  for (const t of p.tiles) for (const ins of t.sections.step.code) if (ins.op === "mvm") n += ins.rows * ins.cols;
  return n;
}

function main(): void {
  const steps = intFlag("steps", QUICK ? 200 : 1000);
  const digits = compile(loadModel("examples/digits.s4d"), loadTarget("xbar64")).program;
  const digitsIn = readFloatNpy("examples/digits-input.npy");
  const programs: { name: string; p: Program; xs: Float32Array; d: number }[] = [
    { name: "synthetic 16 x 64x64 dense levels", p: buildProgram(), xs: new Float32Array(0), d: N },
    { name: "digits.s4d (xbar64)", p: digits, xs: Float32Array.from(digitsIn.data), d: 1 },
  ];
  const rng = new Rng(7);
  const rows: string[][] = [];
  for (const { name, p, xs: given, d } of programs) {
    const xs = given.length >= steps * d ? given.subarray(0, steps * d) : Float32Array.from({ length: steps * d }, (_, i) => (given.length > 0 ? given[i % given.length]! : 2 * rng.uniform() - 1));
    const cells = cellsPerStep(p);
    const mats = denseWindows(p);
    denseRun(mats, xs, 10); // warm-up (JIT)
    const dense = denseRun(mats, xs, steps);
    const target = loadTarget("xbar64");
    const full = noiseFromTarget(target.noise);
    const variants = [
      { label: "off", noise: undefined },
      { label: "target noise", noise: { model: full, seed: 0 } },
      // The same without IR drop (its first-order wire model reads every cell three times): what the rest costs.
      { label: "target noise, no IR drop", noise: { model: { ...full, irDrop: { ...full.irDrop, wireOhms: 0 } }, seed: 0 } },
    ];
    for (const { label, noise } of variants) {
      const noisy = noise !== undefined;
      // Per-step cost = (run of `steps` - run of `short` steps) / (steps - short): setup that
      // does not recur per step (verification, crossbar kernels, programming a noisy chip)
      // cancels out.
      const short = Math.max(2, Math.floor(steps / 10));
      const timedRun = (n: number): { wall: number; cpu: number } => {
        const t0 = process.hrtime.bigint();
        const c0 = process.cpuUsage();
        runProgram(p, xs.subarray(0, n * d), [1, n, d], { noise });
        return { cpu: cpuSince(c0), wall: since(t0) };
      };
      timedRun(short); // warm-up (JIT)
      const a = timedRun(short);
      const b = timedRun(steps);
      const cpu = ((b.cpu - a.cpu) * steps) / (steps - short);
      const wall = ((b.wall - a.wall) * steps) / (steps - short);
      const ratioCpu = dense.cpu / cpu;
      rows.push([
        name,
        label,
        String(cells),
        fmt((wall / steps) * 1e6, 1),
        fmt((cpu / steps) * 1e6, 1),
        fmt((dense.cpu / steps) * 1e6, 1),
        fmt((cells * steps) / cpu / 1e6, 0),
        fmt((cells * steps) / dense.cpu / 1e6, 0),
        fmt(dense.seconds / wall, 2),
        fmt(ratioCpu, 2),
        noisy ? verdict(ratioCpu, 0.5) : "report",
      ]);
    }
  }
  process.stdout.write(
    [
      `interpreter vs bare dense matvec over the same crossbar windows, ${steps} steps; MAC = one crossbar cell driven by one MVM (zero or not); the interpreter's time per step is marginal (run of ${steps} steps minus a run of ${Math.max(2, Math.floor(steps / 10))}, so per-run setup such as programming the noisy chip cancels) and includes everything it simulates per step (vector ops, messages, timing, with noise: read noise and IR drop)`,
      "",
      table(["program", "noise", "cells/step", "interp us/step wall", "interp us/step cpu", "dense us/step cpu", "interp M MAC/s cpu", "dense M MAC/s cpu", "ratio wall", "ratio cpu", "target (noise on, cpu)"], rows),
      "",
      machineNote(),
      "",
    ].join("\n"),
  );
}

main();
