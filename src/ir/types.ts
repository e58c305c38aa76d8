// The imssa intermediate representation.
//
// One IR serves every phase, at three levels (`Model.level`):
//   "model"     – what a front end produces: s4d, linear, layernorm, ... (DSL / ONNX level)
//   "lowered"   – after src/passes/lower: every weight is a `matmul` on a block matrix, S4D
//                 layers are fused recurrences over explicit state, the rest are vector ops
//   "quantized" – lowered + every matmul carries a `quant` record (levels, scales, ranges)
// The float reference evaluator runs every level, which is how passes are checked.
//
// Data model: a program processes one sequence; per time step the `step` section maps the
// model inputs (1-D float vectors) to values (1-D vectors, named, SSA: each name defined
// once per section). The `final` section runs once after the last step and may read step
// values only through `meanpool` (mean over all steps). Persistent `state` vectors start at
// zero for every sequence.
//
// This file must stay in sync with ir/ir.schema.json (ajv validates every IR read or written).

export const IR_VERSION = 1;

/** Dense float tensor, row-major. `data.length === product(shape)`. */
export interface Tensor {
  shape: number[];
  data: number[];
}

/** A dense block placed inside a larger sparse matrix. Blocks of one matrix never overlap. */
export interface MatrixBlock {
  /** First matrix row (input index) covered by the block. */
  row: number;
  /** First matrix column (output index) covered by the block. */
  col: number;
  rows: number;
  cols: number;
  /** Row-major, rows*cols entries; zeros allowed. */
  data: number[];
}

/**
 * A matrix in crossbar orientation: rows = inputs, columns = outputs, y[j] = sum_i x[i] W[i][j].
 * Stored as disjoint dense blocks so that block-diagonal S4D matrices stay small; a dense
 * matrix is one block. Entries outside every block are zero.
 */
export interface BlockMatrix {
  rows: number;
  cols: number;
  blocks: MatrixBlock[];
}

/** Quantization request attached by the user (DSL annotation / CLI flag) to a weight op. */
export interface WeightQuantSpec {
  /**
   * Number of signed weight levels, odd: 3 = ternary {-1,0,1}, 2L+1 = {-L..L}.
   * Absent: use all levels the target's devices offer.
   */
  levels?: number;
}

/** Parameters chosen by src/passes/quantize and recorded in the IR ("quantized" level). */
export interface MatQuant {
  /**
   * Weights are integers q in [-maxLevel, maxLevel]; W[i][j] = q[i][j] * colScale[j].
   * 0 means float weights (float-numerics targets): weights exact, colScale all 1.
   */
  maxLevel: number;
  /** Per output column, length = matrix cols. */
  colScale: number[];
  /** DAC full scale per input row (inputs are clipped to [-inRange_i, inRange_i]); length = matrix rows. */
  inRange: number[];
  /** ADC full scale per output column, in output units; length = matrix cols. */
  outRange: number[];
  /** Where the ranges came from. */
  calibration: "inputs" | "default";
}

// ---------------------------------------------------------------------------------------
// Operations. Every op defines value `out` (except state_write) and names its operands.

interface OpBase {
  /** Result value name (unique within its section). */
  out: string;
  /** Source-level layer name for diagnostics and debug symbols, e.g. "layers.0.s4d". */
  layer?: string;
}

/** Timescale of an S4D layer: one entry per channel. */
export type Timescale = { kind: "log_dt"; value: Tensor } | { kind: "dt"; value: Tensor };

/**
 * Diagonal S4D layer (state-spaces conventions), H channels with M complex modes each:
 *   A = -exp(logAReal) + i*AImag, dt from `timescale`, B (default 1), C, D per channel.
 *   zoh:      dA = exp(dt A),  dB = B (exp(dt A) - 1) / A
 *   bilinear: dA = (1 + dt A/2) / (1 - dt A/2),  dB = B dt / (1 - dt A/2)
 *   x_k = dA x_{k-1} + dB u_k,   y_k = 2 Re(sum_n C_n x_k,n) + D u_k
 * `state` names a StateDecl of size 2*H*M holding [Re, Im] per (channel, mode), index
 * ((h*M + m)*2 + {0: re, 1: im}).
 */
export interface S4DOp extends OpBase {
  op: "s4d";
  x: string;
  state: string;
  channels: number; // H
  modes: number; // M = N/2
  discretization: "zoh" | "bilinear";
  timescale: Timescale; // [H]
  logAReal: Tensor; // [H, M]
  AImag: Tensor; // [H, M]
  /** Complex input matrix [H, M]; absent means B = 1. */
  B?: { re: Tensor; im: Tensor };
  C: { re: Tensor; im: Tensor }; // [H, M]
  D: Tensor; // [H]
  quant?: WeightQuantSpec;
}

/** y = W x + b with PyTorch orientation W: [outFeatures, inFeatures]. */
export interface LinearOp extends OpBase {
  op: "linear";
  x: string;
  weight: Tensor; // [out, in]
  bias?: Tensor; // [out]
  quant?: WeightQuantSpec;
}

/** Over the whole vector: (x - mean) / sqrt(var + eps) * gamma + beta (biased variance). */
export interface LayerNormOp extends OpBase {
  op: "layernorm";
  x: string;
  gamma: Tensor;
  beta: Tensor;
  eps: number;
}

/** gelu uses the exact erf form: 0.5 x (1 + erf(x / sqrt 2)). */
export type UnaryKind = "gelu" | "sigmoid" | "tanh" | "relu";
export interface UnaryOp extends OpBase {
  op: UnaryKind;
  x: string;
}

/** GLU over the vector: first half * sigmoid(second half); out has half the length. */
export interface GluOp extends OpBase {
  op: "glu";
  x: string;
}

/** Elementwise on equal-length vectors; `add` is also how residual connections appear. */
export interface BinaryOp extends OpBase {
  op: "add" | "mul";
  a: string;
  b: string;
}

/** Final section only: mean over all time steps of step-section value `x`. */
export interface MeanPoolOp extends OpBase {
  op: "meanpool";
  x: string;
}

// --- lowered-level ops -----------------------------------------------------------------

/**
 * y = concat(xs) @ W (+ bias): the only op that runs on crossbars. W is in crossbar
 * orientation (rows = inputs = total length of xs, cols = outputs).
 */
export interface MatMulOp extends OpBase {
  op: "matmul";
  xs: string[];
  weight: BlockMatrix;
  bias?: number[];
  /** Structure hint for the packer and for reports. */
  origin: "dense" | "s4d";
  /**
   * Origin "s4d" only, set by src/passes/scale-states.ts: per mode k, the power of two c_k by
   * which the state elements 2k, 2k+1 are scaled (x~ = c_k x). The weights already include it
   * (dB * c_k, C / c_k); it is recorded for reports and training code.
   */
  stateScale?: number[];
  /**
   * Origin "s4d" only, set by src/passes/residual.ts: the weight block rows [row, row + length)
   * x cols [col, col + length) holds dA - I instead of dA, and an `add` op adds the previous
   * state to the sliced next state digitally (x_k = x_{k-1} + (dA - I) x_{k-1} + dB u_k).
   */
  residual?: { row: number; col: number; length: number };
  quant?: MatQuant;
}

/** out = x[start : start+length]. */
export interface SliceOp extends OpBase {
  op: "slice";
  x: string;
  start: number;
  length: number;
}

export interface ConcatOp extends OpBase {
  op: "concat";
  xs: string[];
}

/** out = x * scale + shift elementwise (per-element constants, length of x). */
export interface AffineOp extends OpBase {
  op: "affine";
  x: string;
  scale: number[];
  shift: number[];
}

/** out = (x - mean(x)) / sqrt(var(x) + eps); LayerNorm without its affine part. */
export interface NormalizeOp extends OpBase {
  op: "normalize";
  x: string;
  eps: number;
}

/** out = the value of `state` at the start of this step (previous step's write). */
export interface StateReadOp extends OpBase {
  op: "state_read";
  state: string;
}

/** Sets `state` for the next step (and for `final`). Defines no value; `out` is ignored but must be unique. */
export interface StateWriteOp extends OpBase {
  op: "state_write";
  state: string;
  x: string;
}

/** Final section only: out = x / T where T is the number of steps in the sequence. */
export interface DivStepsOp extends OpBase {
  op: "div_steps";
  x: string;
}

export type ModelOp = S4DOp | LinearOp | LayerNormOp | UnaryOp | GluOp | BinaryOp | MeanPoolOp;
export type LoweredOp = MatMulOp | SliceOp | ConcatOp | AffineOp | NormalizeOp | StateReadOp | StateWriteOp | DivStepsOp | UnaryOp | GluOp | BinaryOp;
export type Op = ModelOp | LoweredOp;
export type OpKind = Op["op"];

// ---------------------------------------------------------------------------------------

export interface InputDecl {
  name: string;
  size: number;
}

export interface OutputDecl {
  name: string;
  /** Value name in `section` that is emitted. */
  value: string;
  section: "step" | "final";
}

export interface StateDecl {
  name: string;
  size: number;
}

export type IrLevel = "model" | "lowered" | "quantized";

export interface Model {
  irVersion: typeof IR_VERSION;
  name: string;
  level: IrLevel;
  /** Per-step inputs; each step reads one vector per input. */
  inputs: InputDecl[];
  outputs: OutputDecl[];
  state: StateDecl[];
  sections: { step: Op[]; final: Op[] };
  /**
   * Set by src/passes/unroll.ts: one step of this IR advances the source model `unroll` time
   * steps (inputs and step outputs are k consecutive time steps concatenated). Absent: 1.
   */
  unroll?: number;
  /** Free-form provenance: source file, parameter source, seed ... */
  meta?: Record<string, string | number | boolean>;
}
