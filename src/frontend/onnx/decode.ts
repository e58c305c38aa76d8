// Phase 1: bytes -> a plain, checked description of the ONNX model. Protobuf details (Long
// integers, raw_data vs typed fields, attribute encodings) end here; later phases see
// float64 constants, attribute maps and value infos with concrete or named dimensions.

import onnxProto from "onnx-proto";
import { UserError } from "../../common/errors.js";
import { checkElements, checkLimit, limits } from "../../common/limits.js";
import { constant, sizeOf, type ConstTensor, type DType } from "./tensor.js";

const { onnx } = onnxProto;
type Proto = typeof onnx;
type IModel = ReturnType<Proto["ModelProto"]["decode"]>;
type IGraph = NonNullable<IModel["graph"]>;
type ITensor = NonNullable<IGraph["initializer"]>[number];
type IValueInfo = NonNullable<IGraph["input"]>[number];
type INode = NonNullable<IGraph["node"]>[number];
type IAttr = NonNullable<INode["attribute"]>[number];

/** Opsets of the default domain whose semantics the op table implements. */
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;
/** IR versions 3 (opset imports) to 10 (ONNX 1.16); later fields are ignored by the decoder. */
const MIN_IR = 3;
const MAX_IR = 10;
/** Standard ONNX domains a model may import without using them. */
const KNOWN_DOMAINS = new Set(["", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"]);

export type Attr =
  | { kind: "float"; value: number }
  | { kind: "int"; value: number }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: ConstTensor }
  | { kind: "graph"; value: OnnxGraph }
  | { kind: "floats"; value: number[] }
  | { kind: "ints"; value: number[] }
  | { kind: "strings"; value: string[] }
  | { kind: "other"; type: string };

export interface OnnxNode {
  /** Position in its graph (messages count from 0, like Netron). */
  index: number;
  name: string;
  opType: string;
  domain: string;
  /** "" marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Map<string, Attr>;
}

/** A dimension: a number, a symbolic name, or null when the file says nothing. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType | undefined;
  /** null: rank unknown. */
  dims: Dim[] | null;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: Map<string, ConstTensor>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  /** Version of the default ("" / ai.onnx) domain. */
  opset: number;
  producer: string;
  /** metadata_props (exporters record conventions here, e.g. imssa.readout). */
  metadata: Map<string, string>;
  graph: OnnxGraph;
}

const num = (v: number | { toNumber(): number } | null | undefined): number => (v == null ? 0 : typeof v === "number" ? v : v.toNumber());

/** ONNX TensorProto.DataType codes this front end reads. */
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13 } as const;
const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(onnx.TensorProto.DataType).map(([k, v]) => [v as number, k.toLowerCase()]));

export function typeName(code: number): string {
  return TYPE_NAMES[code] ?? `type ${code}`;
}

export function dtypeOf(code: number): DType | undefined {
  switch (code) {
    case DT.FLOAT:
    case DT.DOUBLE:
    case DT.FLOAT16:
      return "float";
    case DT.BOOL:
      return "bool";
    case DT.UINT8:
    case DT.INT8:
    case DT.UINT16:
    case DT.INT16:
    case DT.INT32:
    case DT.INT64:
    case DT.UINT32:
    case DT.UINT64:
      return "int";
    default:
      return undefined;
  }
}

/** Integer range of a quantized type (QuantizeLinear saturates to it). */
export function intRange(code: number): [number, number] | undefined {
  switch (code) {
    case DT.UINT8:
      return [0, 255];
    case DT.INT8:
      return [-128, 127];
    case DT.UINT16:
      return [0, 65535];
    case DT.INT16:
      return [-32768, 32767];
    case DT.INT32:
      return [-2147483648, 2147483647];
    default:
      return undefined;
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

class Decoder {
  /** Graph attributes (Scan/Loop/If bodies) nest graphs; bounded so a crafted file cannot overflow the stack. */
  private depth = 0;
  constructor(private readonly file: string) {}

  fail(message: string, path?: string): never {
    throw new UserError("format", message, path === undefined ? { file: this.file } : { file: this.file, path });
  }

  unsupported(message: string, path?: string): never {
    throw new UserError("unsupported", message, path === undefined ? { file: this.file } : { file: this.file, path });
  }

  /** A TensorProto as a float64 constant; `where` locates it in messages. */
  tensor(t: ITensor, where: string): ConstTensor & { onnxType: number } {
    const code = t.dataType ?? 0;
    const dtype = dtypeOf(code);
    if (dtype === undefined) this.unsupported(`${where} has element type ${typeName(code)}; supported: float, double, float16, bool and integer types`, where);
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      this.unsupported(`${where} keeps its data in an external file; save the model with all tensors inside the .onnx file`, where);
    }
    const dims = (t.dims ?? []).map(num);
    if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) this.fail(`${where} has invalid dimensions [${dims.join(", ")}]`, where);
    checkElements(dims, where, { file: this.file, path: where });
    const n = sizeOf(dims);
    const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
    let data: Float64Array;
    if (raw) {
      const width = { [DT.FLOAT]: 4, [DT.DOUBLE]: 8, [DT.FLOAT16]: 2, [DT.INT64]: 8, [DT.UINT64]: 8, [DT.INT32]: 4, [DT.UINT32]: 4, [DT.INT16]: 2, [DT.UINT16]: 2, [DT.INT8]: 1, [DT.UINT8]: 1, [DT.BOOL]: 1 }[code]!;
      if (raw.length !== n * width) {
        this.fail(`raw_data has ${raw.length} bytes, but shape [${dims.join(", ")}] of ${typeName(code)} needs ${n * width}`, where);
      }
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      data = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const o = i * width;
        switch (code) {
          case DT.FLOAT:
            data[i] = view.getFloat32(o, true);
            break;
          case DT.DOUBLE:
            data[i] = view.getFloat64(o, true);
            break;
          case DT.FLOAT16:
            data[i] = halfToFloat(view.getUint16(o, true));
            break;
          case DT.INT64:
            data[i] = Number(view.getBigInt64(o, true));
            break;
          case DT.UINT64:
            data[i] = Number(view.getBigUint64(o, true));
            break;
          case DT.INT32:
            data[i] = view.getInt32(o, true);
            break;
          case DT.UINT32:
            data[i] = view.getUint32(o, true);
            break;
          case DT.INT16:
            data[i] = view.getInt16(o, true);
            break;
          case DT.UINT16:
            data[i] = view.getUint16(o, true);
            break;
          case DT.INT8:
            data[i] = view.getInt8(o);
            break;
          default: // UINT8, BOOL
            data[i] = view.getUint8(o);
        }
      }
    } else {
      // Typed fields: float32 in float_data, float16/bool/small ints in int32_data (float16
      // as raw bits), int64 in int64_data, double in double_data, uint32/uint64 in uint64_data.
      let values: number[];
      switch (code) {
        case DT.FLOAT:
          values = t.floatData ?? [];
          break;
        case DT.DOUBLE:
          values = t.doubleData ?? [];
          break;
        case DT.INT64:
          values = (t.int64Data ?? []).map(num);
          break;
        case DT.UINT32:
        case DT.UINT64:
          values = (t.uint64Data ?? []).map(num);
          break;
        case DT.FLOAT16:
          values = (t.int32Data ?? []).map(halfToFloat);
          break;
        default:
          values = t.int32Data ?? [];
      }
      if (values.length !== n) {
        this.fail(`the tensor has ${values.length} values, but its shape [${dims.join(", ")}] needs ${n}`, where);
      }
      data = Float64Array.from(values);
    }
    if (dtype === "bool") for (let i = 0; i < n; i++) data[i] = data[i] !== 0 ? 1 : 0;
    return Object.assign(constant(dtype, dims, data), { onnxType: code });
  }

  valueInfo(v: IValueInfo, where: string): ValueInfo {
    const name = v.name ?? "";
    if (!name) this.fail(`${where} has no name`, where);
    const tt = v.type?.tensorType;
    if (v.type && !tt) this.unsupported(`${where} "${name}" is not a tensor (sequence, map and optional values are not supported)`, where);
    const dtype = tt?.elemType ? dtypeOf(tt.elemType) : undefined;
    // Unset and zero dim_value decode alike; a zero-sized input would be useless here, so both mean "unknown".
    const dims: Dim[] | null = tt?.shape ? (tt.shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : num(d.dimValue) > 0 ? num(d.dimValue) : null)) : null;
    return { name, dtype, dims };
  }

  attr(a: IAttr, where: string): Attr {
    const T = onnx.AttributeProto.AttributeType;
    const type = a.type ?? T.UNDEFINED;
    switch (type) {
      case T.FLOAT:
        return { kind: "float", value: a.f ?? 0 };
      case T.INT:
        return { kind: "int", value: num(a.i) };
      case T.STRING:
        return { kind: "string", value: Buffer.from(a.s ?? new Uint8Array()).toString("utf8") };
      case T.TENSOR:
        if (!a.t) this.fail(`${where}: tensor attribute "${a.name}" has no tensor`, where);
        return { kind: "tensor", value: this.tensor(a.t, `${where} attribute "${a.name}"`) };
      case T.GRAPH:
        if (!a.g) this.fail(`${where}: graph attribute "${a.name}" has no graph`, where);
        return { kind: "graph", value: this.graph(a.g, `${where} attribute "${a.name}"`) };
      case T.FLOATS:
        return { kind: "floats", value: a.floats ?? [] };
      case T.INTS:
        return { kind: "ints", value: (a.ints ?? []).map(num) };
      case T.STRINGS:
        return { kind: "strings", value: (a.strings ?? []).map((s) => Buffer.from(s).toString("utf8")) };
      default:
        return { kind: "other", type: T[type] ?? String(type) };
    }
  }

  graph(g: IGraph, where: string): OnnxGraph {
    if (this.depth >= limits().maxNesting) this.fail(`${where}: subgraphs nest deeper than ${limits().maxNesting} levels`, where);
    this.depth++;
    try {
      return this.graphBody(g, where);
    } finally {
      this.depth--;
    }
  }

  private graphBody(g: IGraph, where: string): OnnxGraph {
    checkLimit("maxLayers", (g.node ?? []).length, `${where}: the number of nodes`, { file: this.file, path: where });
    const initializers = new Map<string, ConstTensor>();
    (g.initializer ?? []).forEach((t, i) => {
      const name = t.name ?? "";
      const at = `${where} initializer ${i}${name ? ` "${name}"` : ""}`;
      if (!name) this.fail(`${at} has no name`, at);
      if (initializers.has(name)) this.fail(`${at}: another initializer already has this name`, at);
      initializers.set(name, this.tensor(t, at));
    });
    if ((g.sparseInitializer ?? []).length > 0) this.unsupported(`${where} has sparse initializers, which are not supported`);
    const nodes: OnnxNode[] = (g.node ?? []).map((n, index) => {
      const name = n.name ?? "";
      const at = `${where} node ${index}${name ? ` "${name}"` : ""} (${n.opType ?? "?"})`;
      if (!n.opType) this.fail(`${where} node ${index} has no op type`, at);
      const attrs = new Map<string, Attr>();
      for (const a of n.attribute ?? []) {
        if (a.refAttrName) this.unsupported(`${at}: attribute "${a.name}" refers to a function attribute, which is not supported`, at);
        attrs.set(a.name ?? "", this.attr(a, at));
      }
      return { index, name, opType: n.opType, domain: n.domain ?? "", inputs: n.input ?? [], outputs: n.output ?? [], attrs };
    });
    // Old exporters (IR < 4) also list initializers as graph inputs; those are constants.
    const inputs = (g.input ?? []).map((v, i) => this.valueInfo(v, `${where} input ${i}`)).filter((v) => !initializers.has(v.name));
    const outputs = (g.output ?? []).map((v, i) => this.valueInfo(v, `${where} output ${i}`));
    return { name: g.name ?? "", nodes, initializers, inputs, outputs };
  }
}

/** Decodes and checks the container level of an ONNX model (`file` names it in messages). */
export function decodeOnnx(bytes: Uint8Array, file: string): OnnxModel {
  const dec: Decoder = new Decoder(file);
  let proto: IModel;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const truncated = /index out of range/.test(why);
    dec.fail(
      truncated
        ? `not a complete ONNX model: the protobuf data ends early (${why}); the file is truncated or corrupt`
        : `not an ONNX model: the file is not valid protobuf (${why})`,
    );
  }
  if (!proto.graph) dec.fail(`not an ONNX model: no graph found (${bytes.length} bytes decoded as protobuf without a ModelProto graph)`);
  const irVersion = num(proto.irVersion);
  if (irVersion < MIN_IR || irVersion > MAX_IR) {
    dec.unsupported(`ONNX IR version ${irVersion} is not supported (supported: ${MIN_IR} to ${MAX_IR})`);
  }
  let opset: number | undefined;
  for (const imp of proto.opsetImport ?? []) {
    const domain = imp.domain ?? "";
    const version = num(imp.version);
    if (!KNOWN_DOMAINS.has(domain)) {
      dec.unsupported(`the model imports operator set domain "${domain}" (version ${version}); only the standard ONNX domain ("" / ai.onnx) is supported`);
    }
    if (domain === "" || domain === "ai.onnx") opset = version;
  }
  if (opset === undefined) dec.fail(`the model imports no version of the default ONNX operator set (opset_import has no "" domain)`);
  if (opset < MIN_OPSET || opset > MAX_OPSET) {
    dec.unsupported(`default-domain opset ${opset} is not supported (supported: ${MIN_OPSET} to ${MAX_OPSET}); re-export with opset_version between ${MIN_OPSET} and ${MAX_OPSET}`);
  }
  const graph = dec.graph(proto.graph, "graph");
  const metadata = new Map((proto.metadataProps ?? []).map((p) => [p.key ?? "", p.value ?? ""]));
  return { irVersion, opset, producer: [proto.producerName, proto.producerVersion].filter(Boolean).join(" "), metadata, graph };
}
