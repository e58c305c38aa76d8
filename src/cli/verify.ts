#!/usr/bin/env node
// imssa-verify: compile a model, run it on the interpreter and on the float64 reference,
// and fail (exit 3) when the error exceeds the bound the target's quantization implies.

import { runMain } from "./main.js";
import { Command, Option } from "commander";
import { fail } from "../common/errors.js";
import { writeFileAtomic } from "../common/files.js";
import { readFloatNpy } from "../common/npy.js";
import { COMPILER_VERSION, loadModel, parseStatePairs, readCalibration } from "../pipeline.js";
import { loadTargetWithPlugin } from "../target/plugin.js";
import { formatVerify, verifyModel } from "../verify/index.js";
import { parseUnroll } from "../cost/unroll-choice.js";
import { parseWeightSlices } from "../passes/slice-weights.js";
import { DEFAULT_RECURRENCE, RECURRENCE_FORMS, type RecurrenceForm } from "../passes/residual.js";

export const EXIT_VERIFY_FAILED = 3;

interface Options {
  target: string;
  input?: string;
  calibrate?: string;
  tolerance?: string;
  json?: string;
  state?: string[];
  unroll?: string;
  recurrence?: RecurrenceForm;
  weightSlices?: string;
}

async function main(argv: string[]): Promise<void> {
  const cmd = new Command("imssa-verify")
    .description(
      "Compile a model, run it on the interpreter and the float64 reference with the same inputs, and compare.\n" +
        "Exit status: 0 within the bound, 3 when an output's max abs error exceeds it, 1 on bad input.\n" +
        "The bound: float targets 1e-5 x max|reference|; quantized targets 2 x the worst error of a\n" +
        "quantization-noise model of the target (DAC/ADC half steps, clipping), see docs/VERIFY.md.",
    )
    .version(COMPILER_VERSION, "-V, --version")
    .argument("<model>", "model file: .s4d, .onnx or IR .json")
    .option("-t, --target <name|file>", "target name or .json file", "xbar64")
    .requiredOption("-i, --input <x.npy>", "inputs, float [B, T, d_in] or [T, d_in]")
    .option("--calibrate <c.npy>", "calibration inputs for DAC/ADC ranges (default: the compiler's default distribution)")
    .option("--tolerance <abs>", "allowed max abs error for every output, instead of the derived bound")
    .option("--json <file>", "also write the results as JSON")
    .option("--state <IN:OUT>", "ONNX step graphs: pair a state input with its output (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .addOption(new Option("--recurrence <form>", "S4D recurrence on the crossbar, as imssa-compile --recurrence").choices(RECURRENCE_FORMS as unknown as string[]).default(DEFAULT_RECURRENCE))
    .option("--unroll <k>", "compile with k time steps per program step (imssa-compile --unroll; auto is not accepted here)")
    .option("--weight-slices <k>", "store every weight on k device pairs, as imssa-compile --weight-slices; default: the target's")
    .option("--debug", "show stack traces for internal errors")
    .showHelpAfterError();
  cmd.parse(argv);
  const opts = cmd.opts<Options>();
  const modelFile = cmd.args[0]!;
  let tolerance: number | undefined;
  if (opts.tolerance !== undefined) {
    tolerance = Number(opts.tolerance);
    if (!Number.isFinite(tolerance) || tolerance < 0) fail("usage", `--tolerance must be a non-negative number, found '${opts.tolerance}'`);
  }
  const unroll = opts.unroll === undefined ? 1 : parseUnroll(opts.unroll);
  if (unroll === "auto") fail("usage", "imssa-verify --unroll takes an integer k (imssa-compile --unroll auto --explain shows which k it picks)");
  const weightSlices = opts.weightSlices === undefined ? undefined : parseWeightSlices(opts.weightSlices);
  const model = loadModel(modelFile, { state: parseStatePairs(opts.state ?? []) });
  const { target, plugin } = await loadTargetWithPlugin(opts.target);
  const { shape, data } = readFloatNpy(opts.input!);
  const calibration = opts.calibrate ? readCalibration(model, opts.calibrate) : null;
  const result = verifyModel(model, target, data, shape, { calibration, tolerance, inputFile: opts.input!, plugin, unroll, recurrence: opts.recurrence ?? DEFAULT_RECURRENCE, ...(weightSlices !== undefined ? { weightSlices } : {}) });
  process.stdout.write(formatVerify(result, model.name, target.name));
  if (opts.json) {
    const { compiled: _compiled, ...rest } = result;
    const replacer = (_k: string, v: unknown): unknown => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v);
    writeFileAtomic(opts.json, `${JSON.stringify({ model: model.name, target: target.name, ...rest }, replacer, 2)}\n`);
  }
  if (!result.pass) process.exitCode = EXIT_VERIFY_FAILED;
}

await runMain("imssa-verify", main);
