// Runs a verified program over a batch of sequences (program semantics of
// src/backend/program.ts): per sequence reset memory, init, T steps, final.
// An unrolled program (Program.unroll = k, src/passes/unroll.ts) takes k time steps per
// program step: the caller's [B, T, d] input is chunked into ceil(T / k) program steps of
// k*d (the last one zero-padded) and the step outputs are un-chunked back to [B, T, o], so
// callers never see k. Padding is exact only for step outputs, so a program with final
// outputs refuses a T that is not a multiple of k.

import type { IoBuffer, Program } from "../backend/program.js";
import { UserError } from "../common/errors.js";
import { noiseSetup } from "../noise/setup.js";
import type { NoiseConfig } from "../noise/spec.js";
import type { LoadedPlugin } from "../target/plugin.js";
import { ExtRuntime } from "../target/plugin-runtime.js";
import { Machine, type ScheduledInstr } from "./machine.js";
import { buildReport, SectionAccumulator, type RunReport } from "./report.js";
import { buildTrace, type SectionSpan, type TraceEvent } from "./trace.js";
import { checkProgram } from "./verify.js";
import { maxDelay, outputDelays, roundsOf } from "../backend/delays.js";

export interface RunOptions {
  /** Record the schedule of the first sequence's init, first step and final as a trace. */
  trace?: boolean;
  /** Program file name used in error messages. */
  file?: string;
  /** Input file name used in messages about the input's shape. */
  inputFile?: string;
  /**
   * Recompute the schedule on every section run instead of reusing the first run's (which
   * is exact, see Machine.runSection); slower, for checking the timing model.
   */
  retime?: boolean;
  /**
   * Device noise to simulate (docs/NOISE.md): a model and its seeds. Absent, or a model
   * that changes nothing: the exact noise-free numerics.
   */
  noise?: NoiseConfig;
  /**
   * The target plugin a program records (src/target/plugin.ts pluginForProgram finds it);
   * a plugin program is refused without exactly that module.
   */
  plugin?: LoadedPlugin | null;
}

export interface RunResult {
  /** [B, T, d_out]: the step outputs concatenated in Program.io.stepOutputs order; null without step outputs. */
  step: Float32Array | null;
  /** [B, d_final]: the final outputs concatenated in order; null without final outputs. */
  final: Float32Array | null;
  stepShape: [number, number, number] | null;
  finalShape: [number, number] | null;
  /** The report counts program steps; each is `unroll` time steps (Program.unroll, 1 when absent). */
  report: RunReport;
  unroll: number;
  trace?: TraceEvent[];
}

const totalSize = (bufs: IoBuffer[]): number => bufs.reduce((s, b) => s + b.size, 0);

function checkInput(p: Program, input: Float32Array, shape: readonly number[], file: string, inputFile: string | undefined): void {
  const at = inputFile === undefined ? undefined : { file: inputFile };
  if (p.io.inputs.length !== 1)
    throw new UserError("unsupported", `the program has ${p.io.inputs.length} inputs; only programs with exactly one input can be run`, { file });
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new UserError("usage", `input shape [${shape.join(", ")}] is not [batch, steps, features]`, at);
  const [B, T, d] = shape as [number, number, number];
  const want = p.io.inputs[0]!;
  const k = p.unroll ?? 1;
  if (d * k !== want.size)
    throw new UserError("usage", `input has ${d} features per step but the program's input "${want.name}" has ${want.size / k}${k === 1 ? "" : ` per time step (${want.size} per program step of ${k} time steps)`}`, at);
  if (B < 1 || T < 1) throw new UserError("usage", `input shape [${B}, ${T}, ${d}] is empty: need at least one sequence and one step`, at);
  if (input.length !== B * T * d) throw new UserError("usage", `input has ${input.length} values, shape [${B}, ${T}, ${d}] needs ${B * T * d}`, at);
  if (T % k !== 0 && p.io.finalOutputs.length > 0)
    throw new UserError(
      "usage",
      `the program was compiled with --unroll ${k} and has final outputs, so the sequence length must be a multiple of ${k}, but T = ${T}: pad or cut the sequences to a multiple of ${k} time steps, or compile with --unroll 1 (or a k dividing ${T})`,
      at,
    );
}

/**
 * After round r, the step-output buffers whose step r - delay exists, into the [T, dOut]
 * block of one sequence at `base`: buffer-major [buf0: k x o0][buf1: k x o1].. in global
 * memory -> time-major rows [o0 o1 ..] per time step (k time steps per program step).
 */
function readStepOutputs(global: ArrayLike<number>, bufs: IoBuffer[], delays: readonly number[], r: number, k: number, T: number, out: Float32Array, base: number, dOut: number): void {
  let col = 0;
  bufs.forEach((buf, j) => {
    const o = buf.size / k;
    const s = r - delays[j]!;
    if (s >= 0)
      for (let i = 0; i < k; i++) {
        const t = s * k + i;
        if (t >= T) break;
        const dst = base + t * dOut + col;
        for (let w = 0; w < o; w++) out[dst + w] = global[buf.addr + i * o + w]!;
      }
    col += o;
  });
}

/** Copies the host-visible buffers out of global memory into out[offset ..]. */
function readOutputs(global: ArrayLike<number>, bufs: IoBuffer[], out: Float32Array, offset: number): void {
  let o = offset;
  for (const b of bufs) for (let i = 0; i < b.size; i++) out[o++] = global[b.addr + i]!;
}

export function runProgram(p: Program, input: Float32Array, shape: [number, number, number], opts: RunOptions = {}): RunResult {
  const file = opts.file ?? "<program>";
  const target = checkProgram(p, file, opts.plugin ?? null);
  checkInput(p, input, shape, file, opts.inputFile);
  const [B, T, dIn] = shape;
  const k = p.unroll ?? 1;
  const programT = Math.ceil(T / k);
  const noise = noiseSetup(target, opts.noise, file);
  const ext = p.plugin !== undefined && opts.plugin ? new ExtRuntime(opts.plugin, target) : null;
  const machine = new Machine(p, target, file, opts.retime ?? false, noise, ext);
  const inBuf = p.io.inputs[0]!;
  // Output widths per time step (a program step holds k of them per buffer).
  const dOut = totalSize(p.io.stepOutputs) / k;
  const delays = outputDelays(p);
  const rounds = roundsOf(p, programT);
  const dFinal = totalSize(p.io.finalOutputs);
  const step = p.io.stepOutputs.length > 0 ? new Float32Array(B * T * dOut) : null;
  const final = p.io.finalOutputs.length > 0 ? new Float32Array(B * dFinal) : null;
  const acc = {
    init: new SectionAccumulator(),
    stepFirst: new SectionAccumulator(),
    prologue: new SectionAccumulator(),
    stepSteady: new SectionAccumulator(),
    drain: new SectionAccumulator(),
    final: new SectionAccumulator(),
  };
  // Rounds 1 .. D-1 of a program with step delays run only part of the stream (prologue):
  // they are reported apart, so that the steady average is over full rounds only.
  const prologueEnd = Math.min(maxDelay(p), programT);
  const schedule: ScheduledInstr[] | undefined = opts.trace ? [] : undefined;
  const spans: SectionSpan[] = [];
  const global = machine.memory.global;

  for (let b = 0; b < B; b++) {
    const traced = b === 0 ? schedule : undefined;
    machine.resetSequence();
    const init = machine.runSection("init", programT, traced);
    acc.init.add(init);
    if (traced) spans.push({ name: "init", start: init.start, cycles: init.cycles });
    // Rounds: the T program steps, then D drain rounds when the program has step delays
    // (docs/ISA.md "Step delays"); round r holds step r - d of an output stored with delay d.
    for (let r = 0; r < rounds; r++) {
      if (r < programT) {
        // Time steps r*k .. r*k+k-1 (zeros past T); k = 1: exactly one input row.
        const first = r * k;
        const n = Math.min(k, T - first);
        const base = (b * T + first) * dIn;
        global.set(input.subarray(base, base + n * dIn), inBuf.addr);
        if (n < k) global.fill(0, inBuf.addr + n * dIn, inBuf.addr + k * dIn);
      }
      const run = machine.runSection("step", programT, r === 0 ? traced : undefined);
      (r === 0 ? acc.stepFirst : r < prologueEnd ? acc.prologue : r < programT ? acc.stepSteady : acc.drain).add(run);
      if (traced && r === 0) spans.push({ name: "step 0", start: run.start, cycles: run.cycles });
      if (step) readStepOutputs(global, p.io.stepOutputs, delays, r, k, T, step, b * T * dOut, dOut);
    }
    // vdivsteps divides by program steps; the unrolled IR scaled its operand by 1/k.
    const fin = machine.runSection("final", programT, traced);
    acc.final.add(fin);
    if (traced) spans.push({ name: "final", start: fin.start, cycles: fin.cycles });
    if (final) readOutputs(global, p.io.finalOutputs, final, b * dFinal);
  }

  const report = buildReport({ program: p, machine, batch: B, steps: programT, noise, ...acc });
  const result: RunResult = { step, final, stepShape: step ? [B, T, dOut] : null, finalShape: final ? [B, dFinal] : null, report, unroll: k };
  if (schedule) result.trace = buildTrace(p, target.clockHz, schedule, spans);
  return result;
}
