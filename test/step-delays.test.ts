// Step delays (docs/ISA.md "Step delays"): a two-tile pipeline written twice, once plainly
// and once software-pipelined (the GELU and the transfer of step t run in round t + 1),
// must give the same outputs, and the cycle counts below are derived by hand from the
// "small" test target (test/interp-timing.test.ts header):
//   load of 4 words 10 + ceil(4/2) = 12; mvm of 4 rows x 8 columns: DAC 4 + integration 10
//   + ADC ceil(8/2) = 4 + local ceil(12/4) = 3 -> 21; vgelu of 8 words 2 groups x 5 = 10;
//   send of 8 words ceil(8/2) = 4, arriving 5 later; store of 8 words 10 + 4 = 14.

import { describe, expect, test } from "@jest/globals";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import { formatAsm } from "../src/backend/asm.js";
import type { Instr } from "../src/backend/isa.js";
import type { Program } from "../src/backend/program.js";
import { maxDelay } from "../src/backend/delays.js";
import { formatReport } from "../src/interp/report.js";
import { runProgram } from "../src/interp/run.js";
import { compile, loadModel } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import { execProgram } from "./helpers/exec-program.js";
import { ProgramBuilder, smallTimingTarget } from "./helpers/program-builder.js";
import { userErrors } from "./helpers/user-error.js";

const load: Instr = { op: "load", dst: 0, global: 0, len: 4 };
const mvm: Instr = { op: "mvm", xbar: 0, rowStart: 0, rows: 4, colStart: 0, cols: 8, src: 0, dst: 8, acc: false };
const gelu: Instr = { op: "vgelu", dst: 16, a: 8, len: 8 };
const send: Instr = { op: "send", peer: 1, src: 16, len: 8, tag: 0 };
const recv: Instr = { op: "recv", peer: 0, dst: 0, len: 8, tag: 0 };
const store: Instr = { op: "store", global: 32, src: 0, len: 8 };

// Fine converters (12 bits) for the comparison with the float64 reference; the timing test
// uses the small target as it is.
const fine = smallTimingTarget((t) => {
  t.crossbar.numerics = { kind: "quantized", deviceLevels: 16, dacBits: 12, adcBits: 12 };
});

function base(target = smallTimingTarget()): ProgramBuilder {
  const b = new ProgramBuilder(target, { tiles: 2, memoryWords: 64, globalWords: 64 });
  b.input("x", 4, 0).stepOutput("y", 8, 32);
  // |sum| <= 4 rows x level 4 x |x| 0.9 = 14.4 < outRange 16: no ADC saturation.
  b.crossbar({ tile: 0, rows: 8, cols: 8, levels: Array.from({ length: 64 }, (_, i) => ((i * 5) % 9) - 4), outRange: new Array(8).fill(16) });
  return b;
}

/** y_t = gelu(W x_t): load -> mvm -> gelu -> send on tile 0, recv -> store on tile 1. */
function plain(target = smallTimingTarget()): Program {
  return base(target).emit(0, "step", [load, mvm, gelu, send]).emit(1, "step", [recv, store]).build();
}

/**
 * The same computation, software-pipelined: round r loads and multiplies x_r while the GELU
 * and the transfer of step r - 1 run (delay 1). The GELU of step r - 1 comes before the MVM
 * of step r in program order: it reads the MVM's previous result, which that MVM overwrites.
 */
function pipelined(target = smallTimingTarget()): Program {
  const b = base(target);
  b.emit(0, "step", load).emit(0, "step", gelu, "main", 1).emit(0, "step", mvm).emit(0, "step", send, "main", 1);
  b.emit(1, "step", [recv, store], "main", 1);
  return b.build();
}

const inputs = (B: number, T: number): Float32Array => Float32Array.from({ length: B * T * 4 }, (_, i) => Math.sin(0.7 * i) * 0.9);

describe("step delays", () => {
  test.each([1, 2, 5, 40])("outputs equal the plain program's bit for bit and the float64 reference (T = %i)", (T) => {
    const x = inputs(2, T);
    const a = runProgram(plain(fine), x, [2, T, 4]);
    const b = runProgram(pipelined(fine), x, [2, T, 4]);
    expect(b.stepShape).toEqual([2, T, 8]);
    expect(Buffer.from(b.step!.buffer).equals(Buffer.from(a.step!.buffer))).toBe(true);
    // The reference executor implements the rounds on its own, without DAC/ADC rounding:
    // 12-bit codes err by at most half a step: DAC 4 rows x |level| 4 x 0.5 / 2047 (input
    // range 1) plus ADC 0.5 x 16 / 2047, < 0.0079 before a GELU of slope < 1.13.
    for (const p of [plain(fine), pipelined(fine)]) {
      const ref = execProgram(p, { x: Array.from({ length: 2 * T }, (_, t) => Float64Array.from(x.subarray(t * 4, t * 4 + 4))).slice(0, T) });
      ref.step.y!.forEach((v, t) => v.forEach((w, j) => expect(Math.abs(w - b.step![t * 8 + j]!)).toBeLessThan(0.0079 * 1.13)));
    }
  });

  test("cycles: hand-derived rounds, prologue and drain", () => {
    // Plain: step 0 load [0,12) mvm [12,33) gelu [33,43) send [43,47) -> arrives 52, store
    // [52,66): 66. Step 1: load issues after the send (44) -> [44,56), mvm [56,77), gelu
    // [77,87), send [87,91) -> 96, store [96,110): 44 per step.
    const a = runProgram(plain(), inputs(1, 4), [1, 4, 4]).report;
    expect(a.sections.stepFirst.cycles).toBe(66);
    expect(a.sections.stepSteady!.cycles).toBe(44);
    expect(a.sections.drain).toBeUndefined();
    // Pipelined: round 0 (delay 0 only): load [0,12), mvm [12,33): 33. Round 1: load(1)
    // waits for mvm(0) to have read x (33) -> [33,45); gelu(0) [34,44); mvm(1) after load(1)
    // and after gelu(0) has read the old result -> [45,66); send(0) [46,50) -> 55; tile 1:
    // recv 55, store [55,69): ends at 69, 36 cycles. Round 2: load [66,78), gelu [67,77),
    // mvm [78,99), send [79,83) -> 88, store [88,102): 33; round 3 likewise 33. Drain (from
    // an idle chip, delay 1 only): gelu 10, send 4 + 5 latency, store 14 = 33.
    const b = runProgram(pipelined(), inputs(1, 4), [1, 4, 4]).report;
    expect(b.sections.stepFirst.cycles).toBe(33);
    expect(b.sections.stepSteady!.cycles).toBe((36 + 33 + 33) / 3);
    expect(b.sections.drain!.cycles).toBe(33);
    expect(b.sequenceCycles).toBe(33 + 36 + 33 + 33 + 33);
    expect(a.sequenceCycles).toBe(66 + 3 * 44);
  });

  test("the report keeps the partial prologue rounds 1..D-1 out of the steady average", () => {
    const { program } = compile(loadModel("examples/tiny.s4d"), loadTarget("xbar64"), { pipelineSteps: true });
    const D = maxDelay(program);
    expect(D).toBeGreaterThanOrEqual(2);
    const T = 12;
    const n = program.io.inputs[0]!.size;
    const x = Float32Array.from({ length: 2 * T * n }, (_, i) => Math.sin(0.3 * i));
    const r = runProgram(program, x, [2, T, n]).report;
    const s = r.sections;
    expect(s.stepFirst.runs).toBe(2);
    expect(s.prologue!.runs).toBe(2 * (D - 1));
    expect(s.stepSteady!.runs).toBe(2 * (T - D));
    expect(s.drain!.runs).toBe(2 * D);
    // A prologue round runs only part of the stream.
    expect(s.prologue!.instructions).toBeLessThan(s.stepSteady!.instructions);
    // Every round is counted once.
    const total = [s.init, s.stepFirst, s.prologue!, s.stepSteady!, s.drain!, s.final].reduce((a, x) => a + x.cycles * x.runs, 0);
    expect(total).toBeCloseTo(r.totalCycles, 6);
    expect(formatReport(r)).toContain("prologue");
    // Without step delays there is no prologue section.
    const plainRun = runProgram(compile(loadModel("examples/tiny.s4d"), loadTarget("xbar64")).program, x, [2, T, n]).report;
    expect(plainRun.sections.prologue).toBeUndefined();
  });

  test("timing reuse after the prologue equals timing every round", () => {
    const x = inputs(2, 64);
    const reused = runProgram(pipelined(), x, [2, 64, 4]).report;
    const retimed = runProgram(pipelined(), x, [2, 64, 4], { retime: true }).report;
    expect(reused.sequenceCycles).toBe(retimed.sequenceCycles);
    expect(reused.sections).toEqual(retimed.sections);
    expect(reused.sections.stepSteady!.cycles).toBeCloseTo((36 + 62 * 33) / 63, 10);
  });

  test("the container keeps the delays; programs without them encode as before", () => {
    const p = pipelined();
    const back = decodeProgram(encodeProgram(p), "p.xbin");
    expect(back.tiles[0]!.sections.step.delays).toEqual([0, 1, 0, 1]);
    expect(back.tiles[1]!.sections.step.delays).toEqual([1, 1]);
    const q = plain();
    const withZeros = structuredClone(q);
    withZeros.tiles[0]!.sections.step.delays = [0, 0, 0, 0];
    expect(Buffer.from(encodeProgram(withZeros)).equals(Buffer.from(encodeProgram(q)))).toBe(true);
    expect(decodeProgram(encodeProgram(q), "q.xbin").tiles[0]!.sections.step.delays).toBeUndefined();
    expect(formatAsm(p)).toMatch(/vgelu +dst=@16 a=@8 len=8 \+1 {2};/);
  });

  test("the verifier rejects delays the rounds cannot run", () => {
    const run = (p: Program) => () => runProgram(p, inputs(1, 2), [1, 2, 4], { file: "bad.xbin" });
    // A message crossing a round boundary.
    let b = base().emit(0, "step", [load, mvm, gelu]).emit(0, "step", send, "main", 1).emit(1, "step", [recv, store]);
    expect(userErrors(run(b.build()), "verify").map((d) => d.message)).toEqual([
      "tile 1, section step, instruction 0 (recv): has step delay 0 but the matching send (tile 0, instruction 3) has 1; a send and its recv need the same delay",
    ]);
    // An input load with a delay, a step output stored with two delays, a delay in final.
    b = base().emit(0, "step", load, "main", 1).emit(0, "step", [mvm, gelu, send], "main", 1).emit(1, "step", [recv], "main", 1);
    b.emit(1, "step", store, "main", 1).emit(1, "step", { ...store, src: 8 }).emit(1, "final", { op: "vcopy", dst: 1, a: 0, len: 1 }, "main", 2);
    const messages = userErrors(run(b.build()), "verify").map((d) => d.message);
    expect(messages).toEqual([
      'tile 0, section step, instruction 0 (load): loads input "x" with step delay 1; the host writes step r\'s input before round r, so input loads must have delay 0',
      "tile 1, section final, instruction 0: step delay 2 outside the step section (only step instructions run in rounds)",
      'step output "y" is stored with step delays 0 and 1; the host reads it after one round per step, so all its stores need one delay',
    ]);
    const short = pipelined();
    short.tiles[0]!.sections.step.delays = [0, 1];
    expect(userErrors(run(short), "verify").map((d) => d.message)).toEqual(["tile 0, section step: 2 step delays for 4 instructions"]);
  });
});
