import { describe, expect, test } from "@jest/globals";
import { formatAsm, formatOperands, summarizeProgram } from "../src/backend/asm.js";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import { emitProgram } from "../src/backend/emit.js";
import { consecutiveRuns, flagRuns, lengthChunks, maximalRuns } from "../src/backend/emit-runs.js";
import { fieldRangeError, type Instr } from "../src/backend/isa.js";
import { SECTION_NAMES, type Program } from "../src/backend/program.js";
import { UserError } from "../src/common/errors.js";
import type { CrossbarPlan, Piece } from "../src/ir/plan.js";
import type { Model, Op } from "../src/ir/types.js";
import { runPasses, tile } from "../src/passes/index.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import { maxWeightLevel, type Target } from "../src/target/types.js";
import { verifyProgram } from "../src/interp/verify.js";
import { execProgram } from "./helpers/exec-program.js";
import { makeRng, randomInputs, randomModel, type Rng } from "./helpers/random-models.js";

function targetWith(name: string, patch: (t: Target) => void): Target {
  const t = structuredClone(loadTarget(name));
  patch(t);
  return t;
}

/** Local addresses an instruction touches: [start, length] per operand. */
function spans(ins: Instr): [number, number][] {
  switch (ins.op) {
    case "mvm":
      return [
        [ins.src, ins.rows],
        [ins.dst, ins.cols],
      ];
    case "vadd":
    case "vsub":
    case "vmul":
      return [
        [ins.dst, ins.len],
        [ins.a, ins.len],
        [ins.b, ins.len],
      ];
    case "vglu":
      return [
        [ins.dst, ins.len],
        [ins.a, 2 * ins.len],
      ];
    case "vaffine":
      return [
        [ins.dst, ins.len],
        [ins.a, ins.len],
        [ins.c, 2 * ins.len],
      ];
    case "load":
    case "recv":
      return [[ins.dst, ins.len]];
    case "store":
    case "send":
      return [[ins.src, ins.len]];
    default:
      return [
        [ins.dst, ins.len],
        [ins.a, ins.len],
      ];
  }
}

/** Structural checks every emitted program must pass (ours, then the interpreter's verifier). */
function checkProgram(p: Program, target: Target): void {
  expect(() => verifyProgram(p, "emitted.xbin")).not.toThrow();
  const xbarTile = new Map(p.crossbars.map((x) => [x.id, x.tile]));
  const limit = Math.min(target.tiles.memoryWords, 65536);
  if (target.tiles.count !== "unlimited") expect(p.tiles.length).toBeLessThanOrEqual(target.tiles.count);
  const perTile = new Map<number, number>();
  for (const x of p.crossbars) perTile.set(x.tile, (perTile.get(x.tile) ?? 0) + 1);
  for (const n of perTile.values()) expect(n).toBeLessThanOrEqual(target.tiles.crossbarsPerTile);
  p.tiles.forEach((t, tile) => {
    expect(t.memoryWords).toBeLessThanOrEqual(limit);
    for (const c of t.constants) expect(c.addr + c.data.length).toBeLessThanOrEqual(t.memoryWords);
    for (const name of SECTION_NAMES) {
      const s = t.sections[name];
      expect(s.symbols).toHaveLength(s.code.length);
      s.code.forEach((ins, k) => {
        const where = `tile ${tile} ${name}[${k}] ${ins.op}`;
        expect([where, fieldRangeError(ins)]).toEqual([where, null]);
        for (const [a, n] of spans(ins)) expect([where, a + n <= t.memoryWords]).toEqual([where, true]);
        if (ins.op === "mvm") expect([where, xbarTile.get(ins.xbar)]).toEqual([where, tile]);
        if (ins.op === "send" || ins.op === "recv") expect(ins.peer).toBeLessThan(p.tiles.length);
        if (ins.op === "send" || ins.op === "recv") expect(ins.peer).not.toBe(tile);
        expect(p.symbols[s.symbols[k]!]).toBeDefined();
      });
    }
  });
  if (target.crossbar.numerics.kind === "quantized") {
    const L = maxWeightLevel(target)!;
    for (const x of p.crossbars) {
      expect(x.weights.kind).toBe("levels");
      if (x.weights.kind === "levels") for (const q of x.weights.levels) expect(Math.abs(q)).toBeLessThanOrEqual(L);
      for (const r of [...x.inRange, ...x.outRange]) expect(r).toBeGreaterThan(0);
    }
  }
}

/** max |a - b| / max |b| over all outputs of all steps. */
function relativeError(got: ReturnType<typeof execProgram>, want: ReturnType<typeof evaluateSequence>): number {
  let err = 0;
  let scale = 1e-12;
  const cmp = (a: Float64Array, b: Float64Array): void => {
    expect(a.length).toBe(b.length);
    for (let i = 0; i < b.length; i++) {
      err = Math.max(err, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
  };
  expect(Object.keys(got.step).sort()).toEqual(Object.keys(want.step).sort());
  expect(Object.keys(got.final).sort()).toEqual(Object.keys(want.final).sort());
  for (const [name, steps] of Object.entries(want.step)) steps.forEach((v, t) => cmp(got.step[name]![t]!, v));
  for (const [name, v] of Object.entries(want.final)) cmp(got.final[name]!, v);
  return err / scale;
}

function sequence(rng: Rng, model: Model, T: number): Record<string, Float64Array[]> {
  return Object.fromEntries(model.inputs.map((i) => [i.name, Array.from({ length: T }, () => Float64Array.from({ length: i.size }, () => rng.normal()))]));
}

function denseWeight(rng: Rng, rows: number, cols: number, zeroCols: number[] = []): { rows: number; cols: number; blocks: { row: number; col: number; rows: number; cols: number; data: number[] }[] } {
  const data: number[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) data.push(zeroCols.includes(j) ? 0 : rng.normal() / Math.sqrt(rows));
  return { rows, cols, blocks: [{ row: 0, col: 0, rows, cols, data }] };
}

/** A lowered model using every lowered op, with state written before a later reader of its old value. */
function everyOpModel(rng: Rng): Model {
  const step: Op[] = [
    { op: "state_read", out: "prev", state: "s", layer: "l0.state" },
    { op: "matmul", out: "z", layer: "l0.mix", xs: ["prev", "u"], origin: "dense", weight: denseWeight(rng, 9, 5, [4]), bias: [0.1, -0.2, 0.3, 0, 0.5] },
    { op: "slice", out: "zs", x: "z", start: 1, length: 3 },
    { op: "tanh", out: "ns", x: "zs" },
    { op: "state_write", out: "w", state: "s", x: "ns" },
    { op: "gelu", out: "g", x: "z" },
    { op: "affine", out: "a", x: "g", scale: [1, 2, 0.5, -1, 1.5], shift: [0, 0.1, -0.1, 0.2, 0] },
    { op: "normalize", out: "n", x: "a", eps: 1e-5 },
    { op: "concat", out: "c", xs: ["n", "prev", "u"] },
    { op: "slice", out: "c8", x: "c", start: 0, length: 8 },
    { op: "glu", out: "q", x: "c8" },
    { op: "slice", out: "u4", x: "u", start: 2, length: 4 },
    { op: "mul", out: "m", a: "q", b: "u4" },
    { op: "sigmoid", out: "sg", x: "m" },
    { op: "relu", out: "r", x: "q" },
    { op: "add", out: "o", a: "sg", b: "r" },
    { op: "matmul", out: "acc_in", xs: ["o", "prev"], origin: "dense", weight: denseWeight(rng, 7, 2) },
    { op: "state_read", out: "acc_old", state: "acc" },
    { op: "add", out: "acc_new", a: "acc_old", b: "acc_in" },
    { op: "state_write", out: "acc_w", state: "acc", x: "acc_new" },
  ];
  const final: Op[] = [
    { op: "state_read", out: "acc_f", state: "acc" },
    { op: "div_steps", out: "mean", x: "acc_f" },
    { op: "matmul", out: "head", layer: "decoder", xs: ["mean"], origin: "dense", weight: denseWeight(rng, 2, 3, [1]) },
  ];
  return {
    irVersion: 1,
    name: "every-op",
    level: "lowered",
    inputs: [{ name: "u", size: 6 }],
    outputs: [
      { name: "y", value: "o", section: "step" },
      { name: "zz", value: "z", section: "step" },
      { name: "u_echo", value: "u4", section: "step" },
      { name: "head", value: "head", section: "final" },
      { name: "mean", value: "mean", section: "final" },
    ],
    state: [
      { name: "s", size: 3 },
      { name: "acc", size: 2 },
    ],
    sections: { step, final },
  };
}

function compileAndCompare(model: Model, plan: CrossbarPlan, target: Target, seed: number, T = 6): Program {
  const p = emitProgram(model, plan, target, { compilerVersion: "test" });
  checkProgram(p, target);
  const rng = makeRng(seed);
  const inputs = sequence(rng, model, T);
  const err = relativeError(execProgram(p, inputs), evaluateSequence(model, inputs));
  expect(err).toBeLessThan(1e-5);
  // The container keeps everything the executor needs.
  expect(decodeProgram(encodeProgram(p), "x.xbin")).toEqual(p);
  return p;
}

const smallIdeal = (rows: number, cols: number, perTile: number, memoryWords = 65536) =>
  targetWith("ideal", (t) => {
    t.crossbar.rows = rows;
    t.crossbar.cols = cols;
    t.crossbar.adcsPerCrossbar = Math.min(t.crossbar.adcsPerCrossbar, cols);
    t.tiles.crossbarsPerTile = perTile;
    t.tiles.memoryWords = memoryWords;
  });

describe("emitProgram on hand-made models (ideal numerics)", () => {
  test("every lowered op, one big crossbar", () => {
    const model = everyOpModel(makeRng(1));
    const target = smallIdeal(64, 64, 8);
    const p = compileAndCompare(model, tile(model, target), target, 11);
    expect(p.tiles.length).toBe(1);
    expect(p.io.inputs).toEqual([{ name: "u", size: 6, addr: 0 }]);
    const ops = new Set(p.tiles.flatMap((t) => SECTION_NAMES.flatMap((s) => t.sections[s].code.map((i) => i.op))));
    for (const op of ["mvm", "vadd", "vmul", "vcopy", "vrelu", "vgelu", "vsigmoid", "vtanh", "vaffine", "vglu", "vnorm", "vdivsteps", "load", "store"]) expect(ops).toContain(op);
  });

  test("every lowered op, tiny crossbars spread over many tiles (transfers, partial sums)", () => {
    const model = everyOpModel(makeRng(2));
    const target = smallIdeal(4, 2, 2);
    const plan = tile(model, target);
    const p = compileAndCompare(model, plan, target, 12, 9);
    expect(p.tiles.length).toBeGreaterThan(3);
    const all = p.tiles.flatMap((t) => t.sections.step.code);
    expect(all.some((i) => i.op === "send")).toBe(true);
    expect(all.some((i) => i.op === "mvm" && i.acc)).toBe(true);
  });

  test("a hand-written plan with scattered rows/columns, shared columns across tiles and an unplanned column", () => {
    const rng = makeRng(3);
    const model: Model = {
      irVersion: 1,
      name: "scatter",
      level: "lowered",
      inputs: [{ name: "u", size: 6 }],
      outputs: [
        { name: "y", value: "y", section: "step" },
        { name: "y2", value: "y2", section: "step" },
      ],
      state: [],
      sections: {
        step: [
          { op: "slice", out: "a", x: "u", start: 0, length: 3 },
          { op: "slice", out: "b0", x: "u", start: 3, length: 3 },
          { op: "gelu", out: "b", x: "b0" },
          { op: "matmul", out: "y", layer: "mix", xs: ["a", "b"], origin: "dense", weight: denseWeight(rng, 6, 5, [4]), bias: [1, 2, 3, 4, 5] },
          { op: "matmul", out: "y2", layer: "mix2", xs: ["b"], origin: "dense", weight: denseWeight(rng, 3, 3, [1]) },
        ],
        final: [],
      },
    };
    const piece = (op: string, rowStart: number, colStart: number, inRows: number[], outCols: number[]): Piece => ({ op, section: "step", rowStart, colStart, inRows, outCols });
    const plan: CrossbarPlan = {
      rows: 6,
      cols: 4,
      lowerBound: 0,
      perMatrix: [],
      crossbars: [
        { id: 0, pieces: [piece("y", 0, 0, [0, 4], [0, 1]), piece("y2", 2, 2, [0, 1, 2], [2, 0])] },
        { id: 1, pieces: [piece("y", 0, 0, [1, 2, 3, 5], [1, 0])] },
        { id: 2, pieces: [piece("y", 0, 1, [5, 4, 3, 2, 1, 0], [3, 2])] },
      ],
    };
    const target = smallIdeal(6, 4, 1);
    const p = compileAndCompare(model, plan, target, 13);
    expect(p.tiles.length).toBe(3);
    // Matmul "y" lives on tile 2 (largest share); tiles 0 and 1 ship partial sums to it,
    // which it adds to its own (columns 0-1 arrive twice: once received in place, once added).
    const code = p.tiles[2]!.sections.step.code;
    const fromPeers = new Set(code.flatMap((i) => (i.op === "recv" ? [i.peer] : [])));
    expect(fromPeers).toEqual(new Set([0, 1]));
    expect(code.some((i) => i.op === "vadd" && i.len === 2)).toBe(true);
    expect(p.tiles[0]!.sections.step.code.some((i) => i.op === "send" && i.peer === 2 && i.len === 2)).toBe(true);
  });

  test("crossbar images hold the planned weights at the planned cells", () => {
    const rng = makeRng(4);
    const W = denseWeight(rng, 3, 2);
    const model: Model = {
      irVersion: 1,
      name: "img",
      level: "lowered",
      inputs: [{ name: "u", size: 3 }],
      outputs: [{ name: "y", value: "y", section: "step" }],
      state: [],
      sections: { step: [{ op: "matmul", out: "y", xs: ["u"], origin: "dense", weight: W }], final: [] },
    };
    const plan: CrossbarPlan = { rows: 4, cols: 4, lowerBound: 1, perMatrix: [], crossbars: [{ id: 5, pieces: [{ op: "y", section: "step", rowStart: 1, colStart: 2, inRows: [2, 0, 1], outCols: [1, 0] }] }] };
    const p = compileAndCompare(model, plan, smallIdeal(4, 4, 1), 14);
    const x = p.crossbars[0]!;
    expect(x.id).toBe(5);
    expect(x.weights.kind).toBe("float");
    if (x.weights.kind !== "float") return;
    const w = (i: number, j: number) => W.blocks[0]!.data[i * 2 + j]!;
    expect(x.weights.values[(1 + 0) * 4 + 2 + 0]).toBeCloseTo(w(2, 1), 6);
    expect(x.weights.values[(1 + 2) * 4 + 2 + 1]).toBeCloseTo(w(1, 0), 6);
    expect(x.weights.values[0]).toBe(0);
  });
});

describe("emitProgram on compiled S4D networks", () => {
  test.each([1, 2, 3, 4, 5, 6])("random network %i: ideal target matches the float reference", (seed) => {
    const rng = makeRng(100 + seed);
    const model = randomModel(rng, { outputs: seed % 2 === 0 ? "both" : undefined });
    const target = seed % 3 === 0 ? smallIdeal(8, 8, 2) : loadTarget("ideal");
    const { lowered, plan } = runPasses(model, target, null);
    const p = emitProgram(lowered, plan, target, { compilerVersion: "test" });
    checkProgram(p, target);
    const inputs = randomInputs(rng, model, 12);
    expect(relativeError(execProgram(p, inputs), evaluateSequence(lowered, inputs))).toBeLessThan(1e-5);
    expect(relativeError(execProgram(p, inputs), evaluateSequence(model, inputs))).toBeLessThan(1e-4);
  });

  test("quantized target: levels, ranges and dequantized weights", () => {
    const rng = makeRng(7);
    const model = randomModel(rng, { hidden: 6, modes: 4, layers: 2, outputs: "both" });
    const target = loadTarget("xbar64");
    const { quantized, plan } = runPasses(model, target, null);
    const p = emitProgram(quantized, plan, target, { compilerVersion: "test" });
    checkProgram(p, target);
    expect(p.target.name).toBe("xbar64");
    expect(p.target.sha256).toBe(target.source.sha256);
    // Without DAC/ADC rounding, levels * colScale / inRange reproduces the quantized weights.
    const inputs = randomInputs(rng, model, 10);
    expect(relativeError(execProgram(p, inputs), evaluateSequence(quantized, inputs))).toBeLessThan(1e-5);
  });

  test("quantized target rejects a model without quantization parameters", () => {
    const model = everyOpModel(makeRng(8));
    const target = loadTarget("xbar64");
    expect(() => emitProgram(model, tile(model, target), target)).toThrow(/has no quantization parameters/);
  });
});

describe("resource limits", () => {
  test("tile memory overflow is a resource error naming the tile", () => {
    const model = everyOpModel(makeRng(9));
    const target = smallIdeal(64, 64, 8, 24);
    let err: unknown;
    try {
      emitProgram(model, tile(model, target), target);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).kind).toBe("resource");
    expect((err as UserError).message).toMatch(/tile 0 needs \d+ words of local memory but target 'ideal' has 24/);
  });

  test("too few tiles for the plan", () => {
    const model = everyOpModel(makeRng(10));
    const big = smallIdeal(4, 2, 1);
    const plan = tile(model, big);
    const few = targetWith("ideal", (t) => {
      t.crossbar.rows = 4;
      t.crossbar.cols = 2;
      t.crossbar.adcsPerCrossbar = 2;
      t.tiles.crossbarsPerTile = 1;
      t.tiles.count = 2;
    });
    expect(() => emitProgram(model, plan, few)).toThrow(/needs \d+ crossbars but target 'ideal' has 2/);
  });

  test("memory is reused: a long chain of vector ops fits in a few live buffers", () => {
    const ops: Op[] = [];
    let x = "u";
    for (let i = 0; i < 200; i++) {
      ops.push({ op: i % 2 ? "tanh" : "sigmoid", out: `v${i}`, x });
      x = `v${i}`;
    }
    const model: Model = { irVersion: 1, name: "chain", level: "lowered", inputs: [{ name: "u", size: 100 }], outputs: [{ name: "y", value: x, section: "step" }], state: [], sections: { step: ops, final: [] } };
    const target = smallIdeal(8, 8, 1, 400);
    const p = compileAndCompare(model, tile(model, target), target, 15, 2);
    expect(p.tiles[0]!.memoryWords).toBeLessThanOrEqual(300);
  });

  test("vectors longer than the 16-bit length field are split", () => {
    // The only way to hold a 65536-element vector is to use every word of a tile.
    const n = 65536;
    const model: Model = {
      irVersion: 1,
      name: "long",
      level: "lowered",
      inputs: [{ name: "u", size: n }],
      outputs: [{ name: "y", value: "u", section: "step" }],
      state: [],
      sections: { step: [], final: [] },
    };
    const target = smallIdeal(8, 8, 1);
    const p = compileAndCompare(model, tile(model, target), target, 16, 2);
    const code = p.tiles[0]!.sections.step.code;
    expect(code.map((i) => [i.op, "len" in i ? i.len : 0])).toEqual([
      ["load", 65535],
      ["load", 1],
      ["store", 65535],
      ["store", 1],
    ]);
    expect(p.tiles[0]!.memoryWords).toBe(n);
    const relu: Model = { ...model, outputs: [{ name: "y", value: "y", section: "step" }], sections: { step: [{ op: "relu", out: "y", x: "u" }], final: [] } };
    expect(() => emitProgram(relu, tile(relu, target), target)).toThrow(/tile 0 needs 131072 words of local memory but target 'ideal' has 65536/);
  });
});

describe("assembly listing and summary", () => {
  test("every instruction appears with its symbol", () => {
    const model = everyOpModel(makeRng(16));
    const target = smallIdeal(4, 2, 1);
    const p = emitProgram(model, tile(model, target), target, { compilerVersion: "test" });
    const asm = formatAsm(p);
    const lines = asm.split("\n");
    expect(asm).toMatch(/^; imssa program 'every-op' \(format 1, compiler test\)/);
    expect(asm).toContain("; target: ideal (sha256 ");
    expect(asm).toContain(";   u[6] at g@0");
    let total = 0;
    for (const [t, tp] of p.tiles.entries()) {
      const start = lines.indexOf(lines.find((l) => l.startsWith(`.tile ${t} `))!);
      expect(start).toBeGreaterThanOrEqual(0);
      for (const name of SECTION_NAMES) {
        tp.sections[name].code.forEach((ins, k) => {
          const sym = p.symbols[tp.sections[name].symbols[k]!]!;
          const needle = `${ins.op.padEnd(9)} ${formatOperands(ins)}  ; ${sym}`;
          expect(lines.some((l, i) => i > start && l.trim().startsWith(`${k}  `) && l.endsWith(needle))).toBe(true);
          total++;
        });
      }
    }
    expect(lines.filter((l) => /^\s+\d+ {2}\S/.test(l))).toHaveLength(total);
    expect(asm).toMatch(/; l0\.mix \(z: matmul\)/);
    const sum = summarizeProgram(p);
    expect(sum.instructions.step + sum.instructions.final + sum.instructions.init).toBe(total);
    expect(sum.crossbars).toBe(p.crossbars.length);
    expect(Object.values(sum.byOpcode.step).reduce((a, b) => a + b!, 0)).toBe(sum.instructions.step);
  });
});

describe("index-range helpers of the emitter", () => {
  test("lengthChunks splits at the 16-bit len limit", () => {
    expect(lengthChunks(0)).toEqual([]);
    expect(lengthChunks(3)).toEqual([[0, 3]]);
    expect(lengthChunks(65536)).toEqual([
      [0, 65535],
      [65535, 1],
    ]);
  });

  test("maximal runs: generic, consecutive values, equal flags", () => {
    expect(maximalRuns(0, () => true)).toEqual([]);
    expect(maximalRuns(5, (k, start) => k - start < 2)).toEqual([
      [0, 2],
      [2, 2],
      [4, 1],
    ]);
    expect(consecutiveRuns([1, 2, 3, 7, 8, 10])).toEqual([
      [0, 1, 3],
      [3, 7, 2],
      [5, 10, 1],
    ]);
    expect(flagRuns(Uint8Array.from([0, 0, 1, 1, 1, 0]))).toEqual([
      [0, 2, false],
      [2, 3, true],
      [5, 1, false],
    ]);
    expect(flagRuns(new Uint8Array(0))).toEqual([]);
  });
});
