// Per-mode state scaling (IR level "lowered" -> "lowered"): before weight quantization, every
// S4D mode's state is rescaled, x~ = c_k x, so that its input weights and its share of the
// crossbar's DAC range survive quantization. The float model is unchanged: the fused matrix
// becomes W~[i][j] = W[i][j] * c_j / c_i (c = 1 on non-state rows/cols), i.e. dB -> c dB,
// C -> C / c, dA unchanged (both ends of a mode's 2x2 block carry the same c), and every other
// matmul that reads the state divides its state rows by c. See docs/QUANTIZATION.md "State
// scaling" for the derivation of the rule; in short, per mode k (pair of state elements):
//
//   c_k = 2^floor(log2(min(wCap_k, rCap_k)))
//   wCap_k = min over the mode's two state columns j of  stateMax_j / inMax_j
//            (stateMax_j: largest |dA| entry of the column, inMax_j: largest non-state entry,
//            i.e. |dB|): dB may grow until it reaches dA's magnitude and no further, so the
//            column scale max|W[:,j]| / L, and hence dA's rounding, stays what it was;
//            in the residual form (src/passes/residual.ts, the block holds dA - I) the cap is
//            still dA's magnitude, not that of dA - I: capping dB at |dA - I| would shrink
//            the state (c small) to a sliver of the DAC range, and the y columns read the
//            state through C dA / c at full weight, so its DAC error would reach y unattenuated
//            (measured: scan_cls_op17 xbar64 0.840 with the |dA - I| cap, 0.935 with |dA|;
//            docs/QUANTIZATION.md "Residual recurrence form");
//   rCap_k = RANGE_RATIO * inputRange / stateRange_k: the mode's calibrated state range may
//            grow to RANGE_RATIO times the range of the matmul's other inputs (u), and no
//            further: every mode then fills the same share of the shared DAC range (unless its
//            dB reaches its dA first), and u keeps 1 / RANGE_RATIO of the DAC codes.
//
// Powers of two make the rescaling exact in binary floating point (no overflow or underflow
// at these magnitudes): every product x~_i W~[i][j] equals c_j x_i W[i][j] bit for bit, so the
// float reference evaluator gives bit-identical outputs on the scaled IR, and training code
// (python/imssa_qat) can reproduce the compiled matrices from the recorded factors exactly.
//
// The chosen factors are recorded on the S4D matmul (`stateScale`, one per mode). A matmul
// that already has them is left alone (re-running the pass, or compiling a `--emit lowered`
// IR, is the identity). Modes are only scaled where the pass can prove every reader of the
// state is compensated: the state is read only by matmuls (and is no model output), and the
// state's new value is used only by its state_write. Otherwise the matmul keeps c = 1.
// Float-weight matmuls (maxLevel 0) are not scaled: there is no grid to fit.

import { operandsOf } from "../ir/operands.js";
import { assert } from "../common/errors.js";
import { ReferenceEvaluator, evaluateSequenceWith } from "../reference/evaluate.js";
import { valueSizes } from "../ir/sizes.js";
import type { BlockMatrix, MatMulOp, Model, Op } from "../ir/types.js";
import { maxWeightLevel, type Target } from "../target/types.js";
import { defaultCalibration, matmulKey, type Section } from "./calibrate.js";
import { requestedLevels } from "./quant-request.js";

const { abs, floor, log2, min, max } = Math;

/**
 * State range target relative to the other inputs' range. Trading one DAC bit of u for one
 * more bit of every mode's state and dB resolution pays off on every trained model measured
 * (docs/QUANTIZATION.md "State scaling": 1, 2, 3, 4 compared); 2 is the best compromise.
 */
export const RANGE_RATIO = 2;

/** Bounds on the exponent of c_k: far beyond any useful factor, well inside float64's range. */
const MAX_EXPONENT = 30;

export interface StateScalingOptions {
  /** Calibration sequences for the state ranges; null: the documented default distribution. */
  calibration: Record<string, Float64Array[]>[] | null;
}

/** One scalable S4D matmul: where its state lives and who reads it. */
interface Candidate {
  section: Section;
  index: number;
  op: MatMulOp;
  state: string;
  stateLen: number;
  /** Every matmul reading the state (section, op index, operand positions holding the state), the S4D matmul included. */
  readers: Array<{ section: Section; index: number; positions: number[] }>;
}

/** The S4D matmuls whose state every reader can compensate (see the file comment). */
function candidates(model: Model, levelOf: (section: Section, op: MatMulOp) => number): Candidate[] {
  const sizes = valueSizes(model);
  const sections: Section[] = ["step", "final"];
  // Who reads each value, per section; which values are model outputs.
  const users = { step: new Map<string, Array<{ index: number; op: Op }>>(), final: new Map<string, Array<{ index: number; op: Op }>>() };
  for (const s of sections) {
    model.sections[s].forEach((op, index) => {
      for (const v of operandsOf(op)) users[s].set(v, [...(users[s].get(v) ?? []), { index, op }]);
    });
  }
  const isOutput = (s: Section, v: string) => model.outputs.some((o) => o.value === v && (o.section ?? "step") === s);
  const out: Candidate[] = [];
  model.sections.step.forEach((op, index) => {
    if (op.op !== "matmul" || op.origin !== "s4d" || op.stateScale !== undefined) return;
    if (levelOf("step", op) === 0) return;
    const first = op.xs[0]!;
    const read = model.sections.step.find((o) => o.out === first);
    if (read?.op !== "state_read") return;
    const stateLen = sizes.step.get(first);
    if (stateLen === undefined || stateLen % 2 !== 0 || stateLen > op.weight.cols) return;
    // The state's new value: the matmul itself or its leading slice, used by the state_write
    // alone. Residual form (src/passes/residual.ts): that value is the increment, used by the
    // add alone, whose sum with the state read is used by the state_write alone. The add is
    // elementwise on two scaled quantities (c x_{k-1} + c (x_k - x_{k-1})), so it needs no
    // compensation. The pass relies on the state block at rows and columns [0, stateLen).
    if (op.residual && (op.residual.row !== 0 || op.residual.col !== 0 || op.residual.length !== stateLen)) return;
    const writes = model.sections.step.filter((o) => o.op === "state_write" && o.state === read.state);
    if (writes.length !== 1) return;
    const next = (writes[0] as Extract<Op, { op: "state_write" }>).x;
    let inc = next;
    let residualAdd: Op | undefined;
    if (op.residual) {
      residualAdd = model.sections.step.find((o) => o.out === next);
      if (residualAdd?.op !== "add") return;
      if (residualAdd.b === first) inc = residualAdd.a;
      else if (residualAdd.a === first) inc = residualAdd.b;
      else return;
      if ((users.step.get(inc) ?? []).length !== 1 || isOutput("step", inc)) return;
    }
    if (inc !== op.out) {
      const sl = model.sections.step.find((o) => o.out === inc);
      if (sl?.op !== "slice" || sl.x !== op.out || sl.start !== 0 || sl.length !== stateLen) return;
    }
    if ((users.step.get(next) ?? []).length !== 1 || isOutput("step", next)) return;
    // Other users of the matmul's result may only see its non-state columns.
    for (const u of users.step.get(op.out) ?? []) {
      if (u.op.out === inc || u.op === residualAdd || u.op.op === "state_write") continue;
      if (u.op.op !== "slice" || u.op.start < stateLen) return;
    }
    if (inc !== op.out && isOutput("step", op.out)) return;
    // Every read of the state, in both sections, must feed matmuls only (or the residual add).
    const readers: Candidate["readers"] = [];
    for (const s of sections) {
      for (const r of model.sections[s]) {
        if (r.op !== "state_read" || r.state !== read.state) continue;
        if (isOutput(s, r.out)) return;
        for (const u of users[s].get(r.out) ?? []) {
          if (s === "step" && u.op === residualAdd && r.out === first) continue;
          if (u.op.op !== "matmul") return;
          if (readers.some((x) => x.section === s && x.index === u.index)) continue;
          const positions = u.op.xs.flatMap((x, p) => (x === r.out ? [p] : []));
          readers.push({ section: s, index: u.index, positions });
        }
      }
    }
    out.push({ section: "step", index, op, state: read.state, stateLen, readers });
  });
  return out;
}

/**
 * Largest |entry| per column over state rows [0, stateLen) and over the other rows. With
 * `identity` (residual form) the state block holds dA - I and its entries count as dA's.
 */
function columnMaxima(w: BlockMatrix, stateLen: number, identity: boolean): { stateMax: Float64Array; inMax: Float64Array } {
  const stateMax = new Float64Array(stateLen);
  const inMax = new Float64Array(stateLen);
  for (const b of w.blocks) {
    for (let r = 0; r < b.rows; r++) {
      const row = b.row + r;
      for (let c = 0; c < b.cols; c++) {
        const col = b.col + c;
        if (col >= stateLen) continue;
        const a = abs(b.data[r * b.cols + c]! + (identity && row === col ? 1 : 0));
        if (row < stateLen) stateMax[col] = max(stateMax[col]!, a);
        else inMax[col] = max(inMax[col]!, a);
      }
    }
  }
  return { stateMax, inMax };
}

/** Per candidate: calibrated abs-max of every state element and of the matmul's other inputs. */
function stateRanges(model: Model, cands: Candidate[], calibration: Record<string, Float64Array[]>[] | null): Map<string, { state: Float64Array; input: number }> {
  const ranges = new Map<string, { state: Float64Array; input: number }>();
  for (const c of cands) ranges.set(matmulKey("step", c.op.out), { state: new Float64Array(c.stateLen), input: 0 });
  const ev = new ReferenceEvaluator(model, {
    matmul: (op, section, x) => {
      if (section !== "step") return;
      const r = ranges.get(matmulKey("step", op.out));
      if (!r) return;
      const n = r.state.length;
      for (let i = 0; i < n; i++) {
        const a = abs(x[i]!);
        if (a > r.state[i]!) r.state[i] = a;
      }
      let m = r.input;
      for (let i = n; i < x.length; i++) {
        const a = abs(x[i]!);
        if (a > m) m = a;
      }
      r.input = m;
    },
  });
  for (const seq of calibration ?? defaultCalibration(model)) evaluateSequenceWith(ev, seq);
  return ranges;
}

/** 2^floor(log2(v)) within [2^-MAX_EXPONENT, 2^MAX_EXPONENT]; 1 for a non-finite or non-positive v. */
function powerOfTwoBelow(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const e = min(MAX_EXPONENT, max(-MAX_EXPONENT, floor(log2(v))));
  // log2 may be off by one ulp near exact powers; keep 2^e <= v.
  const p = 2 ** e;
  return p > v && e > -MAX_EXPONENT ? 2 ** (e - 1) : p;
}

/**
 * The factor per mode (see the file comment): the largest power of two that keeps dB at or
 * below dA's magnitude in both of the mode's columns and the state range at or below
 * RANGE_RATIO times the matmul's other inputs' range.
 */
export function chooseStateScale(w: BlockMatrix, stateLen: number, stateRange: ArrayLike<number>, inputRange: number, residual = false): number[] {
  const { stateMax, inMax } = columnMaxima(w, stateLen, residual);
  const scale: number[] = [];
  for (let k = 0; k < stateLen / 2; k++) {
    let cap = Infinity;
    for (const j of [2 * k, 2 * k + 1]) if (inMax[j]! > 0) cap = min(cap, stateMax[j]! / inMax[j]!);
    const range = max(stateRange[2 * k]!, stateRange[2 * k + 1]!);
    if (range > 0 && inputRange > 0) cap = min(cap, (RANGE_RATIO * inputRange) / range);
    // A mode without input weights never moves: nothing to gain, keep it as it is.
    scale.push(inMax[2 * k] === 0 && inMax[2 * k + 1] === 0 ? 1 : powerOfTwoBelow(cap));
  }
  return scale;
}

/** W[i][j] * colFactor[j] * rowFactor[i] on a copy (factors are powers of two: exact). */
function scaleMatrix(w: BlockMatrix, rowFactor: (i: number) => number, colFactor: (j: number) => number): BlockMatrix {
  return {
    rows: w.rows,
    cols: w.cols,
    blocks: w.blocks.map((b) => {
      const data = b.data.slice();
      for (let r = 0; r < b.rows; r++) {
        const rf = rowFactor(b.row + r);
        for (let c = 0; c < b.cols; c++) data[r * b.cols + c] = data[r * b.cols + c]! * rf * colFactor(b.col + c);
      }
      return { ...b, data };
    }),
  };
}

/**
 * Rescales the state of every S4D matmul of a lowered model (see the file comment). Pure: the
 * result shares no mutable arrays with `model`.
 */
export function scaleStates(model: Model, target: Target, opts: StateScalingOptions): Model {
  assert(model.level === "lowered", `state scaling expects a lowered IR, got "${model.level}"`);
  const device = maxWeightLevel(target);
  const levelOf = (section: Section, op: MatMulOp): number => {
    const req = requestedLevels(model, section, op.out);
    return req !== undefined ? (req - 1) / 2 : (device ?? 0);
  };
  const out: Model = structuredClone(model);
  const cands = candidates(model, levelOf);
  if (cands.length === 0) return out;
  const ranges = stateRanges(model, cands, opts.calibration);
  for (const c of cands) {
    const r = ranges.get(matmulKey("step", c.op.out))!;
    const scale = chooseStateScale(c.op.weight, c.stateLen, r.state, r.input, c.op.residual !== undefined);
    if (scale.every((s) => s === 1)) continue;
    const perElement = (i: number) => scale[i >> 1]!;
    for (const reader of c.readers) {
      const op = out.sections[reader.section][reader.index] as MatMulOp;
      const sizes = valueSizes(out)[reader.section];
      // Row offset of every operand holding the state.
      const stateRows: Array<[number, number]> = [];
      let at = 0;
      op.xs.forEach((x, p) => {
        const n = sizes.get(x)!;
        if (reader.positions.includes(p)) stateRows.push([at, n]);
        at += n;
      });
      const rowFactor = (i: number): number => {
        for (const [s, n] of stateRows) if (i >= s && i < s + n) return 1 / perElement(i - s);
        return 1;
      };
      const isS4D = reader.section === c.section && reader.index === c.index;
      const colFactor = (j: number): number => (isS4D && j < c.stateLen ? perElement(j) : 1);
      op.weight = scaleMatrix(op.weight, rowFactor, colFactor);
      if (isS4D) {
        if (op.bias) op.bias = op.bias.map((b, j) => b * colFactor(j));
        op.stateScale = scale;
      }
    }
  }
  return out;
}
