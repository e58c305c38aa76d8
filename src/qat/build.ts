// Builds the QAT configuration from a compile result: the compiled numbers (per-column
// scales, calibrated ranges, crossbar pieces with the image values the chip uses, S4D
// stability repairs) plus the rules that produced them, so training code can apply exactly
// what the chip will do. Nothing here decides anything: every value is read from the
// quantized IR, the crossbar plan and the emitted program.

import { readBytes } from "../common/files.js";
import { sha256Hex } from "../common/json.js";
import { parseNpy } from "../common/npy.js";
import { assert, fail } from "../common/errors.js";
import { matmulHome, type PlacedPiece } from "../backend/schedule.js";
import type { CrossbarImage, Program } from "../backend/program.js";
import { valueSizes } from "../ir/sizes.js";
import type { MatMulOp, Model, Op } from "../ir/types.js";
import { DEFAULT_SEED, DEFAULT_SEQUENCES, DEFAULT_STEPS, type Section } from "../passes/calibrate.js";
import { requestedLevels } from "../passes/quant-request.js";
import { stabilizeS4DModes } from "../passes/quant-s4d.js";
import { quantizeMatrix } from "../passes/quant-weights.js";
import { SLICES_META } from "../passes/slice-weights.js";
import { RANGE_MARGIN } from "../passes/quantize.js";
import type { CompileResult } from "../pipeline.js";
import { maxWeightLevel, type Target } from "../target/types.js";
import {
  QAT_FORMAT,
  QAT_VERSION,
  S4D_LAYOUT,
  type QatCalibration,
  type QatConfig,
  type QatMatmul,
  type QatNumerics,
  type QatOp,
  type QatParams,
  type QatPiece,
  type QatS4DInfo,
} from "./types.js";

export interface QatBuildOptions {
  /** The model file as given on the command line. */
  source: string;
  /** The --calibrate file, if the ranges were calibrated on user data. */
  calibrationFile?: string | null;
  compilerVersion: string;
}

const SECTIONS: readonly Section[] = ["step", "final"];

export function buildQatConfig(result: CompileResult, target: Target, opts: QatBuildOptions): QatConfig {
  const { quantized, lowered, plan, program } = result;
  // QAT trains one level grid per matmul; sliced weights (src/passes/slice-weights.ts) have several.
  if (quantized.meta?.[SLICES_META] !== undefined)
    fail("unsupported", `the QAT configuration describes one weight grid per matmul, but this program stores weights on ${quantized.meta[SLICES_META]} slices; compile with weightSlices 1`, { file: quantized.name });
  const modelOps = modelLevelOps(result.model);
  const images = new Map(program.crossbars.map((img) => [img.id, img]));
  const mvms = mvmRects(program);
  const sizes = valueSizes(lowered);

  const matmuls: QatMatmul[] = [];
  const matmulIndex = new Map<string, number>();
  for (const section of SECTIONS) {
    quantized.sections[section].forEach((op, k) => {
      if (op.op !== "matmul") return;
      const low = lowered.sections[section][k];
      assert(low !== undefined && low.op === "matmul" && low.out === op.out, `quantized and lowered IR differ at ${section} op ${k}`);
      matmulIndex.set(`${section}:${op.out}`, matmuls.length);
      matmuls.push(describeMatmul(op, low, section, quantized, target, modelOps, sizes, plan.crossbars, images, mvms));
    });
  }

  const graph = {
    step: quantized.sections.step.map((op) => describeOp(op, "step", matmulIndex, modelOps)),
    final: quantized.sections.final.map((op) => describeOp(op, "final", matmulIndex, modelOps)),
  };

  const params = result.model.meta?.params;
  return {
    format: QAT_FORMAT,
    version: QAT_VERSION,
    compilerVersion: opts.compilerVersion,
    model: {
      name: quantized.name,
      source: opts.source,
      ...(typeof params === "string" ? { params } : {}),
      inputs: quantized.inputs.map((i) => ({ ...i })),
      outputs: quantized.outputs.map((o) => ({ ...o })),
      state: quantized.state.map((s) => ({ ...s })),
    },
    target: {
      name: target.name,
      description: target.description,
      sha256: target.source.sha256,
      crossbar: { rows: target.crossbar.rows, cols: target.crossbar.cols, gMinUs: target.crossbar.gMinUs, gMaxUs: target.crossbar.gMaxUs },
      numerics: { ...target.crossbar.numerics },
      noise: structuredClone(target.noise),
    },
    numerics: numericsOf(target),
    calibration: calibrationOf(quantized, opts.calibrationFile ?? null),
    weightPolicy: {
      scale: "max-abs",
      exactGridCandidates: [
        "max|W[:,j]| / maxLevel",
        "|w| / |q| of the smallest nonzero level under the first candidate",
        "g / floor(maxLevel / k_max) when every |W[i][j]| = k * g (g the smallest nonzero magnitude)",
        "g",
      ],
      s4dRepair:
        "origin s4d only: after per-column rounding, a mode whose float 2x2 state block has spectral radius < 1 and whose rounded block has radius >= 1 " +
        "gets the fewest single-level steps toward zero over its four levels that make the radius < 1; among those, the least squared weight error; " +
        "ties: the first in the enumeration d0 = 0.., d1 = 0.., d2 = 0.. (d3 = k - d0 - d1 - d2) of steps per entry. Column scales are unchanged. " +
        "Residual form (s4d.recurrence = residual): the blocks checked are I + Q (Q = dA - I in the matrix, I added digitally); steps go in either direction " +
        "with every level kept in [-maxLevel, maxLevel], fewest steps first, least squared weight error among equals, ties to the first candidate in the " +
        "enumeration d0 = -k..k, d1 = -(k - |d0|).., d2 = -(k - |d0| - |d1|).., d3 = -r then +r (r = k - |d0| - |d1| - |d2|); entries the matrix does not store stay 0.",
    },
    matmuls,
    graph,
  };
}

// ---- numerics -------------------------------------------------------------------------

function numericsOf(target: Target): QatNumerics {
  const n = target.crossbar.numerics;
  const code = (bits: number) => ({ bits, maxCode: 2 ** (bits - 1) - 1 });
  const quantized = n.kind === "quantized";
  return {
    kind: n.kind,
    deviceMaxLevel: maxWeightLevel(target),
    dac: quantized ? code(n.dacBits) : null,
    adc: quantized ? code(n.adcBits) : null,
    rounding: { signals: "half-away-from-zero", weights: "half-up" },
    digitalPrecision: target.vector.precision,
    formulas: quantized
      ? {
          weights: "q[i][j] = clamp(roundHalfUp(W[i][j] / colScale[j]), -maxLevel, maxLevel), then the S4D repair; the chip holds q",
          dac: "code_i = clamp(roundHalfAwayFromZero(x_i / piece.dacRange * D), -D, D), D = dac.maxCode, x_i the stored (float32) input",
          mvm: "s_j = sum over the piece's rows of code_i * q[i][j] (exact integers); v_j = s_j * piece.colScale[j] / D (float64)",
          adc: "y_j = clamp(roundHalfAwayFromZero(v_j / piece.outRange[j] * Q), -Q, Q) * piece.outRange[j] / Q, Q = adc.maxCode (float64)",
          accumulate:
            "per column: each tile sums its pieces in `order` (the first stored as float32(y); then float32(acc + y) for accumulate f64, float32(acc + float32(y)) for f32); " +
            "the home tile's sum comes first, other tiles' sums are added in ascending tile order (float32), then float32(sum + float32(bias))",
          vector:
            "every vector-unit result is rounded to digitalPrecision: add/mul/relu/gelu/sigmoid/tanh elementwise (transcendentals in float64, rounded once); " +
            "glu a * round(sigmoid(b)); affine round(round(x * scale) + shift); normalize: sequential rounded sums for the mean and the biased variance, " +
            "sd = round(sqrt(round(var + eps))), out = round(round(x - mean) / sd); div_steps x / T",
        }
      : {
          mvm: "y_j = sum_i x_i * float32(W[i][j]) in float64, stored in digitalPrecision; partial sums added like quantized targets",
          vector: "as for quantized targets",
        },
  };
}

function calibrationOf(model: Model, file: string | null): QatCalibration {
  let source: "inputs" | "default" = "default";
  for (const s of SECTIONS) for (const op of model.sections[s]) if (op.op === "matmul" && op.quant) source = op.quant.calibration;
  const base = { source, statistic: "absmax" as const, margin: RANGE_MARGIN, unobservedRange: 1 };
  if (source === "inputs" && file !== null) {
    const bytes = readBytes(file);
    return { ...base, file: { path: file, sha256: sha256Hex(bytes), shape: parseNpy(bytes, file).shape } };
  }
  if (source === "default") {
    return { ...base, default: { sequences: DEFAULT_SEQUENCES, steps: DEFAULT_STEPS, distribution: "every input element i.i.d. normal(0, 1)", seed: DEFAULT_SEED } };
  }
  return base;
}

// ---- parameters -----------------------------------------------------------------------

/** Model-level weight ops by layer name (empty when the compile started from lowered IR). */
function modelLevelOps(model: Model): Map<string, Op> {
  const out = new Map<string, Op>();
  if (model.level !== "model") return out;
  for (const s of SECTIONS) for (const op of model.sections[s]) if (op.layer !== undefined && (op.op === "linear" || op.op === "s4d" || op.op === "layernorm")) out.set(op.layer, op);
  return out;
}

function paramsOf(op: MatMulOp, modelOps: Map<string, Op>): QatParams | undefined {
  const src = op.layer !== undefined ? modelOps.get(op.layer) : undefined;
  if (!src) return undefined;
  const p = op.layer!;
  if (src.op === "linear" && op.origin === "dense") {
    const shape = src.weight.shape.slice();
    // The DSL's file source and export use [out, in, 1] for the 1x1 Conv1d of an S4D block.
    const weightShape = /\.output_linear\.0$/.test(p) ? [...shape, 1] : shape;
    return { kind: "dense", weight: `${p}.weight`, weightShape, ...(src.bias ? { bias: `${p}.bias` } : {}) };
  }
  if (src.op === "s4d" && op.origin === "s4d") {
    return {
      kind: "s4d",
      logDt: `${p}.kernel.log_dt`,
      logAReal: `${p}.kernel.log_A_real`,
      AImag: `${p}.kernel.A_imag`,
      C: `${p}.kernel.C`,
      ...(src.B ? { B: `${p}.kernel.B` } : {}),
      D: `${p}.D`,
      timescale: src.timescale.kind,
    };
  }
  return undefined;
}

// ---- matmuls --------------------------------------------------------------------------

interface Triple {
  i: number;
  j: number;
  q: number;
}

/** Nonzero levels (or float weights for maxLevel 0) in row-major order. */
function levelsOf(op: MatMulOp): Triple[] {
  const q = op.quant!;
  const out: Triple[] = [];
  for (const b of op.weight.blocks) {
    for (let r = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++) {
        const w = b.data[r * b.cols + c]!;
        if (w === 0) continue;
        const j = b.col + c;
        const level = q.maxLevel === 0 ? w : Math.round(w / q.colScale[j]!);
        out.push({ i: b.row + r, j, q: level });
      }
    }
  }
  return out.sort((a, b) => a.i - b.i || a.j - b.j);
}

/** sha256 of (row, col, level) as int32 LE per nonzero; for float weights (maxLevel 0) the level is a float64 LE. */
function levelsDigest(triples: Triple[], float: boolean): string {
  const stride = float ? 16 : 12;
  const buf = new Uint8Array(triples.length * stride);
  const view = new DataView(buf.buffer);
  triples.forEach((t, k) => {
    view.setInt32(k * stride, t.i, true);
    view.setInt32(k * stride + 4, t.j, true);
    if (float) view.setFloat64(k * stride + 8, t.q, true);
    else view.setInt32(k * stride + 8, t.q, true);
  });
  return sha256Hex(buf);
}

const S4D_ENTRIES: Record<string, string> = {
  index: "mode k = h*M + m; state rows/cols 2k (re) and 2k+1 (im); S = 2*H*M; row S+h = u_h, col S+h = y_h",
  discretization: "A = -exp(log_A_real) + i*A_imag, dt = exp(log_dt); zoh: dA = exp(dt*A), dB = B*(exp(dt*A) - 1)/A; bilinear: dA = (1 + dt*A/2)/(1 - dt*A/2), dB = B*dt/(1 - dt*A/2); B = 1 unless given",
  dA: "W[2k][2k] = Re dA, W[2k][2k+1] = Im dA, W[2k+1][2k] = -Im dA, W[2k+1][2k+1] = Re dA",
  dB: "W[S+h][2k] = Re dB * c_k, W[S+h][2k+1] = Im dB * c_k (c_k = stateScale[k])",
  C: "with p + i*q = C*dA: W[2k][S+h] = 2p / c_k, W[2k+1][S+h] = -2q / c_k",
  D: "W[S+h][S+h] = 2 * sum_m Re(C dB) + D_h (sum over m in order, float64, unscaled dB and C)",
  stateScale: "the state holds c_k * x_k (src/passes/scale-states.ts); c_k is a power of two, so the scaled products are exact",
  step: "[x_k; y_k] = [x_{k-1}; u_k] @ W: state columns feed back as the next step's state rows",
};

/** The residual recurrence form (src/passes/residual.ts) differs in the dA entries and the step. */
const S4D_RESIDUAL_ENTRIES: Record<string, string> = {
  ...S4D_ENTRIES,
  dA: "W[2k][2k] = Re dA - 1, W[2k][2k+1] = Im dA, W[2k+1][2k] = -Im dA, W[2k+1][2k+1] = Re dA - 1 (the state block is dA - I; Re dA - 1 in float64)",
  step: "[d_k; y_k] = [x_{k-1}; u_k] @ W, then x_k = d_k + x_{k-1} (the graph's add op, digital): state columns plus the previous state feed back as the next step's state rows",
};

function describeMatmul(
  op: MatMulOp,
  low: MatMulOp,
  section: Section,
  model: Model,
  target: Target,
  modelOps: Map<string, Op>,
  sizes: ReturnType<typeof valueSizes>,
  crossbars: CompileResult["plan"]["crossbars"],
  images: Map<number, CrossbarImage>,
  mvms: Map<string, MvmRect[]>,
): QatMatmul {
  const q = op.quant;
  assert(q !== undefined, `matmul ${op.out} has no quantization record`);
  const inRange = q.inRange[0] ?? 1;
  assert(
    q.inRange.every((r) => r === inRange),
    `matmul ${op.out}: rows have different DAC ranges`,
  );
  const triples = levelsOf(op);
  const xs = op.xs.map((value) => ({ value, size: sizes[section].get(value) ?? 0 }));
  const params = paramsOf(op, modelOps);
  const req = requestedLevels(model, section, op.out);
  const pieces = describePieces(op, section, crossbars, images, mvms, target, triples);
  const out: QatMatmul = {
    name: op.out,
    section,
    ...(op.layer !== undefined ? { layer: op.layer } : {}),
    origin: op.origin,
    xs,
    rows: op.weight.rows,
    cols: op.weight.cols,
    hasBias: op.bias !== undefined,
    ...(params ? { params } : {}),
    maxLevel: q.maxLevel,
    ...(req !== undefined ? { requestedLevels: req } : {}),
    colScale: q.colScale.slice(),
    inRange,
    outRange: q.outRange.slice(),
    nonzeros: triples.length,
    levelsSha256: levelsDigest(triples, q.maxLevel === 0),
    homeTile: pieces.home,
    pieces: pieces.list,
  };
  if (op.origin === "s4d") out.s4d = describeS4D(op, low, section, modelOps, sizes);
  return out;
}

function describeS4D(op: MatMulOp, low: MatMulOp, section: Section, modelOps: Map<string, Op>, sizes: ReturnType<typeof valueSizes>): QatS4DInfo {
  const stateLength = sizes[section].get(op.xs[0]!) ?? 0;
  const channels = op.weight.cols - stateLength;
  const modes = channels > 0 ? stateLength / (2 * channels) : 0;
  const src = op.layer !== undefined ? modelOps.get(op.layer) : undefined;
  const info: QatS4DInfo = {
    channels,
    modes,
    discretization: src?.op === "s4d" ? src.discretization : null,
    stateLength,
    layout: S4D_LAYOUT,
    entries: op.residual ? S4D_RESIDUAL_ENTRIES : S4D_ENTRIES,
    stateScale: op.stateScale?.slice() ?? new Array<number>(stateLength / 2).fill(1),
    ...(op.residual ? { recurrence: "residual" as const } : {}),
    modesChecked: stateLength / 2,
    unstableInFloat: 0,
    repairs: [],
  };
  const L = op.quant!.maxLevel;
  if (L === 0) return info;
  // Re-run the (deterministic) weight quantization on the lowered matrix to recover which modes
  // the repair changed; the result must be the quantized IR's weights.
  const qm = quantizeMatrix(low.weight, L);
  assert(!op.residual || (op.residual.row === 0 && op.residual.col === 0 && op.residual.length === stateLength), `S4D matmul ${op.out}: the QAT layout needs the residual state block at rows and columns [0, ${stateLength})`);
  const stab = stabilizeS4DModes(low.weight, qm.weight, qm.colScale, op.residual ? { ...op.residual, residual: true } : stateLength, L);
  qm.weight.blocks.forEach((b, k) => {
    const mine = op.weight.blocks[k]!;
    for (let e = 0; e < b.data.length; e++) assert(b.data[e] === mine.data[e], `re-quantizing S4D matmul ${op.out} does not reproduce its weights`);
  });
  info.unstableInFloat = stab.unstableInFloat;
  info.repairs = stab.repairs.map((r) => ({ mode: r.mode, roundedLevels: [...r.roundedLevels], levels: [...r.levels] }));
  return info;
}

// ---- pieces ---------------------------------------------------------------------------

interface MvmRect {
  rowStart: number;
  rowEnd: number;
  colStart: number;
  colEnd: number;
  acc: boolean;
}

/** mvm instructions by "section:crossbar". */
function mvmRects(program: Program): Map<string, MvmRect[]> {
  const out = new Map<string, MvmRect[]>();
  for (const tile of program.tiles) {
    for (const section of ["init", "step", "final"] as const) {
      for (const ins of tile.sections[section].code) {
        if (ins.op !== "mvm") continue;
        const key = `${section}:${ins.xbar}`;
        const list = out.get(key) ?? [];
        list.push({ rowStart: ins.rowStart, rowEnd: ins.rowStart + ins.rows, colStart: ins.colStart, colEnd: ins.colStart + ins.cols, acc: ins.acc });
        out.set(key, list);
      }
    }
  }
  return out;
}

function describePieces(
  op: MatMulOp,
  section: Section,
  crossbars: CompileResult["plan"]["crossbars"],
  images: Map<number, CrossbarImage>,
  mvms: Map<string, MvmRect[]>,
  target: Target,
  triples: Triple[],
): { home: number; list: QatPiece[] } {
  const placed: PlacedPiece[] = [];
  for (const xb of crossbars) {
    for (const piece of xb.pieces) {
      if (piece.op !== op.out || piece.section !== section || piece.inRows.length === 0 || piece.outCols.length === 0) continue;
      placed.push({ xbar: xb.id, tile: images.get(xb.id)!.tile, piece });
    }
  }
  const home = matmulHome(placed) ?? 0;
  // The emitter's accumulation order within a tile (emit-matmul.ts sumPieces over
  // mergeDiagonalRuns): crossbars in plan order, pieces by rowStart.
  const order = new Map<PlacedPiece, number>();
  const tiles = [...new Set(placed.map((p) => p.tile))];
  for (const tile of tiles) {
    const byXbar = new Map<number, PlacedPiece[]>();
    for (const p of placed) if (p.tile === tile) byXbar.set(p.xbar, [...(byXbar.get(p.xbar) ?? []), p]);
    let k = 0;
    for (const list of byXbar.values()) for (const p of [...list].sort((a, b) => a.piece.rowStart - b.piece.rowStart)) order.set(p, k++);
  }
  const nzPerCol = new Int32Array(op.weight.cols);
  for (const t of triples) nzPerCol[t.j]!++;
  const byRow = new Map<number, Triple[]>();
  for (const t of triples) byRow.set(t.i, [...(byRow.get(t.i) ?? []), t]);
  const quantized = target.crossbar.numerics.kind === "quantized";

  const list = placed.map((p): QatPiece => {
    const { piece } = p;
    const img = images.get(p.xbar)!;
    const rowEnd = piece.rowStart + piece.inRows.length;
    const colEnd = piece.colStart + piece.outCols.length;
    const driver = (mvms.get(`${section}:${p.xbar}`) ?? []).find((r) => r.rowStart <= piece.rowStart && r.rowEnd >= rowEnd && r.colStart <= piece.colStart && r.colEnd >= colEnd);
    assert(driver !== undefined, `no mvm drives the piece of ${op.out} on crossbar ${p.xbar}`);
    const cols = new Set(piece.outCols);
    const inPiece = new Map<number, number>();
    for (const i of piece.inRows) for (const t of byRow.get(i) ?? []) if (cols.has(t.j)) inPiece.set(t.j, (inPiece.get(t.j) ?? 0) + 1);
    return {
      crossbar: p.xbar,
      tile: p.tile,
      rowStart: piece.rowStart,
      colStart: piece.colStart,
      rows: piece.inRows.slice(),
      cols: piece.outCols.slice(),
      dacRange: quantized ? img.inRange[piece.rowStart]! : 1,
      colScale: piece.outCols.map((_, b) => img.colScale[piece.colStart + b]!),
      outRange: piece.outCols.map((_, b) => img.outRange[piece.colStart + b]!),
      partial: piece.outCols.map((j) => (inPiece.get(j) ?? 0) !== nzPerCol[j]),
      order: order.get(p)!,
      accumulate: driver.acc ? "f64" : "f32",
    };
  });
  return { home, list };
}

// ---- graph ----------------------------------------------------------------------------

function describeOp(op: Op, section: Section, matmulIndex: Map<string, number>, modelOps: Map<string, Op>): QatOp {
  const base: QatOp = { op: op.op, out: op.out, ...(op.layer !== undefined ? { layer: op.layer } : {}) };
  switch (op.op) {
    case "matmul":
      return { ...base, xs: op.xs.slice(), matmul: matmulIndex.get(`${section}:${op.out}`)! };
    case "slice":
      return { ...base, x: op.x, start: op.start, length: op.length };
    case "concat":
      return { ...base, xs: op.xs.slice() };
    case "affine": {
      const src = op.layer !== undefined ? modelOps.get(op.layer) : undefined;
      const params = src?.op === "layernorm" ? { params: { scale: `${op.layer}.weight`, shift: `${op.layer}.bias` } } : {};
      return { ...base, x: op.x, scale: op.scale.slice(), shift: op.shift.slice(), ...params };
    }
    case "normalize":
      return { ...base, x: op.x, eps: op.eps };
    case "state_read":
      return { ...base, state: op.state };
    case "state_write":
      return { ...base, state: op.state, x: op.x };
    case "add":
    case "mul":
      return { ...base, a: op.a, b: op.b };
    case "gelu":
    case "sigmoid":
    case "tanh":
    case "relu":
    case "glu":
    case "div_steps":
      return { ...base, x: op.x };
    default:
      // Model-level ops never reach a quantized IR.
      throw new Error(`internal error: op ${op.out} (${op.op}) in a quantized IR`);
  }
}
