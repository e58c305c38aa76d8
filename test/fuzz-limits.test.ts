// Resource limits (src/common/limits.ts, docs/LIMITS.md): sizes an input declares are checked
// before anything is allocated or unrolled, so a hostile file gets a "resource" UserError
// quickly instead of an out-of-memory crash or a hang.

import { afterEach, describe, expect, test } from "@jest/globals";
import onnxProto from "onnx-proto";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import { UserError } from "../src/common/errors.js";
import { checkElements, DEFAULT_LIMITS, elementCount, limits, resetLimits, setLimits } from "../src/common/limits.js";
import { parseNpy } from "../src/common/npy.js";
import { reportError, takeCommonOptions } from "../src/cli/main.js";
import { compileDslSource } from "../src/frontend/dsl/index.js";
import { decodeOnnx } from "../src/frontend/onnx/decode.js";
import { compileOnnxBytes } from "../src/frontend/onnx/index.js";
import { decodeSafetensors } from "../src/frontend/safetensors.js";
import { checkProgram } from "../src/interp/verify.js";
import { freshProgramBytes } from "./fuzz/lib.js";
import { userError } from "./helpers/user-error.js";

afterEach(() => resetLimits());

/** A .npy image with this header text and no data. */
function npy(header: string): Uint8Array {
  const h = Buffer.from(header.padEnd(118) + "\n", "latin1");
  const out = new Uint8Array(10 + h.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, h.length, true);
  out.set(h, 10);
  return out;
}

describe("limits", () => {
  test("defaults, environment and overrides", () => {
    expect(limits()).toEqual(DEFAULT_LIMITS);
    setLimits({ maxElements: 5 });
    expect(limits().maxElements).toBe(5);
    expect(limits().maxLayers).toBe(DEFAULT_LIMITS.maxLayers);
    resetLimits();
    process.env.IMSSA_MAX_ELEMENTS = "1_000";
    try {
      resetLimits();
      expect(limits().maxElements).toBe(1000);
    } finally {
      delete process.env.IMSSA_MAX_ELEMENTS;
      resetLimits();
    }
    process.env.IMSSA_MAX_LAYERS = "many";
    try {
      resetLimits();
      expect(() => limits()).toThrow(/IMSSA_MAX_LAYERS: "many" is not a positive integer/);
    } finally {
      delete process.env.IMSSA_MAX_LAYERS;
      resetLimits();
    }
  });

  test("element counts saturate instead of losing precision", () => {
    expect(elementCount([])).toBe(1);
    expect(elementCount([3, 0, 2 ** 60])).toBe(0);
    expect(elementCount([2 ** 26, 2 ** 26])).toBe(2 ** 52);
    expect(elementCount([2 ** 40, 2 ** 40])).toBe(Infinity);
    expect(userError(() => checkElements([1e6, 1e6], "x")).message).toMatch(/x declares shape \[1000000, 1000000\] with 1000000000000 elements, more than the limit of 100000000/);
  });

  test("--max-elements is taken out of argv by the CLI wrapper", () => {
    expect(takeCommonOptions(["node", "tool", "a", "--max-elements", "7", "b"])).toEqual(["node", "tool", "a", "b"]);
    expect(limits().maxElements).toBe(7);
    expect(takeCommonOptions(["node", "tool", "--max-elements=1e9"])).toEqual(["node", "tool"]);
    expect(limits().maxElements).toBe(1e9);
    expect(takeCommonOptions(["node", "tool", "--", "--max-elements", "3"])).toEqual(["node", "tool", "--", "--max-elements", "3"]);
    expect(() => takeCommonOptions(["node", "tool", "--max-elements"])).toThrow(/needs a value/);
  });
});

describe("declared sizes are refused before allocation", () => {
  test("npy: a 1e12-element header", () => {
    const e = userError(() => parseNpy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"), "huge.npy"));
    expect(e.kind).toBe("resource");
    expect(e.message).toMatch(/^huge\.npy \(at header\.shape\): the array declares shape \[1000000, 1000000\]/);
  });

  test("npy: header nesting is bounded (no stack overflow)", () => {
    const e = userError(() => parseNpy(npy(`{'descr': '<f8', 'x': ${"(".repeat(100)}`), "deep.npy"));
    expect(e.message).toContain("nests deeper than 64 levels");
  });

  test("safetensors: a tensor declaring 2^40 elements", () => {
    const header = Buffer.from(JSON.stringify({ w: { dtype: "F32", shape: [2 ** 20, 2 ** 20], data_offsets: [0, 0] } }));
    const bytes = new Uint8Array(8 + header.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    const e = userError(() => decodeSafetensors(bytes, "big.safetensors"));
    expect(e.kind).toBe("resource");
    expect(e.message).toContain('tensor "w" declares shape [1048576, 1048576]');
  });

  test("ONNX: an initializer declaring 1e12 elements", () => {
    const { onnx } = onnxProto;
    const model = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 13 }],
      graph: { name: "g", initializer: [{ name: "w", dims: [1000000, 1000000], dataType: 1, rawData: new Uint8Array(8) }] },
    }).finish();
    const e = userError(() => decodeOnnx(model, "big.onnx"));
    expect(e.kind).toBe("resource");
    expect(e.message).toContain("declares shape [1000000, 1000000]");
  });

  test("ONNX: a shape computed from the file's data (ConstantOfShape of [1e6, 1e6])", () => {
    const { onnx } = onnxProto;
    const T = onnx.TensorProto.DataType;
    const vi = (name: string) => ({ name, type: { tensorType: { elemType: T.FLOAT, shape: { dim: [{ dimValue: 1 }, { dimValue: 2 }] } } } });
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 13 }],
      graph: {
        name: "g",
        input: [vi("u")],
        output: [vi("y")],
        initializer: [{ name: "big", dims: [2], dataType: T.INT64, int64Data: [1000000, 1000000] }],
        node: [
          { opType: "ConstantOfShape", input: ["big"], output: ["c"] },
          { opType: "Relu", input: ["u"], output: ["y"] },
        ],
      },
    }).finish();
    const e = userError(() => compileOnnxBytes(bytes, "cos.onnx"));
    expect(e.kind).toBe("resource");
    expect(e.message).toMatch(/^cos\.onnx \(at node 0 \(ConstantOfShape\)\): the result declares shape \[1000000, 1000000\]/);
  });

  test("ONNX: subgraph nesting is bounded", () => {
    const { onnx } = onnxProto;
    type G = { name: string; node: object[] };
    let g: G = { name: "leaf", node: [] };
    for (let i = 0; i < 80; i++) g = { name: `g${i}`, node: [{ opType: "If", attribute: [{ name: "then_branch", type: onnx.AttributeProto.AttributeType.GRAPH, g }] }] };
    const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 13 }], graph: g }).finish();
    expect(userError(() => decodeOnnx(bytes, "deep.onnx")).message).toContain("subgraphs nest deeper than 64 levels");
  });

  test.each([
    ["linear(1e12)", "model m { input u[1]; output y; params init; linear(1000000000000); }", /linear declares shape \[1000000000000, 1\]/],
    ["a huge input", "model m { input u[1000000000000]; output y; params init; gelu; }", /the input declares shape \[1000000000000\]/],
    ["s4d(N = 2^40)", "model m { input u[4]; output y; params init; s4d(N = 1099511627776); }", /s4d \(channels x state size N\) declares shape \[4, 1099511627776\]/],
    ["repeat 1e15", "model m { input u[1]; output y; params init; repeat 1000000000000000 { gelu; } }", /the number of layers and blocks after unrolling `repeat` is 10001, more than the limit of 10000/],
    ["nested repeats", "model m { input u[1]; output y; params init; repeat 100000 { repeat 100000 { repeat 100000 { gelu; } } } }", /limit of 10000/],
    ["an empty repeat 1e15", "model m { input u[1]; output y; params init; repeat 1000000000000000 { } linear(1); }", /empty repeat block/],
  ])("DSL: %s is refused at once", (_name, source, message) => {
    const t0 = Date.now();
    const e = userError(() => compileDslSource(source, "m.s4d"));
    expect(e.message).toMatch(message);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test("xbin: a program declaring 2^31 words of global memory", () => {
    const p = decodeProgram(freshProgramBytes(), "fresh.xbin");
    p.io.globalWords = 2 ** 31;
    const e = userError(() => checkProgram(decodeProgram(encodeProgram(p), "big.xbin"), "big.xbin"));
    expect(e.kind).toBe("resource");
    expect(e.message).toMatch(/^big\.xbin: the program's global memory size in words is 2147483648, more than the limit of 67108864/);
  });

  test("xbin: the instruction count limit", () => {
    setLimits({ maxInstructions: 3 });
    const e = userError(() => decodeProgram(freshProgramBytes(), "many.xbin"));
    expect(e.kind).toBe("resource");
    expect(e.message).toMatch(/the number of instructions is \d+, more than the limit of 3/);
  });
});

describe("internal errors", () => {
  test("exit 2 with a request to report; the stack only with --debug", () => {
    const chunks: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (chunks.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(reportError("imssa-x", new Error("boom"), false)).toBe(2);
      expect(chunks.join("")).toMatch(/^imssa-x: internal error: boom\nThis is a bug in imssa; please report it.*\n\(run with --debug for a stack trace\)\n$/);
      chunks.length = 0;
      expect(reportError("imssa-x", new Error("boom"), true)).toBe(2);
      expect(chunks.join("")).toMatch(/\n\s+at /);
      chunks.length = 0;
      expect(reportError("imssa-x", new UserError("usage", "bad flag"), true)).toBe(1);
      expect(chunks.join("")).toBe("imssa-x: error: bad flag\n");
    } finally {
      process.stderr.write = write;
    }
  });
});
