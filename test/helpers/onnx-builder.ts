// Building ONNX models in tests with onnx-proto: graphs, initializers, nodes with typed
// attributes, Scan bodies. Encodes to the bytes the front end and onnxruntime read.

import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
export const DT = onnx.TensorProto.DataType;
type IGraph = Parameters<typeof onnx.GraphProto.create>[0];
type ITensor = NonNullable<Parameters<typeof onnx.TensorProto.create>[0]>;

export type AttrValue =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] }
  | { t: ITensor }
  | { g: IGraph };

export type Dim = number | string;

function attribute(name: string, v: AttrValue) {
  const T = onnx.AttributeProto.AttributeType;
  if ("i" in v) return { name, type: T.INT, i: v.i };
  if ("f" in v) return { name, type: T.FLOAT, f: v.f };
  if ("s" in v) return { name, type: T.STRING, s: Buffer.from(v.s) };
  if ("ints" in v) return { name, type: T.INTS, ints: v.ints };
  if ("floats" in v) return { name, type: T.FLOATS, floats: v.floats };
  if ("t" in v) return { name, type: T.TENSOR, t: v.t };
  return { name, type: T.GRAPH, g: v.g };
}

/** A TensorProto; float data goes to raw_data (little-endian) unless `typed` is set. */
export function tensor(name: string, dims: number[], values: ArrayLike<number>, type: number = DT.FLOAT, typed = false): ITensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`tensor ${name}: ${values.length} values for [${dims}]`);
  if (typed) {
    const arr = Array.from(values);
    if (type === DT.FLOAT) return { name, dims, dataType: type, floatData: arr };
    if (type === DT.DOUBLE) return { name, dims, dataType: type, doubleData: arr };
    if (type === DT.INT64) return { name, dims, dataType: type, int64Data: arr };
    return { name, dims, dataType: type, int32Data: arr };
  }
  let raw: Uint8Array;
  switch (type) {
    case DT.FLOAT:
      raw = new Uint8Array(Float32Array.from(values).buffer);
      break;
    case DT.DOUBLE:
      raw = new Uint8Array(Float64Array.from(values).buffer);
      break;
    case DT.INT64:
      raw = new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
      break;
    case DT.INT32:
      raw = new Uint8Array(Int32Array.from(values).buffer);
      break;
    case DT.INT8:
      raw = new Uint8Array(Int8Array.from(values).buffer);
      break;
    case DT.UINT8:
    case DT.BOOL:
      raw = Uint8Array.from(values);
      break;
    default:
      throw new Error(`tensor ${name}: unsupported type ${type}`);
  }
  return { name, dims, dataType: type, rawData: raw };
}

function valueInfo(name: string, shape: Dim[] | undefined, elemType: number) {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        ...(shape ? { shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } : {}),
      },
    },
  };
}

export class GraphBuilder {
  private readonly nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  private readonly inits: ITensor[] = [];
  private readonly inputs: ReturnType<typeof valueInfo>[] = [];
  private readonly outputs: ReturnType<typeof valueInfo>[] = [];
  private counter = 0;

  constructor(
    readonly opset = 13,
    readonly name = "g",
  ) {}

  fresh(base: string): string {
    return `${base}_${this.counter++}`;
  }

  input(name: string, shape: Dim[] | undefined, elemType: number = DT.FLOAT): string {
    this.inputs.push(valueInfo(name, shape, elemType));
    return name;
  }

  output(name: string, shape?: Dim[], elemType: number = DT.FLOAT): string {
    this.outputs.push(valueInfo(name, shape, elemType));
    return name;
  }

  /** An initializer; returns its name. */
  init(name: string, dims: number[], values: ArrayLike<number>, type: number = DT.FLOAT, typed = false): string {
    this.inits.push(tensor(name, dims, values, type, typed));
    return name;
  }

  initTensor(t: ITensor): void {
    this.inits.push(t);
  }

  ints(values: number[]): string {
    return this.init(this.fresh("ints"), [values.length], values, DT.INT64);
  }

  /** Adds a node; returns its output names (`outputs` = count or names). */
  node(opType: string, inputs: string[], outputs: number | string[] = 1, attrs: Record<string, AttrValue> = {}, name?: string): string[] {
    const outs = typeof outputs === "number" ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs;
    this.nodes.push(
      onnx.NodeProto.create({
        opType,
        input: inputs,
        output: outs,
        name: name ?? this.fresh(opType),
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outs;
  }

  /** One-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, 1, attrs, name)[0]!;
  }

  graph(): IGraph {
    return { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs };
  }

  model(extra: { irVersion?: number; opsetImports?: Array<{ domain: string; version: number }>; metadata?: Record<string, string> } = {}): Uint8Array {
    const m = onnx.ModelProto.create({
      irVersion: extra.irVersion ?? 8,
      producerName: "imssa-test",
      opsetImport: extra.opsetImports ?? [{ domain: "", version: this.opset }],
      graph: this.graph(),
      metadataProps: Object.entries(extra.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    return onnx.ModelProto.encode(m).finish();
  }
}
