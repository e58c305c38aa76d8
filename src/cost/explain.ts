// `imssa-compile --explain`: why the schedule looks the way it does. For each candidate
// mapping (channel groups per tile, or the plain packer) it reports crossbars, tiles, the
// step lower bounds of src/cost/bound.ts and the step cycles of the interpreter's timing
// model (the golden model, docs/TIMING.md) with a barrier between steps and with steps
// overlapped (first step and steady-state interval), then names the mapping the compiler uses.

import { Machine } from "../interp/machine.js";
import { maxDelay } from "../backend/delays.js";
import type { CompileResult } from "../pipeline.js";
import type { Target } from "../target/types.js";
import { stepBounds, type StepBounds } from "./bound.js";

export interface MappingCost {
  name: string;
  crossbars: number;
  tiles: number;
  bounds: StepBounds;
  /** Cycles of one step with a barrier between steps (every step takes the same, docs/TIMING.md). */
  stepCycles: number;
  /** Steps overlapped: the first step of a sequence (latency) and the steady-state interval. */
  firstStep: number;
  steadyStep: number;
}

/**
 * Steps run at most to reach the overlapped steady state. The step cycles settle within a
 * few steps, but the schedule itself may never repeat (faster stages run ahead, docs/TIMING.md).
 */
const MAX_STEPS = 32;

/**
 * Step cycles of a compiled program on the timing model: with a barrier between steps, and
 * with steps overlapped (first step, and the steady-state interval; if the schedule has not
 * become periodic within MAX_STEPS steps, the average of the second half of them).
 */
export function measuredStepCycles(result: CompileResult, target: Target): { barrier: number; first: number; steady: number } {
  // With step delays (docs/ISA.md "Step delays") a step's instructions spread over D + 1
  // rounds: the barrier step is a round that runs all of them (round D), the first step's
  // latency the first D + 1 rounds.
  const D = maxDelay(result.program);
  // Cycles only: the functional pass (the MVM arithmetic) is skipped, timing does not depend on data.
  const barrier = new Machine(result.program, target, result.model.name, false, null, null, false);
  barrier.functional = false;
  barrier.resetSequence();
  barrier.runSection("init", D + 1);
  let step = 0;
  for (let r = 0; r <= D; r++) step = barrier.runSection("step", D + 1).cycles;
  const m = new Machine(result.program, target, result.model.name);
  m.functional = false;
  m.resetSequence();
  const rounds = MAX_STEPS + D;
  m.runSection("init", rounds);
  const cycles: number[] = [];
  while (cycles.length < rounds && (cycles.length < D + 2 || m.stepTiming().steady === null)) cycles.push(m.runSection("step", rounds).cycles);
  // Without a detected period: the average over the second half (the pipeline has filled).
  const later = cycles.slice(Math.max(D + 1, cycles.length >> 1));
  const steady = m.stepTiming().steady ?? later.reduce((a, b) => a + b, 0) / Math.max(1, later.length);
  return { barrier: step, first: cycles.slice(0, D + 1).reduce((a, b) => a + b, 0), steady };
}

export function mappingCost(name: string, result: CompileResult, target: Target): MappingCost {
  const t = measuredStepCycles(result, target);
  return { name, crossbars: result.plan.crossbars.length, tiles: result.program.tiles.length, bounds: stepBounds(result.program, target), stepCycles: t.barrier, firstStep: t.first, steadyStep: t.steady };
}

const num = (x: number, w: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1)).padStart(w);

function row(c: MappingCost): string {
  const b = c.bounds;
  return `  ${c.name.padEnd(16)} ${num(c.crossbars, 9)} ${num(c.tiles, 6)} ${num(c.stepCycles, 9)} ${num(b.lowerBound, 6)} ${(c.stepCycles / b.lowerBound).toFixed(2).padStart(6)} ${num(c.firstStep, 6)} ${num(c.steadyStep, 7)} ${num(b.intervalBound, 6)} ${(c.steadyStep / b.intervalBound).toFixed(2).padStart(6)}`;
}

/** Per S4D (recurrence) matmul: its crossbars and the tiles they are on. */
function recurrencePlacement(r: CompileResult): string[] {
  const tileOf = new Map(r.program.crossbars.map((c) => [c.id, c.tile]));
  const out: string[] = [];
  for (const op of r.quantized.sections.step) {
    if (op.op !== "matmul" || op.origin !== "s4d") continue;
    const xbars = r.plan.crossbars.filter((x) => x.pieces.some((p) => p.section === "step" && p.op === op.out));
    const tiles = new Set(xbars.map((x) => tileOf.get(x.id)));
    out.push(`${op.layer ?? op.out}: ${xbars.length} crossbars on ${tiles.size} tiles`);
  }
  return out;
}

/** imssa-compile's --mapping value of each mapping name. */
const MAPPING_ARG: Record<string, string> = { "channel groups": "groups", pipelined: "pipelined", plain: "plain" };

/** The explanation text; `chosen` names the mapping the compiled program uses. */
export function formatExplanation(chosen: CompileResult, costs: readonly MappingCost[], chosenName: string, target: Target): string {
  const lines: string[] = [`schedule of '${chosen.model.name}' on ${target.name}:`];
  for (const g of recurrencePlacement(chosen)) lines.push(`  ${g}`);
  lines.push("");
  lines.push("                                      barrier between steps      steps overlapped");
  lines.push("  mapping          crossbars  tiles   step cy  bound  ratio  first  steady  bound  ratio");
  for (const c of costs) lines.push(row(c));
  const best = costs.reduce((a, b) => (b.steadyStep < a.steadyStep ? b : a));
  const used = costs.find((c) => c.name === chosenName)!;
  lines.push("");
  lines.push(
    `  using '${chosenName}': ${used === best ? "fewest steady-state step cycles on the timing model" : `'${best.name}' is faster on this model (${best.steadyStep} vs ${used.steadyStep} cycles per step); compile with --mapping ${MAPPING_ARG[best.name] ?? "auto"} to use it`}.`,
  );
  const b = used.bounds;
  lines.push(`  bounds of '${chosenName}' (docs/SCHEDULE.md): barrier max(critical path ${b.criticalPath}, busiest unit ${b.resource} = ${b.resourceUnit}) = ${b.lowerBound};`);
  lines.push(`  overlapped max(recurrence ${num(b.recurrence, 0)}, busiest unit ${b.resource}, in-order issue loop ${b.issueLoop} = ${b.issueLoopTile}) = ${num(b.intervalBound, 0)} cycles per step. Pipelining gain ${(used.stepCycles / used.steadyStep).toFixed(2)}x (${used.stepCycles} -> ${num(used.steadyStep, 0)}).`);
  const k = chosen.program.unroll ?? 1;
  if (k > 1) lines.push(`  unrolled ${k} time steps per program step (docs/SCHEDULE.md "Unrolling"): per time step ${num(used.steadyStep / k, 0)} cycles steady, bound ${num(b.intervalBound / k, 0)}.`);
  return `${lines.join("\n")}\n`;
}
