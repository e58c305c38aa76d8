import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../src/common/errors.js";
import { encodeNpy, parseNpy, readFloatNpy, readNpy, toFloat64, writeNpy, type NpyData } from "../src/common/npy.js";

/** Elements as a plain array (numbers, or bigints for 64-bit integer dtypes). */
const list = (d: NpyData): Array<number | bigint> => Array.from(d as ArrayLike<number | bigint>);

const FIXTURES = join(process.cwd(), "test", "fixtures", "npy");

/** Builds a .npy image by hand: magic, version, little-endian header length, header, data. */
function build(header: string, data: Uint8Array = new Uint8Array(0), major = 1, minor = 0): Uint8Array {
  const lenBytes = major === 1 ? 2 : 4;
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + lenBytes + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, minor]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, h.length, true);
  else view.setUint32(8, h.length, true);
  out.set(h, 8 + lenBytes);
  out.set(data, 8 + lenBytes + h.length);
  return out;
}

const f32bytes = (...xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);
const dict = (descr: string, shape: string, fortran = "False") => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;

function formatError(bytes: Uint8Array): UserError {
  try {
    parseNpy(bytes, "in.npy");
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    const err = e as UserError;
    expect(err.kind).toBe("format");
    expect(err.diagnostics[0]!.location?.file).toBe("in.npy");
    return err;
  }
  throw new Error("expected a format error");
}

describe("encodeNpy / parseNpy", () => {
  test("header is byte-for-byte what NumPy writes, data 64-byte aligned", () => {
    const bytes = encodeNpy([2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
    const headerLen = bytes[8]! | (bytes[9]! << 8);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
    expect(header.trimEnd()).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    expect(header.endsWith("\n")).toBe(true);
    expect((10 + headerLen) % 64).toBe(0);
    expect(bytes.length).toBe(10 + headerLen + 24);
  });

  test.each([
    [[], [42.5]],
    [[0], []],
    [[3], [1, -2, 3.25]],
    [[2, 3], [1, 2, 3, 4, 5, 6]],
    [[2, 0, 4], []],
    [[2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]],
  ])("round trip shape %j", (shape, values) => {
    for (const data of [Float32Array.from(values), Float64Array.from(values)]) {
      const arr = parseNpy(encodeNpy(shape, data), "x.npy");
      expect(arr.shape).toEqual(shape);
      expect(arr.dtype).toBe(data instanceof Float32Array ? "<f4" : "<f8");
      expect(arr.data.constructor).toBe(data.constructor);
      expect(list(arr.data)).toEqual(Array.from(data));
    }
  });

  test("1-d shape is written as a one-element tuple", () => {
    const bytes = encodeNpy([3], Float64Array.of(1, 2, 3));
    expect(new TextDecoder().decode(bytes.subarray(10, 80))).toContain("'shape': (3,)");
  });

  test("integer arrays round trip too", () => {
    const arr = parseNpy(encodeNpy([2], BigInt64Array.of(-5n, 1n << 40n)), "x.npy");
    expect(arr.dtype).toBe("<i8");
    expect(list(arr.data)).toEqual([-5n, 1n << 40n]);
    expect(parseNpy(encodeNpy([3], Int32Array.of(1, -2, 3)), "x.npy").dtype).toBe("<i4");
  });

  test("encoding rejects a shape that does not match the data (our bug, not the user's)", () => {
    expect(() => encodeNpy([2, 2], new Float32Array(3))).toThrow(/internal error/);
  });

  test("hand-built header variants: double quotes, Python 2 longs, no trailing comma, extra spaces", () => {
    const data = f32bytes(1, 2);
    for (const header of [
      `{"descr": "<f4", "fortran_order": False, "shape": (2,)}`,
      `{'descr':'<f4','fortran_order':False,'shape':(2L,)}`,
      `{ 'shape' : ( 1 , 2 ) , 'fortran_order' : False , 'descr' : '<f4' }   \n`,
    ]) {
      const arr = parseNpy(build(header, data), "in.npy");
      expect(list(arr.data)).toEqual([1, 2]);
    }
  });

  test("versions 2.0 and 3.0 (4-byte header length; 3.0 is UTF-8)", () => {
    expect(list(parseNpy(build(dict("<f4", "(2,)"), f32bytes(3, 4), 2), "in.npy").data)).toEqual([3, 4]);
    expect(list(parseNpy(build(dict("<f4", "(1,)"), f32bytes(5), 3), "in.npy").data)).toEqual([5]);
  });

  test("fortran_order True is transposed to C order", () => {
    // 2x3 matrix [[1, 2, 3], [4, 5, 6]] stored column by column: 1 4 2 5 3 6.
    const arr = parseNpy(build(dict("<f4", "(2, 3)", "True"), f32bytes(1, 4, 2, 5, 3, 6)), "in.npy");
    expect(arr.shape).toEqual([2, 3]);
    expect(list(arr.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test("other dtypes: int8/16/32, uint8/16/32/64, bool, and byte-order-free single bytes", () => {
    const cases: Array<[string, Uint8Array, unknown[]]> = [
      ["|i1", Uint8Array.of(0xff, 2), [-1, 2]],
      ["<i1", Uint8Array.of(0x80), [-128]],
      ["|u1", Uint8Array.of(255, 1), [255, 1]],
      ["|b1", Uint8Array.of(1, 0), [1, 0]],
      ["<i2", new Uint8Array(Int16Array.of(-300, 7).buffer), [-300, 7]],
      ["<u2", new Uint8Array(Uint16Array.of(65535, 7).buffer), [65535, 7]],
      ["<i4", new Uint8Array(Int32Array.of(-70000, 7).buffer), [-70000, 7]],
      ["<u4", new Uint8Array(Uint32Array.of(4e9, 7).buffer), [4e9, 7]],
      ["<u8", new Uint8Array(BigUint64Array.of(1n << 63n, 7n).buffer), [1n << 63n, 7n]],
    ];
    for (const [descr, bytes, values] of cases) {
      const arr = parseNpy(build(dict(descr, `(${values.length},)`), bytes), "in.npy");
      expect(list(arr.data)).toEqual(values);
    }
  });

  test("toFloat64 converts any dtype", () => {
    expect(Array.from(toFloat64(BigInt64Array.of(-3n, 5n)))).toEqual([-3, 5]);
    expect(Array.from(toFloat64(Float32Array.of(0.5)))).toEqual([0.5]);
  });
});

describe("format errors name the file and the problem", () => {
  const good = build(dict("<f4", "(2,)"), f32bytes(1, 2));

  test.each<[string, () => Uint8Array, RegExp]>([
    ["empty file", () => new Uint8Array(0), /the file is empty/],
    ["bad magic", () => Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0, 0, 0]), /\\x93NUMPY magic/],
    ["magic only", () => good.slice(0, 6), /too short/],
    ["length field cut off", () => good.slice(0, 9), /truncated header/],
    ["truncated header", () => good.slice(0, 30), /truncated header: it declares \d+ bytes/],
    ["unsupported version", () => build(dict("<f4", "(2,)"), f32bytes(1, 2), 4), /format version 4\.0/],
    ["header not a dict", () => build("[1, 2]\n"), /not a dictionary/],
    ["header not a literal", () => build("hello\n"), /unexpected "h"/],
    ["missing key", () => build("{'descr': '<f4', 'shape': (1,)}\n", f32bytes(1)), /no 'fortran_order' entry/],
    ["extra key", () => build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", f32bytes(1)), /unexpected header entry 'x'/],
    ["unterminated string", () => build("{'descr': '<f4\n"), /unterminated string/],
    ["trailing garbage", () => build(dict("<f4", "(1,)").trimEnd() + " xyz\n", f32bytes(1)), /after the header dictionary/],
    ["float16", () => build(dict("<f2", "(1,)"), new Uint8Array(2)), /unsupported float dtype '<f2'; supported: float32, float64/],
    ["complex", () => build(dict("<c16", "(1,)"), new Uint8Array(16)), /unsupported complex dtype/],
    ["string", () => build(dict("<U3", "(1,)"), new Uint8Array(12)), /unicode string/],
    ["object", () => build(dict("|O", "(1,)"), new Uint8Array(8)), /Python object/],
    ["structured", () => build("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}\n", f32bytes(1)), /structured/],
    ["big-endian", () => build(dict(">f4", "(1,)"), f32bytes(1)), /big-endian data \('>f4'\) is not supported; convert with a\.astype\('<f4'\)/],
    ["native byte order", () => build(dict("=f8", "(1,)"), new Uint8Array(8)), /does not state its byte order/],
    ["fortran_order not bool", () => build(dict("<f4", "(1,)", "1"), f32bytes(1)), /'fortran_order' must be True or False/],
    ["negative dimension", () => build(dict("<f4", "(-1,)")), /'shape' must be a tuple of non-negative integers/],
    ["shape not a tuple", () => build(dict("<f4", "'2'")), /'shape' must be a tuple/],
    ["data too short", () => build(dict("<f4", "(3,)"), f32bytes(1, 2)), /truncated data: shape \(3\) of <f4 needs 12 bytes, the file has 8/],
    ["data too long", () => build(dict("<f4", "(1,)"), f32bytes(1, 2)), /4 unexpected bytes after the data/],
    ["bool out of range", () => build(dict("|b1", "(1,)"), Uint8Array.of(2)), /bool array/],
  ])("%s", (_name, bytes, message) => {
    const err = formatError(bytes());
    expect(err.message).toMatch(/^in\.npy.*: invalid \.npy file: /);
    expect(err.message).toMatch(message);
  });
});

describe("files", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "imssa-npy-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("writeNpy / readNpy round trip, atomic (no temp file left)", () => {
    const file = join(dir, "a.npy");
    writeNpy(file, [2, 2], Float64Array.of(1, 2, 3, 4));
    expect(readdirSync(dir)).toEqual(["a.npy"]);
    const arr = readNpy(file);
    expect(arr.shape).toEqual([2, 2]);
    expect(list(arr.data)).toEqual([1, 2, 3, 4]);
  });

  test("readFloatNpy converts float64 and integers to float32", () => {
    const file = join(dir, "b.npy");
    writeNpy(file, [3], Float64Array.of(0.1, 2, -3));
    const r = readFloatNpy(file);
    expect(r.data).toBeInstanceOf(Float32Array);
    expect(list(r.data)).toEqual([Math.fround(0.1), 2, -3]);
    writeNpy(file, [2], Int32Array.of(7, -8));
    expect(list(readFloatNpy(file).data)).toEqual([7, -8]);
  });

  test("missing file is an io error", () => {
    expect(() => readNpy(join(dir, "nope.npy"))).toThrow(expect.objectContaining({ kind: "io" }) as unknown as Error);
  });

  test("errors from readNpy name the file", () => {
    expect(() => readNpy(join(FIXTURES, "README.md"))).toThrow(/README\.md: invalid \.npy file: missing the \\x93NUMPY magic/);
  });
});

describe("committed fixtures", () => {
  const fixture = (name: string) => readNpy(join(FIXTURES, name));

  test("our own files: content, and re-encoding reproduces the bytes", () => {
    const a = fixture("imssa_f4_2x3.npy");
    expect(a.shape).toEqual([2, 3]);
    expect(list(a.data)).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    expect(encodeNpy(a.shape, a.data)).toEqual(new Uint8Array(readFileSync(join(FIXTURES, "imssa_f4_2x3.npy"))));
    const b = fixture("imssa_f8_1x4x2.npy");
    expect(b.shape).toEqual([1, 4, 2]);
    expect(list(b.data)).toEqual(Array.from({ length: 8 }, (_, i) => i / 3 - 1));
    expect(encodeNpy(b.shape, b.data)).toEqual(new Uint8Array(readFileSync(join(FIXTURES, "imssa_f8_1x4x2.npy"))));
  });

  test("NumPy's Fortran-order float64 [2, 3, 4]", () => {
    const a = fixture("numpy_f8_fortran_2x3x4.npy");
    expect(a.shape).toEqual([2, 3, 4]);
    expect(a.dtype).toBe("<f8");
    expect(list(a.data)).toEqual(Array.from({ length: 24 }, (_, i) => i * 0.25));
  });

  test("NumPy's int64 labels, v2.0 float32, v3.0 uint8, bool scalar", () => {
    expect(list(fixture("numpy_i8_labels.npy").data)).toEqual([3n, -1n, 7n, 0n, 1n << 40n]);
    const v2 = fixture("numpy_f4_v2.npy");
    expect(list(v2.data)).toEqual([-2, -1, 0, 1, 2]);
    const v3 = fixture("numpy_u1_v3.npy");
    expect(v3.shape).toEqual([2, 2]);
    expect(list(v3.data)).toEqual([1, 2, 3, 255]);
    const s = fixture("numpy_bool_scalar.npy");
    expect(s.shape).toEqual([]);
    expect(s.dtype).toBe("|b1");
    expect(list(s.data)).toEqual([1]);
  });
});
