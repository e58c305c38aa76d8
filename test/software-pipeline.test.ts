// Software pipelining with step delays (src/backend/software-pipeline.ts, docs/SCHEDULE.md):
// the pipelined program must compute exactly what the plain one does, and be faster where the
// pass finds something to overlap. Cycle counts of the two are measured on the timing model;
// the rules the delays obey are checked by the verifier (every runProgram verifies) and, on
// its own, by the float64 reference executor, which implements rounds independently.

import { describe, expect, test } from "@jest/globals";
import { maxDelay } from "../src/backend/delays.js";
import type { Program } from "../src/backend/program.js";
import { stepBounds } from "../src/cost/bound.js";
import { measuredStepCycles } from "../src/cost/explain.js";
import type { Model } from "../src/ir/types.js";
import { readFileSync } from "node:fs";
import { compileDslSource } from "../src/frontend/dsl/index.js";
import { runProgram } from "../src/interp/run.js";
import { compile, loadModel } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import { execProgram } from "./helpers/exec-program.js";

const target = loadTarget("xbar64");

// Two residual S4D blocks around dense stages: the shape of examples/digits.s4d, small.
const SMALL = `model small {
  input u[1];
  output y;
  params init seed 3;
  linear(16);
  repeat 2 {
    residual postnorm {
      s4d(N = 8, discretization = zoh, init = lin);
      gelu;
      linear(32);
      glu;
    }
  }
  linear(2);
}`;

const inputs = (B: number, T: number, d: number): Float32Array => Float32Array.from({ length: B * T * d }, (_, i) => Math.sin(0.37 * i) * 0.8);
const same = (a: Float32Array | null, b: Float32Array | null): boolean => (a === null ? b === null : b !== null && Buffer.from(a.buffer).equals(Buffer.from(b.buffer)));

function pair(model: ReturnType<typeof loadModel>): { plain: Program; piped: Program; plainSteady: number; pipedSteady: number } {
  const a = compile(model, target);
  const b = compile(model, target, { pipelineSteps: true });
  return { plain: a.program, piped: b.program, plainSteady: measuredStepCycles(a, target).steady, pipedSteady: measuredStepCycles(b, target).steady };
}

describe("software pipelining", () => {
  test.each([
    ["examples/tiny.s4d", () => loadModel("examples/tiny.s4d"), true],
    ["examples/digits.s4d", () => loadModel("examples/digits.s4d"), true],
    // The pass finds delays here too but no gain (the auto mapping then keeps the plain program).
    ["two residual blocks", () => compileDslSource(SMALL, "small.s4d"), false],
    ["the ONNX digits fixture", () => loadModel("test/fixtures/onnx/digits64_op13.onnx"), false],
  ])("%s: outputs bit-identical to the plain program", (_name, load, faster) => {
    const { plain, piped, plainSteady, pipedSteady } = pair(load());
    expect(maxDelay(plain)).toBe(0);
    expect(maxDelay(piped)).toBeGreaterThan(0);
    if (faster) expect(pipedSteady).toBeLessThan(plainSteady);
    const d = plain.io.inputs[0]!.size;
    for (const T of [1, 3, 17]) {
      const x = inputs(2, T, d);
      const a = runProgram(plain, x, [2, T, d]);
      const b = runProgram(piped, x, [2, T, d]);
      expect(same(a.step, b.step) && same(a.final, b.final)).toBe(true);
    }
  });

  test("the float64 reference executor gives the same numbers for both programs (rounds run on their own there)", () => {
    const { plain, piped } = pair(compileDslSource(SMALL, "small.s4d"));
    const T = 9;
    const x = inputs(1, T, 1);
    const seq = { u: Array.from({ length: T }, (_, t) => Float64Array.of(x[t]!)) };
    const a = execProgram(plain, seq);
    const b = execProgram(piped, seq);
    expect(b.step.y!.length).toBe(T);
    b.step.y!.forEach((v, t) => expect(Array.from(v)).toEqual(Array.from(a.step.y![t]!)));
  });

});

describe("schedule quality against the machine bound (issue #10's target, docs/SCHEDULE.md)", () => {
  // The bound: max(recurrence loop, busiest unit) of src/cost/bound.ts, which no schedule of
  // the program's instructions on this machine beats (unlimited issue, units not pipelined).
  const ratio = (model: Model, opts: { unroll?: number }): number => {
    const r = compile(model, target, { pipelineSteps: true, ...opts });
    const b = stepBounds(r.program, target);
    return measuredStepCycles(r, target).steady / Math.max(b.recurrence, b.resource);
  };

  test("digits-size model, two time steps per program step (what --unroll auto picks): <= 1.15", () => {
    expect(ratio(loadModel("examples/digits.s4d"), { unroll: 2 })).toBeLessThanOrEqual(1.15);
  });

  test("a larger model (H = 128, N = 32, 2 layers; all 32 tiles of xbar64): <= 1.15", () => {
    const src = readFileSync("examples/digits.s4d", "utf8").replace("linear(64);", "linear(128);").replace(/N = 64/g, "N = 32").replace("linear(128);                  //", "linear(256);                  //");
    expect(src).toContain("linear(256)");
    expect(ratio(compileDslSource(src, "h128.s4d"), {})).toBeLessThanOrEqual(1.15);
  });
});
