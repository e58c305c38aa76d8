// `imssa-compile --unroll auto`: picks k in {1, 2, 4, 8} from the cost model. Each candidate
// is compiled; a candidate that does not fit the target's crossbars (or fails to compile for
// another user-facing reason) is out. For the others two figures per TIME step:
//   bound     the pipelined step interval bound of src/cost/bound.ts (max(recurrence,
//             busiest unit), which every schedule of the program obeys) divided by k;
//   measured  the steady-state step interval of the interpreter's timing model (the golden
//             model, src/cost/explain.ts measuredStepCycles) divided by k.
// The measured figure decides (ties: the smaller k, i.e. fewer crossbars and less latency
// per program step). Not the bound: it is only a lower bound, and where it is loose it picks
// a slower program (on digits/xbar64, before the bound learnt the in-order issue loop, it
// promised k = 4 63 cycles per time step against k = 1's 102; the program measured 250).

import { fail } from "../common/errors.js";
import { MAX_UNROLL } from "../backend/program.js";
import type { Model } from "../ir/types.js";
import { compile, type CompileOptions, type CompileResult } from "../pipeline.js";
import { totalCrossbars, type Target } from "../target/types.js";
import { stepBounds, type StepBounds } from "./bound.js";
import { compileCandidate } from "./candidate.js";
import { measuredStepCycles } from "./explain.js";

export const AUTO_UNROLL_CANDIDATES: readonly number[] = [1, 2, 4, 8];

export interface UnrollCandidate {
  k: number;
  /** The compiled program; null when k did not compile (see `error`). */
  result: CompileResult | null;
  crossbars: number;
  fits: boolean;
  bounds: StepBounds | null;
  /** bounds.intervalBound / k: lower bound on cycles per time step with steps overlapped. */
  boundPerTimeStep: number;
  /** Steady-state interval of the timing model / k: cycles per time step (the criterion). */
  perTimeStep: number;
  /** Why the candidate is out, when it is. */
  error?: string;
}

export interface UnrollChoice {
  chosen: UnrollCandidate;
  candidates: UnrollCandidate[];
  reason: string;
}

function candidate(model: Model, target: Target, opts: CompileOptions, k: number): UnrollCandidate {
  const c = compileCandidate(() => compile(model, target, { ...opts, unroll: k }));
  if ("error" in c) return { k, result: null, crossbars: 0, fits: false, bounds: null, boundPerTimeStep: Infinity, perTimeStep: Infinity, error: c.error };
  const result = c.result;
  const crossbars = result.plan.crossbars.length;
  const fits = crossbars <= totalCrossbars(target);
  const bounds = stepBounds(result.program, target);
  const perTimeStep = fits ? measuredStepCycles(result, target).steady / k : Infinity;
  return { k, result, crossbars, fits, bounds, boundPerTimeStep: bounds.intervalBound / k, perTimeStep, ...(fits ? {} : { error: `needs ${crossbars} crossbars, ${target.name} has ${totalCrossbars(target)}` }) };
}

/** Compiles every candidate k and picks one (see the file comment). */
export function chooseUnroll(model: Model, target: Target, opts: CompileOptions, ks: readonly number[] = AUTO_UNROLL_CANDIDATES): UnrollChoice {
  const candidates = ks.map((k) => candidate(model, target, opts, k));
  const ok = candidates.filter((c) => c.fits && c.result !== null);
  if (ok.length === 0) {
    // Nothing fits: k = 1's own error is the one to show (it is what the user would get without --unroll).
    const first = candidates[0]!;
    compile(model, target, { ...opts, unroll: first.k });
    throw new Error(`internal error: --unroll auto: no candidate compiled, but k = ${first.k} compiles`);
  }
  const chosen = ok.reduce((a, b) => (b.perTimeStep < a.perTimeStep ? b : a));
  const base = candidates.find((c) => c.k === 1 && c.result !== null);
  const gain = base && chosen !== base ? `, ${(base.perTimeStep / chosen.perTimeStep).toFixed(2)}x below k = 1's ${fmt(base.perTimeStep)}` : "";
  const out = candidates.filter((c) => !c.fits || c.result === null).map((c) => `k = ${c.k} ${c.error}`);
  const reason = `k = ${chosen.k}: fewest steady-state cycles per time step on the timing model (${fmt(chosen.perTimeStep)}${gain}) among the candidates that fit${out.length > 0 ? `; out: ${out.join("; ")}` : ""}`;
  return { chosen, candidates, reason };
}

/** `--unroll k|auto`: an integer from 1 to MAX_UNROLL, or "auto" (src/cost/unroll-choice.ts). */
export function parseUnroll(value: string): number | "auto" {
  if (value === "auto") return "auto";
  const k = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!(Number.isInteger(k) && k >= 1 && k <= MAX_UNROLL)) fail("usage", `--unroll expects an integer from 1 to ${MAX_UNROLL} or "auto", found '${value}'`);
  return k;
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** The --explain table of an --unroll auto choice. */
export function formatUnrollChoice(choice: UnrollChoice, target: Target): string {
  const lines = [`unroll candidates on ${target.name} (${totalCrossbars(target) === Infinity ? "unlimited" : totalCrossbars(target)} crossbars; cycles with steps overlapped, docs/SCHEDULE.md "Unrolling"):`];
  lines.push("                            per program step     per time step");
  lines.push("      k  crossbars  fits     bound   steady     bound   steady");
  for (const c of choice.candidates) {
    const cell = (x: number | null): string => (x === null || !Number.isFinite(x) ? "-" : fmt(x)).padStart(9);
    const b = c.bounds ? c.bounds.intervalBound : null;
    const steady = Number.isFinite(c.perTimeStep) ? c.perTimeStep * c.k : null;
    lines.push(`  ${String(c.k).padStart(5)}  ${String(c.result ? c.crossbars : "-").padStart(9)}  ${(c.fits ? "yes" : "no").padStart(4)} ${cell(b)} ${cell(steady)} ${cell(c.result ? c.boundPerTimeStep : null)} ${cell(steady === null ? null : c.perTimeStep)}${c.error ? `  (${c.error})` : ""}`);
  }
  lines.push(`  chosen ${choice.reason}.`);
  return `${lines.join("\n")}\n`;
}
