// Reader and writer for the safetensors format (huggingface/safetensors):
//   8 bytes  little-endian u64 N = header length
//   N bytes  UTF-8 JSON: { "__metadata__"?: {str: str}, name: {dtype, shape, data_offsets: [begin, end]} }
//   rest     the byte buffer; offsets are relative to its start, data little-endian, row-major.
// The reader trusts nothing in the file: every offset, shape and size is checked before any
// byte is read, and every complaint names the file and the tensor, because a checkpoint from
// elsewhere is the most likely thing a user gets wrong.

import { UserError } from "../common/errors.js";
import { readBytes, writeFileAtomic } from "../common/files.js";
import { checkElements } from "../common/limits.js";

export interface SafeTensor {
  dtype: string;
  shape: number[];
  /** Values widened to float64 (I64 beyond 2^53 loses precision). */
  data: Float64Array;
}

export interface SafetensorsContent {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Bytes per element of each dtype we can read. */
export const DTYPE_SIZES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
};

/** Dtypes `encodeSafetensors` can write. */
export type WritableDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32";

export interface TensorToWrite {
  dtype: WritableDtype;
  shape: number[];
  data: ArrayLike<number>;
}

// The reference implementation refuses headers above 100 MB; so do we, before allocating.
const MAX_HEADER_BYTES = 100_000_000;

function formatError(file: string, message: string, tensor?: string): UserError {
  return new UserError("format", `${tensor !== undefined ? `tensor "${tensor}": ` : ""}${message}`, { file });
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Parses a whole safetensors file held in memory. `file` is only used in messages. */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsContent {
  if (bytes.length < 8) throw formatError(file, `not a safetensors file: ${bytes.length} bytes, but the 8-byte header length alone needs 8`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) {
    throw formatError(file, `header length ${headerLen} exceeds the ${bytes.length - 8} bytes that follow it (truncated or not a safetensors file)`);
  }
  const n = Number(headerLen);
  if (n > MAX_HEADER_BYTES) throw formatError(file, `header length ${n} is above the ${MAX_HEADER_BYTES}-byte limit`);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
    header = JSON.parse(text);
  } catch (e) {
    throw formatError(file, `header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw formatError(file, "header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}");
  }

  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw formatError(file, `"__metadata__" must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw formatError(file, `"__metadata__" value "${k}" must be a string, found ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw formatError(file, "entry must be an object {dtype, shape, data_offsets}", name);
    }
    const entry = raw as Record<string, unknown>;
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string") throw formatError(file, `missing or non-string "dtype"`, name);
    const size = DTYPE_SIZES[dtype];
    if (size === undefined) throw formatError(file, `unsupported dtype ${dtype} (supported: ${Object.keys(DTYPE_SIZES).join(", ")})`, name);
    if (!Array.isArray(shape) || !shape.every(isCount)) throw formatError(file, `"shape" must be an array of non-negative integers, found ${JSON.stringify(shape)}`, name);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      throw formatError(file, `"data_offsets" must be [begin, end] with non-negative integers, found ${JSON.stringify(offsets)}`, name);
    }
    const [begin, end] = offsets as [number, number];
    checkElements(shape as number[], `tensor "${name}"`, { file });
    if (begin > end) throw formatError(file, `data_offsets [${begin}, ${end}] has begin after end`, name);
    if (end > dataLen) throw formatError(file, `data_offsets [${begin}, ${end}] reach past the end of the ${dataLen}-byte data buffer`, name);
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (count * size !== end - begin) {
      throw formatError(
        file,
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but shape [${(shape as number[]).join(", ")}] of ${dtype} needs ${count} x ${size} = ${count * size}`,
        name,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }

  const byStart = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!;
    const cur = byStart[i]!;
    if (cur.begin < prev.end) {
      throw formatError(file, `data_offsets [${cur.begin}, ${cur.end}] overlap those of "${prev.name}" [${prev.begin}, ${prev.end}]`, cur.name);
    }
  }

  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const data = decodeElements(view, dataStart + e.begin, e.dtype, (e.end - e.begin) / DTYPE_SIZES[e.dtype]!);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

function decodeElements(view: DataView, at: number, dtype: string, count: number): Float64Array {
  const out = new Float64Array(count);
  // DataView reads are alignment-free; offsets in real files need not be aligned.
  switch (dtype) {
    case "F64":
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(at + 8 * i, true);
      break;
    case "F32":
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(at + 4 * i, true);
      break;
    case "F16":
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(at + 2 * i, true));
      break;
    case "BF16": {
      const scratch = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) {
        scratch.setUint32(0, view.getUint16(at + 2 * i, true) << 16);
        out[i] = scratch.getFloat32(0);
      }
      break;
    }
    case "I64":
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(at + 8 * i, true));
      break;
    case "I32":
      for (let i = 0; i < count; i++) out[i] = view.getInt32(at + 4 * i, true);
      break;
    case "I16":
      for (let i = 0; i < count; i++) out[i] = view.getInt16(at + 2 * i, true);
      break;
    case "I8":
      for (let i = 0; i < count; i++) out[i] = view.getInt8(at + i);
      break;
    case "U8":
      for (let i = 0; i < count; i++) out[i] = view.getUint8(at + i);
      break;
  }
  return out;
}

/** IEEE 754 binary16 bits to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A number to binary16 bits, round to nearest even (via float32, as PyTorch's .half() on a float tensor). */
export function floatToHalf(x: number): number {
  const scratch = new DataView(new ArrayBuffer(4));
  scratch.setFloat32(0, x);
  const bits = scratch.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa into place and round.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function floatToBf16(x: number): number {
  const scratch = new DataView(new ArrayBuffer(4));
  scratch.setFloat32(0, x);
  const bits = scratch.getUint32(0);
  if (Number.isNaN(x)) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Serialises tensors (in iteration order) and optional string metadata. */
export function encodeSafetensors(
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`internal error: tensor ${name} has ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    const bytes = count * DTYPE_SIZES[t.dtype]!;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
  const jsonBytesLen = new TextEncoder().encode(json).length;
  json += " ".repeat((8 - (jsonBytesLen % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const [, t] of list) {
    const n = t.data.length;
    for (let i = 0; i < n; i++) {
      const v = t.data[i]!;
      switch (t.dtype) {
        case "F64":
          view.setFloat64(at, v, true);
          at += 8;
          break;
        case "F32":
          view.setFloat32(at, v, true);
          at += 4;
          break;
        case "F16":
          view.setUint16(at, floatToHalf(v), true);
          at += 2;
          break;
        case "BF16":
          view.setUint16(at, floatToBf16(v), true);
          at += 2;
          break;
        case "I64":
          view.setBigInt64(at, BigInt(Math.trunc(v)), true);
          at += 8;
          break;
        case "I32":
          view.setInt32(at, v, true);
          at += 4;
          break;
      }
    }
  }
  return out;
}

/** Reads and validates a safetensors file: tensors by name, values as float64. */
export function readSafetensors(file: string): Map<string, SafeTensor> {
  return decodeSafetensors(readBytes(file), file).tensors;
}

/** Like readSafetensors, plus the file's `__metadata__`. */
export function readSafetensorsContent(file: string): SafetensorsContent {
  return decodeSafetensors(readBytes(file), file);
}

export function writeSafetensors(
  file: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
