#!/usr/bin/env node
// imssa-compile: model (.s4d DSL or IR .json) -> crossbar program (.xbin), IR or assembly.

import { runMain } from "./main.js";
import { Command, Option } from "commander";
import { basename, extname } from "node:path";
import { formatAsm } from "../backend/asm.js";
import { writeProgramFile } from "../backend/container.js";
import { fail } from "../common/errors.js";
import { writeFileAtomic } from "../common/files.js";
import { modelToJson } from "../ir/json.js";
import { compile, COMPILER_VERSION, loadModel, parseStatePairs, readCalibration } from "../pipeline.js";
import { emitQatConfig } from "../qat/index.js";
import { listTargets } from "../target/load.js";
import { loadTargetWithPlugin } from "../target/plugin.js";
import { formatSummary, summarize } from "../summary.js";
import { compareTargets, formatComparison } from "../compare.js";
import { compileCandidate } from "../cost/candidate.js";
import { formatExplanation, mappingCost } from "../cost/explain.js";
import { chooseMapping, formatMappingChoice, MAPPINGS, mappingOptions, type MappingName } from "../cost/mapping-choice.js";
import { DEFAULT_RECURRENCE, RECURRENCE_FORMS, type RecurrenceForm } from "../passes/residual.js";
import { chooseUnroll, formatUnrollChoice, parseUnroll } from "../cost/unroll-choice.js";
import { MAX_UNROLL } from "../passes/unroll.js";
import { MAX_WEIGHT_SLICES, parseWeightSlices } from "../passes/slice-weights.js";
import { defaultWeightSlices } from "../target/types.js";

const MAPPING_ARGS = ["auto", "groups", "pipelined", "plain"] as const;
const MAPPING_OF: Record<Exclude<MappingArg, "auto">, MappingName> = { groups: "channel groups", pipelined: "pipelined", plain: "plain" };
type MappingArg = (typeof MAPPING_ARGS)[number];

const EMITS = ["xbin", "ir", "lowered-ir", "quantized-ir", "asm", "qat-config"] as const;
type Emit = (typeof EMITS)[number];

interface Options {
  target: string;
  output?: string;
  emit?: Emit;
  calibrate?: string;
  report?: boolean;
  quiet?: boolean;
  listTargets?: boolean;
  compare?: string;
  debug?: boolean;
  groupChannels?: boolean;
  mapping?: MappingArg;
  explain?: boolean;
  state?: string[];
  /** commander's negation of --no-state-scaling: false when the flag is given. */
  stateScaling?: boolean;
  recurrence?: RecurrenceForm;
  unroll?: string;
  weightSlices?: string;
}

function defaultOutput(model: string, emit: Emit): string {
  const stem = basename(model, extname(model));
  return emit === "xbin" ? `${stem}.xbin` : emit === "asm" ? `${stem}.asm` : emit === "qat-config" ? `${stem}.qat.json` : `${stem}.${emit}.json`;
}

async function main(argv: string[]): Promise<void> {
  const cmd = new Command("imssa-compile")
    .description("Compile an S4D model (.s4d model DSL or imssa IR .json) for a crossbar target.")
    .version(COMPILER_VERSION, "-V, --version")
    .argument("[model]", "model file: .s4d (model DSL), .onnx (PyTorch export, see docs/ONNX.md) or .json (imssa IR, e.g. from --emit ir)")
    .option("-t, --target <name|file>", "shipped target name (see --list-targets) or path to a target .json", "xbar64")
    .option("-o, --output <file>", "output file (default: <model>.xbin in the current directory; text emits go to stdout)")
    .addOption(new Option("--emit <kind>", "what to produce (qat-config: the target's exact numerics for quantization-aware training, docs/QAT.md)").choices(EMITS as unknown as string[]))
    .option("--calibrate <inputs.npy>", "calibrate DAC/ADC ranges on these inputs [B, T, d_in] (default: a seeded N(0,1) input distribution, see docs)")
    .option("--report", "print the compile summary to stdout (it always goes to stderr unless --quiet)")
    .option("-q, --quiet", "no compile summary on stderr")
    .option("--list-targets", "list the shipped targets and exit")
    .option("--compare <targets>", "compile for several targets (comma-separated names or files) and print crossbars, utilization, cycles and energy per step side by side")
    .option("--state <IN:OUT>", "ONNX step graphs: pair a state input with its output (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--no-state-scaling", "keep every S4D state unscaled (default: per-mode power-of-two state scaling before quantization, docs/QUANTIZATION.md)")
    .addOption(
      new Option("--recurrence <form>", "S4D recurrence on the crossbar: dA (direct) or dA - I with the previous state added digitally (residual; docs/QUANTIZATION.md)")
        .choices(RECURRENCE_FORMS as unknown as string[])
        .default(DEFAULT_RECURRENCE),
    )
    .option("--explain", "print the schedule's cost: step cycles and lower bounds of each candidate mapping, and which one is used (docs/SCHEDULE.md)")
    .option("--unroll <k|auto>", `advance the recurrences k time steps per program step (1..${MAX_UNROLL}; auto: pick k in 1, 2, 4, 8 by the cost model); default 1 (docs/SCHEDULE.md "Unrolling")`)
    .addOption(
      new Option(
        "--mapping <kind>",
        "crossbar mapping: S4D channel groups per tile, the same software-pipelined with step delays, the plain packer, or auto: compile each and keep the fastest on the timing model (docs/SCHEDULE.md)",
      )
        .choices(MAPPING_ARGS as unknown as string[])
        .default("auto"),
    )
    .option("--no-group-channels", "same as --mapping plain")
    .option("--weight-slices <k>", `store every weight on k device pairs (1..${MAX_WEIGHT_SLICES}), each slice rounding what the previous ones left, on its own crossbar columns: about 2(deviceLevels - 1) times smaller weight error per slice for k times the columns; default: the target's numerics.weightSlices, else 1 (docs/QUANTIZATION.md "Weight slicing")`)
    .option("--debug", "show stack traces for internal errors")
    .showHelpAfterError();
  cmd.parse(argv);
  const opts = cmd.opts<Options>();
  const modelFile = cmd.args[0];

  if (opts.listTargets) {
    for (const t of listTargets()) process.stdout.write(`${t.name.padEnd(10)} ${t.description}\n`);
    return;
  }
  if (modelFile === undefined) fail("usage", "missing model file (try --help)");
  const unrollArg = opts.unroll === undefined ? 1 : parseUnroll(opts.unroll);
  if (unrollArg !== 1 && opts.compare !== undefined) fail("usage", "--unroll does not apply to --compare (it compares one-step programs); compile each target with --unroll instead");
  if (unrollArg !== 1 && opts.emit === "ir") fail("usage", "--unroll does not apply to --emit ir (the model-level IR has no program steps); use --emit lowered-ir to see the unrolled IR");
  const weightSlices = opts.weightSlices === undefined ? undefined : parseWeightSlices(opts.weightSlices);
  if (weightSlices !== undefined && opts.compare !== undefined) fail("usage", "--weight-slices does not apply to --compare (each target compiles with its own numerics.weightSlices); compile each target with --weight-slices instead");
  if (weightSlices !== undefined && weightSlices !== 1 && opts.emit === "qat-config") fail("usage", "--emit qat-config describes one weight grid per matmul; QAT of sliced weights is not supported (compile without --weight-slices)");
  if (unrollArg !== 1 && opts.emit === "qat-config") fail("usage", "--emit qat-config describes one-step programs; QAT of unrolled programs is not supported (compile without --unroll)");

  const model = loadModel(modelFile, { state: parseStatePairs(opts.state ?? []) });
  if (opts.compare !== undefined) {
    const targets = await Promise.all(opts.compare.split(",").filter((t) => t !== "").map((t) => loadTargetWithPlugin(t)));
    if (targets.length === 0) fail("usage", "--compare needs at least one target name or file");
    process.stdout.write(formatComparison(compareTargets(model, targets)));
    return;
  }
  const emit: Emit = opts.emit ?? "xbin";
  if (emit === "ir") {
    writeText(modelToJson(model), opts.output);
    return;
  }
  const { target, plugin } = await loadTargetWithPlugin(opts.target);
  if (plugin !== null && emit === "qat-config")
    fail("unsupported", `--emit qat-config describes crossbar numerics only; target "${target.name}" computes parts of the model in its plugin (${target.plugin}), which QAT does not model`, { file: target.source.file });
  const calibration = opts.calibrate ? readCalibration(model, opts.calibrate) : null;
  if (emit === "qat-config" && weightSlices === undefined && defaultWeightSlices(target) !== 1)
    fail("unsupported", `--emit qat-config describes one weight grid per matmul, but target "${target.name}" slices weights (numerics.weightSlices ${defaultWeightSlices(target)}); add --weight-slices 1`, { file: target.source.file });
  const baseOpts = {
    calibration,
    sourceName: modelFile,
    plugin,
    stateScaling: opts.stateScaling !== false,
    recurrence: opts.recurrence ?? DEFAULT_RECURRENCE,
    ...(weightSlices !== undefined ? { weightSlices } : {}),
  };
  const mapping: MappingArg = opts.groupChannels === false ? "plain" : (opts.mapping ?? "auto");
  if (opts.groupChannels === false && opts.mapping !== undefined && opts.mapping !== "auto" && opts.mapping !== "plain") fail("usage", `--no-group-channels contradicts --mapping ${opts.mapping}`);
  // --unroll auto picks k with channel groups unless the plain packer was asked for; the mapping is then chosen at that k.
  const choice = unrollArg === "auto" ? chooseUnroll(model, target, { ...baseOpts, groupChannels: mapping !== "plain" }) : null;
  const compileOpts = { ...baseOpts, unroll: choice ? choice.chosen.k : (unrollArg as number) };
  // The cost model times crossbar and vector instructions only, not a plugin's: plugin targets keep channel groups.
  const mappingChoice = mapping === "auto" && plugin === null ? chooseMapping(model, target, compileOpts) : null;
  const result = mappingChoice
    ? mappingChoice.chosen.result!
    : choice
      ? choice.chosen.result!
      : compile(model, target, { ...compileOpts, ...mappingOptions(MAPPING_OF[mapping === "auto" ? "groups" : mapping]) });
  if (choice && !opts.explain && !opts.quiet) process.stderr.write(`--unroll auto: ${choice.reason}\n`);
  if (choice && opts.explain) process.stderr.write(formatUnrollChoice(choice, target));
  if (opts.explain) {
    if (mappingChoice) process.stderr.write(formatMappingChoice(mappingChoice));
    const chosen = mappingChoice ? mappingChoice.chosen.name : MAPPING_OF[mapping === "auto" ? "groups" : mapping];
    // The other mappings are already compiled when the cost model chose; otherwise compile them for the comparison.
    const others = MAPPINGS.filter((n) => n !== chosen).flatMap((n) => {
      // A mapping that does not compile for a user-facing reason is left out of the comparison.
      const own = mappingChoice ? null : compileCandidate(() => compile(model, target, { ...compileOpts, ...mappingOptions(n) }));
      const r = mappingChoice ? mappingChoice.candidates.find((c) => c.name === n)?.result : own !== null && "result" in own ? own.result : null;
      return r ? [mappingCost(n, r, target)] : [];
    });
    const costs = [mappingCost(chosen, result, target), ...others];
    process.stderr.write(formatExplanation(result, costs, chosen, target));
  }

  const summary = summarize(result, target);
  if (!opts.quiet) process.stderr.write(formatSummary(summary));
  if (opts.report) process.stdout.write(formatSummary(summary));

  switch (emit) {
    case "lowered-ir":
      return writeText(modelToJson(result.lowered), opts.output);
    case "quantized-ir":
      return writeText(modelToJson(result.quantized), opts.output);
    case "asm":
      return writeText(formatAsm(result.program), opts.output);
    case "qat-config":
      return writeText(emitQatConfig(result, target, { source: modelFile, calibrationFile: opts.calibrate ?? null, compilerVersion: COMPILER_VERSION }), opts.output);
    case "xbin": {
      const out = opts.output ?? defaultOutput(modelFile, "xbin");
      writeProgramFile(out, result.program);
      if (!opts.quiet) process.stderr.write(`wrote ${out}\n`);
      return;
    }
  }
}

function writeText(text: string, output: string | undefined): void {
  const body = text.endsWith("\n") ? text : `${text}\n`;
  if (output === undefined || output === "-") process.stdout.write(body);
  else writeFileAtomic(output, body);
}

await runMain("imssa-compile", main);
