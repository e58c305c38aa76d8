// The QAT configuration (`imssa-compile --emit qat-config`): everything a training framework
// needs to reproduce, number for number, what the compiled program does to a model's
// weights and signals on the target. Mirrors ir/qat.schema.json; docs/QAT.md explains the
// fields and python/imssa_qat applies them to a PyTorch model.
//
// Units and conventions (the same as the quantized IR, src/ir/types.ts MatQuant):
//   - matrices are in crossbar orientation: rows = inputs, columns = outputs;
//   - weights W[i][j] = q[i][j] * colScale[j] with integer levels |q| <= maxLevel;
//   - inRange / outRange / piece ranges are full scales in signal units;
//   - every number is written in JavaScript's shortest round-trip form, so a float64 reader
//     gets the compiler's values bit for bit (float32 crossbar-image values are written as
//     the float64 of the float32).

import type { InputDecl, OutputDecl, StateDecl } from "../ir/types.js";
import type { NoiseSpec, Numerics } from "../target/types.js";

export const QAT_FORMAT = "imssa-qat";
export const QAT_VERSION = 1;
/** Identifies the fused S4D matrix layout of src/passes/lower-s4d.ts; bump when it changes. */
export const S4D_LAYOUT = "imssa.s4d-fused.v1";

export interface QatConfig {
  format: typeof QAT_FORMAT;
  version: typeof QAT_VERSION;
  compilerVersion: string;
  model: QatModelInfo;
  target: QatTargetInfo;
  numerics: QatNumerics;
  calibration: QatCalibration;
  weightPolicy: QatWeightPolicy;
  /** Every crossbar matmul, in program order (step section, then final). */
  matmuls: QatMatmul[];
  /** The lowered program with weights replaced by references to `matmuls` (what runs per step / once). */
  graph: { step: QatOp[]; final: QatOp[] };
}

export interface QatModelInfo {
  name: string;
  /** The model file compiled (as given on the command line). */
  source: string;
  /** Where the parameters came from (the IR's meta.params, e.g. `from "w.safetensors"`), if known. */
  params?: string;
  inputs: InputDecl[];
  outputs: OutputDecl[];
  state: StateDecl[];
}

export interface QatTargetInfo {
  name: string;
  description: string;
  /** sha256 of the target's canonical JSON (as recorded in programs). */
  sha256: string;
  crossbar: { rows: number; cols: number; gMinUs: number; gMaxUs: number };
  numerics: Numerics;
  /** The target's noise blocks exactly as in its file (absent blocks are off). */
  noise: NoiseSpec;
}

export interface QatNumerics {
  kind: "quantized" | "float";
  /** Device level limit L = deviceLevels - 1 (differential pairs), null on float targets. */
  deviceMaxLevel: number | null;
  /** Signed DAC codes -maxCode..maxCode, maxCode = 2^(bits-1) - 1; null on float targets. */
  dac: { bits: number; maxCode: number } | null;
  adc: { bits: number; maxCode: number } | null;
  rounding: {
    /** DAC and ADC codes: round half away from zero (src/interp/crossbar.ts roundHalfAway). */
    signals: "half-away-from-zero";
    /** Weight levels at compile time: JavaScript Math.round, ties toward +infinity. */
    weights: "half-up";
  };
  /** The vector unit / memory precision; every stored value is rounded to it. */
  digitalPrecision: "float32" | "float64";
  /** The formulas, in words (the authoritative ones are src/backend/program.ts and docs/QAT.md). */
  formulas: Record<string, string>;
}

export interface QatCalibration {
  source: "inputs" | "default";
  /** Per matmul: max |x| over every input row (one DAC range); per column: max |x @ W| (pre-bias). */
  statistic: "absmax";
  /** Ranges are statistic * margin. */
  margin: number;
  /** Range of a signal that never moved during calibration. */
  unobservedRange: number;
  /** The --calibrate file: path as given, sha256 of its bytes, shape [B, T, d_in]. */
  file?: { path: string; sha256: string; shape: number[] };
  /** The compiler's default data set (calibration.source = "default"). */
  default?: { sequences: number; steps: number; distribution: string; seed: number };
}

export interface QatWeightPolicy {
  /** Per column: colScale = max_i |W[i][j]| / maxLevel unless an exact-grid candidate reproduces the column. */
  scale: "max-abs";
  /** Candidate scales tried in order; the first that reproduces every entry of the column exactly wins. */
  exactGridCandidates: string[];
  /** The S4D stability repair (src/passes/quant-s4d.ts), in words. */
  s4dRepair: string;
}

/** Parameter names (state-spaces/s4 state_dict names) a matmul is built from. */
export type QatParams =
  | {
      kind: "dense";
      /** Tensor name of W, PyTorch orientation [out, in] (or [out, in, 1] for a 1x1 Conv1d). */
      weight: string;
      weightShape: number[];
      bias?: string;
    }
  | {
      kind: "s4d";
      logDt: string;
      logAReal: string;
      AImag: string;
      /** [H, M, 2] (view_as_real). */
      C: string;
      B?: string;
      D: string;
      /** The IR's timescale kind: log_dt (dt = exp(value)) or dt. */
      timescale: "log_dt" | "dt";
    };

export interface QatS4DInfo {
  /** H */
  channels: number;
  /** M = N/2 complex modes per channel */
  modes: number;
  discretization: "zoh" | "bilinear" | null;
  /** 2 * H * M: rows/cols [0, stateLength) are the state, then H rows u / H cols y. */
  stateLength: number;
  layout: typeof S4D_LAYOUT;
  /** The layout and the entries in words. */
  entries: Record<string, string>;
  /**
   * Per mode k = h*M + m: the state scale c_k (a power of two) chosen by src/passes/scale-states.ts,
   * already applied to the compiled entries: dB entries times c_k, C entries divided by c_k
   * (products in float64, exact). All 1 when the state is not scaled.
   */
  stateScale: number[];
  /**
   * Present ("residual") when the matmul is in the residual recurrence form (src/passes/residual.ts):
   * W[2k][2k] and W[2k+1][2k+1] hold Re dA - 1, and the graph's `add` op after the state slice
   * adds the previous state back (x_k = x_{k-1} + [x_{k-1}; u_k] @ W[:, :S]); the stability rule
   * checks I + q(dA - I). Absent: the direct form (the block holds dA).
   */
  recurrence?: "residual";
  /** Modes checked by the stability rule and those already unstable in float (left as rounded). */
  modesChecked: number;
  unstableInFloat: number;
  /**
   * Modes whose rounded 2x2 block was repaired, levels in entry order
   * [re->re, re->im, im->re, im->im] = W[2k][2k], W[2k][2k+1], W[2k+1][2k], W[2k+1][2k+1], k = h*M + m.
   */
  repairs: { mode: number; roundedLevels: number[]; levels: number[] }[];
}

export interface QatPiece {
  crossbar: number;
  tile: number;
  /** Placement on the crossbar: cell (rowStart + a, colStart + b) holds W[rows[a]][cols[b]]. */
  rowStart: number;
  colStart: number;
  rows: number[];
  cols: number[];
  /** The crossbar image's DAC full scale of these rows (float32). */
  dacRange: number;
  /** The image's per-column scale = float32(colScale[j] * inRange): levels -> output units incl. the DAC range. */
  colScale: number[];
  /** The image's ADC full scale per column (float32): calibrated outRange[j], or dacRange * sum_i |W[i][j]| over rows for a partial column. */
  outRange: number[];
  /** Per column: true when the column has nonzero weights outside this piece (its sum here is a partial sum). */
  partial: boolean[];
  /** Position of this piece in its tile's accumulation sequence for the matmul (0 = first). */
  order: number;
  /** How this piece's ADC output is added to the sums before it: f32 = the output is stored (rounded) first, f64 = added unrounded, then rounded. */
  accumulate: "f32" | "f64";
}

export interface QatMatmul {
  /** The matmul's value name (IR `out`). */
  name: string;
  section: "step" | "final";
  layer?: string;
  origin: "dense" | "s4d";
  /** The operands, concatenated into the matmul's input rows. */
  xs: { value: string; size: number }[];
  rows: number;
  cols: number;
  hasBias: boolean;
  /** Where the weights come from, when the model's parameters have state-spaces names. */
  params?: QatParams;
  /** Level limit of this matmul (0 = float weights). */
  maxLevel: number;
  /** Signed levels the model asked for (quant annotation), if any. */
  requestedLevels?: number;
  colScale: number[];
  /** The calibrated DAC full scale, shared by every row (float64, as in the quantized IR). */
  inRange: number;
  /** The calibrated ADC full scale per column (float64, pre-bias). */
  outRange: number[];
  /** Number of nonzero levels and the sha256 of their (row, col, level) triples as int32 little-endian, row-major order. */
  nonzeros: number;
  levelsSha256: string;
  s4d?: QatS4DInfo;
  /** The tile that sums the partial sums and adds the bias. */
  homeTile: number;
  pieces: QatPiece[];
}

/** One lowered op; matmul weights are referenced by index into QatConfig.matmuls. */
export interface QatOp {
  op: string;
  out: string;
  layer?: string;
  x?: string;
  xs?: string[];
  a?: string;
  b?: string;
  start?: number;
  length?: number;
  eps?: number;
  state?: string;
  matmul?: number;
  /** affine: per-element scale and shift as compiled, and their parameter names when known. */
  scale?: number[];
  shift?: number[];
  params?: { scale: string; shift: string };
}
