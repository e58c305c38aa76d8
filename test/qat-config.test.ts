// imssa-compile --emit qat-config: the configuration must state exactly what the compiled
// program does (every number is checked against the quantized IR and the crossbar images),
// validate against ir/qat.schema.json, and be written by the CLI.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MatMulOp } from "../src/ir/types.js";
import { spectralRadius2 } from "../src/passes/quant-s4d.js";
import { compile, COMPILER_VERSION, loadModel, type CompileResult } from "../src/pipeline.js";
import { buildQatConfig, checkQatConfig, qatConfigToJson, readQatConfig, type QatConfig } from "../src/qat/index.js";
import { loadTarget } from "../src/target/load.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "imssa-qat-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function build(example: string, targetName = "xbar64"): { result: CompileResult; config: QatConfig } {
  const target = loadTarget(targetName);
  // The direct recurrence form: these checks spell out its repair rule (the residual form's: test/residual.test.ts).
  const result = compile(loadModel(`examples/${example}.s4d`), target, { recurrence: "direct" });
  return { result, config: buildQatConfig(result, target, { source: `examples/${example}.s4d`, compilerVersion: COMPILER_VERSION }) };
}

function matmuls(result: CompileResult): MatMulOp[] {
  return [...result.quantized.sections.step, ...result.quantized.sections.final].filter((o): o is MatMulOp => o.op === "matmul");
}

/** Independent recomputation of the levels digest: nonzero (row, col, level) int32 LE, row-major. */
function digest(op: MatMulOp): { n: number; sha: string } {
  const t: [number, number, number][] = [];
  for (const b of op.weight.blocks)
    for (let r = 0; r < b.rows; r++)
      for (let c = 0; c < b.cols; c++) {
        const w = b.data[r * b.cols + c]!;
        if (w !== 0) t.push([b.row + r, b.col + c, Math.round(w / op.quant!.colScale[b.col + c]!)]);
      }
  t.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const buf = Buffer.alloc(12 * t.length);
  t.forEach(([i, j, q], k) => {
    buf.writeInt32LE(i, 12 * k);
    buf.writeInt32LE(j, 12 * k + 4);
    buf.writeInt32LE(q, 12 * k + 8);
  });
  return { n: t.length, sha: createHash("sha256").update(buf).digest("hex") };
}

describe("the configuration of examples/digits.s4d on xbar64", () => {
  const { result, config } = build("digits");

  test("validates against the schema and survives the JSON round trip", () => {
    expect(checkQatConfig(config, "digits.qat.json")).toEqual([]);
    const text = qatConfigToJson(config);
    expect(text.startsWith('{\n  "format": "imssa-qat",\n  "version": 1,')).toBe(true);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(config)));
  });

  test("target, numerics and calibration", () => {
    expect(config.target).toMatchObject({ name: "xbar64", crossbar: { rows: 64, cols: 64 }, numerics: { kind: "quantized", deviceLevels: 16, dacBits: 8, adcBits: 8 } });
    expect(config.target.noise.read).toEqual({ sigma: 0.005 });
    expect(config.numerics).toMatchObject({ deviceMaxLevel: 15, dac: { bits: 8, maxCode: 127 }, adc: { bits: 8, maxCode: 127 }, digitalPrecision: "float32" });
    expect(config.numerics.rounding).toEqual({ signals: "half-away-from-zero", weights: "half-up" });
    expect(config.calibration).toMatchObject({ source: "default", statistic: "absmax", margin: 1.1, default: { sequences: 8, steps: 64 } });
    expect(config.model.params).toBe("init seed 0");
  });

  test("per matmul: the quantized IR's scales, ranges and levels, and the parameter names", () => {
    const ops = matmuls(result);
    expect(config.matmuls.map((m) => m.name)).toEqual(ops.map((o) => o.out));
    config.matmuls.forEach((m, k) => {
      const op = ops[k]!;
      expect(m.colScale).toEqual(op.quant!.colScale);
      expect(op.quant!.inRange.every((r) => r === m.inRange)).toBe(true);
      expect(m.outRange).toEqual(op.quant!.outRange);
      expect(m.maxLevel).toBe(15);
      const d = digest(op);
      expect([m.nonzeros, m.levelsSha256]).toEqual([d.n, d.sha]);
    });
    expect(config.matmuls.map((m) => [m.layer, m.origin, m.params?.kind])).toEqual([
      ["encoder", "dense", "dense"],
      ["s4_layers.0", "s4d", "s4d"],
      ["s4_layers.0.output_linear.0", "dense", "dense"],
      ["s4_layers.1", "s4d", "s4d"],
      ["s4_layers.1.output_linear.0", "dense", "dense"],
      ["decoder", "dense", "dense"],
    ]);
    expect(config.matmuls[2]!.params).toEqual({ kind: "dense", weight: "s4_layers.0.output_linear.0.weight", weightShape: [128, 64, 1], bias: "s4_layers.0.output_linear.0.bias" });
    expect(config.matmuls[1]!.params).toMatchObject({ kind: "s4d", logDt: "s4_layers.0.kernel.log_dt", C: "s4_layers.0.kernel.C", D: "s4_layers.0.D", timescale: "log_dt" });
    expect(config.matmuls[1]!.s4d).toMatchObject({ channels: 64, modes: 32, discretization: "zoh", stateLength: 4096, layout: "imssa.s4d-fused.v1", modesChecked: 2048 });
  });

  test("pieces: the crossbar images' values, every nonzero weight in exactly one piece, partial columns flagged", () => {
    const images = new Map(result.program.crossbars.map((c) => [c.id, c]));
    const ops = matmuls(result);
    config.matmuls.forEach((m, k) => {
      const op = ops[k]!;
      // (mismatches are collected and compared once: an expect per weight would dominate the run time)
      const bad: string[] = [];
      const perCol = new Map<number, number>();
      const colPieces = new Map<number, Set<number>[]>();
      m.pieces.forEach((p, pi) => {
        const img = images.get(p.crossbar)!;
        if (img.tile !== p.tile) bad.push(`piece ${pi}: tile`);
        if (p.dacRange !== Math.fround(m.inRange)) bad.push(`piece ${pi}: dacRange`);
        const rows = new Set(p.rows);
        p.cols.forEach((j, b) => {
          if (p.colScale[b] !== img.colScale[p.colStart + b]) bad.push(`piece ${pi} col ${j}: colScale`);
          if (p.outRange[b] !== img.outRange[p.colStart + b]) bad.push(`piece ${pi} col ${j}: outRange`);
          if (!p.partial[b] && p.outRange[b] !== Math.fround(op.quant!.outRange[j]!)) bad.push(`piece ${pi} col ${j}: calibrated outRange`);
          perCol.set(j, (perCol.get(j) ?? 0) + 1);
          colPieces.set(j, [...(colPieces.get(j) ?? []), rows]);
        });
      });
      let covered = 0;
      for (const blk of op.weight.blocks)
        for (let r = 0; r < blk.rows; r++)
          for (let c = 0; c < blk.cols; c++) {
            if (blk.data[r * blk.cols + c] === 0) continue;
            const holders = (colPieces.get(blk.col + c) ?? []).filter((rows) => rows.has(blk.row + r)).length;
            if (holders !== 1) bad.push(`W[${blk.row + r}][${blk.col + c}] is in ${holders} pieces`);
            covered++;
          }
      for (const p of m.pieces) p.cols.forEach((j, b) => p.partial[b] !== perCol.get(j)! > 1 && bad.push(`column ${j}: partial flag`));
      expect(bad).toEqual([]);
      expect(covered).toBe(m.nonzeros);
    });
    // the S4D channels (65 x 65) do not fit 64 x 64: partial sums, spread over tiles
    const s4d = config.matmuls[1]!;
    expect(s4d.pieces.some((p) => p.partial.some(Boolean))).toBe(true);
    expect(new Set(s4d.pieces.map((p) => p.tile)).size).toBeGreaterThan(1);
  });

  test("S4D repairs: recorded as the quantized IR holds them, each repaired mode stable", () => {
    const ops = matmuls(result);
    for (const k of [1, 3]) {
      const m = config.matmuls[k]!;
      const op = ops[k]!;
      expect(m.s4d!.repairs.length).toBeGreaterThan(100);
      const W = (i: number, j: number): number => {
        for (const b of op.weight.blocks) if (i >= b.row && i < b.row + b.rows && j >= b.col && j < b.col + b.cols) return b.data[(i - b.row) * b.cols + (j - b.col)]!;
        return 0;
      };
      for (const r of m.s4d!.repairs.slice(0, 50)) {
        const i = 2 * r.mode;
        const s = [m.colScale[i]!, m.colScale[i + 1]!, m.colScale[i]!, m.colScale[i + 1]!];
        const held = [W(i, i), W(i, i + 1), W(i + 1, i), W(i + 1, i + 1)];
        expect(held).toEqual(r.levels.map((q, e) => q * s[e]!));
        expect(spectralRadius2(held[0]!, held[1]!, held[2]!, held[3]!)).toBeLessThan(1);
        expect(r.levels).not.toEqual(r.roundedLevels);
      }
    }
  });

  test("the graph lists the lowered ops with matmul references and LayerNorm parameter names", () => {
    const step = config.graph.step;
    expect(step.map((o) => o.op)).toEqual(result.quantized.sections.step.map((o) => o.op));
    expect(step.filter((o) => o.op === "matmul").map((o) => o.matmul)).toEqual([0, 1, 2, 3, 4]);
    expect(step.find((o) => o.op === "affine")!.params).toEqual({ scale: "norms.0.weight", shift: "norms.0.bias" });
    expect(config.graph.final.map((o) => o.op)).toEqual(["state_read", "div_steps", "matmul"]);
  });
});

describe("other models and targets", () => {
  test("quantization annotations give the requested level limits", () => {
    const { config } = build("ternary");
    expect(config.matmuls.map((m) => [m.layer, m.maxLevel, m.requestedLevels ?? null])).toEqual([
      ["encoder", 15, null],
      ["s4_layers.0", 7, 15],
      ["s4_layers.0.output_linear.0", 1, 3],
      ["s4_layers.1", 7, 15],
      ["s4_layers.1.output_linear.0", 1, 3],
      ["decoder", 3, 7],
    ]);
    expect(checkQatConfig(config, "ternary")).toEqual([]);
  });

  test("a float target: no converters, float weights", () => {
    const { config } = build("tiny", "ideal");
    expect(config.numerics).toMatchObject({ kind: "float", deviceMaxLevel: null, dac: null, adc: null });
    expect(config.matmuls.every((m) => m.maxLevel === 0 && m.colScale.every((s) => s === 1))).toBe(true);
    expect(config.matmuls[1]!.s4d).toMatchObject({ discretization: "bilinear", repairs: [] });
    expect(config.model.outputs).toEqual([expect.objectContaining({ name: "y", section: "step" })]);
    expect(checkQatConfig(config, "tiny")).toEqual([]);
  });

  test("the schema rejects a configuration that is not one, with the place of the problem", () => {
    const { config } = build("tiny");
    const bad = JSON.parse(JSON.stringify(config)) as Record<string, unknown> & { matmuls: Record<string, unknown>[] };
    bad.version = 2;
    bad.matmuls[0]!.colScale = "wide";
    const problems = checkQatConfig(bad, "bad.json");
    expect(problems.map((d) => d.location?.path)).toEqual(expect.arrayContaining(["/version", "/matmuls/0/colScale"]));
    const file = join(dir, "bad.qat.json");
    writeFileSync(file, JSON.stringify(bad, null, 2));
    expect(() => readQatConfig(file)).toThrow(/bad\.qat\.json:\d+:\d+/);
  });
});

describe("imssa-compile --emit qat-config", () => {
  function cli(...args: string[]) {
    const r = spawnSync(process.execPath, ["dist/cli/compile.js", ...args], { encoding: "utf8" });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  test("writes the configuration, with the calibration file recorded", () => {
    if (!existsSync("dist/cli/compile.js")) throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
    const out = join(dir, "qat.json");
    const r = cli("test/fixtures/qat/model.s4d", "--target", "xbar64", "--calibrate", "test/fixtures/qat/calib.npy", "--emit", "qat-config", "-o", out, "-q");
    expect(r.code).toBe(0);
    const c = readQatConfig(out);
    const bytes = readFileSync("test/fixtures/qat/calib.npy");
    expect(c.calibration.file).toEqual({ path: "test/fixtures/qat/calib.npy", sha256: createHash("sha256").update(bytes).digest("hex"), shape: [32, 64, 1] });
    expect(c.model.source).toBe("test/fixtures/qat/model.s4d");
  });

  test("prints to stdout without -o", () => {
    const r = cli("examples/tiny.s4d", "--emit", "qat-config", "-q");
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as QatConfig).format).toBe("imssa-qat");
  });
});

describe("the residual recurrence form in the configuration (examples/tiny.s4d on xbar64)", () => {
  const target = loadTarget("xbar64");
  const model = loadModel("examples/tiny.s4d");
  const conf = (recurrence: "direct" | "residual") => {
    const result = compile(model, target, { recurrence });
    return { result, config: buildQatConfig(result, target, { source: "examples/tiny.s4d", compilerVersion: COMPILER_VERSION }) };
  };
  const residual = conf("residual");
  const direct = conf("direct");

  test("the S4D matmuls say so, the entries describe dA - I, the graph has the add, the schema accepts it", () => {
    expect(checkQatConfig(residual.config, "tiny.qat.json")).toEqual([]);
    const s4d = residual.config.matmuls.filter((m) => m.origin === "s4d");
    expect(s4d.length).toBeGreaterThan(0);
    for (const m of s4d) {
      expect(m.s4d!.recurrence).toBe("residual");
      expect(m.s4d!.entries.dA).toMatch(/Re dA - 1/);
      // the add op reads the previous state and the increment slice of this matmul
      const i = residual.config.matmuls.indexOf(m);
      const mmOp = residual.config.graph.step.find((o) => o.op === "matmul" && o.matmul === i)!;
      const slice = residual.config.graph.step.find((o) => o.op === "slice" && o.x === mmOp.out && o.start === 0)!;
      expect(residual.config.graph.step.some((o) => o.op === "add" && o.a === slice.out && o.b === mmOp.xs![0])).toBe(true);
    }
    // the direct form has no recurrence field (configurations written before it stay valid)
    for (const m of direct.config.matmuls.filter((x) => x.origin === "s4d")) expect(m.s4d!.recurrence).toBeUndefined();
  });

  test("the state block's levels describe dA - I: every mode of I + q s is stable", () => {
    for (const op of matmuls(residual.result).filter((o) => o.origin === "s4d")) {
      expect(op.residual).toBeDefined();
      const n = op.residual!.length;
      const at = (i: number, j: number): number => {
        for (const b of op.weight.blocks) if (i >= b.row && i < b.row + b.rows && j >= b.col && j < b.col + b.cols) return b.data[(i - b.row) * b.cols + (j - b.col)]!;
        return 0;
      };
      for (let k = 0; k < n / 2; k++) expect(spectralRadius2(1 + at(2 * k, 2 * k), at(2 * k, 2 * k + 1), at(2 * k + 1, 2 * k), 1 + at(2 * k + 1, 2 * k + 1))).toBeLessThan(1);
    }
  });
});
