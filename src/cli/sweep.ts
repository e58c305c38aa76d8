#!/usr/bin/env node
// imssa-sweep: Monte-Carlo robustness sweep of one device-noise parameter (docs/NOISE.md).

import { isEntryPoint, runMain } from "./main.js";
import { Command } from "commander";
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { readProgramFile } from "../backend/container.js";
import type { Program } from "../backend/program.js";
import { fail } from "../common/errors.js";
import { writeFilesAtomic, type OutputFile } from "../common/files.js";
import { readFloatNpy, readNpy } from "../common/npy.js";
import { parseNoiseArg, parseSeed } from "../noise/parse.js";
import { compile, loadModel, readCalibration } from "../pipeline.js";
import { parseParamGrid } from "../sweep/grid.js";
import { sweepSvg } from "../sweep/plot.js";
import { ProgressBar } from "../sweep/progress.js";
import { runSweep } from "../sweep/sweep.js";
import { tableCsv, tableJson, tableText } from "../sweep/table.js";
import { loadTarget, targetFromJson } from "../target/load.js";

interface Options {
  input?: string;
  labels?: string;
  param?: string;
  seeds: string;
  seedBase: string;
  noise: string;
  target?: string;
  calibrate?: string;
  output?: string;
  plot?: string;
  workers?: string;
  quiet?: boolean;
  debug?: boolean;
}

const HELP_AFTER = `
Every point of the sweep runs the program once per chip seed (seed-base .. seed-base+K-1)
with the base noise model (--noise, default: the target's noise section) and the swept
parameter set to the point's value. The read noise of a run uses the same seed. Runs are
spread over worker threads (default: one per core); results do not depend on --workers.

  --param <key>=<start>:<stop>:<step>   values start, start+step, ..., stop (included)
  --param <key>=<v1>,<v2>,...           explicit values
Keys are the --noise keys of imssa-run (docs/NOISE.md), e.g. programming.scale,
programming.c0, read.sigma, drift.t, drift.nu, faults.stuckAtGMin, irDrop.wireOhms.

Metric: with --labels, accuracy (argmax of the outputs against class indices: labels [B]
score the final outputs, [B, T] the step outputs); without, the relative RMS error of all
outputs against the noise-free run, ||y - y0|| / ||y0||. The table has mean ± std (sample
standard deviation over the seeds), min and max per value: CSV or JSON by the -o
extension (CSV on stdout without -o); --plot writes an SVG line plot with error bars.

Example:
  imssa-sweep examples/digits.s4d --input x.npy --labels y.npy \\
    --param programming.scale=0:4:0.5 --seeds 8 -o sweep.csv --plot sweep.svg`;

/** Compiles a model file, or reads a compiled program. */
function loadProgram(file: string, opts: Options): Program {
  if (extname(file).toLowerCase() === ".xbin") {
    if (opts.target !== undefined) fail("usage", "--target applies to models (.s4d, .json); a .xbin program carries the target it was compiled for", { file });
    if (opts.calibrate !== undefined) fail("usage", "--calibrate applies to models (.s4d, .json), not to a compiled .xbin", { file });
    return readProgramFile(file);
  }
  const model = loadModel(file);
  const calibration = opts.calibrate ? readCalibration(model, opts.calibrate) : null;
  return compile(model, loadTarget(opts.target ?? "xbar64"), { calibration, sourceName: file }).program;
}

/** A single sequence given as [T, d_in] takes a scalar label (per sequence) or [T] labels (per step). */
function labelShape(given: number[], inputRank: number, steps: number): number[] {
  if (inputRank === 3) return given;
  if (given.length === 0) return [1];
  if (given.length === 1 && given[0] === steps && steps !== 1) return [1, steps];
  return given;
}

function positiveInt(text: string, flag: string): number {
  const v = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(v) || v < 1) fail("usage", `${flag}: "${text}" is not a positive integer`);
  return v;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("imssa-sweep")
    .description("Sweep one device-noise parameter over many chip seeds and tabulate accuracy or output error.")
    .argument("<model>", "model (.s4d, IR .json; compiled for --target) or compiled program (.xbin)")
    .option("-i, --input <x.npy>", "input sequences [B, T, d_in] or [T, d_in]")
    .option("--labels <y.npy>", "class labels [B] or [B, T] (integers): the metric becomes accuracy")
    .option("--param <key=range>", "the swept noise parameter and its values (see below)")
    .option("--seeds <K>", "chip seeds per value", "8")
    .option("--seed-base <S>", "first chip seed", "0")
    .option("--noise <spec>", 'base noise model: "target", "off" or overrides as in imssa-run --noise', "target")
    .option("-t, --target <name|file>", "target to compile a model for (default xbar64)")
    .option("--calibrate <inputs.npy>", "calibration inputs when compiling a model (see imssa-compile)")
    .option("-o, --output <table.csv|table.json>", "write the table (CSV or JSON by extension)")
    .option("--plot <plot.svg>", "write an SVG plot of the metric against the parameter")
    .option("--workers <N>", "worker threads (default: available cores)")
    .option("-q, --quiet", "no progress bar")
    .option("--debug", "show stack traces for internal errors")
    .addHelpText("after", HELP_AFTER)
    .showHelpAfterError();
  cmd.parse(argv);
  const opts = cmd.opts<Options>();
  const file = cmd.args[0]!;
  if (opts.input === undefined) fail("usage", "missing --input <x.npy> (try --help)");
  if (opts.param === undefined) fail("usage", "missing --param <key>=<start>:<stop>:<step> (try --help)");
  const outFormat = opts.output === undefined ? "csv" : extname(opts.output).toLowerCase();
  if (outFormat !== "csv" && outFormat !== ".csv" && outFormat !== ".json") fail("usage", `-o: write the table as .csv or .json, got "${opts.output}"`);
  if (opts.plot !== undefined && extname(opts.plot).toLowerCase() !== ".svg") fail("usage", `--plot: the plot is an SVG file (.svg), got "${opts.plot}"`);
  const grid = parseParamGrid(opts.param);
  const K = positiveInt(opts.seeds, "--seeds");
  const seedBase = parseSeed(opts.seedBase, "--seed-base");
  if (!Number.isSafeInteger(seedBase + K - 1)) fail("usage", "--seed-base + --seeds exceeds 2^53");
  const workers = opts.workers === undefined ? availableParallelism() : positiveInt(opts.workers, "--workers");

  const program = loadProgram(file, opts);
  const target = targetFromJson(program.target.json, `${file} (target)`);
  const base = parseNoiseArg(opts.noise, target.noise, "--noise");
  const x = readFloatNpy(opts.input);
  const rank = x.shape.length;
  if (rank !== 2 && rank !== 3) fail("usage", `input must be [B, T, d_in] or [T, d_in], got shape [${x.shape.join(", ")}]`, { file: opts.input });
  const shape: [number, number, number] = rank === 3 ? [x.shape[0]!, x.shape[1]!, x.shape[2]!] : [1, x.shape[0]!, x.shape[1]!];
  let labels: { data: ArrayLike<number>; shape: number[]; file: string } | undefined;
  if (opts.labels !== undefined) {
    const l = readNpy(opts.labels);
    labels = { data: Array.from(l.data as ArrayLike<number | bigint>, Number), shape: labelShape(l.shape, rank, shape[1]), file: opts.labels };
  }

  const seeds = Array.from({ length: K }, (_, i) => seedBase + i);
  const bar = new ProgressBar(grid.values.length * K, "runs", process.stderr, !opts.quiet && process.stderr.isTTY === true);
  const table = await runSweep({ program, file, input: x.data, shape, labels, base, grid, seeds, workers, onProgress: (done) => bar.update(done) });
  bar.finish();

  // Everything is computed; only now touch the file system.
  const outputs: OutputFile[] = [];
  if (opts.output !== undefined) outputs.push({ file: opts.output, data: outFormat === ".json" ? tableJson(table) : tableCsv(table) });
  if (opts.plot !== undefined) outputs.push({ file: opts.plot, data: sweepSvg(table) });
  writeFilesAtomic(outputs);
  if (opts.output === undefined) process.stdout.write(tableCsv(table));
  if (opts.output !== undefined && !opts.quiet) process.stderr.write(tableText(table));
}

// Run only as the entry point, not when imported by tests.
if (isEntryPoint(import.meta.url)) await runMain("imssa-sweep", main);
