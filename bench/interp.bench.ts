// Interpreter throughput: a step of 16 quantized 64x64 crossbars (two xbar64 tiles, 8 each)
// plus vector ops and a tile-to-tile message, run for N steps, next to a bare Float32Array
// dense matvec over the same matrices in the same process.
//
//   npm run bench            (builds with tsconfig.bench.json, then runs this file)

import type { Instr } from "../src/backend/isa.js";
import { FORMAT_VERSION, type CrossbarImage, type Program, type TileProgram } from "../src/backend/program.js";
import { Rng } from "../src/common/rng.js";
import { runProgram } from "../src/interp/run.js";
import { loadTarget, targetToJson } from "../src/target/load.js";
import { createHash } from "node:crypto";

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

/** The same 16 matrices as dense float32 weights (level * colScale), y_j = sum_i x_i W_ij. */
function denseMatvecs(p: Program, xs: Float32Array, steps: number): { seconds: number; checksum: number } {
  const mats = p.crossbars.map((c) => {
    const w = new Float32Array(N * N);
    if (c.weights.kind === "levels") for (let i = 0; i < w.length; i++) w[i] = c.weights.levels[i]! * c.colScale[i % N]!;
    return w;
  });
  const y = new Float32Array(N);
  let checksum = 0;
  const t0 = process.hrtime.bigint();
  for (let s = 0; s < steps; s++) {
    const x = xs.subarray(s * N, (s + 1) * N);
    for (const w of mats) {
      y.fill(0);
      for (let i = 0; i < N; i++) {
        const xi = x[i]!;
        const base = i * N;
        for (let j = 0; j < N; j++) y[j] += xi * w[base + j]!;
      }
      checksum += y[0]!;
    }
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, checksum };
}

function main(): void {
  const steps = Number(process.argv[2] ?? 2000);
  if (!Number.isInteger(steps) || steps < 2) throw new Error(`steps must be an integer >= 2, got ${process.argv[2]}`);
  const p = buildProgram();
  const rng = new Rng(7);
  const rand = (): number => rng.uniform();
  const xs = Float32Array.from({ length: steps * N }, () => 2 * rand() - 1);
  const macsPerStep = TILES * PER_TILE * N * N;

  runProgram(p, xs.subarray(0, 10 * N), [1, 10, N]); // warm-up (JIT)
  const t0 = process.hrtime.bigint();
  const r = runProgram(p, xs, [1, steps, N]);
  const interpSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  denseMatvecs(p, xs.subarray(0, 10 * N), 10);
  const dense = denseMatvecs(p, xs, steps);

  const us = (s: number): string => `${((s / steps) * 1e6).toFixed(2)} us`;
  const rate = (s: number): string => `${((macsPerStep * steps) / s / 1e6).toFixed(1)} M MAC/s`;
  const rep = r.report;
  process.stdout.write(
    [
      `interpreter benchmark: ${TILES * PER_TILE} quantized ${N}x${N} crossbars on ${rep.target}, ${steps} steps, ${macsPerStep} MACs per step`,
      `  interpreter:        ${us(interpSeconds)} per step, ${rate(interpSeconds)} simulated on the host`,
      `  dense f32 matvec:   ${us(dense.seconds)} per step, ${rate(dense.seconds)}   (checksum ${dense.checksum.toFixed(3)})`,
      `  interpreter / dense time ratio: ${(interpSeconds / dense.seconds).toFixed(2)}x`,
      `  simulated chip: ${rep.sections.stepFirst.cycles} cycles per step, ${(rep.throughput.macsPerSecond / 1e9).toFixed(2)} G MAC/s at ${rep.clockHz / 1e9} GHz, ${rep.saturation.saturations} ADC saturations of ${rep.saturation.conversions}`,
      "",
    ].join("\n"),
  );
}

main();
