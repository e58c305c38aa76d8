import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { modelToJson, parseModelJson, readModelFile } from "../src/ir/json.js";
import { valueSizes } from "../src/ir/sizes.js";
import type { LinearOp, MatMulOp, Model, Op, S4DOp } from "../src/ir/types.js";
import { checkModel, validateModel } from "../src/ir/validate.js";
import { userErrors } from "./helpers/user-error.js";

const FIX = "test/fixtures/ir";
const fixture = (name: string): Model => JSON.parse(readFileSync(`${FIX}/${name}.json`, "utf8")) as Model;
const FIXTURES = ["linear-gelu", "s4d-h2m2", "lowered", "quantized"];

/** [JSON path, message] of every semantic problem of `m`. */
function problems(m: Model): [string | undefined, string][] {
  return userErrors(() => validateModel(m, "m.json"), "semantic").map((d) => {
    expect(d.location?.file).toBe("m.json");
    return [d.location?.path, d.message];
  });
}

const step = (m: Model, i: number): Op => m.sections.step[i]!;

describe("semantic checks accept the fixtures", () => {
  test.each(FIXTURES)("%s", (name) => {
    const m = fixture(name);
    expect(validateModel(m, "m.json")).toBe(m);
    expect(() => checkModel(m, "m.json")).not.toThrow();
  });
});

describe("SSA and sections", () => {
  test("undefined value", () => {
    const m = fixture("linear-gelu");
    (step(m, 1) as { x: string }).x = "hh";
    expect(problems(m)).toEqual([["/sections/step/1/x", 'undefined value "hh"']]);
  });

  test("redefined value and redefined input", () => {
    const m = fixture("linear-gelu");
    step(m, 1).out = "h";
    step(m, 2).out = "u";
    (step(m, 2) as LinearOp).x = "h";
    m.outputs = [];
    expect(problems(m)).toEqual([
      ["/sections/step/1/out", '"h" is already defined at /sections/step/0'],
      ["/sections/step/2/out", '"u" is already defined at /inputs/0'],
      // "y" was never defined: its op's result went to the rejected name "u".
      ["/sections/final/0/x", 'undefined step value "y"'],
    ]);
  });

  test("use before definition, including an op reading its own result", () => {
    const m = fixture("linear-gelu");
    (step(m, 0) as LinearOp).x = "g";
    (step(m, 1) as { x: string }).x = "g";
    expect(problems(m)).toEqual([
      ["/sections/step/0/x", 'value "g" is used before it is defined (at /sections/step/1)'],
      ["/sections/step/1/x", 'value "g" is used before it is defined (at /sections/step/1)'],
    ]);
  });

  test("meanpool in the step section", () => {
    const m = fixture("linear-gelu");
    m.sections.step.push({ op: "meanpool", out: "mp", x: "y" });
    expect(problems(m)).toEqual([["/sections/step/3/op", 'op "meanpool" is only allowed in the final section']]);
  });

  test("s4d in the final section", () => {
    const m = fixture("s4d-h2m2");
    const s4d = m.sections.step.shift()!;
    m.sections.step.unshift({ op: "relu", out: "y", x: "u" });
    m.sections.final.push({ ...s4d, out: "late", x: "z" } as S4DOp);
    expect(problems(m)).toEqual([
      ["/sections/final/0/op", 'op "s4d" is only allowed in the step section'],
      ["/sections/final/0/x", '"z" is a step value; the final section reads step values only through meanpool'],
    ]);
  });

  test("the step section cannot read final values", () => {
    const m = fixture("linear-gelu");
    (step(m, 1) as { x: string }).x = "p";
    expect(problems(m)).toContainEqual(["/sections/step/1/x", '"p" is a final-section value and cannot be used in the step section']);
  });

  test("meanpool of an unknown or final value", () => {
    const m = fixture("linear-gelu");
    m.sections.final.push({ op: "meanpool", out: "q", x: "t" }, { op: "meanpool", out: "r", x: "nope" });
    expect(problems(m)).toEqual([
      ["/sections/final/2/x", 'meanpool averages a step value over time; "t" is a final-section value'],
      ["/sections/final/3/x", 'undefined step value "nope"'],
    ]);
  });

  test("state_write results are not values", () => {
    const m = fixture("lowered");
    (step(m, 5) as { x: string }).x = "w_s";
    m.outputs.push({ name: "bad", value: "w_acc", section: "step" });
    expect(problems(m)).toEqual([
      ["/sections/step/5/x", '"w_s" names a state_write, which defines no value'],
      ["/outputs/2/value", 'output "bad" refers to a state_write, which defines no value'],
    ]);
  });

  test("outputs, inputs and states: existence and unique names", () => {
    const m = fixture("lowered");
    m.outputs.push({ name: "y", value: "gated", section: "step" }, { name: "z", value: "a", section: "final" });
    m.inputs.push({ name: "u", size: 2 });
    m.state.push({ name: "s", size: 4 });
    expect(problems(m)).toEqual([
      ["/inputs/1/name", 'input "u" is already declared at /inputs/0'],
      ["/state/2/name", 'state "s" is already declared at /state/0'],
      ["/outputs/2/name", 'output "y" is already declared at /outputs/0'],
      ["/outputs/3/value", 'output "z" refers to undefined final value "a"'],
    ]);
  });
});

describe("shapes", () => {
  test("s4d parameter shapes, input length and state size", () => {
    const m = fixture("s4d-h2m2");
    const s = step(m, 0) as S4DOp;
    s.AImag = { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] };
    s.D = { shape: [2], data: [1] };
    m.state[0]!.size = 6;
    m.inputs[0]!.size = 3;
    m.sections.step[1] = { op: "add", out: "r", a: "y", b: "y" };
    expect(problems(m)).toEqual([
      ["/sections/step/0/x", 'input "u" has length 3 but the s4d layer has 2 channels'],
      ["/sections/step/0/AImag/shape", "AImag ([channels, modes]) must have shape [2, 2], found [2, 3]"],
      ["/sections/step/0/D/data", "data has 1 entries but shape [2] needs 2"],
      ["/sections/step/0/state", 'state "s4d0" has size 6 but an s4d layer with 2 channels and 2 modes needs 2*H*M = 8'],
    ]);
  });

  test("s4d with dt timescale must be positive; an undeclared state; two writers of one state", () => {
    const m = fixture("s4d-h2m2");
    const s = step(m, 0) as S4DOp;
    s.timescale = { kind: "dt", value: { shape: [2], data: [0.1, 0] } };
    m.sections.step.push({ ...s, out: "y2", state: "s4d0" }, { ...s, out: "y3", state: "ghost" });
    expect(problems(m)).toEqual([
      ["/sections/step/0/timescale/value/data/1", "dt must be > 0, found 0"],
      ["/sections/step/4/timescale/value/data/1", "dt must be > 0, found 0"],
      ["/sections/step/4/state", 'state "s4d0" is already updated by /sections/step/0; each state has exactly one writer'],
      ["/sections/step/5/timescale/value/data/1", "dt must be > 0, found 0"],
      ["/sections/step/5/state", 'undefined state "ghost" (declare it in "state")'],
    ]);
  });

  test("linear weight vs input, bias length, quant levels", () => {
    const m = fixture("linear-gelu");
    const l = step(m, 0) as LinearOp;
    l.weight = { shape: [4, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] };
    l.bias = { shape: [3], data: [0, 0, 0] };
    (step(m, 2) as LinearOp).quant = { levels: 4 };
    expect(problems(m)).toEqual([
      ["/sections/step/0/x", 'input "u" has length 3 but weight [4, 2] expects 2 inputs'],
      ["/sections/step/0/bias/shape", "bias (one per output) must have shape [4], found [3]"],
      ["/sections/step/2/quant/levels", "levels must be odd (2L+1 signed levels -L..L), found 4"],
    ]);
  });

  test("a shape error does not cascade into its users", () => {
    const m = fixture("linear-gelu");
    (step(m, 0) as LinearOp).weight = { shape: [4, 3, 1], data: new Array(12).fill(0) };
    delete (step(m, 0) as LinearOp).bias;
    expect(problems(m)).toEqual([["/sections/step/0/weight/shape", "weight must be 2-D [out, in], found shape [4, 3, 1]"]]);
  });

  test("layernorm, glu, add/mul", () => {
    const m = fixture("s4d-h2m2");
    m.sections.step[2] = { op: "layernorm", out: "n", x: "r", gamma: { shape: [3], data: [1, 1, 1] }, beta: { shape: [2], data: [0, 0] }, eps: 1e-5 };
    m.sections.step.push({ op: "glu", out: "g", x: "u" }, { op: "glu", out: "g1", x: "g" }, { op: "mul", out: "m", a: "g", b: "u" });
    expect(problems(m)).toEqual([
      ["/sections/step/2/gamma/shape", "gamma (input length 2) must have shape [2], found [3]"],
      ["/sections/step/5/x", 'glu needs an even-length input, "g" has length 1'],
      ["/sections/step/6", 'mul needs equal lengths, "g" has 1 and "u" has 2'],
    ]);
  });

  test("matmul rows vs inputs, bias and quant lengths", () => {
    const m = fixture("quantized");
    const mm = step(m, 1) as MatMulOp;
    mm.xs = ["prev"];
    mm.bias = [0, 0];
    mm.quant!.inRange = [1];
    expect(problems(m)).toEqual([
      ["/sections/step/1/weight/rows", "the inputs [prev] have total length 4 but the weight has 6 rows"],
      ["/sections/step/1/bias", "bias has 2 entries but the weight has 6 columns"],
      ["/sections/step/1/quant/inRange", "inRange has 1 entries but the weight has 6 rows"],
    ]);
  });

  test("matmul blocks: data length, inside the matrix, disjoint", () => {
    const m = fixture("lowered");
    const w = (step(m, 1) as MatMulOp).weight;
    w.blocks[0]!.data.pop();
    w.blocks.push({ row: 3, col: 3, rows: 2, cols: 2, data: [1, 2, 3, 4] }); // overlaps blocks 0 and 1 and 2
    w.blocks.push({ row: 5, col: 5, rows: 2, cols: 1, data: [1, 2] }); // sticks out
    expect(problems(m)).toEqual([
      ["/sections/step/1/weight/blocks/0/data", "data has 15 entries but a 4x4 block needs 16"],
      ["/sections/step/1/weight/blocks/4", "block rows [5, 7) x cols [5, 6) is outside the 6x6 matrix"],
      ["/sections/step/1/weight/blocks/3", "block overlaps block 0 of the same matrix (blocks must be disjoint)"],
    ]);
  });

  test("overlap detection finds overlaps between blocks far apart in the list", () => {
    const m = fixture("lowered");
    const mm = step(m, 1) as MatMulOp;
    // A diagonal of 1x1 blocks on a 6x6 matrix plus one 1x1 block in the corner, then a duplicate of the first.
    mm.weight.blocks = [0, 1, 2, 3, 4, 5].map((i) => ({ row: i, col: i, rows: 1, cols: 1, data: [1] }));
    mm.weight.blocks.push({ row: 5, col: 0, rows: 1, cols: 1, data: [2] }, { row: 0, col: 0, rows: 1, cols: 1, data: [3] });
    expect(problems(m)).toEqual([["/sections/step/1/weight/blocks/7", "block overlaps block 0 of the same matrix (blocks must be disjoint)"]]);
    mm.weight.blocks.pop();
    expect(() => validateModel(m, "m.json")).not.toThrow();
  });

  test("slice bounds, affine lengths, state_write length", () => {
    const m = fixture("lowered");
    (step(m, 3) as { start: number }).start = 5;
    (step(m, 6) as { scale: number[] }).scale = [1];
    (step(m, 4) as { x: string }).x = "z";
    expect(problems(m)).toEqual([
      ["/sections/step/3", 'slice [5, 7) is outside "z" of length 6'],
      ["/sections/step/4/x", '"z" has length 6 but state "s" has size 4'],
      ["/sections/step/6/scale", 'scale has 1 entries but "n" has length 2'],
    ]);
  });
});

describe("levels", () => {
  test("lowered ops in a model-level model", () => {
    const m = fixture("linear-gelu");
    m.sections.step.push({ op: "slice", out: "sl", x: "u", start: 0, length: 1 });
    expect(problems(m)).toEqual([["/sections/step/3/op", 'op "slice" is a lowered op and is not allowed in a "model"-level model (use level "lowered")']]);
  });

  test("model ops in a lowered model", () => {
    const m = fixture("lowered");
    m.sections.step.push({ op: "linear", out: "lin", x: "u", weight: { shape: [1, 2], data: [1, 1] } });
    expect(problems(m)).toEqual([["/sections/step/12/op", 'op "linear" is a model-level op and is not allowed in a "lowered" model (lower it first)']]);
  });

  test("quant records: forbidden when lowered, required when quantized", () => {
    const lowered = fixture("quantized");
    lowered.level = "lowered";
    expect(problems(lowered)).toEqual([["/sections/step/1/quant", 'matmul has a quant record but the model level is "lowered" (quantized matmuls need level "quantized")']]);
    const quantized = fixture("lowered");
    quantized.level = "quantized";
    expect(problems(quantized)).toEqual([["/sections/step/1", 'matmul "z" has no quant record; every matmul of a "quantized" model needs one']]);
  });
});

describe("checkModel on in-memory IR", () => {
  test("catches non-finite numbers that JSON cannot carry", () => {
    const m = fixture("lowered");
    (step(m, 1) as MatMulOp).weight.blocks[1]!.data[3] = Number.NaN;
    const d = userErrors(() => checkModel(m, "<lowered>"), "semantic");
    expect(d).toEqual([{ message: "must be a finite number, found NaN", location: { file: "<lowered>", path: "/sections/step/1/weight/blocks/1/data/3" } }]);
  });

  test("is cheap on a large model", () => {
    const n = 512;
    const m: Model = {
      irVersion: 1,
      name: "big",
      level: "lowered",
      inputs: [{ name: "u", size: n }],
      outputs: [{ name: "y", value: "h199", section: "step" }],
      state: [],
      sections: { step: [], final: [] },
    };
    const blocks = Array.from({ length: n / 2 }, (_, i) => ({ row: 2 * i, col: 2 * i, rows: 2, cols: 2, data: [1, 0, 0, 1] }));
    for (let i = 0; i < 200; i++) {
      m.sections.step.push({ op: "matmul", out: `h${i}`, xs: [i === 0 ? "u" : `h${i - 1}`], weight: { rows: n, cols: n, blocks }, origin: "s4d" });
    }
    const t0 = performance.now();
    checkModel(m, "big");
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe("value sizes", () => {
  test("every value of the fixtures", () => {
    const low = valueSizes(fixture("lowered"));
    expect(Object.fromEntries(low.step)).toEqual({ u: 2, prev: 4, z: 6, snew: 4, y: 2, n: 2, a: 2, acc_prev: 2, acc_new: 2, ya: 4, gated: 2 });
    expect(Object.fromEntries(low.final)).toEqual({ sum: 2, m: 2 });
    const lin = valueSizes(fixture("linear-gelu"));
    expect(Object.fromEntries(lin.step)).toEqual({ u: 3, h: 4, g: 4, y: 2 });
    expect(Object.fromEntries(lin.final)).toEqual({ p: 2, t: 2 });
    expect(Object.fromEntries(valueSizes(fixture("s4d-h2m2")).step)).toEqual({ u: 2, y: 2, r: 2, n: 2, z: 2 });
  });
});

describe("IR JSON files", () => {
  test.each(FIXTURES)("%s round-trips through modelToJson", (name) => {
    const m = readModelFile(`${FIX}/${name}.json`);
    const text = modelToJson(m);
    expect(parseModelJson(text, "rt.json")).toEqual(m);
    expect(modelToJson(parseModelJson(text, "rt.json"))).toBe(text);
  });

  test("layout: stable key order, numeric arrays on one line", () => {
    const m = fixture("linear-gelu");
    const reverseKeys = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reverseKeys) : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)])) : v;
    const reordered = reverseKeys(m) as Model;
    expect(Object.keys(reordered)[0]).toBe("meta");
    const text = modelToJson(m);
    expect(modelToJson(reordered)).toBe(text);
    expect(text).toContain('"data": [0.1, -0.2, 0.3, 0.4, 0.5, -0.6, -0.7, 0.8, 0.9, 1, -1.1, 1.2]');
    expect(text.indexOf('"irVersion"')).toBeLessThan(text.indexOf('"name"'));
    expect(text).toMatch(/^ {6}\{\n {8}"op": "linear",\n {8}"out": "h",\n {8}"layer": "enc",\n {8}"x": "u",$/m);
    expect(text).toContain('{ "name": "u", "size": 3 }');
    expect(text.endsWith("}\n")).toBe(true);
  });

  test("writing refuses non-finite numbers instead of emitting null", () => {
    const m = fixture("lowered");
    (step(m, 6) as { shift: number[] }).shift[0] = Infinity;
    expect(() => modelToJson(m)).toThrow(/non-finite/);
  });

  test("semantic errors in a file carry line and column", () => {
    const text = readFileSync(`${FIX}/s4d-h2m2.json`, "utf8").replace('"x": "r"', '"x": "q"');
    const d = userErrors(() => parseModelJson(text, "s4d.json"), "semantic");
    const lines = text.split("\n");
    const line = lines.findIndex((l) => l.includes('"x": "q"')) + 1;
    expect(d).toEqual([{ message: 'undefined value "q"', location: { file: "s4d.json", path: "/sections/step/2/x", line, column: lines[line - 1]!.indexOf('"q"') + 1 } }]);
  });
});
