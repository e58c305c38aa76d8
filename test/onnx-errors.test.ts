// Malformed or unsupported ONNX input: every problem is a UserError (the CLI prints it and
// exits 1, no stack trace) that names the file, the node (position, name, op type) where
// there is one, what was found and what was expected.

import { describe, expect, test } from "@jest/globals";
import onnxProto from "onnx-proto";
import { UserError, type UserErrorKind } from "../src/common/errors.js";
import { compileOnnxBytes, compileOnnxFile } from "../src/frontend/onnx/index.js";
import { DT, GraphBuilder } from "./helpers/onnx-builder.js";

function failure(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error("expected a UserError, but compilation succeeded");
}

function expectError(bytes: Uint8Array, kind: UserErrorKind, ...patterns: RegExp[]): UserError {
  const e = failure(() => compileOnnxBytes(bytes, "bad.onnx"));
  expect(e.kind).toBe(kind);
  expect(e.message).toMatch(/^bad\.onnx/);
  for (const p of patterns) expect(e.message).toMatch(p);
  expect(e.message).not.toMatch(/\n\s+at /);
  if (process.env["ONNX_REPORT"]) console.log(e.message);
  return e;
}

/** u [1, 2] -> MatMul W [2, 3] -> y, with a state pair around a decay. */
function valid(opset = 13): GraphBuilder {
  const b = new GraphBuilder(opset);
  b.input("u", [1, 2]);
  b.input("x_in", [1, 3]);
  const w = b.init("W", [2, 3], [1, 2, 3, 4, 5, 6]);
  const next = b.op("Add", [b.op("Mul", ["x_in", b.init("a", [3], [0.5, 0.5, 0.5])]), b.op("MatMul", ["u", w], {}, "enc")]);
  b.node("Identity", [next], ["x_out"]);
  b.node("ReduceSum", ["x_out", b.ints([1])], ["y"], { keepdims: { i: 1 } });
  b.output("y", [1, 1]);
  b.output("x_out", [1, 3]);
  return b;
}

describe("ONNX front-end errors", () => {
  test("the valid base graph compiles", () => {
    const m = compileOnnxBytes(valid().model(), "ok.onnx");
    expect(m.inputs).toEqual([{ name: "u", size: 2 }]);
    expect(m.state.map((s) => s.size)).toEqual([3]);
  });

  test("not protobuf", () => {
    expectError(new TextEncoder().encode("this is a text file, not an ONNX model\n"), "format", /not an ONNX model/);
  });

  test("empty or protobuf without a graph", () => {
    expectError(new Uint8Array(0), "format", /no graph found/);
  });

  test("truncated file", () => {
    const bytes = valid().model();
    expectError(bytes.subarray(0, Math.floor(bytes.length * 0.6)), "format", /truncated or corrupt|not an ONNX model/);
  });

  test("missing file", () => {
    const e = failure(() => compileOnnxFile("/nonexistent/model.onnx"));
    expect(e.kind).toBe("io");
    expect(e.message).toMatch(/model\.onnx.*no such file/);
  });

  test("missing initializer names the node and the input", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.node("MatMul", ["u", "W_missing"], ["y"], {}, "proj");
    b.output("y", [1, 3]);
    expectError(b.model(), "semantic", /node 0 "proj" \(MatMul\)/, /input 1 "W_missing" is not defined/);
  });

  test("shape mismatch in an op", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.node("MatMul", ["u", b.init("W", [3, 4], new Array(12).fill(1))], ["y"], {}, "proj");
    b.output("y", [1, 4]);
    expectError(b.model(), "semantic", /"proj" \(MatMul\)/, /\[1, 2\] and \[3, 4\] do not match: 2 columns vs 3 rows/);
  });

  test("shape mismatch between a state input and its output", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.input("h_in", [1, 3]);
    b.node("MatMul", ["u", b.init("W", [2, 4], new Array(8).fill(1))], ["h_out"]);
    b.node("ReduceSum", ["h_in", b.ints([1])], ["y"]);
    b.output("y", [1, 1]);
    b.output("h_out", [1, 4]);
    expectError(b.model(), "semantic", /state output "h_out" has shape \[1, 4\], but its state input "h_in" has shape \[1, 3\]/);
  });

  test("declared output shape that the graph does not compute", () => {
    const g = new GraphBuilder(13);
    g.input("u", [1, 2]);
    g.node("MatMul", ["u", g.init("W", [2, 3], new Array(6).fill(1))], ["y"]);
    g.output("y", [1, 5]);
    expectError(g.model(), "semantic", /output "y" is declared with shape \[1, 5\], but the graph gives it shape \[1, 3\]/);
  });

  test("initializer whose data does not fill its shape", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.initTensor({ name: "W", dims: [2, 3], dataType: DT.FLOAT, rawData: new Uint8Array(5 * 4) });
    b.node("MatMul", ["u", "W"], ["y"]);
    b.output("y", [1, 3]);
    expectError(b.model(), "format", /initializer 0 "W"\): raw_data has 20 bytes, but shape \[2, 3\] of float needs 24/);
  });

  test("unknown opset domain", () => {
    const bytes = valid().model({ opsetImports: [{ domain: "", version: 13 }, { domain: "com.example.custom", version: 1 }] });
    expectError(bytes, "unsupported", /operator set domain "com\.example\.custom"/, /only the standard ONNX domain/);
  });

  test("node of a non-standard domain", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.node("FusedGemm", ["u"], ["y"], {}, "fused");
    b.output("y", [1, 2]);
    expectError(withNodeDomain(b.model(), "com.microsoft"), "unsupported", /"fused" \(FusedGemm\)/, /domain "com\.microsoft"/);
  });

  test("default-domain opset outside 13..21", () => {
    expectError(valid(11).model(), "unsupported", /opset 11 is not supported \(supported: 13 to 21\)/);
    expectError(valid(13).model({ opsetImports: [{ domain: "", version: 22 }] }), "unsupported", /opset 22 is not supported/);
  });

  test("unsupported op names the node, its op type and the supported list", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.node("LSTM", ["u"], ["y"], {}, "rnn");
    b.output("y", [1, 2]);
    expectError(b.model(), "unsupported", /node 0 "rnn" \(LSTM\)/, /op type LSTM is not supported; supported ops: Add, Cast, Concat/, /Unsqueeze/);
  });

  test("Softmax of a model value: the IR has no softmax", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 4]);
    b.node("Softmax", ["u"], ["y"], { axis: { i: -1 } }, "probs");
    b.output("y", [1, 4]);
    expectError(b.model(), "unsupported", /"probs" \(Softmax\)/, /no softmax op/);
  });

  test("a bare Erf (not part of a GELU) is rejected at the Erf node", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 4]);
    b.node("Erf", ["u"], ["y"], {}, "just_erf");
    b.output("y", [1, 4]);
    expectError(b.model(), "unsupported", /"just_erf" \(Erf\)/, /only as part of the exact GELU/);
  });

  test("division by a model value outside a LayerNorm", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 4]);
    b.node("Div", [b.init("one", [], [1]), "u"], ["y"], {}, "inv");
    b.output("y", [1, 4]);
    expectError(b.model(), "unsupported", /"inv" \(Div\)/, /no division op/);
  });

  test("several per-step inputs", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.input("v", [1, 2]);
    b.node("Add", ["u", "v"], ["y"]);
    b.output("y", [1, 2]);
    expectError(b.model(), "unsupported", /2 inputs that are not recurrent state \("u", "v"\)/, /--state IN:OUT/);
  });

  test("explicit state pairs: accepted, and checked", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.input("memory", [1, 2]);
    b.node("Add", [b.op("Mul", ["memory", b.init("a", [], [0.9])]), "u"], ["memory_new"]);
    b.node("Identity", ["memory_new"], ["y"]);
    b.output("y", [1, 2]);
    b.output("memory_new", [1, 2]);
    const bytes = b.model();
    expectError(bytes, "unsupported", /2 inputs that are not recurrent state/);
    const m = compileOnnxBytes(bytes, "ok.onnx", { state: [["memory", "memory_new"]] });
    expect(m.state).toEqual([{ name: "memory", size: 2 }]);
    const e = failure(() => compileOnnxBytes(bytes, "bad.onnx", { state: [["memory", "nope"]] }));
    expect(e.kind).toBe("usage");
    expect(e.message).toMatch(/--state memory:nope: "nope" is not a graph output \(outputs: "y", "memory_new"\)/);
  });

  test("nodes out of topological order", () => {
    const b = new GraphBuilder(13);
    b.input("u", [1, 2]);
    b.node("Neg", ["t"], ["y"], {}, "second");
    b.node("Neg", ["u"], ["t"], {}, "first");
    b.output("y", [1, 2]);
    expectError(b.model(), "semantic", /"second" \(Neg\)/, /produced by node 1, which comes later/);
  });

  test("a Scan whose initial state is not zero", () => {
    const body = new GraphBuilder(13, "body");
    body.input("s", [1, 2]);
    body.input("x", [1, 2]);
    body.node("Add", ["s", "x"], ["s2"]);
    body.node("Identity", ["s2"], ["h"]);
    body.output("s2", [1, 2]);
    body.output("h", [1, 2]);
    const b = new GraphBuilder(13);
    b.input("seq", ["time", 1, 2]);
    const init = b.init("s0", [1, 2], [1, 0]);
    b.node("Scan", [init, "seq"], ["s_final", "hs"], { body: { g: body.graph() }, num_scan_inputs: { i: 1 } }, "loop");
    b.output("hs", ["time", 1, 2]);
    expectError(b.model(), "unsupported", /"loop" \(Scan\)/, /initial value of Scan state "s" is not zero/);
  });
});

/** The graph's first node moved to another operator domain. */
function withNodeDomain(bytes: Uint8Array, domain: string): Uint8Array {
  const m = onnxProto.onnx.ModelProto.decode(bytes);
  m.graph!.node![0]!.domain = domain;
  return onnxProto.onnx.ModelProto.encode(m).finish();
}
