// The compiler's choice of crossbar mapping by the cost model: each candidate mapping is
// compiled and timed, the fastest wins. Candidates:
//   channel groups  S4D channels grouped per tile, states and partial sums local
//                   (src/backend/regroup.ts; docs/SCHEDULE.md);
//   pipelined       channel groups with the tiles' step streams software-pipelined by step
//                   delays (src/backend/software-pipeline.ts): the tail of step t runs in
//                   round t + 1 while step t + 1's MVMs are already in flight;
//   plain           the dense packer alone (src/passes/tile.ts): fewer crossbars, but one
//                   channel's pieces may sit on several tiles.
// A candidate that does not compile for a user-facing reason (e.g. more crossbars than the
// target has) is out. Among the others the steady-state step interval of the interpreter's
// timing model decides (the golden model, src/cost/explain.ts measuredStepCycles; timing
// never depends on data, so the choice is deterministic); ties go to fewer crossbars, then
// to the order above. The interval bound of src/cost/bound.ts is reported next to it: it is
// a lower bound, not an estimate, so it does not decide.

import type { Model } from "../ir/types.js";
import { compile, withPipelinedSteps, type CompileOptions, type CompileResult } from "../pipeline.js";
import type { Target } from "../target/types.js";
import { stepBounds, type StepBounds } from "./bound.js";
import { compileCandidate } from "./candidate.js";
import { measuredStepCycles } from "./explain.js";

export type MappingName = "channel groups" | "pipelined" | "plain";
export const MAPPINGS: readonly MappingName[] = ["channel groups", "pipelined", "plain"];

/** compile() options of a mapping. */
export const mappingOptions = (name: MappingName): CompileOptions => ({ groupChannels: name !== "plain", pipelineSteps: name === "pipelined" });

export interface MappingCandidate {
  name: MappingName;
  /** The compiled program; null when the mapping did not compile (see `error`). */
  result: CompileResult | null;
  crossbars: number;
  bounds: StepBounds | null;
  /** Steady-state cycles per step with steps overlapped (Infinity when out). */
  steady: number;
  error?: string;
}

export interface MappingChoice {
  chosen: MappingCandidate;
  candidates: MappingCandidate[];
  reason: string;
}

function candidate(model: Model, target: Target, opts: CompileOptions, name: MappingName): MappingCandidate {
  const c = compileCandidate(() => compile(model, target, { ...opts, ...mappingOptions(name) }));
  if ("error" in c) return { name, result: null, crossbars: 0, bounds: null, steady: Infinity, error: c.error };
  return measured(name, c.result, target);
}

function measured(name: MappingName, result: CompileResult, target: Target): MappingCandidate {
  return { name, result, crossbars: result.plan.crossbars.length, bounds: stepBounds(result.program, target), steady: measuredStepCycles(result, target).steady };
}

/** Compiles every mapping and picks one (file comment). Throws the first candidate's error when none compiles. */
export function chooseMapping(model: Model, target: Target, opts: CompileOptions = {}): MappingChoice {
  // The pipelined candidate differs from channel groups in emission only: emitted again from its result.
  const groups = candidate(model, target, opts, "channel groups");
  const candidates = MAPPINGS.map((name) =>
    name === "channel groups" ? groups : name === "pipelined" && groups.result !== null && !opts.plugin ? measured(name, withPipelinedSteps(groups.result, target), target) : candidate(model, target, opts, name),
  );
  const ok = candidates.filter((c) => c.result !== null);
  if (ok.length === 0) {
    // Every mapping failed: report what the default one says.
    compile(model, target, { ...opts, groupChannels: true });
  }
  const chosen = ok.reduce((a, b) => (b.steady < a.steady || (b.steady === a.steady && b.crossbars < a.crossbars) ? b : a));
  const others = candidates.filter((c) => c !== chosen);
  const why = others.map((c) =>
    c.result === null
      ? `'${c.name}' does not compile (${c.error})`
      : c.steady === chosen.steady
        ? `'${c.name}' is as fast (${fmt(c.steady)} cycles per step) but needs ${c.crossbars} crossbars`
        : `'${c.name}' takes ${fmt(c.steady)} cycles per step (interval bound ${fmt(c.bounds!.intervalBound)})`,
  );
  const reason = `'${chosen.name}': ${fmt(chosen.steady)} cycles per step on the timing model (interval bound ${fmt(chosen.bounds!.intervalBound)}), ${chosen.crossbars} crossbars; ${why.join("; ")}`;
  return { chosen, candidates, reason };
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** The `--explain` lines of a mapping choice: every candidate and why the chosen one won. */
export function formatMappingChoice(choice: MappingChoice): string {
  const lines = ["mapping chosen by the cost model (docs/SCHEDULE.md):", "  mapping          crossbars  steady cy/step  interval bound"];
  for (const c of choice.candidates)
    lines.push(
      c.result === null
        ? `  ${c.name.padEnd(16)} ${"-".padStart(9)}  does not compile: ${c.error}`
        : `  ${c.name.padEnd(16)} ${String(c.crossbars).padStart(9)}  ${fmt(c.steady).padStart(14)}  ${fmt(c.bounds!.intervalBound).padStart(14)}${c === choice.chosen ? "  <- chosen" : ""}`,
    );
  lines.push(`  using ${choice.reason}.`);
  return `${lines.join("\n")}\n`;
}
