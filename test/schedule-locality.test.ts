// Locality-aware scheduling (docs/SCHEDULE.md): channel groups packed per tile, distributed
// recurrence outputs and states, and the step lower bounds of src/cost/bound.ts.

import { describe, expect, test } from "@jest/globals";
import { emitProgram } from "../src/backend/emit.js";
import { sharesStepStages } from "../src/backend/regroup.js";
import { columnOwners, crossbarClusters, assignCrossbarTiles, piecesByMatmul } from "../src/backend/schedule.js";
import { stepBounds } from "../src/cost/bound.js";
import type { Instr } from "../src/backend/isa.js";
import { runProgram } from "../src/interp/run.js";
import type { MatMulOp, Model } from "../src/ir/types.js";
import { compile } from "../src/pipeline.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import type { Target } from "../src/target/types.js";
import { patchedTarget, ProgramBuilder } from "./helpers/program-builder.js";
import { digitsSizeModel } from "./helpers/random-models.js";

function ideal(perTile: number): Target {
  const t = structuredClone(loadTarget("ideal"));
  t.tiles.crossbarsPerTile = perTile;
  return t;
}

/** Max |interpreter - float reference| over all step outputs, and the largest reference magnitude. */
function stepError(model: Model, target: Target, groupChannels: boolean, T: number): { err: number; scale: number } {
  const { program } = compile(model, target, { groupChannels });
  const x = Float32Array.from({ length: T }, (_, t) => Math.sin(0.7 * t + 0.3));
  const run = runProgram(program, x, [1, T, 1]);
  const ref = evaluateSequence(model, { [model.inputs[0]!.name]: Array.from(x, (v) => Float64Array.of(v)) });
  const out = model.outputs.find((o) => o.section === "step") ?? model.outputs[0]!;
  const expected = out.section === "step" ? ref.step[out.name]!.flatMap((v) => Array.from(v)) : Array.from(ref.final[out.name]!);
  const actual = out.section === "step" ? run.step! : run.final!;
  let err = 0;
  let scale = 0;
  expected.forEach((e, i) => {
    err = Math.max(err, Math.abs(actual[i]! - e));
    scale = Math.max(scale, Math.abs(e));
  });
  return { err, scale };
}

/** The digits-size network with its layernorm output as a step output (so every step is checked). */
function smallNetwork(seed: number, H: number): Model {
  const m = digitsSizeModel(seed, H, 32, 1);
  const last = m.sections.step.filter((o) => o.op === "layernorm").at(-1)!.out;
  return { ...m, outputs: [{ name: "h", value: last, section: "step" }] };
}

describe("float equivalence on the ideal target", () => {
  // Steps after the second are where a lost state partial sum shows: at t = 0 the state is
  // zero, so a column that drops the state rows' contribution is still right. An S4D
  // channel (65 x 65) leaves remainder pieces that the packer stacks along a crossbar's
  // diagonal; merged into one MVM they can read one output column twice (regression).
  test.each([
    [4, 8, false],
    [4, 8, true],
    [16, 2, false],
    [16, 2, true],
  ])("H=%i, %i crossbars per tile, channel groups %s: every step within float32 rounding", (H, perTile, group) => {
    const { err, scale } = stepError(smallNetwork(7, H), ideal(perTile), group, 6);
    // float32 datapath: a few ulps of the largest value per accumulated term; 1e-5 relative is the e2e budget.
    expect(err).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
  });
});

describe("channel groups", () => {
  test("each group's state, MVMs and partial sums stay on one tile", () => {
    const target = ideal(8);
    const model = digitsSizeModel(3, 32, 32, 1);
    const { quantized, plan } = compile(model, target, { groupChannels: true });
    const tileOf = assignCrossbarTiles(plan, quantized, target);
    // Clusters of crossbars that exchange partial sums or inputs never straddle tiles.
    for (const ids of crossbarClusters(plan)) if (ids.length <= 8) expect(new Set(ids.map((id) => tileOf.get(id))).size).toBe(1);
    const pieces = piecesByMatmul(plan, tileOf);
    const mm = quantized.sections.step.find((o): o is MatMulOp => o.op === "matmul" && o.origin === "s4d")!;
    const placed = pieces.get(`step:${mm.out}`)!;
    const owners = columnOwners(mm, placed);
    expect(owners).not.toBeNull();
    // xs = [state, u]: every state row a piece reads is computed (and stored) on the piece's tile.
    const stateSize = quantized.state[0]!.size;
    for (const p of placed) for (const i of p.piece.inRows) if (i < stateSize) expect(owners![i]).toBe(p.tile);
    expect(new Set(owners).size).toBeGreaterThan(1);
  });

  test("xbar64, H=32: no state word crosses the network", () => {
    const target = loadTarget("xbar64");
    const H = 32;
    const { program } = compile(digitsSizeModel(1, H, 32, 1), target, { groupChannels: true });
    // The S4D layer sends u (H words) to its groups and gathers y (H words); the dense
    // layers move a few H-word vectors. The state (2*H*M = 2048 words) travelling, as in
    // the plain packer's schedule, would exceed this by far.
    const words = program.tiles.reduce((n, t) => n + t.sections.step.code.reduce((m, i) => m + (i.op === "send" ? i.len : 0), 0), 0);
    expect(words).toBeLessThanOrEqual(2 * (2 * H + 4 * H));
  });
});

describe("step lower bounds (hand-derived, docs/SCHEDULE.md)", () => {
  // Test target: 8x8 crossbar, 4-bit bit-serial DAC, 10 integration cycles, 2 ADCs ->
  // full MVM = 4 + 10 + ceil(8/2) + ceil(16/4) = 22 cycles; send of 8 words = ceil(8/2) = 4
  // cycles, arriving 5 cycles after the send ends.
  const small = patchedTarget("xbar64", (t) => {
    t.crossbar = { ...t.crossbar, rows: 8, cols: 8, numerics: { kind: "quantized", deviceLevels: 16, dacBits: 4, adcBits: 8 }, inputMode: "bit-serial", dacCyclesPerBit: 1, integrationCycles: 10, adcsPerCrossbar: 2, adcCyclesPerConversion: 1 };
    t.memory = { globalLatencyCycles: 10, globalWordsPerCycle: 2, localWordsPerCycle: 4 };
    t.interconnect = { latencyCycles: 5, wordsPerCycle: 2 };
  });
  const mvm = (xbar: number, src: number, dst: number): Instr => ({ op: "mvm", xbar, rowStart: 0, rows: 8, colStart: 0, cols: 8, src, dst, acc: false });
  const levels = Array.from({ length: 64 }, (_, i) => (i % 5) - 2);

  test("two MVMs on two crossbars of one tile overlap: 23 cycles, bound 22", () => {
    const b = new ProgramBuilder(small, { tiles: 1, memoryWords: 64, globalWords: 64 });
    b.input("x", 8, 0).stepOutput("y", 8, 32);
    b.crossbar({ tile: 0, rows: 8, cols: 8, levels });
    b.crossbar({ tile: 0, rows: 8, cols: 8, levels });
    b.emit(0, "step", [mvm(0, 0, 8), mvm(1, 0, 16)]);
    const p = b.build();
    // In-order issue: the second MVM issues one cycle after the first, on its own crossbar.
    expect(runProgram(p, new Float32Array(8).fill(0.5), [1, 1, 8]).report.sections.stepFirst.cycles).toBe(23);
    expect(stepBounds(p, small)).toMatchObject({ criticalPath: 22, resource: 22, lowerBound: 22 });
  });

  test("MVM -> transfer -> MVM: critical path 22 + 4 + 5 + 22 = 53", () => {
    const b = new ProgramBuilder(small, { tiles: 2, memoryWords: 64, globalWords: 64 });
    b.input("x", 8, 0).stepOutput("y", 8, 32);
    b.crossbar({ tile: 0, rows: 8, cols: 8, levels });
    b.crossbar({ tile: 1, rows: 8, cols: 8, levels });
    b.emit(0, "step", [mvm(0, 0, 8), { op: "send", peer: 1, src: 8, len: 8, tag: 0 }]);
    b.emit(1, "step", [{ op: "recv", peer: 0, dst: 0, len: 8, tag: 0 }, mvm(1, 0, 8)]);
    const p = b.build();
    expect(stepBounds(p, small)).toMatchObject({ criticalPath: 53, lowerBound: 53 });
    expect(runProgram(p, new Float32Array(8).fill(0.5), [1, 1, 8]).report.sections.stepFirst.cycles).toBe(53);
  });

  test("recurrence: a state word read by an MVM and rewritten by a copy of its result", () => {
    const b = new ProgramBuilder(small, { tiles: 1, memoryWords: 64, globalWords: 64 });
    b.input("x", 8, 0).stepOutput("y", 8, 32);
    b.crossbar({ tile: 0, rows: 8, cols: 8, levels });
    // state at 0..7: y = W x_old into 8..15, then x_new = y (vcopy of 8 words on the default 16 lanes: 1 cycle).
    b.emit(0, "step", [mvm(0, 0, 8), { op: "vcopy", dst: 0, a: 8, len: 8 }]);
    expect(stepBounds(b.build(), small)).toMatchObject({ criticalPath: 23, recurrence: 23 });
  });
});

describe("recurrence states in read order (src/backend/emit-recurrence.ts)", () => {
  // digits-size, H = 32 and 2 layers on xbar64: each channel group's tile holds its
  // channels' states; the fused layout stores them in the order the crossbars read them.
  const target = loadTarget("xbar64");
  const m = digitsSizeModel(5, 32, 32, 2);
  // The last layernorm as a step output too, so every step is compared, not only the mean.
  const last = m.sections.step.filter((o) => o.op === "layernorm" || o.op === "affine").at(-1)!.out;
  const model: Model = { ...m, outputs: [...m.outputs, { name: "h", value: last, section: "step" }] };
  // The direct recurrence form (the residual form's layout: test/schedule-residual.test.ts).
  const { quantized, plan, program } = compile(model, target, { recurrence: "direct" });
  const plainLayout = emitProgram(quantized, plan, target, { fuseStates: false });
  const vectorOps = (p: typeof program, symbol: RegExp): number =>
    p.tiles.reduce((n, t) => n + t.sections.step.code.filter((ins, k) => ins.op.startsWith("v") && symbol.test(p.symbols[t.sections.step.symbols[k]!]!)).length, 0);

  test("same numbers as the plain layout, bit for bit, on every step", () => {
    const T = 12;
    const x = Float32Array.from({ length: 2 * T }, (_, i) => Math.sin(0.9 * i + 0.2));
    const fused = runProgram(program, x, [2, T, 1]);
    const plain = runProgram(plainLayout, x, [2, T, 1]);
    expect(fused.step!.length).toBe(2 * T * 32);
    expect(Array.from(fused.step!)).toEqual(Array.from(plain.step!));
    expect(Array.from(fused.final!)).toEqual(Array.from(plain.final!));
  });

  test("most input gathers, result placements and the state copy are gone", () => {
    // Plain layout: every S4D piece's input [state words of its channel, u_c] gathered with
    // copies, MVM results placed with copies, then the new state copied into the state
    // buffer. Fused: the input words of a channel (one per channel) are copied into their
    // slots, y is compacted (one word per channel), and only pieces that share columns or
    // read words another MVM writes need copies.
    const s4d = /\.s4d \(/;
    const fused = vectorOps(program, s4d);
    const plain = vectorOps(plainLayout, s4d);
    expect(fused).toBeLessThan(plain / 2);
    // No S4D state write is left: the MVMs sum the new state into the arena in place.
    const writes = (p: typeof program): number => p.tiles.reduce((n, t) => n + t.sections.step.symbols.filter((s) => /\.s4d.*state_write/.test(p.symbols[s]!)).length, 0);
    expect(writes(plainLayout)).toBeGreaterThan(0);
    expect(writes(program)).toBe(0);
  });
});

describe("stages on crossbars of their own (src/backend/regroup.ts)", () => {
  test("xbar256: the small dense matmuls of a step share no crossbar", () => {
    // On 256 x 256 crossbars the encoder (1 x 64) and the output linears (64 x 128) all fit
    // one crossbar; shared, two stages sit on one tile whose in-order stream serializes the
    // step. Grouped plans keep every step matmul's pieces on crossbars of its own.
    const target = loadTarget("xbar256");
    const { plan } = compile(digitsSizeModel(2, 64, 32, 2), target);
    expect(sharesStepStages(plan)).toBe(false);
    const plain = compile(digitsSizeModel(2, 64, 32, 2), target, { groupChannels: false }).plan;
    expect(sharesStepStages(plain)).toBe(true);
  });
});
