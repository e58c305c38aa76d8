// Side-by-side comparison of one model on several targets: what a user asks when choosing
// hardware ("how many crossbars, how well packed, how fast, how much energy per step").
// Every figure comes from the real pipeline: the compile summary (src/summary.ts) and one
// interpreter run (src/interp/run.ts), never from estimates.

import { UserError } from "./common/errors.js";
import { runProgram } from "./interp/run.js";
import type { Model } from "./ir/types.js";
import { compile } from "./pipeline.js";
import { summarize } from "./summary.js";
import type { TargetWithPlugin } from "./target/plugin.js";
import type { Target } from "./target/types.js";

/** A batch for the comparison run, laid out [B, T, d_in] like imssa-run's input. */
export interface ComparisonInput {
  data: Float32Array;
  shape: [number, number, number];
  /** Named in error messages about the input's shape. */
  file?: string;
}

/** The steps of the default run: enough that steady-state steps dominate the average. */
export const DEFAULT_COMPARE_STEPS = 16;

interface RowBase {
  target: string;
  crossbar: { rows: number; cols: number };
  available: number | "unlimited";
}

export interface FittingRow extends RowBase {
  fits: true;
  crossbarsUsed: number;
  /** Per-matrix lower bound (CompileSummary.crossbarsLowerBound). */
  lowerBound: number;
  tilesUsed: number;
  /** Fraction of the used crossbars' cells that hold weights. */
  cellUtilization: number;
  /** Steady-state step (steps 2..T averaged; step 1 when T = 1). */
  cyclesPerStep: number;
  secondsPerStep: number;
  energyPerStepPj: number;
}

export interface MisfitRow extends RowBase {
  fits: false;
  /** The compiler's resource error, verbatim. */
  error: string;
}

export type ComparisonRow = FittingRow | MisfitRow;

/** Zeros [1, T, d_in]: timing and event counts do not depend on the values, only on the program. */
function zeroInput(model: Model): ComparisonInput {
  const d = model.inputs[0]?.size ?? 0;
  return { data: new Float32Array(DEFAULT_COMPARE_STEPS * d), shape: [1, DEFAULT_COMPARE_STEPS, d], file: "<zero input>" };
}

/**
 * Compiles `model` for each target and runs it once on `input` (default: one zero sequence
 * of 16 steps). A target the model does not fit yields a row with the resource error; any
 * other error (bad model, bad input) is the caller's problem and propagates.
 */
export function compareTargets(model: Model, targets: Array<Target | TargetWithPlugin>, input?: ComparisonInput): ComparisonRow[] {
  const batch = input ?? zeroInput(model);
  return targets.map((entry) => {
    // Plugin targets come with their loaded plugin (src/target/plugin.ts loadTargetWithPlugin).
    const { target, plugin } = "target" in entry ? entry : { target: entry, plugin: null };
    const base: RowBase = {
      target: target.name,
      crossbar: { rows: target.crossbar.rows, cols: target.crossbar.cols },
      available: target.tiles.count === "unlimited" ? "unlimited" : target.tiles.count * target.tiles.crossbarsPerTile,
    };
    let compiled;
    try {
      compiled = compile(model, target, { plugin });
    } catch (e) {
      if (e instanceof UserError && e.kind === "resource") return { ...base, fits: false, error: e.diagnostics.map((d) => d.message).join("; ") };
      throw e;
    }
    const s = summarize(compiled, target);
    const run = runProgram(compiled.program, batch.data, batch.shape, { inputFile: batch.file, file: `<${model.name} on ${target.name}>`, plugin });
    const steady = run.report.sections.stepSteady ?? run.report.sections.stepFirst;
    return {
      ...base,
      fits: true,
      crossbarsUsed: s.crossbarsUsed,
      lowerBound: s.crossbarsLowerBound,
      available: s.crossbarsAvailable,
      tilesUsed: s.tilesUsed,
      cellUtilization: s.cellUtilization,
      cyclesPerStep: steady.cycles,
      secondsPerStep: run.report.latency.stepSeconds,
      energyPerStepPj: run.report.energyPj.perStep.total,
    };
  });
}

/** Column headers of formatComparison, in order. */
export const COMPARISON_COLUMNS = ["target", "crossbar", "xbars used", "lower bound", "available", "tiles", "utilization", "cycles/step", "time/step", "energy/step"] as const;

export const formatUtilization = (x: number): string => `${(100 * x).toFixed(1)}%`;
export const formatCycles = (c: number): string => (Number.isInteger(c) ? String(c) : c.toFixed(1));
export const formatEnergyPj = (pj: number): string => (pj >= 1000 ? `${(pj / 1000).toFixed(2)} nJ` : `${pj.toFixed(1)} pJ`);
export const formatSeconds = (s: number): string => (s >= 1e-6 ? `${(s * 1e6).toFixed(2)} us` : `${(s * 1e9).toFixed(1)} ns`);

function cells(r: ComparisonRow): string[] {
  const head = [r.target, `${r.crossbar.rows}x${r.crossbar.cols}`];
  if (!r.fits) return head;
  return [
    ...head,
    String(r.crossbarsUsed),
    String(r.lowerBound),
    String(r.available),
    String(r.tilesUsed),
    formatUtilization(r.cellUtilization),
    formatCycles(r.cyclesPerStep),
    formatSeconds(r.secondsPerStep),
    formatEnergyPj(r.energyPerStepPj),
  ];
}

/** One line per target; a target the model does not fit gets "does not fit" and the reason. */
export function formatComparison(rows: ComparisonRow[]): string {
  const table = [Array.from(COMPARISON_COLUMNS), ...rows.map(cells)];
  const widths = COMPARISON_COLUMNS.map((_, i) => Math.max(...table.filter((r) => r.length > i).map((r) => r[i]!.length)));
  // Text left-aligned in the first two columns, numbers right-aligned so magnitudes line up.
  const pad = (v: string, i: number): string => (i < 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!));
  const lines = table.map((r, k) => {
    const row = rows[k - 1];
    const text = r.map(pad).join("  ");
    return row && !row.fits ? `${text}  does not fit: ${row.error}` : text;
  });
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return `${lines.map((l) => l.trimEnd()).join("\n")}\n`;
}
