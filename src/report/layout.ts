// The crossbar plan and the compile summary, rebuilt from a program file alone. The emitter
// records the plan's pieces on every crossbar image and the plan's bounds in the program
// (CrossbarImage.pieces, Program.bounds), so the report can show exactly the numbers
// imssa-compile printed: it runs the same summarize() on the same plan.

import type { Program } from "../backend/program.js";
import { fail } from "../common/errors.js";
import type { CrossbarPlan } from "../ir/plan.js";
import { summarize, type CompileSummary } from "../summary.js";
import type { Target } from "../target/types.js";

/** The plan the program was emitted from; a UserError for programs of compilers that did not record it. */
export function planOf(p: Program, target: Target, file: string): CrossbarPlan {
  const bounds = p.bounds;
  if (bounds === undefined || p.crossbars.some((x) => x.pieces === undefined))
    fail("unsupported", "the program does not record its crossbar layout (it was compiled by an older imssa); compile the model again to report on it", { file });
  return {
    rows: target.crossbar.rows,
    cols: target.crossbar.cols,
    crossbars: p.crossbars.map((x) => ({ id: x.id, pieces: x.pieces!.map(({ op, section, rowStart, colStart, inRows, outCols }) => ({ op, section, rowStart, colStart, inRows, outCols })) })),
    lowerBound: bounds.lowerBound,
    perMatrix: bounds.perMatrix,
  };
}

/**
 * summarize() needs the model's name, the plan and the program of a compile result; the IR
 * stages are not in a program file, so they are left out here (and with them the line on
 * weight slicing, which only the quantized IR records).
 */
export function compileSummaryOf(p: Program, target: Target, file: string): CompileSummary {
  return summarize({ model: { name: p.modelName }, plan: planOf(p, target, file), program: p }, target);
}
