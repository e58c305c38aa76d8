import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../src/common/errors.js";
import { compileDslFile, compileDslSource } from "../src/frontend/dsl/index.js";
import { exportParams } from "../src/frontend/params/export.js";
import { readSafetensors, writeSafetensors, type TensorToWrite } from "../src/frontend/safetensors.js";
import type { BinaryOp, LayerNormOp, LinearOp, Model, Op, S4DOp } from "../src/ir/types.js";
import { validateModel } from "../src/ir/validate.js";

const ops = (m: Model): Op[] => [...m.sections.step, ...m.sections.final];
const byLayer = <T extends Op>(m: Model, layer: string): T => {
  const op = ops(m).find((o) => o.layer === layer);
  if (op === undefined) throw new Error(`no op for layer ${layer}`);
  return op as T;
};

function semanticErrors(fn: () => unknown): { line?: number; column?: number; message: string }[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).kind).toBe("semantic");
    return (e as UserError).diagnostics.map((d) => ({ line: d.location?.line, column: d.location?.column, message: d.message }));
  }
  throw new Error("expected a semantic error");
}

describe("DSL to IR", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "imssa-dsl-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test.each(readdirSync("examples").filter((f) => f.endsWith(".s4d")))("example %s compiles to a valid model-level IR", (f) => {
    const m = compileDslFile(join("examples", f));
    expect(m.level).toBe("model");
    // Through JSON and the schema + semantic validator, as a file on disk would be.
    expect(validateModel(JSON.parse(JSON.stringify(m)), f)).toEqual(m);
  });

  test("digits: the example.py architecture with the expected ops, shapes, names and sections", () => {
    const m = compileDslFile("examples/digits.s4d");
    expect(m.name).toBe("digits");
    expect(m.inputs).toEqual([{ name: "pixel", size: 1 }]);
    const step = m.sections.step.map((o) => `${o.op}:${o.layer}`);
    expect(step).toEqual([
      "linear:encoder",
      ...[0, 1].flatMap((i) => [`s4d:s4_layers.${i}`, `gelu:gelu.${i}`, `linear:s4_layers.${i}.output_linear.0`, `glu:glu.${i}`, `add:residual.${i}`, `layernorm:norms.${i}`]),
    ]);
    expect(m.sections.final.map((o) => `${o.op}:${o.layer}`)).toEqual(["meanpool:meanpool.0", "linear:decoder"]);
    const decoder = byLayer<LinearOp>(m, "decoder");
    expect(m.outputs).toEqual([{ name: "logits", value: decoder.out, section: "final" }]);
    expect(m.sections.final[0]).toMatchObject({ op: "meanpool", x: m.sections.step.at(-1)!.out });

    const enc = byLayer<LinearOp>(m, "encoder");
    expect(enc.x).toBe("pixel");
    expect(enc.weight.shape).toEqual([64, 1]);
    expect(enc.bias!.shape).toEqual([64]);
    const s4 = byLayer<S4DOp>(m, "s4_layers.0");
    expect(s4).toMatchObject({ channels: 64, modes: 32, discretization: "zoh", state: "s4_layers.0.state", x: enc.out });
    expect(s4.logAReal.shape).toEqual([64, 32]);
    expect(s4.C.re.shape).toEqual([64, 32]);
    expect(s4.D.shape).toEqual([64]);
    expect(s4.timescale.kind).toBe("log_dt");
    expect(s4.B).toBeUndefined();
    expect(m.state).toEqual([
      { name: "s4_layers.0.state", size: 2 * 64 * 32 },
      { name: "s4_layers.1.state", size: 2 * 64 * 32 },
    ]);
    expect(byLayer<LinearOp>(m, "s4_layers.1.output_linear.0").weight.shape).toEqual([128, 64]);
    expect(decoder.weight.shape).toEqual([10, 64]);
    const add = byLayer<BinaryOp>(m, "residual.0");
    expect(add.a).toBe(enc.out); // x + block(x)
    expect(byLayer<LayerNormOp>(m, "norms.0")).toMatchObject({ x: add.out, eps: 1e-5 });
    // SSA: value names are unique and differ from the input name.
    const outs = ops(m).map((o) => o.out);
    expect(new Set(outs).size).toBe(outs.length);
    expect(outs).not.toContain("pixel");
    expect(m.meta).toEqual({ source: "examples/digits.s4d", params: "init seed 0", seed: 0 });
  });

  test("init parameters follow the PyTorch / state-spaces formulas", () => {
    const m = compileDslFile("examples/digits.s4d");
    const ln = byLayer<LayerNormOp>(m, "norms.1");
    expect(new Set(ln.gamma.data)).toEqual(new Set([1]));
    expect(new Set(ln.beta.data)).toEqual(new Set([0]));
    for (const [layer, fanIn] of [["encoder", 1], ["s4_layers.0.output_linear.0", 64], ["decoder", 64]] as const) {
      const l = byLayer<LinearOp>(m, layer);
      const all = [...l.weight.data, ...l.bias!.data];
      const bound = 1 / Math.sqrt(fanIn);
      expect(Math.max(...all.map(Math.abs))).toBeLessThanOrEqual(bound);
      // Not degenerate: the draws fill the interval.
      expect(Math.max(...all)).toBeGreaterThan(bound / 2);
      expect(Math.min(...all)).toBeLessThan(-bound / 2);
    }
    const s4 = byLayer<S4DOp>(m, "s4_layers.1");
    for (let n = 0; n < 32; n++) expect(s4.AImag.data[5 * 32 + n]).toBeCloseTo(Math.PI * n, 5);
    expect(new Set(s4.logAReal.data)).toEqual(new Set([Math.fround(Math.log(0.5))]));
    for (const v of s4.timescale.value.data) {
      expect(v).toBeGreaterThanOrEqual(Math.fround(Math.log(0.001)));
      expect(v).toBeLessThanOrEqual(Math.fround(Math.log(0.1)));
    }
  });

  test("tiny: per-step output, bilinear S4D-Inv, pre-norm inside the residual", () => {
    const m = compileDslFile("examples/tiny.s4d");
    expect(m.sections.final).toEqual([]);
    expect(m.outputs).toEqual([{ name: "y", value: m.sections.step.at(-1)!.out, section: "step" }]);
    expect(m.sections.step.map((o) => o.op)).toEqual(["linear", "layernorm", "s4d", "gelu", "linear", "glu", "add", "linear"]);
    const s4 = byLayer<S4DOp>(m, "s4_layers.0");
    expect(s4).toMatchObject({ channels: 4, modes: 4, discretization: "bilinear" });
    expect(s4.AImag.data.slice(0, 4)).toEqual([0, 1, 2, 3].map((n) => Math.fround((8 / Math.PI) * (8 / (2 * n + 1) - 1))));
    const [enc, norm] = m.sections.step;
    expect(norm).toMatchObject({ op: "layernorm", x: enc!.out });
    expect(s4.x).toBe(norm!.out);
    expect(m.sections.step[6]).toMatchObject({ op: "add", a: enc!.out, b: m.sections.step[5]!.out });
  });

  test("quantization annotations reach the IR", () => {
    const m = compileDslFile("examples/ternary.s4d");
    const q = ops(m)
      .filter((o): o is LinearOp | S4DOp => o.op === "linear" || o.op === "s4d")
      .map((o) => [o.layer, o.quant]);
    expect(q).toEqual([
      ["encoder", undefined],
      ["s4_layers.0", { levels: 15 }],
      ["s4_layers.0.output_linear.0", { levels: 3 }],
      ["s4_layers.1", { levels: 15 }],
      ["s4_layers.1.output_linear.0", { levels: 3 }],
      ["decoder", { levels: 7 }],
    ]);
  });

  test("init is deterministic per seed and per layer", () => {
    const src = readFileSync("examples/tiny.s4d", "utf8");
    const a = compileDslSource(src, "tiny.s4d");
    expect(compileDslSource(src, "tiny.s4d")).toEqual(a);
    const b = compileDslSource(src.replace("seed 7", "seed 8"), "tiny.s4d");
    expect(byLayer<LinearOp>(b, "encoder").weight).not.toEqual(byLayer<LinearOp>(a, "encoder").weight);
    // Each layer draws from its own (seed, name) stream: inserting a layer leaves the others alone.
    const c = compileDslSource(src.replace("linear(1);", "relu; linear(1);"), "tiny.s4d");
    expect(byLayer<S4DOp>(c, "s4_layers.0")).toMatchObject({ C: byLayer<S4DOp>(a, "s4_layers.0").C, D: byLayer<S4DOp>(a, "s4_layers.0").D });
    expect(byLayer<LinearOp>(c, "decoder").weight).toEqual(byLayer<LinearOp>(a, "decoder").weight);
  });

  test("a checkpoint exported under state-spaces names loads back to the same parameters", () => {
    const src = readFileSync("examples/digits.s4d", "utf8");
    const init = compileDslSource(src, join(dir, "digits.s4d"));
    const tensors = exportParams(init);
    // The 1x1 convolution is stored as PyTorch's Conv1d weight.
    expect(tensors.get("s4_layers.0.output_linear.0.weight")!.shape).toEqual([128, 64, 1]);
    expect(tensors.get("s4_layers.0.kernel.C")!.shape).toEqual([64, 32, 2]);
    expect([...tensors.keys()].filter((k) => k.startsWith("s4_layers.1.")).sort()).toEqual([
      "s4_layers.1.D",
      "s4_layers.1.kernel.A_imag",
      "s4_layers.1.kernel.C",
      "s4_layers.1.kernel.log_A_real",
      "s4_layers.1.kernel.log_dt",
      "s4_layers.1.output_linear.0.bias",
      "s4_layers.1.output_linear.0.weight",
    ]);
    writeSafetensors(join(dir, "digits.safetensors"), tensors);
    const loaded = compileDslSource(src.replace("params init seed 0;", 'params from "digits.safetensors";'), join(dir, "digits.s4d"));
    expect(loaded.sections).toEqual(init.sections);
    expect(loaded.meta).toMatchObject({ params: "from digits.safetensors", paramsFile: "digits.safetensors", unusedTensors: 0 });
  });

  test("checkpoint variants: [1, H] D, [out, in] conv weights, optional B, extra tensors", () => {
    const src = 'model v { input u[2]; params from "v.safetensors"; linear(2); residual { s4d(N = 2); linear(4); glu; } }';
    const init = compileDslSource(src.replace('from "v.safetensors"', "init seed 3"), join(dir, "v.s4d"));
    const t = exportParams(init, "F64");
    const D = t.get("s4_layers.0.D")!;
    t.set("s4_layers.0.D", { ...D, shape: [1, 2] });
    const conv = t.get("s4_layers.0.output_linear.0.weight")!;
    t.set("s4_layers.0.output_linear.0.weight", { ...conv, shape: [4, 2] });
    t.set("s4_layers.0.kernel.B", { dtype: "F64", shape: [2, 1, 2], data: [1, 0.5, -1, 0.25] });
    t.set("optimizer.step", { dtype: "I64", shape: [], data: [100] });
    writeSafetensors(join(dir, "v.safetensors"), t);
    const m = compileDslSource(src, join(dir, "v.s4d"));
    const s4 = byLayer<S4DOp>(m, "s4_layers.0");
    expect(s4.D).toEqual(byLayer<S4DOp>(init, "s4_layers.0").D);
    expect(s4.B).toEqual({ re: { shape: [2, 1], data: [1, -1] }, im: { shape: [2, 1], data: [0.5, 0.25] } });
    expect(byLayer<LinearOp>(m, "s4_layers.0.output_linear.0").weight).toEqual(byLayer<LinearOp>(init, "s4_layers.0.output_linear.0").weight);
    expect(m.meta!.unusedTensors).toBe(1);
  });

  test("missing and mis-shaped tensors are all reported, naming the tensor, the shapes and the layer position", () => {
    const src = readFileSync("examples/tiny.s4d", "utf8");
    const t = exportParams(compileDslSource(src, join(dir, "tiny.s4d")));
    t.delete("s4_layers.0.kernel.C");
    const enc = t.get("encoder.weight")!;
    t.set("encoder.weight", { ...enc, shape: [1, 4] });
    // A prefixed copy of the missing tensor: the error should point to it.
    t.set("model.s4_layers.0.kernel.C", { dtype: "F32", shape: [4, 4, 2], data: new Array(32).fill(0) });
    const nan = t.get("decoder.bias")!;
    t.set("decoder.bias", { ...nan, data: [NaN] } as TensorToWrite);
    writeSafetensors(join(dir, "broken.safetensors"), t);
    const errs = semanticErrors(() => compileDslSource(src.replace("params init seed 7;", 'params from "broken.safetensors";'), join(dir, "tiny.s4d")));
    expect(errs).toEqual([
      { line: 10, column: 3, message: 'tensor "encoder.weight" in broken.safetensors has shape [1, 4], but linear layer "encoder" (1 -> 4) expects [4, 1] (or [4, 1, 1])' },
      {
        line: 12,
        column: 5,
        message:
          'tensor "s4_layers.0.kernel.C" (shape [4, 4, 2]) for s4d layer "s4_layers.0" (H=4, N=8) not found in broken.safetensors; similar names in the file: "model.s4_layers.0.kernel.C"',
      },
      { line: 17, column: 3, message: 'tensor "decoder.bias" in broken.safetensors holds a non-finite value (NaN) at flat index 0' },
    ]);
  });

  test("a missing params file is an io error at the params declaration", () => {
    expect(() => compileDslSource('model m {\n  input u[1];\n  params from "nope.safetensors";\n  linear(1);\n}', join(dir, "m.s4d"))).toThrow(
      expect.objectContaining({ kind: "io", message: `${join(dir, "m.s4d")}:3:15: cannot read params file "nope.safetensors" (${join(dir, "nope.safetensors")}): cannot read file: no such file or directory` }),
    );
    expect(() => compileDslFile(join(dir, "absent.s4d"))).toThrow(expect.objectContaining({ kind: "io" }));
  });

  test("trend: the committed checkpoint makes the S4D layer two exponential moving averages", () => {
    const m = compileDslFile("examples/trend.s4d");
    expect(readSafetensors("examples/trend.safetensors").get("s4_layers.0.kernel.C")!.shape).toEqual([2, 1, 2]);
    // Run the IR step by step with the ZOH recurrence of src/ir/types.ts.
    const [enc, s4, dec] = m.sections.step as [LinearOp, S4DOp, LinearOp];
    const dt = s4.timescale.value.data.map(Math.exp);
    const x = [0, 0].map(() => ({ re: 0, im: 0 }));
    const run = (u: number): number => {
      const h = enc.weight.data.map((w, i) => w * u + enc.bias!.data[i]!);
      const y = h.map((hv, c) => {
        const ar = -Math.exp(s4.logAReal.data[c]!);
        const ai = s4.AImag.data[c]!;
        // dA = exp(dt A), dB = (dA - 1) / A
        const mag = Math.exp(dt[c]! * ar);
        const dA = { re: mag * Math.cos(dt[c]! * ai), im: mag * Math.sin(dt[c]! * ai) };
        const den = ar * ar + ai * ai;
        const dB = { re: ((dA.re - 1) * ar + dA.im * ai) / den, im: (dA.im * ar - (dA.re - 1) * ai) / den };
        const xc = x[c]!;
        x[c] = { re: dA.re * xc.re - dA.im * xc.im + dB.re * hv, im: dA.re * xc.im + dA.im * xc.re + dB.im * hv };
        return 2 * (s4.C.re.data[c]! * x[c]!.re - s4.C.im.data[c]! * x[c]!.im) + s4.D.data[c]! * hv;
      });
      return dec.weight.data[0]! * y[0]! + dec.weight.data[1]! * y[1]! + dec.bias!.data[0]!;
    };
    const ema = [4, 32].map((tau) => ({ a: Math.exp(-1 / tau), y: 0 }));
    for (let k = 0; k < 100; k++) {
      const u = k < 50 ? k : 100 - k; // rise, then fall
      for (const e of ema) e.y = e.a * e.y + (1 - e.a) * u;
      const out = run(u);
      expect(out).toBeCloseTo(ema[0]!.y - ema[1]!.y, 3);
      if (k > 5 && k < 50) expect(out).toBeGreaterThan(0);
      if (k > 75) expect(out).toBeLessThan(0); // the slow average lags the turn by ~20 steps
    }
  });
});
