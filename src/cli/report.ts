#!/usr/bin/env node
// imssa-report: one self-contained HTML page about a compiled program (.xbin): summary,
// crossbar occupancy, the schedule of one step, energy, and with inputs output errors and
// ADC saturations. docs/REPORT.md explains every part.

import { isEntryPoint, runMain } from "./main.js";
import { Command } from "commander";
import { basename, extname } from "node:path";
import { readProgramFile } from "../backend/container.js";
import { fail } from "../common/errors.js";
import { writeFileAtomic } from "../common/files.js";
import { readFloatNpy } from "../common/npy.js";
import { COMPILER_VERSION, loadModel } from "../pipeline.js";
import { buildReportHtml, DEFAULT_STEPS, type ReportInput } from "../report/index.js";

interface Options {
  output?: string;
  input?: string;
  model?: string;
  steps?: string;
  debug?: boolean;
}

const HELP_AFTER = `
The page needs no network: styles, pictures (SVG) and the script for tooltips are inline.

Without --input the interpreter runs one all-zero sequence of --steps steps (default
${DEFAULT_STEPS}) to measure cycles and energy, which do not depend on the data. With --input
(float .npy [B, T, d_in] or [T, d_in], as imssa-run takes) it runs those sequences and the
page adds the outputs and ADC saturations per layer; --model (the .s4d or IR .json the
program was compiled from) adds each output's error against the float64 reference.
See docs/REPORT.md for how to read each part.`;

function defaultOutput(program: string): string {
  return `${basename(program, extname(program))}.report.html`;
}

function readInput(file: string): ReportInput {
  const x = readFloatNpy(file);
  const s = x.shape;
  if (s.length !== 2 && s.length !== 3) fail("usage", `input must be [B, T, d_in] or [T, d_in], got shape [${s.join(", ")}]`, { file });
  const shape: [number, number, number] = s.length === 3 ? [s[0]!, s[1]!, s[2]!] : [1, s[0]!, s[1]!];
  return { data: x.data, shape, file };
}

function parseSteps(text: string): number {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= 1)) fail("usage", `--steps must be a positive integer, found '${text}'`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("imssa-report")
    .description("Write a self-contained HTML report of a compiled crossbar program (.xbin).")
    .version(COMPILER_VERSION, "-V, --version")
    .argument("<program>", "compiled program (.xbin)")
    .option("-o, --output <report.html>", "the HTML file to write (default: <program>.report.html in the current directory)")
    .option("-i, --input <x.npy>", "run these input sequences, float .npy [B, T, d_in] or [T, d_in]")
    .option("-m, --model <model>", "the model the program was compiled from (.s4d or IR .json): compare outputs with its float64 reference (needs --input)")
    .option("--steps <T>", `steps of the all-zero sequence run without --input (default ${DEFAULT_STEPS})`)
    .option("--debug", "show stack traces for internal errors")
    .addHelpText("after", HELP_AFTER)
    .showHelpAfterError();
  cmd.parse(argv);
  const opts = cmd.opts<Options>();
  const programFile = cmd.args[0]!;
  if (opts.model !== undefined && opts.input === undefined) fail("usage", "--model compares outputs on real inputs: give --input <x.npy> too");
  if (opts.steps !== undefined && opts.input !== undefined) fail("usage", "--steps sets the length of the all-zero run; with --input the input file sets the steps");
  const steps = opts.steps === undefined ? DEFAULT_STEPS : parseSteps(opts.steps);

  const program = readProgramFile(programFile);
  const input = opts.input === undefined ? null : readInput(opts.input);
  const reference = opts.model === undefined ? null : { model: loadModel(opts.model), file: opts.model };
  const html = buildReportHtml(program, { programFile, input, steps, reference });

  const out = opts.output ?? defaultOutput(programFile);
  writeFileAtomic(out, html);
  process.stderr.write(`wrote ${out}\n`);
}

// Run only as the entry point, not when imported by tests.
if (isEntryPoint(import.meta.url)) await runMain("imssa-report", main);
