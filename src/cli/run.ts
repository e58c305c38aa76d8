#!/usr/bin/env node
// imssa-run: execute a compiled program (.xbin) on the cycle-accurate interpreter.

import { isEntryPoint, runMain } from "./main.js";
import { Command } from "commander";
import { readProgramFile } from "../backend/container.js";
import { fail } from "../common/errors.js";
import { writeFilesAtomic, type OutputFile } from "../common/files.js";
import { encodeNpy, readFloatNpy } from "../common/npy.js";
import { formatReport } from "../interp/report.js";
import { runProgram } from "../interp/run.js";
import { traceFile } from "../interp/trace.js";
import { parseNoiseArg, parseSeed } from "../noise/parse.js";
import type { NoiseConfig } from "../noise/spec.js";
import { targetFromJson } from "../target/load.js";
import { pluginForProgram } from "../target/plugin.js";

interface Options {
  input?: string;
  output?: string;
  finalOutput?: string;
  report?: boolean;
  reportJson?: string;
  trace?: string;
  noise?: string | true;
  seed?: string;
  readSeed?: string;
  plugin?: string;
  target?: string;
  debug?: boolean;
}

const HELP_AFTER = `
Inputs and outputs:
  --input takes float32 or float64 .npy of shape [B, T, d_in] (B sequences of T steps) or
  [T, d_in] (one sequence). Outputs keep the input's rank: step outputs are [B, T, d_out]
  (or [T, d_out]), final outputs [B, d_final] (or [d_final]); several output buffers of a
  program are concatenated along the last axis in program order.
  --output receives the step outputs; if the program has final outputs but no step outputs,
  it receives the final outputs instead. With both kinds, final outputs go to --final-output,
  or to <output>.final.npy when only --output is given.
  Files are written only after the whole run succeeded, each atomically.

Report and trace:
  --report prints cycles per step (first and steady state), total cycles, latency and
  throughput at the target clock, utilization per unit type, energy by component and ADC
  saturations per layer. --trace writes a Chrome Trace Event file (open it in
  https://ui.perfetto.dev): the first sequence's init, first step and final, one process per
  tile, one thread per unit, time in microseconds at the target clock.
  The timing and energy model is described in docs/TIMING.md.

Plugin targets (docs/TARGETS.md):
  A program compiled for a target with a plugin runs only with exactly that plugin module
  (same name, version and sha256). It is looked up at the path the program recorded at
  compile time (relative to the working directory then), or given with --plugin FILE, or
  as the plugin of --target TARGET.json.

Device noise (docs/NOISE.md):
  Without --noise the crossbars compute exactly (the noise configured in the target is not
  simulated). --noise simulates it: "--noise" or "--noise target" uses the target's noise
  section, "--noise off" none, and comma-separated key=value items override single
  parameters on top of the target (or of "off" when it comes first), e.g.
    --noise programming.scale=2,read.sigma=0.002,drift.t=86400
    --noise off,faults.stuckAtGMin=0.01
  Keys: programming.{c0,c1,c2,scale}, read.{sigma,flickerQs,tReadSeconds},
  drift.{nu,nuSigma,t0Seconds,tSeconds,compensate} (drift.t, drift.t0 for short),
  output.sigma, faults.{stuckAtGMin,stuckAtGMax}, irDrop.wireOhms,
  dac.{offsetSigma,nonlinearity}, adc.{offsetSigma,nonlinearity}.
  --seed N (default 0) fixes the programmed chip (programming noise, faults, drift
  exponents, DAC/ADC offsets); --read-seed N (default: the --seed) the per-MVM read and
  output noise. The same seeds give bit-identical outputs. Put --noise after the program
  file (or give it a value): a bare --noise before it would take the file as its spec.`;

/** "<stem>.final.npy" next to the step output file. */
export function defaultFinalOutput(output: string): string {
  return output.endsWith(".npy") ? `${output.slice(0, -".npy".length)}.final.npy` : `${output}.final.npy`;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("imssa-run")
    .description("Run a compiled crossbar program (.xbin) on the cycle-accurate interpreter.")
    .argument("<program>", "compiled program (.xbin)")
    .option("-i, --input <x.npy>", "input sequences, float32/float64 .npy [B, T, d_in] or [T, d_in]")
    .option("-o, --output <y.npy>", "write step outputs (or final outputs, see below) to this .npy")
    .option("--final-output <f.npy>", "write final outputs to this .npy")
    .option("--report", "print the timing / energy / saturation report to stdout")
    .option("--report-json <r.json>", "write the report as JSON")
    .option("--trace <t.json>", "write a Chrome Trace Event (Perfetto) trace of one step's schedule")
    .option("--noise [spec]", 'simulate device noise: "target" (default), "off" or key=value overrides (see below)')
    .option("--seed <n>", "chip seed of the noise simulation (default 0)")
    .option("--read-seed <n>", "seed of the per-MVM read/output noise (default: --seed)")
    .option("--plugin <module.mjs>", "target plugin module of a plugin program (default: the path it recorded)")
    .option("--target <target.json>", "plugin programs: take the plugin named by this target file")
    .option("--debug", "show stack traces for internal errors")
    .addHelpText("after", HELP_AFTER)
    .showHelpAfterError();
  cmd.parse(argv);
  const opts = cmd.opts<Options>();
  const programFile = cmd.args[0]!;
  if (opts.input === undefined) fail("usage", "missing --input <x.npy> (try --help)");

  if (opts.noise === undefined && (opts.seed !== undefined || opts.readSeed !== undefined)) fail("usage", "--seed and --read-seed need --noise");
  if (opts.plugin !== undefined && opts.target !== undefined) fail("usage", "give either --plugin or --target, not both");
  const program = readProgramFile(programFile);
  const plugin = await pluginForProgram(program, programFile, { ...(opts.plugin !== undefined ? { plugin: opts.plugin } : {}), ...(opts.target !== undefined ? { target: opts.target } : {}) });
  let noise: NoiseConfig | undefined;
  if (opts.noise !== undefined) {
    // The program embeds the target it was compiled for; its noise section is the base.
    const target = targetFromJson(program.target.json, `${programFile} (embedded target)`);
    const model = parseNoiseArg(opts.noise === true ? "target" : opts.noise, target.noise, "--noise");
    const seed = opts.seed === undefined ? 0 : parseSeed(opts.seed, "--seed");
    noise = { model, seed, readSeed: opts.readSeed === undefined ? seed : parseSeed(opts.readSeed, "--read-seed") };
  }
  const x = readFloatNpy(opts.input);
  const rank = x.shape.length;
  if (rank !== 2 && rank !== 3) fail("usage", `input must be [B, T, d_in] or [T, d_in], got shape [${x.shape.join(", ")}]`, { file: opts.input });
  const shape: [number, number, number] = rank === 3 ? [x.shape[0]!, x.shape[1]!, x.shape[2]!] : [1, x.shape[0]!, x.shape[1]!];

  const hasStep = program.io.stepOutputs.length > 0;
  const hasFinal = program.io.finalOutputs.length > 0;
  if (opts.finalOutput !== undefined && !hasFinal) fail("usage", "--final-output given but the program has no final outputs");
  const stepFile = hasStep ? opts.output : undefined;
  const finalFile = hasFinal ? (opts.finalOutput ?? (opts.output === undefined ? undefined : hasStep ? defaultFinalOutput(opts.output) : opts.output)) : undefined;
  if (opts.output !== undefined && !hasStep && !hasFinal) fail("usage", "--output given but the program has no outputs");

  const result = runProgram(program, x.data, shape, { trace: opts.trace !== undefined, file: programFile, inputFile: opts.input, noise, plugin });

  // Everything is computed; only now touch the file system, all outputs or none.
  const outputs: OutputFile[] = [];
  if (stepFile !== undefined && result.step) {
    const [B, T, d] = result.stepShape!;
    outputs.push({ file: stepFile, data: encodeNpy(rank === 3 ? [B, T, d] : [T, d], result.step) });
  }
  if (finalFile !== undefined && result.final) {
    const [B, d] = result.finalShape!;
    outputs.push({ file: finalFile, data: encodeNpy(rank === 3 ? [B, d] : [d], result.final) });
  }
  if (opts.reportJson !== undefined) outputs.push({ file: opts.reportJson, data: `${JSON.stringify(result.report, null, 2)}\n` });
  if (opts.trace !== undefined && result.trace) {
    const r = result.report;
    outputs.push({ file: opts.trace, data: JSON.stringify(traceFile(result.trace, { model: r.model, target: r.target, clockHz: r.clockHz, program: programFile })) });
  }
  writeFilesAtomic(outputs);
  if (opts.report) process.stdout.write(formatReport(result.report));
  if (opts.report && result.unroll > 1) {
    // The report counts program steps; say what they are in time steps (docs/SCHEDULE.md "Unrolling").
    const s = result.report.sections.stepSteady ?? result.report.sections.stepFirst;
    process.stdout.write(`unrolled program: ${result.unroll} time steps per program step; steady ${s.cycles} cycles per program step = ${(s.cycles / result.unroll).toFixed(1)} per time step\n`);
  }
}

// Run only as the entry point, not when imported by tests.
if (isEntryPoint(import.meta.url)) await runMain("imssa-run", main);
