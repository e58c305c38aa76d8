// compareTargets / formatComparison: the side-by-side table of one model on several targets
// reports exactly what the compile summary and the interpreter report say.

import { describe, expect, test } from "@jest/globals";
import { COMPARISON_COLUMNS, compareTargets, formatComparison, formatCycles, formatEnergyPj, formatUtilization, type ComparisonRow, type FittingRow } from "../src/compare.js";
import { runProgram } from "../src/interp/run.js";
import { compile, loadModel } from "../src/pipeline.js";
import { summarize } from "../src/summary.js";
import { loadTarget } from "../src/target/load.js";

const fitting = (r: ComparisonRow | undefined): FittingRow => {
  if (!r || !r.fits) throw new Error(`expected a fitting row, got ${JSON.stringify(r)}`);
  return r;
};

describe("digits on xbar64, xbar128, xbar256", () => {
  const model = loadModel("examples/digits.s4d");
  const targets = ["xbar64", "xbar128", "xbar256"].map(loadTarget);
  const rows = compareTargets(model, targets);
  const table = formatComparison(rows);

  test("one row per target, in order, with the summary's crossbar figures", () => {
    expect(rows.map((r) => r.target)).toEqual(["xbar64", "xbar128", "xbar256"]);
    targets.forEach((t, i) => {
      const s = summarize(compile(model, t), t);
      const r = fitting(rows[i]);
      expect(r.crossbarsUsed).toBe(s.crossbarsUsed);
      expect(r.lowerBound).toBe(s.crossbarsLowerBound);
      expect(r.available).toBe(s.crossbarsAvailable);
      expect(r.tilesUsed).toBe(s.tilesUsed);
      expect(r.cellUtilization).toBe(s.cellUtilization);
      expect(r.crossbar).toEqual({ rows: t.crossbar.rows, cols: t.crossbar.cols });
    });
    // Bigger crossbars: fewer of them.
    const used = rows.map((r) => fitting(r).crossbarsUsed);
    expect(used[0]).toBeGreaterThan(used[1]!);
    expect(used[1]).toBeGreaterThan(used[2]!);
  });

  test("cycles and energy per step are the interpreter's steady-state figures", () => {
    const t = targets[0]!;
    const c = compile(model, t);
    const d = model.inputs[0]!.size;
    const run = runProgram(c.program, new Float32Array(16 * d), [1, 16, d]);
    const r = fitting(rows[0]);
    expect(r.cyclesPerStep).toBe(run.report.sections.stepSteady!.cycles);
    expect(r.energyPerStepPj).toBe(run.report.energyPj.perStep.total);
    expect(r.secondsPerStep).toBeCloseTo(r.cyclesPerStep / t.clockHz, 15);
    for (const row of rows) {
      const f = fitting(row);
      expect(f.cyclesPerStep).toBeGreaterThan(0);
      expect(f.energyPerStepPj).toBeGreaterThan(0);
    }
  });

  test("the table has the documented columns and the rows' numbers", () => {
    const lines = table.trimEnd().split("\n");
    expect(lines).toHaveLength(2 + rows.length);
    const header = lines[0]!.split(/\s{2,}/);
    expect(header).toEqual([...COMPARISON_COLUMNS]);
    expect(lines[1]).toMatch(/^[- ]+$/);
    rows.forEach((row, i) => {
      const r = fitting(row);
      const cellsOf = lines[2 + i]!.trim().split(/\s{2,}/);
      expect(cellsOf).toHaveLength(COMPARISON_COLUMNS.length);
      const at = (col: (typeof COMPARISON_COLUMNS)[number]): string => cellsOf[COMPARISON_COLUMNS.indexOf(col)]!;
      expect(at("target")).toBe(r.target);
      expect(at("crossbar")).toBe(`${r.crossbar.rows}x${r.crossbar.cols}`);
      expect(Number(at("xbars used"))).toBe(r.crossbarsUsed);
      expect(Number(at("lower bound"))).toBe(r.lowerBound);
      expect(at("available")).toBe(String(r.available));
      expect(Number(at("tiles"))).toBe(r.tilesUsed);
      expect(at("utilization")).toBe(formatUtilization(r.cellUtilization));
      expect(at("cycles/step")).toBe(formatCycles(r.cyclesPerStep));
      expect(at("energy/step")).toBe(formatEnergyPj(r.energyPerStepPj));
    });
  });
});

describe("a model that does not fit", () => {
  test("gets a row with the resource error instead of failing the comparison", () => {
    const model = loadModel("examples/digits.s4d");
    const rows = compareTargets(model, [loadTarget("./examples/targets/xbar32-adc4.json"), loadTarget("ideal")]);
    const small = rows[0]!;
    expect(small.fits).toBe(false);
    if (small.fits) return;
    expect(small.error).toMatch(/^model "digits" needs \d+ crossbars of 32x32, but target xbar32-adc4 has 16/);
    expect(small.available).toBe(16);
    expect(rows[1]!.fits).toBe(true);
    const line = formatComparison(rows).split("\n")[2]!;
    expect(line).toMatch(/^xbar32-adc4\s+32x32\s+does not fit: model "digits" needs/);
  });

  test("given inputs are used for the run (their length sets the steps)", () => {
    const model = loadModel("examples/tiny.s4d");
    const t = loadTarget("ideal");
    const [one] = compareTargets(model, [t], { data: new Float32Array(1), shape: [1, 1, 1] });
    // With a single step there is no steady state: the per-step figures are the first step's.
    const run = runProgram(compile(model, t).program, new Float32Array(1), [1, 1, 1]);
    expect(run.report.sections.stepSteady).toBeNull();
    expect(fitting(one).cyclesPerStep).toBe(run.report.sections.stepFirst.cycles);
    expect(fitting(one).energyPerStepPj).toBe(run.report.sections.stepFirst.energyPj.total);
    const bad = (): unknown => compareTargets(model, [t], { data: new Float32Array(4), shape: [1, 2, 2], file: "x.npy" });
    expect(bad).toThrow(/x\.npy: input has 2 features per step but the program's input "u" has 1/);
  });
});
