import { describe, expect, test } from "@jest/globals";
import { existsSync } from "node:fs";
import { UserError } from "../src/common/errors.js";
import type { CrossbarPlan } from "../src/ir/plan.js";
import type { BlockMatrix, MatMulOp, Model } from "../src/ir/types.js";
import { checkModel } from "../src/ir/validate.js";
import { runPasses } from "../src/passes/index.js";
import { lower } from "../src/passes/lower.js";
import { packItems } from "../src/passes/pack.js";
import { splitMatrix } from "../src/passes/split.js";
import { matrixLowerBound, tile } from "../src/passes/tile.js";
import { loadTarget } from "../src/target/load.js";
import type { Target } from "../src/target/types.js";
import { digitsSizeModel, makeRng, randomModel, randomS4DOp, singleS4DModel, type Rng } from "./helpers/random-models.js";

const xbar = loadTarget("xbar64");
const ideal = loadTarget("ideal");

// ---- plan invariants ------------------------------------------------------------------

function nonzeroMap(w: BlockMatrix): Map<number, number> {
  const nz = new Map<number, number>();
  for (const b of w.blocks) {
    for (let r = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++) {
        const v = b.data[r * b.cols + c]!;
        if (v !== 0) nz.set((b.row + r) * w.cols + b.col + c, v);
      }
    }
  }
  return nz;
}

/**
 * Every nonzero in exactly one piece (so summing the pieces' cells rebuilds W), pieces inside
 * the crossbar, disjoint crossbar rows and columns per crossbar, no empty crossbar, piece, row
 * or column, and bounds/usage bookkeeping consistent.
 */
function checkPlan(model: Model, plan: CrossbarPlan, target: Target): void {
  const R = target.crossbar.rows;
  const C = target.crossbar.cols;
  expect(plan.rows).toBe(R);
  expect(plan.cols).toBe(C);
  const ops = new Map<string, MatMulOp>();
  for (const section of ["step", "final"] as const) for (const op of model.sections[section]) if (op.op === "matmul") ops.set(`${section}:${op.out}`, op);
  const nz = new Map([...ops].map(([k, op]) => [k, nonzeroMap(op.weight)]));
  const rebuilt = new Map([...ops].map(([k]) => [k, new Map<number, number>()]));
  const used = new Map([...ops].map(([k]) => [k, new Set<number>()]));
  const problems: string[] = [];
  plan.crossbars.forEach((xb, idx) => {
    if (xb.id !== idx) problems.push(`crossbar ${idx} has id ${xb.id}`);
    if (xb.pieces.length === 0) problems.push(`crossbar ${xb.id} is empty`);
    const rowsUsed = new Uint8Array(R);
    const colsUsed = new Uint8Array(C);
    for (const p of xb.pieces) {
      const key = `${p.section}:${p.op}`;
      const op = ops.get(key);
      if (!op) {
        problems.push(`piece of unknown matmul ${key}`);
        continue;
      }
      used.get(key)!.add(xb.id);
      if (p.inRows.length === 0 || p.outCols.length === 0) problems.push(`empty piece of ${key}`);
      if (p.rowStart < 0 || p.colStart < 0 || p.rowStart + p.inRows.length > R || p.colStart + p.outCols.length > C) problems.push(`piece of ${key} outside crossbar ${xb.id}`);
      for (let a = 0; a < p.inRows.length; a++) {
        if (rowsUsed[p.rowStart + a]) problems.push(`crossbar ${xb.id} row ${p.rowStart + a} used twice`);
        rowsUsed[p.rowStart + a] = 1;
      }
      for (let b = 0; b < p.outCols.length; b++) {
        if (colsUsed[p.colStart + b]) problems.push(`crossbar ${xb.id} col ${p.colStart + b} used twice`);
        colsUsed[p.colStart + b] = 1;
      }
      if (new Set(p.inRows).size !== p.inRows.length || new Set(p.outCols).size !== p.outCols.length) problems.push(`piece of ${key} repeats a row or column`);
      const m = nz.get(key)!;
      const colHit = new Uint8Array(p.outCols.length);
      for (const i of p.inRows) {
        let rowHit = false;
        p.outCols.forEach((j, b) => {
          const v = m.get(i * op.weight.cols + j);
          if (v === undefined) return;
          rowHit = true;
          colHit[b] = 1;
          const r = rebuilt.get(key)!;
          const cell = i * op.weight.cols + j;
          if (r.has(cell)) problems.push(`${key} W[${i}][${j}] in two pieces`);
          r.set(cell, (r.get(cell) ?? 0) + v);
        });
        if (!rowHit) problems.push(`${key} row ${i} has no nonzero in its piece`);
      }
      if (colHit.some((h) => !h)) problems.push(`${key}: a column of a piece has no nonzero in it`);
    }
  });
  for (const [key, m] of nz) {
    const r = rebuilt.get(key)!;
    if (r.size !== m.size) problems.push(`${key}: ${m.size - r.size} nonzeros in no piece`);
    for (const [cell, v] of m) if (r.get(cell) !== v) problems.push(`${key}: cell ${cell} rebuilt as ${r.get(cell)}, expected ${v}`);
  }
  expect(problems.slice(0, 10)).toEqual([]);
  let sum = 0;
  for (const mb of plan.perMatrix) {
    const key = [...ops.keys()].find((k) => k.endsWith(`:${mb.op}`))!;
    expect(mb.used).toBe(used.get(key)!.size);
    expect(mb.nonzeros).toBe(nz.get(key)!.size);
    expect(mb.lowerBound).toBe(Math.max(Math.ceil(mb.nonzeroRows / R), Math.ceil(mb.nonzeroCols / C), Math.ceil(mb.nonzeros / (R * C))));
    sum += mb.lowerBound;
  }
  expect(plan.lowerBound).toBe(sum);
  expect(plan.crossbars.length).toBeGreaterThanOrEqual(Math.max(...plan.perMatrix.map((m) => m.lowerBound), 0));
}

// ---- models ---------------------------------------------------------------------------


/** A lowered model with one matmul holding the given matrix. */
function matrixModel(weight: BlockMatrix, name = "m"): Model {
  return {
    irVersion: 1,
    name,
    level: "lowered",
    inputs: [{ name: "x", size: weight.rows }],
    outputs: [{ name: "y", value: "y", section: "step" }],
    state: [],
    sections: { step: [{ op: "matmul", out: "y", layer: name, xs: ["x"], weight, origin: "dense" }], final: [] },
  };
}

function denseMatrix(rng: Rng, rows: number, cols: number, density = 1): BlockMatrix {
  const data = Array.from({ length: rows * cols }, () => (rng.next() < density ? rng.normal() : 0));
  return { rows, cols, blocks: [{ row: 0, col: 0, rows, cols, data }] };
}

/** Random disjoint blocks of random sizes (some larger than a crossbar), random sparsity. */
function randomBlockMatrix(rng: Rng): BlockMatrix {
  const blocks: BlockMatrix["blocks"] = [];
  let row = 0;
  let col = 0;
  const n = rng.int(1, 12);
  for (let k = 0; k < n; k++) {
    const rows = rng.pick([1, 2, 3, 7, 30, 64, 65, 100, 150]);
    const cols = rng.pick([1, 2, 5, 31, 64, 66, 90, 140]);
    const density = rng.pick([1, 0.5, 0.05]);
    blocks.push({ row, col, rows, cols, data: Array.from({ length: rows * cols }, () => (rng.next() < density ? rng.normal() : 0)) });
    // Overlapping row ranges with disjoint columns (and vice versa) connect blocks.
    if (rng.next() < 0.5) row += rows;
    else col += cols;
    if (rng.next() < 0.3) {
      row += rows;
      col += cols;
    }
  }
  const rowsTotal = Math.max(...blocks.map((b) => b.row + b.rows)) + rng.int(0, 5);
  const colsTotal = Math.max(...blocks.map((b) => b.col + b.cols)) + rng.int(0, 5);
  return { rows: rowsTotal, cols: colsTotal, blocks };
}

// ---- tests ----------------------------------------------------------------------------

describe("tile", () => {
  test("digits-size model packs within 1.05x of the lower bound (float and quantized weights)", () => {
    const model = digitsSizeModel(1);
    const { lowered, quantized, plan } = runPasses(model, xbar, null);
    checkModel(quantized, "digits quantized");
    checkPlan(quantized, plan, xbar);
    expect(plan.crossbars.length).toBeLessThanOrEqual(1.05 * plan.lowerBound);
    // Float weights keep the full S4D structure: per S4D layer the bound is 65 (4160 nonzero
    // rows / 64), per projection 2, encoder 1, decoder 1.
    const floatPlan = tile(lowered, xbar);
    checkPlan(lowered, floatPlan, xbar);
    expect(floatPlan.lowerBound).toBe(2 * 65 + 2 * 2 + 1 + 1);
    expect(floatPlan.crossbars.length).toBeLessThanOrEqual(1.05 * floatPlan.lowerBound);
    const s4d = floatPlan.perMatrix.filter((m) => m.op.endsWith(".s4d.out.mm"));
    // 8M + 1 = 257 entries per channel, less 3 structural zeros: S4D-Lin's mode 0 has
    // Im A = 0, so Im dA (twice in its rotation block) and Im dB (B = 1) vanish.
    expect(s4d.map((m) => [m.nonzeroRows, m.nonzeroCols, m.nonzeros])).toEqual([
      [4160, 4160, 64 * 254],
      [4160, 4160, 64 * 254],
    ]);
    process.stdout.write(
      `digits (xbar64): float weights ${floatPlan.crossbars.length} crossbars / bound ${floatPlan.lowerBound}; ` +
        `quantized ${plan.crossbars.length} / bound ${plan.lowerBound}\n`,
    );
  });

  test("S4D remainders share crossbars: per channel one full piece plus tiny leftovers", () => {
    const lowered = lower(digitsSizeModel(2, 64, 32, 1));
    const mm = lowered.sections.step.find((o): o is MatMulOp => o.op === "matmul" && o.origin === "s4d")!;
    const { pieces } = splitMatrix(mm.weight, 64, 64);
    const full = pieces.filter((p) => p.inRows.length === 64 && p.outCols.length === 64);
    expect(full).toHaveLength(64);
    const rest = pieces.filter((p) => p.inRows.length < 64 || p.outCols.length < 64);
    // Leftover per channel: 3 rows + 4 columns in total (u and y appear twice, D once).
    expect(rest.reduce((n, p) => n + p.inRows.length, 0)).toBe(64 * 3);
    expect(rest.reduce((n, p) => n + p.outCols.length, 0)).toBe(64 * 4);
    const plan = tile(lowered, xbar);
    checkPlan(lowered, plan, xbar);
    const s4d = plan.perMatrix.find((m) => m.op === mm.out)!;
    expect(s4d.used).toBe(64 + 4); // the 448 leftover rows+cols fill 4 crossbars exactly
  });

  test("random block matrices: invariants hold on 64x64 and on a small odd crossbar", () => {
    const rng = makeRng(21);
    const small: Target = { ...ideal, crossbar: { ...ideal.crossbar, rows: 16, cols: 12 } };
    for (let k = 0; k < 25; k++) {
      const w = randomBlockMatrix(rng);
      const model = matrixModel(w, `rand${k}`);
      for (const t of [xbar, small]) {
        const plan = tile(model, { ...t, tiles: { ...t.tiles, count: "unlimited" } });
        checkPlan(model, plan, t);
      }
    }
  });

  test("dense matrices are cut on the crossbar grid", () => {
    const rng = makeRng(22);
    const plan = tile(matrixModel(denseMatrix(rng, 128, 192)), xbar);
    checkPlan(matrixModel(denseMatrix(makeRng(22), 128, 192)), plan, xbar);
    expect(plan.crossbars).toHaveLength(6);
    expect(plan.lowerBound).toBe(6);
    for (const xb of plan.crossbars) expect(xb.pieces.map((p) => [p.inRows.length, p.outCols.length])).toEqual([[64, 64]]);
  });

  test("all-zero rows, columns and matrices produce no pieces", () => {
    const rng = makeRng(23);
    const w = denseMatrix(rng, 10, 10);
    w.blocks[0]!.data = w.blocks[0]!.data.map((v, i) => (Math.floor(i / 10) === 3 || i % 10 === 7 ? 0 : v));
    const plan = tile(matrixModel(w), xbar);
    checkPlan(matrixModel(w), plan, xbar);
    expect(plan.crossbars[0]!.pieces[0]!.inRows).toHaveLength(9);
    expect(plan.crossbars[0]!.pieces[0]!.outCols).toHaveLength(9);
    const zero = matrixModel({ rows: 5, cols: 5, blocks: [{ row: 0, col: 0, rows: 5, cols: 5, data: new Array(25).fill(0) }] });
    const empty = tile(zero, xbar);
    expect(empty.crossbars).toEqual([]);
    expect(empty.perMatrix[0]).toMatchObject({ nonzeros: 0, lowerBound: 0, used: 0 });
  });

  test("random networks on both targets, lowered and quantized", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const model = randomModel(makeRng(seed), { hidden: 20 + 10 * seed, modes: 4 * seed, outputs: "both" });
      const { lowered, quantized } = runPasses(model, ideal, null);
      checkPlan(lowered, tile(lowered, ideal), ideal);
      checkPlan(quantized, tile(quantized, xbar), xbar);
    }
  });

  test("S4D with 64 modes (129x129 per channel) still satisfies the invariants", () => {
    const lowered = lower(digitsSizeModel(3, 8, 64, 1));
    const plan = tile(lowered, xbar);
    checkPlan(lowered, plan, xbar);
  });

  test("a model larger than the chip is a resource error naming the biggest layers", () => {
    const model = digitsSizeModel(4, 128, 32, 2);
    const lowered = lower(model);
    let err: unknown;
    try {
      tile(lowered, xbar);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    const e = err as UserError;
    expect(e.kind).toBe("resource");
    expect(e.message).toMatch(/needs (\d+) crossbars.*has 256 \(32 tiles x 8\)/);
    const needed = Number(/needs (\d+)/.exec(e.message)![1]);
    expect(needed).toBe(tile(lowered, ideal).crossbars.length);
    expect(e.message).toMatch(/largest layers: layers\.\d\.s4d \(\d+\), layers\.\d\.s4d \(\d+\), layers\.\d\.proj \(\d+\)/);
  });

  test("lower bound formula", () => {
    expect(matrixLowerBound(65, 65, 257, 64, 64)).toBe(2);
    expect(matrixLowerBound(1, 64, 64, 64, 64)).toBe(1);
    expect(matrixLowerBound(100, 100, 10000, 64, 64)).toBe(3);
    expect(matrixLowerBound(0, 0, 0, 64, 64)).toBe(0);
  });
});

describe("pack", () => {
  test("row-heavy and column-heavy leftovers are balanced onto the minimum number of bins", () => {
    const items = [
      ...Array.from({ length: 64 }, (_, k) => ({ rows: 1, cols: 3, ref: `w${k}` })),
      ...Array.from({ length: 64 }, (_, k) => ({ rows: 2, cols: 1, ref: `t${k}` })),
    ];
    const bins = packItems(items, 64, 64);
    expect(bins).toHaveLength(4); // 256 columns / 64
    expect(bins.flat()).toHaveLength(128);
  });

  test("a tall and a wide large piece share a crossbar", () => {
    const bins = packItems(
      [
        { rows: 40, cols: 20, ref: "tall" },
        { rows: 20, cols: 40, ref: "wide" },
      ],
      64,
      64,
    );
    expect(bins).toHaveLength(1);
  });
});

describe("scale", () => {
  test("a 4M-weight dense layer and a 1024-channel S4D layer tile quickly", () => {
    const rng = makeRng(30);
    // Generated without per-element Math calls, which are slow inside jest's vm context.
    const n = 2048;
    const data: number[] = [];
    for (let k = 0; k < n * n; k++) data.push(((k * 2654435761) % 1000) / 500 - 1 || 0.5);
    const big: BlockMatrix = { rows: n, cols: n, blocks: [{ row: 0, col: 0, rows: n, cols: n, data }] };
    expect(rng.next()).toBeLessThan(1);
    const t0 = performance.now();
    const plan = tile(matrixModel(big), { ...ideal });
    const t1 = performance.now();
    expect(plan.crossbars).toHaveLength(32 * 32);
    const s4d = lower(singleS4DModel(randomS4DOp(rng, { channels: 1024, modes: 32, discretization: "zoh", withB: true })));
    const t2 = performance.now();
    const plan2 = tile(s4d, ideal);
    const t3 = performance.now();
    const mm = plan2.perMatrix[0]!;
    expect(mm.used).toBeLessThanOrEqual(Math.ceil(1.05 * mm.lowerBound));
    process.stdout.write(`tile: 2048x2048 dense ${(t1 - t0).toFixed(0)} ms; S4D H=1024 M=32 ${(t3 - t2).toFixed(0)} ms (${mm.used} crossbars, bound ${mm.lowerBound})\n`);
    expect(t1 - t0).toBeLessThan(10000);
    expect(t3 - t2).toBeLessThan(10000);
  });
});

const digitsDsl = new URL("../examples/digits.s4d", import.meta.url);
(existsSync(digitsDsl) ? test : test.skip)("examples/digits.s4d packs within 1.05x of the lower bound", async () => {
  const { compileDslFile } = await import("../src/frontend/dsl/index.js");
  const model = compileDslFile(digitsDsl.pathname);
  const { lowered, quantized, plan } = runPasses(model, xbar, null);
  checkPlan(quantized, plan, xbar);
  const floatPlan = tile(lowered, xbar);
  checkPlan(lowered, floatPlan, xbar);
  process.stdout.write(
    `examples/digits.s4d (xbar64): float weights ${floatPlan.crossbars.length} crossbars / bound ${floatPlan.lowerBound}; ` +
      `quantized ${plan.crossbars.length} / bound ${plan.lowerBound}\n`,
  );
  expect(floatPlan.crossbars.length).toBeLessThanOrEqual(1.05 * floatPlan.lowerBound);
  expect(plan.crossbars.length).toBeLessThanOrEqual(1.05 * plan.lowerBound);
});
