// Sweeps end to end: in-process (workers = 1, the TypeScript source) on examples/tiny.s4d
// and a small classifier, and through the built CLI (dist/) with worker threads, whose
// results must equal the in-process ones exactly.

import { afterAll, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeProgramFile } from "../src/backend/container.js";
import type { Program } from "../src/backend/program.js";
import { writeNpy } from "../src/common/npy.js";
import { Rng } from "../src/common/rng.js";
import { main } from "../src/cli/sweep.js";
import { runProgram } from "../src/interp/run.js";
import { noiseFromTarget, noiseOff } from "../src/noise/spec.js";
import { compile, loadModel } from "../src/pipeline.js";
import { parseParamGrid } from "../src/sweep/grid.js";
import { runSweep } from "../src/sweep/sweep.js";
import type { SweepTable } from "../src/sweep/table.js";
import { loadTarget } from "../src/target/load.js";
import { ProgramBuilder } from "./helpers/program-builder.js";

const xbar64 = loadTarget("xbar64");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "imssa-sweep-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 4 inputs -> 3 class scores per step on one crossbar. */
function classifier(): Program {
  const b = new ProgramBuilder(xbar64, { memoryWords: 64, globalWords: 64 });
  b.input("x", 4, 0).stepOutput("scores", 3, 8);
  b.crossbar({ tile: 0, rows: 4, cols: 3, levels: [15, -3, 0, 7, 0, -15, -11, 2, 5, 0, 9, -1], inRange: [1, 1, 1, 1], colScale: [0.1, 0.1, 0.1], outRange: [3, 3, 3] });
  b.emit(0, "step", [
    { op: "load", dst: 0, global: 0, len: 4 },
    { op: "mvm", xbar: 0, rowStart: 0, rows: 4, colStart: 0, cols: 3, src: 0, dst: 4, acc: false },
    { op: "store", global: 8, src: 4, len: 3 },
  ]);
  return b.build("classifier");
}

describe("runSweep in-process", () => {
  const tiny = compile(loadModel("examples/tiny.s4d"), xbar64).program;
  const x = new Float32Array(2 * 32);
  const rng = new Rng(3);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal() * 0.5;

  test("error sweep on examples/tiny.s4d: one row per value, K runs each, zero error without noise", async () => {
    const grid = parseParamGrid("programming.scale=0:2:1");
    const base = { ...noiseOff(), programming: { c0: 0.0088, c1: 0.0246, c2: -0.0032, scale: 1 } };
    const progress: number[] = [];
    const t = await runSweep({
      program: tiny,
      file: "tiny",
      input: x,
      shape: [2, 32, 1],
      base,
      grid,
      seeds: [0, 1, 2],
      workers: 1,
      onProgress: (done, total) => progress.push(done / total),
    });
    expect(t).toMatchObject({ model: "tiny", target: "xbar64", param: "programming.scale", metric: "relative output error", seeds: [0, 1, 2] });
    expect(t.noise).toEqual([expect.stringMatching(/^programming noise sigma = gMax/)]);
    expect(t.rows.map((r) => [r.value, r.runs])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    expect(t.runs).toHaveLength(9);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((d) => d / 9));
    // Off + scale 0 is noise-free: error exactly 0; noise grows the error.
    expect(t.rows[0]).toMatchObject({ mean: 0, std: 0 });
    expect(t.rows[1]!.mean).toBeGreaterThan(0);
    expect(t.rows[2]!.mean).toBeGreaterThan(t.rows[1]!.mean);
    // Each run is the same as a single run with that seed.
    const clean = runProgram(tiny, x, [2, 32, 1]).step!;
    const one = runProgram(tiny, x, [2, 32, 1], { noise: { model: base, seed: 1 } }).step!;
    const err = Math.sqrt(one.reduce((a, v, i) => a + (v - clean[i]!) ** 2, 0) / clean.reduce((a, v) => a + v * v, 0));
    expect(t.runs.find((r) => r.value === 1 && r.seed === 1)!.metric).toBeCloseTo(err, 12);
  });

  test("accuracy sweep with labels: 1 at zero noise, lower with heavy faults", async () => {
    const p = classifier();
    const T = 50;
    const xs = Float32Array.from({ length: T * 4 }, () => rng.uniform() * 2 - 1);
    const clean = runProgram(p, xs, [1, T, 4]).step!;
    const labels = Array.from({ length: T }, (_, t) => {
      const s = Array.from(clean.subarray(3 * t, 3 * t + 3));
      return s.indexOf(Math.max(...s));
    });
    const t = await runSweep({
      program: p,
      file: "classifier",
      input: xs,
      shape: [1, T, 4],
      labels: { data: labels, shape: [1, T], file: "labels" },
      base: noiseOff(),
      grid: parseParamGrid("faults.stuckAtGMax=0,0.3"),
      seeds: [0, 1, 2, 3],
      workers: 1,
    });
    expect(t.metric).toBe("accuracy");
    expect(t.rows[0]).toMatchObject({ mean: 1, std: 0 });
    expect(t.rows[1]!.mean).toBeLessThan(1);
  });

  test("a float-numerics program cannot be swept with noise", async () => {
    const ideal = compile(loadModel("examples/tiny.s4d"), loadTarget("ideal")).program;
    await expect(
      runSweep({ program: ideal, file: "tiny-ideal.xbin", input: x, shape: [2, 32, 1], base: noiseOff(), grid: parseParamGrid("read.sigma=0.01"), seeds: [0], workers: 1 }),
    ).rejects.toThrow(/tiny-ideal\.xbin: device noise needs quantized crossbar numerics/);
  });
});

describe("imssa-sweep (in-process main, workers 1)", () => {
  async function sweep(...args: string[]): Promise<string> {
    let out = "";
    const o = jest.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
    const e = jest.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      await main(["node", "imssa-sweep", ...args]);
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
    return out;
  }

  test("compiles the model and writes CSV, JSON and SVG with one row per value", async () => {
    const args = ["examples/tiny.s4d", "--input", "examples/tiny-input.npy", "--param", "read.sigma=0:0.02:0.01", "--seeds", "2", "--workers", "1"];
    const csv = join(dir, "t.csv");
    const json = join(dir, "t.json");
    const svg = join(dir, "t.svg");
    await sweep(...args, "-o", csv, "--plot", svg);
    await sweep(...args, "-o", json);
    const lines = readFileSync(csv, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines.slice(1).map((l) => l.split(",").slice(0, 4).join(","))).toEqual([
      "read.sigma,0,relative output error,2",
      "read.sigma,0.01,relative output error,2",
      "read.sigma,0.02,relative output error,2",
    ]);
    const t = JSON.parse(readFileSync(json, "utf8")) as SweepTable;
    expect(t.rows.map((r) => r.value)).toEqual([0, 0.01, 0.02]);
    expect(t.seeds).toEqual([0, 1]);
    // The base is the target's noise (programming, read, drift): nonzero error already at read.sigma = 0.
    expect(t.noise.length).toBeGreaterThanOrEqual(3);
    expect(t.rows[0]!.mean).toBeGreaterThan(0);
    expect(lines[1]!.split(",")[4]).toBe(String(t.rows[0]!.mean));
    const plot = readFileSync(svg, "utf8");
    expect(plot.match(/<circle /g)).toHaveLength(3);
    // Without -o, CSV goes to stdout.
    const out = await sweep(...args, "--noise", "off");
    expect(out.split("\n")[0]).toBe("param,value,metric,runs,mean,std,min,max");
    expect(out.trimEnd().split("\n")[1]).toBe("read.sigma,0,relative output error,2,0,0,0,0");
  });

  test("usage errors name the flag", async () => {
    const base = ["examples/tiny.s4d", "--input", "examples/tiny-input.npy"];
    await expect(sweep(...base)).rejects.toThrow(/missing --param/);
    await expect(sweep(...base, "--param", "read.sigma=0:1:1", "-o", "t.txt")).rejects.toThrow(/-o: write the table as \.csv or \.json/);
    await expect(sweep(...base, "--param", "read.sigma=0:1:1", "--plot", "p.png")).rejects.toThrow(/--plot: the plot is an SVG file/);
    await expect(sweep(...base, "--param", "read.sigma=0:1:1", "--seeds", "0")).rejects.toThrow(/--seeds: "0" is not a positive integer/);
    await expect(sweep(...base, "--param", "read.sigma=0:1:1", "--workers", "x")).rejects.toThrow(/--workers: "x" is not a positive integer/);
    await expect(sweep(...base, "--param", "read.sigma=0:1:1", "--noise", "bogus=1")).rejects.toThrow(/--noise: unknown noise parameter "bogus"/);
  });

  test("a compiled .xbin works and refuses --target", async () => {
    const xbin = join(dir, "tiny.xbin");
    writeProgramFile(xbin, compile(loadModel("examples/tiny.s4d"), xbar64).program);
    const out = await sweep(xbin, "--input", "examples/tiny-input.npy", "--param", "output.sigma=0.01", "--seeds", "1", "--workers", "1");
    expect(out.trimEnd().split("\n")).toHaveLength(2);
    await expect(sweep(xbin, "--input", "examples/tiny-input.npy", "--param", "output.sigma=0.01", "--target", "xbar64")).rejects.toThrow(/--target applies to models/);
  });
});

describe("imssa-sweep with worker threads (built CLI)", () => {
  beforeAll(() => {
    if (!existsSync("dist/cli/sweep.js") || !existsSync("dist/sweep/worker.js")) throw new Error("dist/ is missing the sweep: run `npm run build` (npm test does it)");
  });

  const cli = (...args: string[]) => spawnSync(process.execPath, ["dist/cli/sweep.js", ...args], { encoding: "utf8" });

  test("2 workers give exactly the results of 1 worker; labels give accuracy", () => {
    const labels = join(dir, "labels.npy");
    writeNpy(labels, [2, 32], new Int32Array(64)); // one output: the argmax is always class 0
    const args = ["examples/tiny.s4d", "--input", "examples/tiny-input.npy", "--param", "programming.scale=0:2:1", "--seeds", "3", "--noise", `off,read.sigma=${0.005}`];
    const one = cli(...args, "--workers", "1", "-o", join(dir, "w1.json"), "-q");
    const two = cli(...args, "--workers", "2", "-o", join(dir, "w2.json"), "--plot", join(dir, "w2.svg"), "-q");
    expect([one.status, one.stderr]).toEqual([0, ""]);
    expect([two.status, two.stderr]).toEqual([0, ""]);
    const t1 = JSON.parse(readFileSync(join(dir, "w1.json"), "utf8")) as SweepTable;
    const t2 = JSON.parse(readFileSync(join(dir, "w2.json"), "utf8")) as SweepTable;
    expect(t2).toEqual(t1);
    expect(t2.runs).toHaveLength(9);
    expect(readFileSync(join(dir, "w2.svg"), "utf8")).toMatch(/^<svg /);
    const acc = cli(...args, "--labels", labels, "--workers", "2", "-q");
    expect(acc.status).toBe(0);
    expect(acc.stdout.trimEnd().split("\n").slice(1)).toEqual(["programming.scale,0,accuracy,3,1,0,1,1", "programming.scale,1,accuracy,3,1,0,1,1", "programming.scale,2,accuracy,3,1,0,1,1"]);
  });

  test("a user error inside the workers is reported like any other (exit 1, no stack)", () => {
    const r = cli("examples/tiny.s4d", "--target", "ideal", "--input", "examples/tiny-input.npy", "--param", "read.sigma=0.01,0.02", "--seeds", "2", "--workers", "2");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^imssa-sweep: error: examples\/tiny\.s4d: device noise needs quantized crossbar numerics/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});

test("noiseFromTarget keeps xbar64's documented blocks", () => {
  const m = noiseFromTarget(xbar64.noise);
  expect(m.programming).toMatchObject({ c0: 0.0088, c1: 0.0246, c2: -0.0032, scale: 1 });
  expect(m.drift).toMatchObject({ nu: 0.05, t0Seconds: 20, compensate: true, tSeconds: 3600 });
});
