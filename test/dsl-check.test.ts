import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { UserError } from "../src/common/errors.js";
import { checkDsl } from "../src/frontend/dsl/index.js";
import type { Layer } from "../src/frontend/dsl/checker.js";

function semanticErrors(src: string): { line: number; column: number; message: string }[] {
  try {
    checkDsl(src, "m.s4d");
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).kind).toBe("semantic");
    return (e as UserError).diagnostics.map((d) => ({ line: d.location!.line!, column: d.location!.column!, message: d.message }));
  }
  throw new Error("expected a semantic error");
}

/** Wraps layer statements in a model with input width `w`. */
const model = (body: string, w = 4) => `model m {\ninput u[${w}];\nparams init seed 0;\n${body}\n}`;

function flatten(layers: Layer[]): Layer[] {
  return layers.flatMap((l) => (l.kind === "residual" ? [l, ...flatten(l.body)] : [l]));
}

describe("DSL checker", () => {
  test("reports every semantic error in a file with its position", () => {
    const errs = semanticErrors(readFileSync("test/fixtures/dsl/semantic-errors.s4d", "utf8"));
    expect(errs).toEqual([
      { line: 6, column: 3, message: "glu splits its input into two halves, but the width here is 5 (odd); make the previous layer's width even" },
      { line: 7, column: 3, message: "unknown layer 'lnear'; expected one of linear, s4d, layernorm, gelu, sigmoid, tanh, relu, glu, meanpool (did you mean 'linear'?)" },
      { line: 8, column: 14, message: "unknown option 'dt_mn' for s4d; expected one of N, modes, discretization, dt_min, dt_max, init (did you mean 'dt_min'?)" },
      { line: 10, column: 3, message: "meanpool used twice; the sequence was already pooled at 9:3" },
    ]);
  });

  test("infers widths and resolves options with state-spaces defaults", () => {
    const m = checkDsl(model("linear(6);\ns4d;\nlayernorm(1e-3);\nglu;\ns4d(modes = 3, discretization = bilinear, init = inv, dt_min = 0.01, dt_max = 1);"), "m.s4d");
    expect(m.input).toEqual({ name: "u", size: 4 });
    expect(m.output).toEqual({ name: "y", width: 3 });
    expect(m.params).toEqual({ kind: "init", seed: 0 });
    const [lin, s1, ln, glu, s2] = m.layers;
    expect(lin).toMatchObject({ kind: "linear", inFeatures: 4, outFeatures: 6, bias: true });
    expect(s1).toMatchObject({ kind: "s4d", H: 6, N: 64, discretization: "zoh", dtMin: 0.001, dtMax: 0.1, init: "lin" });
    expect(ln).toMatchObject({ kind: "layernorm", width: 6, eps: 1e-3 });
    expect(glu).toMatchObject({ kind: "glu", width: 6 });
    expect(s2).toMatchObject({ kind: "s4d", H: 3, N: 6, discretization: "bilinear", dtMin: 0.01, dtMax: 1, init: "inv" });
  });

  test("default names follow state-spaces example.py; explicit names win", () => {
    const m = checkDsl(
      model(`
linear(8);
repeat 2 {
  residual postnorm { s4d(N = 4); gelu; linear(16); glu; }
}
residual prenorm { s4d(N = 4); linear(8); linear(8); }
meanpool;
linear(8);
head: linear(3);`),
      "m.s4d",
    );
    expect(flatten(m.layers).map((l) => l.name)).toEqual([
      "encoder",
      "residual.0",
      "s4_layers.0",
      "gelu.0",
      "s4_layers.0.output_linear.0",
      "glu.0",
      "norms.0",
      "residual.1",
      "s4_layers.1",
      "gelu.1",
      "s4_layers.1.output_linear.0",
      "glu.1",
      "norms.1",
      "residual.2",
      "norms.2", // prenorm: first layer of the body
      "s4_layers.2",
      "s4_layers.2.output_linear.0",
      "linear.0", // only the first linear after an s4d is its output projection
      "meanpool.0",
      "linear.1", // not the last linear: `head` is
      "head",
    ]);
    // Without an explicit name the last linear is the decoder.
    const d = checkDsl(model("linear(8); s4d(N = 2); linear(1);"), "m.s4d");
    expect(d.layers.map((l) => l.name)).toEqual(["encoder", "s4_layers.0", "decoder"]);
  });

  test("pre- and post-norm residuals expand to layernorms inside or after the block", () => {
    const m = checkDsl(model("residual prenorm(eps = 1e-3) { gelu; }\nresidual postnorm { relu; }"), "m.s4d");
    expect(m.layers.map((l) => l.kind)).toEqual(["residual", "residual", "layernorm"]);
    const [pre, post, ln] = m.layers as [Extract<Layer, { kind: "residual" }>, Extract<Layer, { kind: "residual" }>, Layer];
    expect(pre.body.map((l) => l.kind)).toEqual(["layernorm", "activation"]);
    expect(pre.body[0]).toMatchObject({ eps: 1e-3, width: 4 });
    expect(post.body.map((l) => l.kind)).toEqual(["activation"]);
    expect(ln).toMatchObject({ kind: "layernorm", eps: 1e-5, width: 4 });
  });

  test("quantization annotations: on layers, inherited by blocks, overridden inside", () => {
    const m = checkDsl(model("@ternary residual { s4d(N = 2); @levels(7) linear(4); gelu; }\nlinear(2);\n@levels(15) linear(2);"), "m.s4d");
    const all = flatten(m.layers);
    expect(all.filter((l) => l.kind === "s4d" || l.kind === "linear").map((l) => [l.name, (l as { quant?: unknown }).quant])).toEqual([
      ["s4_layers.0", { levels: 3 }],
      ["s4_layers.0.output_linear.0", { levels: 7 }],
      ["linear.0", undefined],
      ["decoder", { levels: 15 }],
    ]);
  });

  test("annotation errors", () => {
    expect(semanticErrors(model("@levels(4) linear(2);\n@levels linear(2);\n@tern linear(2);\n@ternary gelu;\n@ternary @levels(5) linear(2);"))).toEqual([
      { line: 4, column: 9, message: "@levels needs an odd integer >= 3 (levels -L..L), found 4" },
      { line: 5, column: 1, message: "@levels takes one positional argument, the odd number of signed weight levels, e.g. @levels(7)" },
      { line: 6, column: 2, message: "unknown annotation @tern; expected one of @ternary, @levels (did you mean '@ternary'?)" },
      { line: 7, column: 1, message: "quantization annotations apply to weight layers (linear, s4d), not to gelu" },
      { line: 8, column: 10, message: "conflicting quantization annotations: @ternary at 8:1 already applies here" },
    ]);
  });

  test("option errors: types, duplicates, arity, N parity, dt range, missing width", () => {
    expect(
      semanticErrors(
        model(
          [
            "linear(out = 2.5);",
            "linear(bias = false);",
            "linear(3, 4, 5);",
            "linear(out = 3, out = 4);",
            "s4d(N = 7);",
            "s4d(N = 4, modes = 2);",
            "s4d(N = 4, discretization = euler, init = hippo);",
            "s4d(N = 4, dt_min = 0.5, dt_max = 0.1);",
            "layernorm(eps = 0);",
            "gelu(1);",
            "linear(out = 2, bias = maybe);",
            "linear(bias = true, 2);",
          ].join("\n"),
        ),
      ),
    ).toEqual([
      { line: 4, column: 14, message: "option 'out' of linear must be an integer >= 1, found 2.5" },
      { line: 4, column: 1, message: "linear needs its output width, e.g. linear(64) or linear(out = 64)" },
      { line: 5, column: 1, message: "linear needs its output width, e.g. linear(64) or linear(out = 64)" },
      { line: 6, column: 11, message: "option 'bias' of linear must be true or false, found 4" },
      { line: 6, column: 14, message: "too many arguments for linear: it takes at most 2 (out, bias)" },
      { line: 7, column: 17, message: "option 'out' of linear given twice" },
      { line: 8, column: 5, message: "s4d state size N must be even (N/2 complex-conjugate modes), found 7" },
      { line: 9, column: 12, message: "give either N (state size) or modes (= N/2 complex modes), not both" },
      { line: 10, column: 29, message: "option 'discretization' of s4d must be one of zoh, bilinear, found 'euler'" },
      { line: 10, column: 43, message: "option 'init' of s4d must be one of lin, inv, found 'hippo'" },
      { line: 11, column: 12, message: "dt_min (0.5) must not exceed dt_max (0.1)" },
      { line: 12, column: 17, message: "option 'eps' of layernorm must be a positive number, found 0" },
      { line: 13, column: 6, message: "gelu takes no arguments" },
      { line: 14, column: 24, message: "option 'bias' of linear must be true or false, found 'maybe'" },
      { line: 15, column: 21, message: "positional argument after a keyword argument in linear(...)" },
      { line: 15, column: 1, message: "linear needs its output width, e.g. linear(64) or linear(out = 64)" },
    ]);
  });

  test("structural errors: residual width, meanpool placement, s4d after pooling, empty blocks", () => {
    expect(semanticErrors(model("residual { linear(3); }\nresidual { meanpool; }\nrepeat 0 { gelu; }\nresidual { }\nmeanpool;\ns4d(N = 2);"))).toEqual([
      { line: 4, column: 1, message: "residual block changes the width from 4 to 3; x + body(x) needs the body to keep the width" },
      { line: 5, column: 12, message: "meanpool cannot be inside a residual block: x + body(x) would add a pooled value to a per-step one" },
      { line: 6, column: 8, message: "repeat count must be a positive integer, found 0" },
      { line: 7, column: 1, message: "empty residual block: x + body(x) needs at least one layer in the body" },
      { line: 9, column: 1, message: "s4d after meanpool (at 8:1): layers after meanpool run once per sequence, where a recurrence has no time steps" },
    ]);
  });

  test("declaration errors: missing or repeated input/params/output, bad widths and seeds, no layers", () => {
    expect(semanticErrors("model m { linear(1); }")).toEqual([
      { line: 1, column: 1, message: "missing input declaration: add e.g. `input u[1];` to give the per-step input and its width" },
      { line: 1, column: 1, message: 'missing params declaration: add `params init seed 0;` or `params from "weights.safetensors";`' },
    ]);
    expect(semanticErrors('model m {\ninput u[0];\ninput v[1];\nparams init seed 1.5;\nparams from "";\noutput a;\noutput b;\n}')).toEqual([
      { line: 3, column: 1, message: "a model has one input; the first was declared at 2:1" },
      { line: 2, column: 9, message: "input width must be a positive integer, found 0" },
      { line: 5, column: 1, message: "a model has one params declaration; the first was at 4:1" },
      { line: 4, column: 18, message: "seed must be a non-negative integer below 2^53, found 1.5" },
      { line: 7, column: 1, message: "a model has one output; the first was declared at 6:1" },
      { line: 1, column: 1, message: "the model has no layers: add at least one layer statement, e.g. `linear(1);`" },
    ]);
  });

  test("layer names must be unique, including names repeated by `repeat`", () => {
    expect(semanticErrors(model("linear(4);\nencoder: linear(4);\nrepeat 2 { blk: gelu; }"))).toEqual([
      { line: 5, column: 1, message: "layer name 'encoder' is already given by default to the layer at 4:1; layer names must be unique" },
      {
        line: 6,
        column: 12,
        message: "layer name 'blk' is already named at 6:12; layer names must be unique (a named layer inside `repeat` repeats its name: name it outside or drop the name)",
      },
    ]);
  });

  test("repeat unrolls its body and errors inside it are reported once", () => {
    const m = checkDsl(model("repeat 3 { residual { s4d(N = 2); } }"), "m.s4d");
    expect(flatten(m.layers).filter((l) => l.kind === "s4d").map((l) => l.name)).toEqual(["s4_layers.0", "s4_layers.1", "s4_layers.2"]);
    expect(semanticErrors(model("repeat 3 { relu(1); }"))).toEqual([{ line: 4, column: 17, message: "relu takes no arguments" }]);
  });
});
