// The compile summary: what a user asks first ("does it fit, how well is it packed, how much
// code"). Computed from the plan and the emitted program, never from estimates.

import { summarizeProgram, type ProgramSummary } from "./backend/asm.js";
import { SECTION_NAMES, type SectionName } from "./backend/program.js";
import { matrixLowerBound } from "./passes/tile.js";
import { SLICED_MATMULS_META, SLICES_META } from "./passes/slice-weights.js";
import type { CompileResult } from "./pipeline.js";
import type { Target } from "./target/types.js";
import { totalCrossbars } from "./target/types.js";

export interface LayerUsage {
  layer: string;
  crossbars: number;
  lowerBound: number;
}

export interface CompileSummary {
  model: string;
  target: string;
  crossbarsUsed: number;
  /** Sum over matrices of max(ceil(rows/R), ceil(cols/C), ceil(nonzeros/(R*C))): the bound when no crossbar is shared by two matrices. */
  crossbarsLowerBound: number;
  /** The same formula over all matrices together: the bound when small matrices share crossbars. */
  crossbarsSharedLowerBound: number;
  crossbarsAvailable: number | "unlimited";
  tilesUsed: number;
  /** Cells covered by pieces / cells of the used crossbars. */
  cellUtilization: number;
  /** Nonzero weights / cells of the used crossbars. */
  weightDensity: number;
  instructions: Record<SectionName, number>;
  instructionsByOpcode: ProgramSummary["byOpcode"];
  layers: LayerUsage[];
  /** Weight slicing (src/passes/slice-weights.ts): slices per weight, matmuls sliced, matmuls on crossbars. */
  weightSlices?: { slices: number; sliced: number; matmuls: number };
}

/**
 * What summarize reads of a compile result. The quantized IR is optional: a summary rebuilt
 * from a program file (src/report/layout.ts) has none, and then says nothing of slicing.
 */
export type SummarySource = Pick<CompileResult, "plan" | "program"> & { model: { name: string }; quantized?: CompileResult["quantized"] };

export function summarize(result: SummarySource, target: Target): CompileSummary {
  const { plan, program } = result;
  const cellsPerXbar = plan.rows * plan.cols;
  let covered = 0;
  for (const xb of plan.crossbars) for (const p of xb.pieces) covered += p.inRows.length * p.outCols.length;
  let nonzeros = 0;
  let nonzeroRows = 0;
  let nonzeroCols = 0;
  for (const m of plan.perMatrix) {
    nonzeros += m.nonzeros;
    nonzeroRows += m.nonzeroRows;
    nonzeroCols += m.nonzeroCols;
  }

  const code = summarizeProgram(program);

  const layerMap = new Map<string, LayerUsage>();
  for (const m of plan.perMatrix) {
    const key = m.layer ?? m.op;
    const u = layerMap.get(key) ?? { layer: key, crossbars: 0, lowerBound: 0 };
    u.crossbars += m.used;
    u.lowerBound += m.lowerBound;
    layerMap.set(key, u);
  }

  const available = totalCrossbars(target);
  const used = plan.crossbars.length;
  return {
    model: result.model.name,
    target: target.name,
    crossbarsUsed: used,
    crossbarsLowerBound: plan.lowerBound,
    crossbarsSharedLowerBound: matrixLowerBound(nonzeroRows, nonzeroCols, nonzeros, plan.rows, plan.cols),
    crossbarsAvailable: Number.isFinite(available) ? available : "unlimited",
    tilesUsed: code.tilesUsed,
    cellUtilization: used === 0 ? 0 : covered / (used * cellsPerXbar),
    weightDensity: used === 0 ? 0 : nonzeros / (used * cellsPerXbar),
    instructions: code.instructions,
    instructionsByOpcode: code.byOpcode,
    layers: [...layerMap.values()],
    ...(result.quantized ? sliceSummary(result.quantized) : {}),
  };
}

function sliceSummary(quantized: CompileResult["quantized"]): Pick<CompileSummary, "weightSlices"> {
  const meta = quantized.meta ?? {};
  const slices = meta[SLICES_META];
  const sliced = meta[SLICED_MATMULS_META];
  if (typeof slices !== "number" || typeof sliced !== "number") return {};
  // Matmuls of the unsliced model: the sliced IR has one matmul per original one.
  const matmuls = [...quantized.sections.step, ...quantized.sections.final].filter((o) => o.op === "matmul" && o.quant !== undefined && o.quant.maxLevel > 0).length;
  return { weightSlices: { slices, sliced, matmuls } };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

export function formatSummary(s: CompileSummary): string {
  const lines: string[] = [];
  const ratio = s.crossbarsLowerBound > 0 ? (s.crossbarsUsed / s.crossbarsLowerBound).toFixed(3) : "n/a";
  lines.push(`imssa-compile: ${s.model} -> ${s.target}`);
  lines.push(`  crossbars     ${s.crossbarsUsed} used, ${s.crossbarsAvailable} available`);
  lines.push(`  lower bound   ${s.crossbarsLowerBound} summed per matrix (used x${ratio}), ${s.crossbarsSharedLowerBound} if matrices share crossbars`);
  lines.push(`  tiles used    ${s.tilesUsed}`);
  lines.push(`  utilization   ${pct(s.cellUtilization)} of cells in used crossbars hold weights (${pct(s.weightDensity)} nonzero)`);
  if (s.weightSlices)
    lines.push(`  weights       up to ${s.weightSlices.slices} slices per weight: ${s.weightSlices.sliced} of ${s.weightSlices.matmuls} matmuls sliced (the others are on one level grid already)`);
  for (const sec of SECTION_NAMES) {
    const ops = Object.entries(s.instructionsByOpcode[sec] as Record<string, number>)
      .sort((a, b) => b[1] - a[1])
      .map(([op, n]) => `${op} ${n}`)
      .join(", ");
    lines.push(`  ${sec.padEnd(6)}        ${s.instructions[sec]} instructions${ops ? ` (${ops})` : ""}`);
  }
  lines.push("  per layer     crossbars holding its weights, shared ones counted per layer (lower bound)");
  for (const l of s.layers) lines.push(`    ${l.layer.padEnd(28)} ${l.crossbars} (${l.lowerBound})`);
  return `${lines.join("\n")}\n`;
}
