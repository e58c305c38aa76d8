// k-step unrolling (src/passes/unroll.ts, docs/SCHEDULE.md "Unrolling"): the unrolled IR
// computes what the one-step IR computes (float reference, per time step), its recurrence
// matrix is the k-th power built independently from the complex discretization, the compiled
// programs stay within imssa-verify's bounds on float and quantized targets, the runtime
// hides k from callers, and the CLI refuses bad --unroll values.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discretizeS4D } from "../src/common/s4d-math.js";
import { isUserError } from "../src/common/errors.js";
import { measuredStepCycles } from "../src/cost/explain.js";
import { stepBounds } from "../src/cost/bound.js";
import { chooseUnroll, parseUnroll } from "../src/cost/unroll-choice.js";
import { compileDslSource } from "../src/frontend/dsl/index.js";
import { runProgram } from "../src/interp/run.js";
import { checkProgram } from "../src/interp/verify.js";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import type { BlockMatrix, MatMulOp, Model, S4DOp } from "../src/ir/types.js";
import { checkModel } from "../src/ir/validate.js";
import { compile, loadModel } from "../src/pipeline.js";
import { lower } from "../src/passes/lower.js";
import { residualRecurrence } from "../src/passes/residual.js";
import { chunkSequence, unchunkSteps, unroll, unrolledRecurrence } from "../src/passes/unroll.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import { FLOAT_RELATIVE_BOUND } from "../src/verify/bound.js";
import { verifyModel } from "../src/verify/index.js";

const ideal = loadTarget("ideal");
const xbar64 = loadTarget("xbar64");

/** Two residual S4D blocks; `pooled`: mean over time and a decoder in `final` instead of per-step outputs. */
const small = (pooled: boolean): Model =>
  compileDslSource(
    `model small {
      input u[2];
      output y;
      params init seed 3;
      linear(4);
      repeat 2 {
        residual prenorm {
          s4d(N = 8, discretization = zoh, init = lin, dt_min = 0.01, dt_max = 0.5);
          gelu;
          linear(8);
          glu;
        }
      }
      ${pooled ? "meanpool;" : ""}
      linear(3);
    }`,
    "<small>",
  );

/** Seeded inputs [B, T, d] in [-1, 1). */
function inputs(B: number, T: number, d: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: B * T * d }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function sequence(x: Float32Array, b: number, T: number, d: number, name: string): Record<string, Float64Array[]> {
  return { [name]: Array.from({ length: T }, (_, t) => Float64Array.from(x.subarray((b * T + t) * d, (b * T + t + 1) * d))) };
}

const maxAbs = (vs: Iterable<ArrayLike<number>>): number => {
  let m = 0;
  for (const v of vs) for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]!));
  return m;
};

describe("float equivalence of the unrolled IR (reference evaluator, per time step)", () => {
  // Both sides are float64: unrolling only reassociates sums (A^k products, sums over
  // sub-steps) and multiplies by 1/k before div_steps. A float64 sum of n terms is within
  // n * eps64 * sum|terms| of exact; with a few thousand terms per output and a few layers
  // (LayerNorm can amplify by 1/std ~ 10), 1e-9 relative to max|y| is above that with a
  // margin and far below any real error (one wrong weight moves outputs by ~1e-2).
  const TOL = 1e-9;
  const cases: Array<[string, () => Model, number[]]> = [
    ["digits (meanpool, final output)", () => lower(loadModel("examples/digits.s4d")), [12]],
    ["2-layer, step outputs", () => lower(small(false)), [12, 10, 7]],
    ["2-layer, meanpool", () => lower(small(true)), [12]],
    // src/passes/residual.ts: the matmul holds dA - I, an add restores the state.
    ["2-layer, residual recurrence form", () => residualRecurrence(lower(small(true))), [12]],
  ];
  for (const [name, make, lengths] of cases)
    test(`${name}: k = 2, 3, 4`, () => {
      const lowered = make();
      const input = lowered.inputs[0]!;
      for (const T of lengths) {
        const seq = sequence(inputs(1, T, input.size, 11 + T), 0, T, input.size, input.name);
        const want = evaluateSequence(lowered, seq);
        for (const k of [2, 3, 4]) {
          if (lowered.outputs.some((o) => o.section === "final") && T % k !== 0) continue;
          const u = unroll(lowered, k);
          checkModel(u, `unrolled ${k}`);
          expect(u.unroll).toBe(k);
          expect(u.inputs[0]!.size).toBe(k * input.size);
          // One k-step matmul per S4D layer, not k of them.
          const s4d = (m: Model) => m.sections.step.filter((o) => o.op === "matmul" && o.origin === "s4d").length;
          expect(s4d(u)).toBe(s4d(lowered));
          const residual = (m: Model) => m.sections.step.filter((o) => o.op === "matmul" && o.residual !== undefined).length;
          expect(residual(u)).toBe(residual(lowered));
          const got = evaluateSequence(u, chunkSequence(seq, k));
          for (const [out, steps] of Object.entries(want.step)) {
            const scale = maxAbs(steps);
            const back = unchunkSteps(got.step[out]!, k, T);
            expect(back.length).toBe(T);
            back.forEach((v, t) => v.forEach((x, i) => expect(Math.abs(x - steps[t]![i]!)).toBeLessThanOrEqual(TOL * scale)));
          }
          for (const [out, v] of Object.entries(want.final)) {
            const scale = maxAbs([v]);
            got.final[out]!.forEach((x, i) => expect(Math.abs(x - v[i]!)).toBeLessThanOrEqual(TOL * scale));
          }
        }
      }
    });

  test("the pass is pure and refuses to unroll twice", () => {
    const lowered = lower(small(true));
    const before = JSON.stringify(lowered);
    const u = unroll(lowered, 2);
    expect(JSON.stringify(lowered)).toBe(before);
    expect(() => unroll(u, 2)).toThrow(/already unrolled 2 steps/);
  });
});

describe("the k-step recurrence matrix", () => {
  test("generic block algebra with a bias equals k explicit steps (dense random W, L = 3 states, 2 inputs, 2 outputs)", () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const [L, n, P] = [3, 2, 2];
    const data = Array.from({ length: (L + n) * (L + P) }, rnd);
    const w: BlockMatrix = { rows: L + n, cols: L + P, blocks: [{ row: 0, col: 0, rows: L + n, cols: L + P, data }] };
    const bias = Array.from({ length: L + P }, rnd);
    const apply = (m: BlockMatrix, b: readonly number[], x: readonly number[]): number[] => {
      const d = dense(m);
      return b.map((bj, j) => x.reduce((s, xi, i) => s + xi * d[i * m.cols + j]!, bj));
    };
    for (const k of [1, 2, 3, 5]) {
      const { weight, bias: kb } = unrolledRecurrence(w, bias, L, k);
      const x0 = [rnd(), rnd(), rnd()];
      const us = Array.from({ length: k }, () => [rnd(), rnd()]);
      let x = x0;
      const ys: number[] = [];
      for (const u of us) {
        const out = apply(w, bias, [...x, ...u]);
        x = out.slice(0, L);
        ys.push(...out.slice(L));
      }
      const got = apply(weight, kb!, [...x0, ...us.flat()]);
      [...x, ...ys].forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThanOrEqual(1e-12));
    }
  });

  test("equals dA^k, dA^(k-1-i) dB, 2 Re(C dA^(j+1)), 2 Re(C dA^(j-i) dB) (+ D) from the complex discretization", () => {
    const model = loadModel("examples/tiny.s4d");
    const op = model.sections.step.find((o): o is S4DOp => o.op === "s4d")!;
    const k = 3;
    const u = unroll(lower(model), k);
    const mm = u.sections.step.find((o): o is MatMulOp => o.op === "matmul" && o.origin === "s4d")!;
    const { channels: H, modes: M } = op;
    const L = 2 * H * M;
    expect([mm.weight.rows, mm.weight.cols]).toEqual([L + k * H, L + k * H]);
    const W = dense(mm.weight);
    const at = (r: number, c: number) => W[r * mm.weight.cols + c]!;
    const { dA, dB } = discretizeS4D(op);
    type C = [number, number];
    const cm = (a: C, b: C): C => [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
    const pw = (a: C, n: number): C => (n === 0 ? [1, 0] : cm(a, pw(a, n - 1)));
    const close = (got: number, want: number) => expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want)));
    for (let h = 0; h < H; h++) {
      const yd: number[] = new Array<number>(k).fill(0); // 2 Re(sum_m C dA^n dB) for n = 0..k-1
      for (let m = 0; m < M; m++) {
        const i = h * M + m;
        const a: C = [dA.re[i]!, dA.im[i]!];
        const b: C = [dB.re[i]!, dB.im[i]!];
        const c: C = [op.C.re.data[i]!, op.C.im.data[i]!];
        const s = 2 * i;
        // x_{t+k} = dA^k x_t: real form [[Re, Im], [-Im, Re]] in crossbar orientation.
        const ak = pw(a, k);
        close(at(s, s), ak[0]);
        close(at(s, s + 1), ak[1]);
        close(at(s + 1, s), -ak[1]);
        close(at(s + 1, s + 1), ak[0]);
        for (let sub = 0; sub < k; sub++) {
          // u_sub -> state: dA^(k-1-sub) dB.
          const g = cm(pw(a, k - 1 - sub), b);
          close(at(L + sub * H + h, s), g[0]);
          close(at(L + sub * H + h, s + 1), g[1]);
          // state -> y_sub: 2 Re(C dA^(sub+1) x).
          const p = cm(c, pw(a, sub + 1));
          close(at(s, L + sub * H + h), 2 * p[0]);
          close(at(s + 1, L + sub * H + h), -2 * p[1]);
          yd[sub]! += 2 * cm(c, cm(pw(a, sub), b))[0];
        }
        // No coupling between modes.
        for (let m2 = 0; m2 < M; m2++) if (m2 !== m) expect(at(s, 2 * (h * M + m2))).toBe(0);
      }
      for (let j = 0; j < k; j++)
        for (let i = 0; i < k; i++) {
          const want = i > j ? 0 : i === j ? yd[0]! + op.D.data[h]! : yd[j - i]!;
          close(at(L + i * H + h, L + j * H + h), want);
        }
    }
    // Small blocks: nothing bigger than one channel's 2M state rows or columns.
    expect(Math.max(...mm.weight.blocks.map((b) => b.rows * b.cols))).toBeLessThanOrEqual(2 * M);
  });
});

function dense(w: BlockMatrix): Float64Array {
  const d = new Float64Array(w.rows * w.cols);
  for (const b of w.blocks) for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) d[(b.row + r) * w.cols + b.col + c] = b.data[r * b.cols + c]!;
  return d;
}

describe("compiled unrolled programs", () => {
  const B = 2;
  test("ideal target: the interpreter agrees with k = 1 to float32 rounding, T not a multiple of k included", () => {
    const model = small(false);
    const T = 10;
    const x = inputs(B, T, 2, 5);
    const ref = Array.from({ length: B }, (_, b) => evaluateSequence(model, sequence(x, b, T, 2, "u")));
    const scale = maxAbs(ref.flatMap((r) => r.step.y!));
    const base = runProgram(compile(model, ideal).program, x, [B, T, 2]);
    for (const k of [2, 3, 4]) {
      const r = runProgram(compile(model, ideal, { unroll: k }).program, x, [B, T, 2]);
      expect(r.stepShape).toEqual([B, T, 3]);
      expect(r.unroll).toBe(k);
      // imssa-verify's float-target bound holds for each program against the float64
      // reference, so two programs differ by at most twice it.
      for (let i = 0; i < r.step!.length; i++) expect(Math.abs(r.step![i]! - base.step![i]!)).toBeLessThanOrEqual(2 * FLOAT_RELATIVE_BOUND * scale);
    }
  });

  test("final outputs refuse a T that is not a multiple of k, naming T, k and the fix", () => {
    const p = compile(small(true), ideal, { unroll: 4 }).program;
    let err: unknown;
    try {
      runProgram(p, inputs(1, 10, 2, 1), [1, 10, 2]);
    } catch (e) {
      err = e;
    }
    expect(isUserError(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/--unroll 4.*multiple of 4.*T = 10.*--unroll 1/);
  });

  test("xbar64: quantization error vs the float reference stays within imssa-verify's bound for k = 1, 2, 4", () => {
    const model = small(true);
    const T = 16;
    const x = inputs(4, T, 2, 9);
    const lines: string[] = [];
    for (const k of [1, 2, 4]) {
      const r = verifyModel(model, xbar64, x, [4, T, 2], { calibration: null, inputFile: "<test>", unroll: k });
      for (const o of r.outputs) {
        lines.push(`k=${k} ${o.name}: max abs err ${o.maxAbsError.toExponential(3)}, bound ${o.bound.toExponential(3)}`);
        expect(o.maxAbsError).toBeLessThanOrEqual(o.bound);
        expect(o.maxAbsError).toBeGreaterThan(0); // quantized: not bit-exact, so the check is real
      }
      expect(r.pass).toBe(true);
    }
    process.stdout.write(`unroll quantization errors (small model, xbar64):\n  ${lines.join("\n  ")}\n`);
  });

  test("xbar64 timing: one recurrence MVM per layer per program step; measured intervals respect the bound", () => {
    const model = small(false);
    const lines: string[] = [];
    for (const k of [1, 2, 4]) {
      const r = compile(model, xbar64, { unroll: k });
      const t = measuredStepCycles(r, xbar64);
      const b = stepBounds(r.program, xbar64);
      // The interpreter's timing can never beat a bound every schedule obeys.
      expect(t.steady).toBeGreaterThanOrEqual(b.intervalBound);
      expect(r.quantized.sections.step.filter((o) => o.op === "matmul" && o.origin === "s4d")).toHaveLength(2);
      lines.push(`k=${k}: ${r.plan.crossbars.length} crossbars, steady ${t.steady} cycles/program step = ${(t.steady / k).toFixed(1)}/time step, bound ${(b.intervalBound / k).toFixed(1)}/time step`);
    }
    process.stdout.write(`unroll timing (small model, xbar64):\n  ${lines.join("\n  ")}\n`);
  });

  test("an unrolled lowered IR compiles to an unrolled program again; the verifier and the container keep k", () => {
    const first = compile(small(false), ideal, { unroll: 2 });
    const again = compile(JSON.parse(JSON.stringify(first.lowered)) as Model, ideal);
    expect(again.program.unroll).toBe(2);
    expect(() => compile(first.lowered, ideal, { unroll: 2 })).toThrow(/already unrolled 2 steps/);
    const round = decodeProgram(encodeProgram(first.program), "<mem>");
    expect(round.unroll).toBe(2);
    expect(decodeProgram(encodeProgram(compile(small(false), ideal).program), "<mem>").unroll).toBeUndefined();
    // Buffers that do not split into k time steps are refused before anything runs.
    expect(() => checkProgram({ ...first.program, unroll: 4 }, "<mem>")).toThrow(/not a multiple of the unroll factor 4/);
    expect(() => checkProgram({ ...first.program, unroll: 17 }, "<mem>")).toThrow(/unroll factor 17 is not an integer from 1 to 16/);
  });

  test("--unroll auto picks the fitting candidate with the fewest measured cycles per time step", () => {
    const choice = chooseUnroll(small(false), xbar64, {});
    const fitting = choice.candidates.filter((c) => c.fits);
    expect(choice.candidates.map((c) => c.k)).toEqual([1, 2, 4, 8]);
    expect(choice.chosen.perTimeStep).toBe(Math.min(...fitting.map((c) => c.perTimeStep)));
    expect(choice.reason).toMatch(new RegExp(`^k = ${choice.chosen.k}: `));
    // The measured interval never beats the bound.
    for (const c of fitting) expect(c.perTimeStep).toBeGreaterThanOrEqual(c.boundPerTimeStep);
  });
});

describe("--unroll values", () => {
  test("parseUnroll accepts 1..16 and auto, refuses the rest", () => {
    expect(parseUnroll("1")).toBe(1);
    expect(parseUnroll("16")).toBe(16);
    expect(parseUnroll("auto")).toBe("auto");
    for (const bad of ["0", "17", "2.5", "-1", "abc", "", "1e1", " 2"]) expect(() => parseUnroll(bad)).toThrow(/--unroll expects an integer from 1 to 16 or "auto"/);
  });

  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "imssa-unroll-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  test("imssa-compile: exit 1, one clear message, no stack trace, no output file", () => {
    if (!existsSync("dist/cli/compile.js")) throw new Error("dist/ is missing: run `npm run build`");
    // The values themselves are parseUnroll's test above; here, how the CLI reports one.
    for (const bad of ["17"]) {
      const out = join(dir, `bad-${bad}.xbin`);
      const r = spawnSync(process.execPath, ["dist/cli/compile.js", "examples/tiny.s4d", "--unroll", bad, "-o", out], { encoding: "utf8" });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/--unroll expects an integer from 1 to 16 or "auto", found/);
      expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      expect(existsSync(out)).toBe(false);
    }
    const r = spawnSync(process.execPath, ["dist/cli/compile.js", "examples/tiny.s4d", "--unroll", "2", "--emit", "qat-config"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/qat-config.*not supported/);
  });
});
