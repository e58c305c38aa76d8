// The PyTorch-exported fixtures (test/fixtures/onnx/, see its README): each accepted graph
// is lifted to lowered IR, evaluated by the float reference, and compared with ONNX Runtime
// on the same graph (step graphs step by step, Scan graphs in one run) and with the
// committed PyTorch outputs. The rejected one must fail with a message naming its node.

import { describe, expect, test } from "@jest/globals";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isUserError } from "../src/common/errors.js";
import { readFloatNpy } from "../src/common/npy.js";
import { compileDslFile } from "../src/frontend/dsl/index.js";
import { compileOnnxFile } from "../src/frontend/onnx/index.js";
import type { Model } from "../src/ir/types.js";
import { compile } from "../src/pipeline.js";
import { lower } from "../src/passes/lower.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import { run, runSteps, session } from "./helpers/ort.js";

const DIR = join(process.cwd(), "test/fixtures/onnx");

interface Fixture {
  name: string;
  file: string;
  expect: "accept" | "reject";
  form: "step" | "scan";
  input: string;
  output: string;
  states: Array<{ in: string; out: string; shape: Array<number | string> }>;
  readout?: "per_step" | "mean";
  data: { input: string; output: string; input_shape: number[]; output_shape: number[] };
  dsl?: string;
}

const manifest: Fixture[] = existsSync(join(DIR, "fixtures.json")) ? JSON.parse(readFileSync(join(DIR, "fixtures.json"), "utf8")).fixtures : [];

/** max |a - b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / Math.max(m, 1e-30);
}

/** IR outputs for every sequence of xs [B, T, d]: step outputs [B, T, w], final [B, w]. */
function evaluateIr(model: Model, xs: Float32Array, B: number, T: number, d: number): { step: Record<string, Float64Array>; final: Record<string, Float64Array> } {
  const step: Record<string, number[]> = {};
  const final: Record<string, number[]> = {};
  const input = model.inputs[0]!;
  expect(input.size).toBe(d);
  for (let b = 0; b < B; b++) {
    const seq = Array.from({ length: T }, (_, t) => Float64Array.from(xs.subarray((b * T + t) * d, (b * T + t + 1) * d)));
    const res = evaluateSequence(model, { [input.name]: seq });
    for (const [k, v] of Object.entries(res.step)) for (const x of v) (step[k] ??= []).push(...x);
    for (const [k, v] of Object.entries(res.final)) (final[k] ??= []).push(...v);
  }
  const f64 = (r: Record<string, number[]>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Float64Array.from(v)]));
  return { step: f64(step), final: f64(final) };
}

const accepted = manifest.filter((f) => f.expect === "accept");
const rejected = manifest.filter((f) => f.expect === "reject");

describe("ONNX fixtures exported from PyTorch", () => {
  test("the manifest lists fixtures", () => {
    expect(accepted.length).toBeGreaterThan(0);
  });

  test.each(accepted.map((f) => [f.name, f] as const))("%s: lifted IR matches ONNX Runtime and PyTorch", async (_name, fx) => {
    const file = join(DIR, fx.file);
    const model = compileOnnxFile(file);
    expect(model.level).toBe("lowered");
    const x = readFloatNpy(join(DIR, fx.data.input));
    const [B, T, d] = x.shape as [number, number, number];
    const ir = evaluateIr(model, x.data, B, T, d);
    const torchOut = readFloatNpy(join(DIR, fx.data.output)).data;
    const bytes = readFileSync(file);
    if (fx.form === "step") {
      const states = fx.states.map((s) => ({ in: s.in, out: s.out, shape: s.shape.slice(1) as number[] }));
      const ort = await runSteps(bytes, fx.input, states, x.data, B, T, d);
      const irSteps = ir.step[fx.output]!;
      const vsOrt = relErr(irSteps, ort[fx.output]!.data);
      expect(vsOrt).toBeLessThanOrEqual(1e-4);
      if (fx.readout === "mean") {
        const mean = ir.final[`${fx.output}_mean`]!;
        expect(relErr(mean, torchOut)).toBeLessThanOrEqual(1e-4);
        const steps = join(DIR, fx.data.output.replace(".output.npy", ".steps.npy"));
        if (existsSync(steps)) expect(relErr(irSteps, readFloatNpy(steps).data)).toBeLessThanOrEqual(1e-4);
      } else {
        expect(relErr(irSteps, torchOut)).toBeLessThanOrEqual(1e-4);
      }
      report(fx.name, vsOrt, fx.readout === "mean" ? relErr(ir.final[`${fx.output}_mean`]!, torchOut) : relErr(irSteps, torchOut));
    } else {
      const s = await session(bytes);
      const ort = await run(s, { [fx.input]: { shape: [B, T, d], data: x.data } });
      const out = model.outputs.find((o) => o.name === fx.output)!;
      const got = out.section === "final" ? ir.final[fx.output]! : ir.step[fx.output]!;
      const vsOrt = relErr(got, ort[fx.output]!.data);
      expect(vsOrt).toBeLessThanOrEqual(1e-4);
      const vsTorch = relErr(got, torchOut);
      expect(vsTorch).toBeLessThanOrEqual(1e-4);
      report(fx.name, vsOrt, vsTorch);
    }
  });

  test.each(rejected.map((f) => [f.name, f] as const))("%s is rejected with the node named", (_name, fx) => {
    let err: unknown;
    try {
      compileOnnxFile(join(DIR, fx.file));
    } catch (e) {
      err = e;
    }
    expect(isUserError(err)).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toMatch(/Tanh/);
    expect(msg).toMatch(/h_in|h_out/);
    expect(msg).toMatch(/not affine/);
  });

  // Where the recurrence is diagonal S4D the lifted IR must have the DSL path's shape: the same
  // matmuls (one fused [x; u] -> [x'; y] per layer) and so the same crossbars.
  const withDsl = accepted.filter((f) => f.dsl && existsSync(join(DIR, f.dsl)));
  const dslCounts = new Map<string, number[]>();
  const targets = () => ["ideal", "xbar64"].map((t) => loadTarget(t));
  test.each(withDsl.map((f) => [f.name, f] as const))("%s: same matmuls and crossbar count as the DSL model from the same safetensors", (_name, fx) => {
    const dslFile = join(DIR, fx.dsl!);
    const dslModel = compileDslFile(dslFile);
    const onnx = compileOnnxFile(join(DIR, fx.file));
    const shapes = (m: Model) => m.sections.step.concat(m.sections.final).flatMap((o) => (o.op === "matmul" ? [`${o.weight.rows}x${o.weight.cols}:${o.origin}`] : []));
    const dslLowered = lower(dslModel);
    expect(shapes(onnx).sort()).toEqual(shapes(dslLowered).sort());
    // As the pipeline runs them (state scaling, quantization, tiling): which weights round to
    // zero decides the crossbar pieces, so both go through the same compile().
    const ts = targets();
    if (!dslCounts.has(fx.dsl!)) dslCounts.set(fx.dsl!, ts.map((t) => compile(dslModel, t).plan.crossbars.length));
    ts.forEach((target, k) => {
      const a = dslCounts.get(fx.dsl!)![k]!;
      const b = compile(onnx, target).plan.crossbars.length;
      report(`${fx.name} crossbars on ${target.name} (DSL, ONNX)`, a, b);
      expect(b).toBe(a);
    });
  });
});

const lines: string[] = [];
function report(name: string, a: number, b: number): void {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toExponential(2));
  lines.push(`${name}: ${fmt(a)} ${fmt(b)}`);
  if (process.env["ONNX_REPORT"]) console.log(lines[lines.length - 1]);
}
