import { describe, expect, test } from "@jest/globals";
import type { Instr } from "../src/backend/isa.js";
import { UserError } from "../src/common/errors.js";
import { runProgram } from "../src/interp/run.js";
import { loadTarget } from "../src/target/load.js";
import { patchedTarget, ProgramBuilder } from "./helpers/program-builder.js";

const f = Math.fround;

/** One tile: input x (n words) loaded to local 0, `body` runs, local [out, out+m) stored as the step output. */
function vectorProgram(n: number, body: Instr[], out: number, m: number, target = loadTarget("xbar64")): ProgramBuilder {
  const b = new ProgramBuilder(target, { memoryWords: 128, globalWords: 128 });
  b.input("x", n, 0).stepOutput("y", m, 64);
  b.emit(0, "step", [{ op: "load", dst: 0, global: 0, len: n }, ...body, { op: "store", global: 64, src: out, len: m }]);
  return b;
}

function runOnce(b: ProgramBuilder, x: number[]): number[] {
  const r = runProgram(b.build(), Float32Array.from(x), [1, 1, x.length]);
  return Array.from(r.step!);
}

describe("quantized crossbar numerics (xbar64: D = Q = 127, levels -15..15)", () => {
  // 2x3 image: levels [[3, -5, 15], [-2, 7, 0]], inRange [1, 2], colScale [0.1, 0.2, 0.05], outRange [4, 1, 10].
  function mvmProgram(acc = false): ProgramBuilder {
    const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 64, globalWords: 64 });
    b.input("x", 2, 0).stepOutput("y", 3, 8);
    b.crossbar({ tile: 0, rows: 2, cols: 3, levels: [3, -5, 15, -2, 7, 0], inRange: [1, 2], colScale: [0.1, 0.2, 0.05], outRange: [4, 1, 10] });
    b.constant(0, 16, [1, 2, 3]);
    b.emit(0, "step", { op: "load", dst: 0, global: 0, len: 2 });
    if (acc) b.emit(0, "step", { op: "vcopy", dst: 4, a: 16, len: 3 });
    b.emit(0, "step", [
      { op: "mvm", xbar: 0, rowStart: 0, rows: 2, colStart: 0, cols: 3, src: 0, dst: 4, acc },
      { op: "store", global: 8, src: 4, len: 3 },
    ], "layer1");
    return b;
  }

  test("DAC rounding, integer sum, column scale and ADC clipping", () => {
    // x = [0.5, -1.3]:
    //   code0 = round(0.5 / 1 * 127) = round(63.5) = 64 (ties away from zero)
    //   code1 = round(-1.3 / 2 * 127) = round(-82.55) = -83
    //   s = [64*3 + -83*-2, 64*-5 + -83*7, 64*15 + 0] = [358, -901, 960]
    //   v = s * colScale / 127 = [0.28189, -1.41890, 0.37795]
    //   y0 = round(0.28189 / 4 * 127) * 4 / 127 = 9 * 4 / 127
    //   y1: |v1| > 1 saturates: round(-180.2) clamps to -127 -> -1
    //   y2 = round(0.37795 / 10 * 127) * 10 / 127 = 5 * 10 / 127
    const r = runProgram(mvmProgram().build(), Float32Array.from([0.5, -1.3]), [1, 1, 2]);
    expect(Array.from(r.step!)).toEqual([f((9 * 4) / 127), -1, f((5 * 10) / 127)]);
    expect(r.report.saturation.saturations).toBe(1);
    expect(r.report.saturation.conversions).toBe(3);
    expect(r.report.saturation.perSymbol).toEqual([{ symbol: "layer1", saturations: 1, conversions: 3 }]);
    expect(r.report.saturation.perCrossbar).toEqual([{ crossbar: 0, tile: 0, saturations: 1, conversions: 3 }]);
  });

  test("DAC clamps inputs beyond inRange; an ADC input exactly at outRange is not a saturation", () => {
    // 1x1 image, level 4, inRange 1, colScale 0.125, outRange 0.5 (all exact in float32).
    // x = 5: code = clamp(round(5 * 127)) = 127; s = 508; v = 508 * 0.125 / 127 = 0.5 = outRange
    // -> not a saturation; q = round(0.5 / 0.5 * 127) = 127 -> y = 0.5.
    // x = -100: code -127, v = -0.5, y = -0.5. x = 0.3: code round(38.1) = 38, s = 152,
    // v = 19 / 127, q = round(38) = 38 -> y = 38 * 0.5 / 127.
    const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 64, globalWords: 64 });
    b.input("x", 1, 0).stepOutput("y", 1, 8);
    b.crossbar({ tile: 0, rows: 1, cols: 1, levels: [4], inRange: [1], colScale: [0.125], outRange: [0.5] });
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 1 },
      { op: "mvm", xbar: 0, rowStart: 0, rows: 1, colStart: 0, cols: 1, src: 0, dst: 4, acc: false },
      { op: "store", global: 8, src: 4, len: 1 },
    ]);
    const r = runProgram(b.build(), Float32Array.from([5, -100, 0.3]), [1, 3, 1]);
    expect(Array.from(r.step!)).toEqual([0.5, -0.5, f((38 * 0.5) / 127)]);
    expect(r.report.saturation.saturations).toBe(0);
    // with outRange 0.25 the same inputs saturate twice (|v| = 0.5 > 0.25) and clip to +-0.25
    b.crossbars[0]!.outRange[0] = 0.25;
    const r2 = runProgram(b.build(), Float32Array.from([5, -100, 0.3]), [1, 3, 1]);
    expect(Array.from(r2.step!)).toEqual([0.25, -0.25, f((76 * 0.25) / 127)]);
    expect(r2.report.saturation.saturations).toBe(2);
  });

  test("acc adds the ADC output to the partial sum already in dst (float32)", () => {
    const r = runProgram(mvmProgram(true).build(), Float32Array.from([0.5, -1.3]), [1, 1, 2]);
    expect(Array.from(r.step!)).toEqual([f(1 + f(36 / 127)), f(2 + -1), f(3 + f(50 / 127))]);
  });

  test("row and column windows select the driven rows and the read columns", () => {
    // Drive only row 1 (x = -1.3 -> code -83), read columns 1..2: s = [-83*7, 0] = [-581, 0]
    // v = [-581*0.2/127 = -0.91496, 0]; y0 = round(-0.91496*127 = -116.2) = -116 -> -116/127; y1 = 0.
    const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 64, globalWords: 64 });
    b.input("x", 1, 0).stepOutput("y", 2, 8);
    b.crossbar({ tile: 0, rows: 2, cols: 3, levels: [3, -5, 15, -2, 7, 0], inRange: [1, 2], colScale: [0.1, 0.2, 0.05], outRange: [4, 1, 10] });
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 1 },
      { op: "mvm", xbar: 0, rowStart: 1, rows: 1, colStart: 1, cols: 2, src: 0, dst: 4, acc: false },
      { op: "store", global: 8, src: 4, len: 2 },
    ]);
    expect(runOnce(b, [-1.3])).toEqual([f(-116 / 127), 0]);
  });
});

describe("float crossbar numerics (ideal target)", () => {
  test("y_j = sum_i x_i w_ij rounded once to float32", () => {
    const b = new ProgramBuilder(loadTarget("ideal"), { memoryWords: 64, globalWords: 64 });
    b.input("x", 3, 0).stepOutput("y", 2, 8);
    const w = [0.1, -2, 0.25, 3, 1e-3, 0.5];
    b.crossbar({ tile: 0, rows: 3, cols: 2, values: w });
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 3 },
      { op: "mvm", xbar: 0, rowStart: 0, rows: 3, colStart: 0, cols: 2, src: 0, dst: 4, acc: false },
      { op: "store", global: 8, src: 4, len: 2 },
    ]);
    const x = [1.5, -0.75, 2];
    const wf = w.map(f);
    const want = [0, 1].map((j) => f(x[0]! * wf[j]! + x[1]! * wf[2 + j]! + x[2]! * wf[4 + j]!));
    const r = runProgram(b.build(), Float32Array.from(x), [1, 1, 3]);
    expect(Array.from(r.step!)).toEqual(want);
    expect(r.report.saturation.saturations).toBe(0);
  });
});

describe("vector unit (float32)", () => {
  const x = [0.1, -2.5, 3, 0.2];
  const cases: [string, Instr[], number, number, number[]][] = [
    ["vadd", [{ op: "vadd", dst: 8, a: 0, b: 2, len: 2 }], 8, 2, [f(f(0.1) + 3), f(-2.5 + f(0.2))]],
    ["vsub", [{ op: "vsub", dst: 8, a: 0, b: 2, len: 2 }], 8, 2, [f(f(0.1) - 3), f(-2.5 - f(0.2))]],
    ["vmul", [{ op: "vmul", dst: 8, a: 0, b: 2, len: 2 }], 8, 2, [f(f(0.1) * 3), f(-2.5 * f(0.2))]],
    ["vcopy", [{ op: "vcopy", dst: 8, a: 0, len: 4 }], 8, 4, x.map(f)],
    ["vrelu", [{ op: "vrelu", dst: 8, a: 0, len: 4 }], 8, 4, [f(0.1), 0, 3, f(0.2)]],
    // GELU(x) = x * Phi(x); Phi(3) = 0.9986501019683699, Phi(-2.5) = 0.006209665325776132
    ["vgelu", [{ op: "vgelu", dst: 8, a: 1, len: 2 }], 8, 2, [f(-2.5 * 0.006209665325776132), f(3 * 0.9986501019683699)]],
    // sigmoid(3) = 0.9525741268224334, sigmoid(-2.5) = 0.07585818002124355
    ["vsigmoid", [{ op: "vsigmoid", dst: 8, a: 1, len: 2 }], 8, 2, [f(0.07585818002124355), f(0.9525741268224334)]],
    ["vtanh", [{ op: "vtanh", dst: 8, a: 1, len: 2 }], 8, 2, [f(Math.tanh(-2.5)), f(Math.tanh(3))]],
    ["vscale", [{ op: "vscale", dst: 8, a: 0, len: 2, imm: 0.5 }], 8, 2, [f(f(0.1) * 0.5), -1.25]],
    // vglu: a[0..2) * sigmoid(a[2..4)) = [0.1 * sigmoid(3), -2.5 * sigmoid(0.2)]; sigmoid(0.2) = 0.549833997312478
    ["vglu", [{ op: "vglu", dst: 8, a: 0, len: 2 }], 8, 2, [f(f(0.1) * f(0.9525741268224334)), f(-2.5 * f(f(1 / (1 + Math.exp(-f(0.2))))))]],
  ];
  test.each(cases)("%s", (_name, body, out, m, want) => {
    expect(runOnce(vectorProgram(4, body, out, m), x)).toEqual(want);
  });

  test("vaffine scales and shifts with constants from memory", () => {
    const b = vectorProgram(2, [{ op: "vaffine", dst: 8, a: 0, c: 32, len: 2 }], 8, 2);
    b.constant(0, 32, [2, -0.5, 0.25, 1]); // scale [2, -0.5], shift [0.25, 1]
    expect(runOnce(b, [0.1, 3])).toEqual([f(f(f(0.1) * 2) + 0.25), f(-1.5 + 1)]);
  });

  test("vnorm normalizes with the biased variance", () => {
    // [1, 2, 3, 4]: mean 2.5, var (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, eps 0.75 -> sd = float32(sqrt(2))
    const got = runOnce(vectorProgram(4, [{ op: "vnorm", dst: 8, a: 0, len: 4, imm: 0.75 }], 8, 4), [1, 2, 3, 4]);
    const sd = f(Math.SQRT2);
    expect(got).toEqual([-1.5, -0.5, 0.5, 1.5].map((d) => f(d / sd)));
  });

  test("in-place and overlapping operands read before writing", () => {
    // vcopy from [0..4) to [1..5) must shift, not smear the first element
    const got = runOnce(vectorProgram(4, [{ op: "vcopy", dst: 1, a: 0, len: 4 }], 0, 5), [1, 2, 3, 4]);
    expect(got).toEqual([1, 1, 2, 3, 4]);
  });

  test("float64 vector precision keeps double results", () => {
    const t = patchedTarget("xbar64", (t) => {
      t.vector.precision = "float64";
    });
    const b = vectorProgram(2, [{ op: "vmul", dst: 8, a: 0, b: 1, len: 1 }, { op: "vadd", dst: 8, a: 8, b: 8, len: 1 }], 8, 1, t);
    // 0.1f * 0.3f computed in double, doubled, then rounded only when the host reads float32 output
    expect(runOnce(b, [0.1, 0.3])).toEqual([f(2 * (f(0.1) * f(0.3)))]);
    const b32 = vectorProgram(2, [{ op: "vmul", dst: 8, a: 0, b: 1, len: 1 }], 8, 1);
    expect(runOnce(b32, [0.1, 0.3])).toEqual([f(f(0.1) * f(0.3))]);
  });
});

describe("sections, state and batches", () => {
  // step: s += x; y = s. final: mean = s / T.
  function accumulator(): ProgramBuilder {
    const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 64, globalWords: 64 });
    b.input("x", 2, 0).stepOutput("y", 2, 8).finalOutput("mean", 2, 16);
    b.constant(0, 20, [100, 100]);
    b.emit(0, "init", { op: "vcopy", dst: 10, a: 20, len: 2 }); // s starts at 100 after init
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 2 },
      { op: "vadd", dst: 10, a: 10, b: 0, len: 2 },
      { op: "store", global: 8, src: 10, len: 2 },
    ]);
    b.emit(0, "final", [
      { op: "vdivsteps", dst: 12, a: 10, len: 2 },
      { op: "store", global: 16, src: 12, len: 2 },
    ]);
    return b;
  }

  test("init once, step per time step, final once; state resets per sequence", () => {
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, /* seq 2 */ -1, -2, -3, -4, -5, -6]);
    const r = runProgram(accumulator().build(), x, [2, 3, 2]);
    expect(r.stepShape).toEqual([2, 3, 2]);
    expect(Array.from(r.step!)).toEqual([101, 102, 104, 106, 109, 112, 99, 98, 96, 94, 91, 88]);
    expect(r.finalShape).toEqual([2, 2]);
    expect(Array.from(r.final!)).toEqual([f(109 / 3), f(112 / 3), f(91 / 3), f(88 / 3)]);
    expect(r.report.sections.init.runs).toBe(2);
    expect(r.report.sections.stepFirst.runs).toBe(2);
    expect(r.report.sections.stepSteady!.runs).toBe(4);
  });

  test("several output buffers are concatenated in program order", () => {
    const b = new ProgramBuilder(loadTarget("xbar64"), { memoryWords: 64, globalWords: 64 });
    b.input("x", 3, 0).stepOutput("tail", 2, 1).stepOutput("head", 1, 0).finalOutput("f1", 1, 2).finalOutput("f0", 1, 0);
    const r = runProgram(b.build(), Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 2, 3]);
    // the program is empty: the host reads back what it wrote into the input buffer
    expect(Array.from(r.step!)).toEqual([2, 3, 1, 5, 6, 4]);
    expect(Array.from(r.final!)).toEqual([6, 4]);
    expect(r.stepShape).toEqual([1, 2, 3]);
    expect(r.finalShape).toEqual([1, 2]);
  });

  test("input size mismatch names both sizes", () => {
    expect(() => runProgram(accumulator().build(), new Float32Array(3), [1, 1, 3])).toThrow(/3 features per step but the program's input "x" has 2/);
  });

  test("input length must match the shape", () => {
    expect(() => runProgram(accumulator().build(), new Float32Array(3), [1, 2, 2])).toThrow(UserError);
  });

  test("programs with several inputs are reported as unsupported", () => {
    const b = accumulator().input("x2", 1, 30);
    try {
      runProgram(b.build(), new Float32Array(2), [1, 1, 2]);
      throw new Error("expected a failure");
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).kind).toBe("unsupported");
    }
  });

  test("two runs are bit-identical", () => {
    const p = accumulator().build();
    const x = Float32Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7) * 3);
    const a = runProgram(p, x, [2, 10, 2], { trace: true });
    const b = runProgram(p, x, [2, 10, 2], { trace: true });
    expect(Buffer.from(a.step!.buffer).equals(Buffer.from(b.step!.buffer))).toBe(true);
    expect(Buffer.from(a.final!.buffer).equals(Buffer.from(b.final!.buffer))).toBe(true);
    expect(JSON.stringify(a.report)).toBe(JSON.stringify(b.report));
    expect(JSON.stringify(a.trace)).toBe(JSON.stringify(b.trace));
  });
});

describe("tiles", () => {
  test("send/recv moves data between tiles", () => {
    const b = new ProgramBuilder(loadTarget("xbar64"), { tiles: 3, memoryWords: 64, globalWords: 64 });
    b.input("x", 3, 0).stepOutput("y", 3, 8);
    b.emit(0, "step", [
      { op: "load", dst: 0, global: 0, len: 3 },
      { op: "send", peer: 2, src: 0, len: 3, tag: 7 },
    ]);
    // tile 2 receives, applies relu and forwards to tile 1, which stores
    b.emit(2, "step", [
      { op: "recv", peer: 0, dst: 5, len: 3, tag: 7 },
      { op: "vrelu", dst: 5, a: 5, len: 3 },
      { op: "send", peer: 1, src: 5, len: 3, tag: 7 },
    ]);
    b.emit(1, "step", [
      { op: "recv", peer: 2, dst: 0, len: 3, tag: 7 },
      { op: "store", global: 8, src: 0, len: 3 },
    ]);
    expect(runOnce(b, [-1, 2, -3])).toEqual([0, 2, 0]);
  });

  test("a cycle of recvs is reported as a deadlock", () => {
    const b = new ProgramBuilder(loadTarget("xbar64"), { tiles: 2, memoryWords: 64, globalWords: 64 });
    b.input("x", 1, 0);
    b.emit(0, "step", [
      { op: "recv", peer: 1, dst: 0, len: 1, tag: 0 },
      { op: "send", peer: 1, src: 0, len: 1, tag: 1 },
    ]);
    b.emit(1, "step", [
      { op: "vcopy", dst: 0, a: 0, len: 1 },
      { op: "recv", peer: 0, dst: 0, len: 1, tag: 1 },
      { op: "send", peer: 0, src: 0, len: 1, tag: 0 },
    ]);
    let err: unknown;
    try {
      runProgram(b.build(), new Float32Array(1), [1, 1, 1], { file: "loop.xbin" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(
      "loop.xbin: section step: deadlock: tile 0 waits at instruction 0 (recv from tile 1, tag 0); tile 1 waits at instruction 1 (recv from tile 0, tag 1); no tile can proceed",
    );
  });
});
