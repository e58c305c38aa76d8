// The error bound imssa-verify checks against, derived from the target's quantization.
//
// The interpreter computes the vector unit in float32 while the reference uses float64:
// FLOAT_RELATIVE_BOUND times the largest reference magnitude of each output covers that.
//
// Weight quantization is exact in the quantized IR (its weights are the dequantized levels,
// including levels a user asked for on a float target, e.g. ternary), so the float64
// evaluator runs the quantized IR. On quantized targets a matmul hook adds what the crossbar
// periphery does to every MVM, modelled as noise rather than rounding:
//   - each input row is clipped to its DAC range and perturbed by U(-d/2, d/2), d = inRange/D;
//   - each crossbar piece's partial sum of a column is clipped to that piece's ADC range
//     (read from the program's crossbar images, so partial-sum ranges are the real ones) and
//     perturbed by U(-a/2, a/2), a = outRange/Q;
//   - partial sums are added and the bias applied, as the digital periphery does.
// Deterministic rounding errors are bounded by the same half steps and, over many outputs,
// distributed like this noise. The bound is NOISE_MARGIN x the largest error over
// MONTE_CARLO_RUNS noisy runs (plus the float32 allowance), so it follows the target's bit
// widths and ranges instead of a tuned constant. Documented in docs/VERIFY.md.

import type { Program } from "../backend/program.js";
import { Rng } from "../common/rng.js";
import type { CrossbarPlan } from "../ir/plan.js";
import type { MatMulOp, Model } from "../ir/types.js";
import { ReferenceEvaluator, evaluateSequenceWith, type SequenceResult } from "../reference/evaluate.js";
import type { Target } from "../target/types.js";

export const FLOAT_RELATIVE_BOUND = 1e-5;
export const MONTE_CARLO_RUNS = 4;
export const NOISE_MARGIN = 2;

/** One crossbar piece of a matmul with its weights, for the hook's partial sums. */
interface PieceModel {
  inRows: Int32Array;
  outCols: Int32Array;
  /** Nonzero weights of the piece by column (CSC): column b has entries colStart[b] .. colStart[b+1]. */
  colStart: Int32Array;
  rowIndex: Int32Array; // matmul input index of each entry
  weight: Float64Array;
  outRange: Float64Array; // per piece column
}

interface MatmulModel {
  pieces: PieceModel[];
  inRange: Float64Array;
  bias: Float64Array | null;
}

/** The piece's nonzero weights in compressed-column form (S4D pieces are mostly zero). */
function pieceWeights(op: MatMulOp, inRows: readonly number[], outCols: readonly number[]): Pick<PieceModel, "colStart" | "rowIndex" | "weight"> {
  const inPiece = new Set(inRows);
  const colAt = new Map(outCols.map((c, b) => [c, b]));
  const perCol: Array<Array<[number, number]>> = outCols.map(() => []);
  for (const blk of op.weight.blocks) {
    for (let r = 0; r < blk.rows; r++) {
      if (!inPiece.has(blk.row + r)) continue;
      for (let c = 0; c < blk.cols; c++) {
        const b = colAt.get(blk.col + c);
        const w = blk.data[r * blk.cols + c]!;
        if (b !== undefined && w !== 0) perCol[b]!.push([blk.row + r, w]);
      }
    }
  }
  const colStart = new Int32Array(outCols.length + 1);
  perCol.forEach((entries, b) => (colStart[b + 1] = colStart[b]! + entries.length));
  const flat = perCol.flat();
  return { colStart, rowIndex: Int32Array.from(flat, (e) => e[0]), weight: Float64Array.from(flat, (e) => e[1]) };
}

function matmulModels(quantized: Model, plan: CrossbarPlan, program: Program): Map<string, MatmulModel> {
  const images = new Map(program.crossbars.map((c) => [c.id, c]));
  const ops = new Map<string, MatMulOp>();
  const models = new Map<string, MatmulModel>();
  for (const section of ["step", "final"] as const) {
    for (const op of quantized.sections[section]) {
      if (op.op !== "matmul" || !op.quant) continue;
      ops.set(`${section}:${op.out}`, op);
      models.set(`${section}:${op.out}`, { pieces: [], inRange: Float64Array.from(op.quant.inRange), bias: op.bias ? Float64Array.from(op.bias) : null });
    }
  }
  for (const xb of plan.crossbars) {
    const image = images.get(xb.id);
    if (!image) throw new Error(`internal error: crossbar ${xb.id} of the plan is missing from the program`);
    for (const p of xb.pieces) {
      const key = `${p.section}:${p.op}`;
      const m = models.get(key);
      if (!m) continue;
      m.pieces.push({
        inRows: Int32Array.from(p.inRows),
        outCols: Int32Array.from(p.outCols),
        ...pieceWeights(ops.get(key)!, p.inRows, p.outCols),
        outRange: Float64Array.from(p.outCols, (_, b) => image.outRange[p.colStart + b]!),
      });
    }
  }
  return models;
}

export interface OutputBounds {
  /** Per output name: allowed max abs error. */
  step: Record<string, number>;
  final: Record<string, number>;
  method: "float32+weight-levels" | "quantization-noise";
}

function maxAbs(values: Iterable<Float64Array>): number {
  let m = 0;
  for (const v of values) for (const x of v) if (Math.abs(x) > m) m = Math.abs(x);
  return m;
}

type MatmulHook = (op: MatMulOp, section: "step" | "final", x: Float64Array, y: Float64Array) => void;

/** The periphery of quantized crossbars as noise: DAC clip + noise per row, ADC clip + noise per partial sum. */
function converterNoise(quantized: Model, plan: CrossbarPlan, program: Program, dacBits: number, adcBits: number, seed: number): MatmulHook {
  const D = 2 ** (dacBits - 1) - 1;
  const Q = 2 ** (adcBits - 1) - 1;
  const models = matmulModels(quantized, plan, program);
  const rng = new Rng(seed);
  const rand = (): number => rng.uniform() - 0.5;
  let xq = new Float64Array(0);
  return (op, section, x, y) => {
    const m = models.get(`${section}:${op.out}`);
    if (!m) return;
    if (xq.length < x.length) xq = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const r = m.inRange[i]!;
      xq[i] = Math.max(-r, Math.min(r, x[i]!)) + rand() * (r / D);
    }
    if (m.bias) y.set(m.bias);
    else y.fill(0);
    for (const p of m.pieces) {
      for (let b = 0; b < p.outCols.length; b++) {
        let s = 0;
        for (let e = p.colStart[b]!; e < p.colStart[b + 1]!; e++) s += xq[p.rowIndex[e]!]! * p.weight[e]!;
        const R = p.outRange[b]!;
        const j = p.outCols[b]!;
        y[j] = y[j]! + Math.max(-R, Math.min(R, s)) + rand() * (R / Q);
      }
    }
  };
}

/**
 * Error bounds per output for comparing the interpreter with `reference` (the float64
 * evaluation of the model-level IR on `sequences`).
 */
export function errorBounds(
  quantized: Model,
  plan: CrossbarPlan,
  program: Program,
  target: Target,
  sequences: Record<string, Float64Array[]>[],
  reference: SequenceResult[],
  seed = 1,
): OutputBounds {
  const numerics = target.crossbar.numerics;
  const noisy = numerics.kind === "quantized";
  const hook = noisy ? converterNoise(quantized, plan, program, numerics.dacBits, numerics.adcBits, seed) : undefined;
  const ev = new ReferenceEvaluator(quantized, hook ? { matmul: hook } : {});
  const runs = noisy ? MONTE_CARLO_RUNS : 1;

  const step: Record<string, number> = {};
  const final: Record<string, number> = {};
  const raise = (into: Record<string, number>, name: string, err: number): void => {
    into[name] = Math.max(into[name] ?? 0, err);
  };
  for (let run = 0; run < runs; run++) {
    sequences.forEach((seq, k) => {
      const out = evaluateSequenceWith(ev, seq);
      const ref = reference[k]!;
      for (const [name, steps] of Object.entries(out.step)) {
        let e = 0;
        steps.forEach((v, t) => v.forEach((x, i) => (e = Math.max(e, Math.abs(x - ref.step[name]![t]![i]!)))));
        raise(step, name, e);
      }
      for (const [name, v] of Object.entries(out.final)) {
        let e = 0;
        v.forEach((x, i) => (e = Math.max(e, Math.abs(x - ref.final[name]![i]!))));
        raise(final, name, e);
      }
    });
  }
  for (const name of Object.keys(step)) step[name] = NOISE_MARGIN * step[name]! + FLOAT_RELATIVE_BOUND * maxAbs(reference.flatMap((r) => r.step[name]!));
  for (const name of Object.keys(final)) final[name] = NOISE_MARGIN * final[name]! + FLOAT_RELATIVE_BOUND * maxAbs(reference.map((r) => r.final[name]!));
  return { step, final, method: noisy ? "quantization-noise" : "float32+weight-levels" };
}
