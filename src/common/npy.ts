// NumPy .npy files (format versions 1.0, 2.0, 3.0), the interchange format for model inputs,
// outputs and calibration data.
//
// Reading: little-endian (or byte-order-free) float32/float64, int8/16/32/64, uint8/16/32/64
// and bool arrays; Fortran-order arrays are transposed to C order on reading. Big-endian,
// float16, complex, string, object and structured dtypes are rejected with a message that
// says how to convert. Writing: version 1.0 (2.0 if the header would not fit), C order, with
// the header NumPy itself writes, so numpy.load reads our files.

import { endianness } from "node:os";
import { UserError } from "./errors.js";
import { readBytes, writeFileAtomic } from "./files.js";
import { checkElements, limits } from "./limits.js";

export type NpyDtype = "<f4" | "<f8" | "|i1" | "|u1" | "|b1" | "<i2" | "<u2" | "<i4" | "<u4" | "<i8" | "<u8";

export type NpyData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface NpyArray {
  /** Dimensions in C (row-major) order; [] for a scalar. */
  shape: number[];
  /** Normalized NumPy dtype string; bool arrays come back as 0/1 bytes in a Uint8Array. */
  dtype: NpyDtype;
  /** Elements in C order. */
  data: NpyData;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ALIGN = 64;
const LITTLE_ENDIAN_HOST = endianness() === "LE";

interface DtypeInfo {
  dtype: NpyDtype;
  size: number;
  make: (buffer: ArrayBuffer, count: number) => NpyData;
  /** Element reader for big-endian hosts, where the bytes cannot be viewed directly. */
  get: (view: DataView, offset: number) => number | bigint;
}

// Keyed by kind+size ("f4"); the byte-order character is checked separately.
const DTYPES: Record<string, DtypeInfo> = {
  f4: { dtype: "<f4", size: 4, make: (b, n) => new Float32Array(b, 0, n), get: (v, o) => v.getFloat32(o, true) },
  f8: { dtype: "<f8", size: 8, make: (b, n) => new Float64Array(b, 0, n), get: (v, o) => v.getFloat64(o, true) },
  i1: { dtype: "|i1", size: 1, make: (b, n) => new Int8Array(b, 0, n), get: (v, o) => v.getInt8(o) },
  u1: { dtype: "|u1", size: 1, make: (b, n) => new Uint8Array(b, 0, n), get: (v, o) => v.getUint8(o) },
  b1: { dtype: "|b1", size: 1, make: (b, n) => new Uint8Array(b, 0, n), get: (v, o) => v.getUint8(o) },
  i2: { dtype: "<i2", size: 2, make: (b, n) => new Int16Array(b, 0, n), get: (v, o) => v.getInt16(o, true) },
  u2: { dtype: "<u2", size: 2, make: (b, n) => new Uint16Array(b, 0, n), get: (v, o) => v.getUint16(o, true) },
  i4: { dtype: "<i4", size: 4, make: (b, n) => new Int32Array(b, 0, n), get: (v, o) => v.getInt32(o, true) },
  u4: { dtype: "<u4", size: 4, make: (b, n) => new Uint32Array(b, 0, n), get: (v, o) => v.getUint32(o, true) },
  i8: { dtype: "<i8", size: 8, make: (b, n) => new BigInt64Array(b, 0, n), get: (v, o) => v.getBigInt64(o, true) },
  u8: { dtype: "<u8", size: 8, make: (b, n) => new BigUint64Array(b, 0, n), get: (v, o) => v.getBigUint64(o, true) },
};

const SUPPORTED = "float32, float64, int8/16/32/64, uint8/16/32/64 and bool, little-endian";

// ---- header: a Python dict literal ---------------------------------------------------------

type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

/** Parses the subset of Python literals NumPy headers use: dicts, tuples, lists, str, int, bool, None. */
class PyLiteralParser {
  private pos = 0;
  /** Nesting of the value being parsed; bounded so "((((..." cannot overflow the stack. */
  private depth = 0;
  constructor(
    private readonly text: string,
    private readonly bad: (message: string) => never,
  ) {}

  parseAll(): PyValue {
    const v = this.value();
    this.skipSpace();
    if (this.pos < this.text.length) this.bad(`unexpected "${this.text.slice(this.pos, this.pos + 10)}" after the header dictionary`);
    return v;
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private peek(): string {
    this.skipSpace();
    return this.text[this.pos] ?? "";
  }

  private expect(ch: string): void {
    if (this.peek() !== ch) this.bad(`expected "${ch}" at header offset ${this.pos}, found ${this.peek() ? `"${this.peek()}"` : "the end"}`);
    this.pos++;
  }

  private value(): PyValue {
    const c = this.peek();
    if (c === "{" || c === "(" || c === "[") {
      if (this.depth >= limits().maxNesting) this.bad(`the header nests deeper than ${limits().maxNesting} levels`);
      this.depth++;
      try {
        return c === "{" ? this.dict() : c === "(" ? this.sequence("(", ")") : this.sequence("[", "]");
      } finally {
        this.depth--;
      }
    }
    if (c === "'" || c === '"') return this.string();
    const m = /^(-?\d+)L?|^(True|False|None)\b/.exec(this.text.slice(this.pos));
    if (!m) this.bad(`unexpected ${c ? `"${c}"` : "end"} at header offset ${this.pos}`);
    this.pos += m[0].length;
    if (m[1] !== undefined) return Number(m[1]);
    return m[2] === "None" ? null : m[2] === "True";
  }

  private string(): string {
    const quote = this.text[this.pos++]!;
    let s = "";
    while (this.pos < this.text.length && this.text[this.pos] !== quote) {
      let ch = this.text[this.pos++]!;
      if (ch === "\\") ch = this.text[this.pos++] ?? "";
      s += ch;
    }
    if (this.pos >= this.text.length) this.bad(`unterminated string in the header`);
    this.pos++;
    return s;
  }

  private sequence(open: string, close: string): PyValue[] {
    this.expect(open);
    const items: PyValue[] = [];
    while (this.peek() !== close) {
      items.push(this.value());
      if (this.peek() !== ",") break;
      this.pos++;
    }
    this.expect(close);
    return items;
  }

  private dict(): Map<string, PyValue> {
    this.expect("{");
    const d = new Map<string, PyValue>();
    while (this.peek() !== "}") {
      const k = this.value();
      if (typeof k !== "string") this.bad(`header dictionary keys must be strings`);
      this.expect(":");
      d.set(k, this.value());
      if (this.peek() !== ",") break;
      this.pos++;
    }
    this.expect("}");
    return d;
  }
}

interface Header {
  info: DtypeInfo;
  fortranOrder: boolean;
  shape: number[];
}

function describeDtype(descr: string): string {
  const kinds: Record<string, string> = { f: "float", c: "complex", U: "unicode string", S: "byte string", O: "Python object", M: "datetime", m: "timedelta", V: "void" };
  const kind = kinds[descr.replace(/^[<>|=]/, "")[0] ?? ""];
  return kind ? `${kind} dtype '${descr}'` : `dtype '${descr}'`;
}

function interpretHeader(dict: PyValue, fail: (message: string, path?: string) => never): Header {
  if (!(dict instanceof Map)) fail(`the header is not a dictionary`);
  for (const key of ["descr", "fortran_order", "shape"]) {
    if (!dict.has(key)) fail(`the header has no '${key}' entry`);
  }
  for (const key of dict.keys()) {
    if (!["descr", "fortran_order", "shape"].includes(key)) fail(`unexpected header entry '${key}' (expected descr, fortran_order, shape)`);
  }
  const descr = dict.get("descr");
  if (typeof descr !== "string") fail(`structured (record) dtypes are not supported; supported: ${SUPPORTED}`, "header.descr");
  const order = descr[0];
  const key = /^[<>|=]/.test(descr) ? descr.slice(1) : descr;
  const info = DTYPES[key === "?" ? "b1" : key];
  if (!info) fail(`unsupported ${describeDtype(descr)}; supported: ${SUPPORTED}`, "header.descr");
  // '=' (native) is what a big-endian writer might mean too, so only explicit orders are trusted.
  if (info.size > 1 && order !== "<") {
    if (order === ">") fail(`big-endian data ('${descr}') is not supported; convert with a.astype('${info.dtype}') before saving`, "header.descr");
    fail(`dtype '${descr}' does not state its byte order; expected '${info.dtype}'`, "header.descr");
  }
  const fortranOrder = dict.get("fortran_order");
  if (typeof fortranOrder !== "boolean") fail(`'fortran_order' must be True or False`, "header.fortran_order");
  const shape = dict.get("shape");
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) {
    fail(`'shape' must be a tuple of non-negative integers`, "header.shape");
  }
  return { info, fortranOrder, shape: shape as number[] };
}

// ---- reading ---------------------------------------------------------------------------------

/** Reorders a Fortran-order (column-major) array into C order. */
function fortranToC(data: NpyData, shape: readonly number[]): NpyData {
  const n = data.length;
  const out = new (data.constructor as new (n: number) => NpyData)(n) as unknown as { [i: number]: number | bigint };
  const src = data as unknown as { [i: number]: number | bigint };
  const rank = shape.length;
  const fstride: number[] = [];
  for (let k = 0, s = 1; k < rank; k++) {
    fstride.push(s);
    s *= shape[k]!;
  }
  const idx = new Array<number>(rank).fill(0);
  let f = 0; // Fortran offset of the C-order multi-index idx
  for (let c = 0; c < n; c++) {
    out[c] = src[f]!;
    for (let k = rank - 1; k >= 0; k--) {
      idx[k]!++;
      f += fstride[k]!;
      if (idx[k]! < shape[k]!) break;
      f -= idx[k]! * fstride[k]!;
      idx[k] = 0;
    }
  }
  return out as unknown as NpyData;
}

/** Parses the bytes of a .npy file; `file` names it in error messages. */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const fail = (message: string, path?: string): never => {
    throw new UserError("format", `invalid .npy file: ${message}`, { file, path });
  };
  if (bytes.length === 0) fail(`the file is empty`);
  if (bytes.length < 8 || !MAGIC.every((b, i) => bytes[i] === b)) {
    fail(bytes.length < 8 && MAGIC.slice(0, bytes.length).every((b, i) => bytes[i] === b) ? `file is too short for a header` : `missing the \\x93NUMPY magic string (not a NumPy .npy file)`);
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3 || minor !== 0) fail(`unsupported format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) fail(`truncated header (file ends after ${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenBytes + headerLen;
  if (bytes.length < dataStart) fail(`truncated header: it declares ${headerLen} bytes, the file has ${bytes.length - 8 - lenBytes} after the length field`);
  const headerText = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(8 + lenBytes, dataStart));
  const dict = new PyLiteralParser(headerText, (m) => fail(m, "header")).parseAll();
  const { info, fortranOrder, shape } = interpretHeader(dict, fail);

  // Before anything is allocated: a header may declare any shape.
  const count = checkElements(shape, "the array", { file, path: "header.shape" });
  const nbytes = count * info.size;
  const available = bytes.length - dataStart;
  if (available < nbytes) {
    fail(`truncated data: shape (${shape.join(", ")}) of ${info.dtype} needs ${nbytes} bytes, the file has ${available}`, "data");
  }
  if (available > nbytes) {
    fail(`${available - nbytes} unexpected bytes after the data of shape (${shape.join(", ")}) ${info.dtype}`, "data");
  }
  let data: NpyData;
  if (LITTLE_ENDIAN_HOST) {
    // Copy into a fresh buffer that the typed array can view at offset 0 (aligned). Not
    // bytes.slice(): on a Node Buffer that is a view into a shared pool, not a copy.
    const copy = new Uint8Array(nbytes);
    copy.set(bytes.subarray(dataStart, dataStart + nbytes));
    data = info.make(copy.buffer, count);
  } else {
    data = info.make(new ArrayBuffer(nbytes), count);
    const out = data as unknown as { [i: number]: number | bigint };
    for (let i = 0; i < count; i++) out[i] = info.get(view, dataStart + i * info.size);
  }
  if (info.dtype === "|b1" && (data as Uint8Array).some((v) => v > 1)) fail(`bool array holds values other than 0 and 1`, "data");
  if (fortranOrder && shape.length > 1) data = fortranToC(data, shape);
  return { shape, dtype: info.dtype, data };
}

export function readNpy(file: string): NpyArray {
  return parseNpy(readBytes(file), file);
}

/** Converts any numeric array to float64 (int64 values beyond 2^53 round). */
export function toFloat64(data: NpyData): Float64Array {
  if (data instanceof Float64Array) return data;
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}

/**
 * Reads a numeric array as float32, the precision model inputs are evaluated in; float64 and
 * integer files are converted (integers beyond 2^24 round).
 */
export function readFloatNpy(file: string): { shape: number[]; data: Float32Array } {
  const { shape, data } = readNpy(file);
  if (data instanceof Float32Array) return { shape, data };
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return { shape, data: out };
}

// ---- writing ---------------------------------------------------------------------------------

function dtypeOf(data: NpyData): DtypeInfo {
  const key =
    data instanceof Float32Array
      ? "f4"
      : data instanceof Float64Array
        ? "f8"
        : data instanceof Int8Array
          ? "i1"
          : data instanceof Uint8Array
            ? "u1"
            : data instanceof Int16Array
              ? "i2"
              : data instanceof Uint16Array
                ? "u2"
                : data instanceof Int32Array
                  ? "i4"
                  : data instanceof Uint32Array
                    ? "u4"
                    : data instanceof BigInt64Array
                      ? "i8"
                      : "u8";
  return DTYPES[key]!;
}

/** Encodes a C-order array as a .npy file image (format 1.0, or 2.0 for huge headers). */
export function encodeNpy(shape: readonly number[], data: NpyData): Uint8Array {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`internal error: invalid npy shape [${shape.join(", ")}]`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`internal error: npy shape [${shape.join(", ")}] has ${count} elements, data has ${data.length}`);
  const info = dtypeOf(data);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${info.dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad with spaces so the data starts at a multiple of 64 bytes, ending the header with '\n'.
  const padded = (prefix: number) => dict + " ".repeat((ALIGN - ((prefix + dict.length + 1) % ALIGN)) % ALIGN) + "\n";
  const major = padded(10).length <= 0xffff ? 1 : 2;
  const prefix = major === 1 ? 10 : 12;
  const header = padded(prefix);
  const out = new Uint8Array(prefix + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  const start = prefix + header.length;
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), start);
  } else {
    const src = data as unknown as { [i: number]: number | bigint };
    for (let i = 0; i < data.length; i++) writeLE(view, start + i * info.size, info.dtype, src[i]!);
  }
  return out;
}

function writeLE(view: DataView, at: number, dtype: NpyDtype, v: number | bigint): void {
  switch (dtype) {
    case "<f4":
      return view.setFloat32(at, v as number, true);
    case "<f8":
      return view.setFloat64(at, v as number, true);
    case "|i1":
      return view.setInt8(at, v as number);
    case "|u1":
    case "|b1":
      return view.setUint8(at, v as number);
    case "<i2":
      return view.setInt16(at, v as number, true);
    case "<u2":
      return view.setUint16(at, v as number, true);
    case "<i4":
      return view.setInt32(at, v as number, true);
    case "<u4":
      return view.setUint32(at, v as number, true);
    case "<i8":
      return view.setBigInt64(at, v as bigint, true);
    case "<u8":
      return view.setBigUint64(at, v as bigint, true);
  }
}

/** Writes a C-order array to `file` atomically. */
export function writeNpy(file: string, shape: readonly number[], data: NpyData): void {
  writeFileAtomic(file, encodeNpy(shape, data));
}
