import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../src/common/errors.js";
import { decodeSafetensors, encodeSafetensors, floatToHalf, halfToFloat, readSafetensors, readSafetensorsContent, writeSafetensors } from "../src/frontend/safetensors.js";

/** A file laid out by hand from the format description: u64 header size, JSON, data. */
function rawFile(header: unknown, data: number[] = [], headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function formatError(bytes: Uint8Array): UserError {
  try {
    decodeSafetensors(bytes, "w.safetensors");
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).kind).toBe("format");
    return e as UserError;
  }
  throw new Error("expected a format error");
}

describe("safetensors", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "imssa-st-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("reads a file written by hand from the format description", () => {
    // F32 [1.5, -2] little-endian, then I64 [-5], BF16 [1, -3.140625], F16 [1, -2, 65504, 2^-24, inf], I8, U8, I16, I32.
    const data = [
      ...[0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0],
      ...[0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      ...[0x80, 0x3f, 0x49, 0xc0],
      ...[0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c],
      ...[0xfe],
      ...[0xfe],
      ...[0x00, 0x80],
      ...[0xff, 0xff, 0xff, 0x7f],
    ];
    const header = {
      __metadata__: { format: "pt" },
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "I64", shape: [1, 1], data_offsets: [8, 16] },
      c: { dtype: "BF16", shape: [2], data_offsets: [16, 20] },
      d: { dtype: "F16", shape: [5], data_offsets: [20, 30] },
      e: { dtype: "I8", shape: [], data_offsets: [30, 31] },
      f: { dtype: "U8", shape: [1], data_offsets: [31, 32] },
      g: { dtype: "I16", shape: [1], data_offsets: [32, 34] },
      h: { dtype: "I32", shape: [1], data_offsets: [34, 38] },
      empty: { dtype: "F32", shape: [0, 3], data_offsets: [38, 38] },
    };
    const { tensors, metadata } = decodeSafetensors(rawFile(header, data), "x.safetensors");
    expect(metadata).toEqual({ format: "pt" });
    const get = (k: string) => Array.from(tensors.get(k)!.data);
    expect(tensors.get("a")).toEqual({ dtype: "F32", shape: [2], data: Float64Array.from([1.5, -2]) });
    expect(tensors.get("b")!.shape).toEqual([1, 1]);
    expect(get("b")).toEqual([-5]);
    expect(get("c")).toEqual([1, -3.140625]);
    expect(get("d")).toEqual([1, -2, 65504, 2 ** -24, Infinity]);
    expect(get("e")).toEqual([-2]);
    expect(get("f")).toEqual([254]);
    expect(get("g")).toEqual([-32768]);
    expect(get("h")).toEqual([2147483647]);
    expect(get("empty")).toEqual([]);
  });

  test("round-trips every writable dtype through a file, with metadata", () => {
    const file = join(dir, "rt.safetensors");
    const vals = [0, 1, -2.5, 0.1, 1e-3];
    writeSafetensors(
      file,
      {
        f64: { dtype: "F64", shape: [5], data: vals },
        f32: { dtype: "F32", shape: [5, 1], data: vals },
        f16: { dtype: "F16", shape: [5], data: vals },
        bf16: { dtype: "BF16", shape: [5], data: vals },
        i64: { dtype: "I64", shape: [2], data: [-(2 ** 40), 7] },
        i32: { dtype: "I32", shape: [2], data: [-3, 4] },
      },
      { source: "test" },
    );
    const { tensors: t, metadata } = readSafetensorsContent(file);
    expect(metadata).toEqual({ source: "test" });
    expect(Array.from(t.get("f64")!.data)).toEqual(vals);
    expect(t.get("f32")!.shape).toEqual([5, 1]);
    expect(Array.from(t.get("f32")!.data)).toEqual(vals.map(Math.fround));
    Array.from(t.get("f16")!.data).forEach((v, i) => expect(v).toBeCloseTo(vals[i]!, 3));
    Array.from(t.get("bf16")!.data).forEach((v, i) => expect(Math.abs(v - vals[i]!)).toBeLessThanOrEqual(Math.abs(vals[i]!) / 128));
    expect(Array.from(t.get("i64")!.data)).toEqual([-(2 ** 40), 7]);
    expect(Array.from(t.get("i32")!.data)).toEqual([-3, 4]);
    expect(readSafetensors(file).size).toBe(6);
  });

  test("the writer pads the header so data starts 8-byte aligned", () => {
    const bytes = encodeSafetensors({ x: { dtype: "F32", shape: [1], data: [1] } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
  });

  test("half-precision conversion rounds to nearest even, including overflow and subnormals", () => {
    expect(floatToHalf(1)).toBe(0x3c00);
    expect(floatToHalf(-2)).toBe(0xc000);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie -> even mantissa 0
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even mantissa 2
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(65520)).toBe(0x7c00); // tie between max and 2^16 -> infinity
    expect(floatToHalf(2 ** -24)).toBe(0x0001);
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // tie -> 0
    expect(floatToHalf(3 * 2 ** -26)).toBe(0x0001);
    expect(floatToHalf(-Infinity)).toBe(0xfc00);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
    for (let h = 0; h < 0x7c00; h += 37) expect(floatToHalf(halfToFloat(h))).toBe(h);
  });

  test.each([
    ["a file shorter than 8 bytes", new Uint8Array(5), "w.safetensors: not a safetensors file: 5 bytes"],
    ["a header length beyond the file", (() => { const b = rawFile({}); new DataView(b.buffer).setBigUint64(0, 1000n, true); return b; })(), "header length 1000 exceeds the 2 bytes"],
    ["a header that is not JSON", rawFile(null, [], "{not json"), "header is not valid UTF-8 JSON"],
    ["a header that is not an object", rawFile([1, 2]), "header must be a JSON object"],
    ["non-string metadata", rawFile({ __metadata__: { n: 3 } }), `"__metadata__" value "n" must be a string`],
    ["an unknown dtype", rawFile({ w: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }, new Array(8).fill(0)), 'w.safetensors: tensor "w": unsupported dtype C64'],
    ["a bad shape", rawFile({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, [0, 0, 0, 0]), 'tensor "w": "shape" must be an array of non-negative integers, found [-1]'],
    ["bad offsets", rawFile({ w: { dtype: "F32", shape: [1], data_offsets: [4] } }, [0, 0, 0, 0]), '"data_offsets" must be [begin, end]'],
    ["offsets out of bounds", rawFile({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, [0, 0, 0, 0]), 'tensor "w": data_offsets [0, 8] reach past the end of the 4-byte data buffer'],
    ["a size that does not match the shape", rawFile({ w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 8] } }, new Array(8).fill(0)), 'tensor "w": data_offsets [0, 8] hold 8 bytes, but shape [2, 2] of F32 needs 4 x 4 = 16'],
    [
      "overlapping tensors",
      rawFile({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Array(12).fill(0)),
      'tensor "b": data_offsets [4, 12] overlap those of "a" [0, 8]',
    ],
  ])("rejects %s with a format error naming the file and tensor", (_what, bytes, message) => {
    expect(formatError(bytes).message).toContain(message);
  });

  test("a missing file is an io error naming the file", () => {
    const missing = join(dir, "nope.safetensors");
    expect(() => readSafetensors(missing)).toThrow(expect.objectContaining({ kind: "io", message: `${missing}: cannot read file: no such file or directory` }));
  });

  test("a corrupt file on disk reports its path", () => {
    const file = join(dir, "bad.safetensors");
    writeFileSync(file, rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 4] } }, [0, 0, 0, 0]));
    expect(() => readSafetensors(file)).toThrow(`${file}: tensor "w": data_offsets [0, 4] hold 4 bytes, but shape [3] of F32 needs 3 x 4 = 12`);
  });
});
