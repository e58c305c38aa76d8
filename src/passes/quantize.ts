// Quantization (IR level "lowered" -> "quantized"): every matmul gets integer weight levels
// with a per-column scale and calibrated DAC/ADC ranges, recorded as a MatQuant.
//
// Weights: L = target deviceLevels - 1, or (levels - 1) / 2 if the user asked for fewer
// levels on the layer (quant.levels, e.g. 3 = ternary); see quant-weights for the scale
// choice (QAT grids stay bit-exact). The matmul's `weight` is replaced by the dequantized
// values q * colScale, so the float reference evaluator simulates weight quantization.
//
// S4D matmuls (origin "s4d"): after per-column rounding every mode's 2x2 state block is
// checked, and a mode that rounding made unstable (float spectral radius < 1, rounded >= 1)
// gets the fewest level steps toward zero that make it stable again, column scales
// unchanged; see quant-s4d. Without this a stable model can diverge on the chip over long
// sequences. In the residual recurrence form (matmul.residual, src/passes/residual.ts) the
// block holds dA - I and the check is on I + q(dA - I), with steps in either direction.
// The ranges below are calibrated on the repaired weights.
//
// Ranges: one DAC range per matmul (all rows equal). The emitter folds the DAC range into the
// per-column scale, which is only possible without changing the levels if every row of a
// column shares it; per-row ranges would break exact QAT grids. ADC ranges are per column,
// for the pre-bias sum. Both are the calibrated abs-max times RANGE_MARGIN, computed on the
// weight-quantized model (the ranges the hardware will actually see).
//
// Weight slicing (opts.weightSlices > 1, src/passes/slice-weights.ts): a matmul not on one
// grid already becomes the slices side by side plus slice and add ops; the ranges below are
// calibrated on that model, so each slice gets its own ADC ranges.
//
// Float targets (numerics "float"): weights stay exact and maxLevel is 0, meaning "float
// weights, not on a level grid"; colScale is then 1 everywhere (W = q * 1 with float q).
// Ranges are still calibrated and recorded (reports use them). A layer with an explicit
// quant.levels request is quantized to those levels even on a float target, because the
// request describes the model (trained for ternary weights), not the device.

import { UserError, assert } from "../common/errors.js";
import { valueSizes } from "../ir/sizes.js";
import type { MatMulOp, MatQuant, Model, Op } from "../ir/types.js";
import { maxWeightLevel, type Target } from "../target/types.js";
import { calibrate, matmulKey, type Section } from "./calibrate.js";
import { requestedLevels } from "./quant-request.js";
import { stabilizeS4DModes, type StateBlock } from "./quant-s4d.js";
import { quantizeMatrix } from "./quant-weights.js";
import { SLICED_MATMULS_META, slicedMatmul, sliceWeights, SLICES_META } from "./slice-weights.js";
import { NameSource } from "../ir/names.js";

/** Headroom over the calibrated abs-max: inputs slightly outside the calibration set are not clipped. */
export const RANGE_MARGIN = 1.1;

/** A range for a signal calibration never saw move: any positive value works for a constant 0. */
const UNOBSERVED_RANGE = 1;

function withMargin(absMax: number): number {
  return absMax > 0 ? absMax * RANGE_MARGIN : UNOBSERVED_RANGE;
}

/** Max level for one matmul, or 0 for float weights. */
function levelFor(model: Model, target: Target, section: Section, op: MatMulOp): number {
  const device = maxWeightLevel(target);
  const levels = requestedLevels(model, section, op.out);
  if (levels === undefined) return device ?? 0;
  const wanted = (levels - 1) / 2;
  if (device !== null && wanted > device) {
    const n = target.crossbar.numerics;
    const deviceLevels = n.kind === "quantized" ? n.deviceLevels : 0;
    throw new UserError(
      "resource",
      `layer "${op.layer ?? op.out}" asks for ${levels} weight levels, but target ${target.name} offers ${2 * device + 1} ` +
        `(deviceLevels ${deviceLevels} on differential pairs: -${device}..${device})`,
      { file: model.name, path: op.layer ?? op.out },
    );
  }
  return wanted;
}

export interface QuantizeOptions {
  /**
   * Device pairs per weight (src/passes/slice-weights.ts); default 1. Layers with a requested
   * level count and matmuls already on one level grid are not sliced.
   */
  weightSlices?: number;
}

export function quantize(model: Model, target: Target, calibration: Record<string, Float64Array[]>[] | null, opts: QuantizeOptions = {}): Model {
  if (model.level !== "lowered") {
    throw new UserError("semantic", `quantization expects an IR of level "lowered", got "${model.level}"`, { file: model.name });
  }
  // 1. Weights.
  let sizes: ReturnType<typeof valueSizes> | undefined;
  /** Length of the fused S4D matmul's state operand (lower-s4d: the first operand is the state). */
  const stateLength = (section: Section, op: MatMulOp): number => {
    sizes ??= valueSizes(model);
    const n = sizes[section].get(op.xs[0]!);
    assert(n !== undefined, `S4D matmul "${op.out}" reads unknown state "${op.xs[0]}"`);
    return n;
  };
  const colScales = new Map<string, { maxLevel: number; colScale: number[] }>();
  const slices = opts.weightSlices ?? 1;
  let slicedCount = 0;
  const names = slices > 1 ? new NameSource([...model.inputs.map((i) => i.name), ...model.sections.step.map((o) => o.out), ...model.sections.final.map((o) => o.out)]) : null;
  // Every op is copied here (weights by quantizeMatrix), so the result shares nothing with `model`.
  const quantOp = (section: Section) => (op: Op): Op | Op[] => {
    if (op.op !== "matmul") return structuredClone(op);
    const maxLevel = levelFor(model, target, section, op);
    if (maxLevel === 0) {
      colScales.set(matmulKey(section, op.out), { maxLevel, colScale: new Array<number>(op.weight.cols).fill(1) });
      return structuredClone(op);
    }
    const q = quantizeMatrix(op.weight, maxLevel);
    // S4D matmuls: where the mode blocks lie. Residual form (src/passes/residual.ts): the block
    // holds dA - I, stability is checked on I + q(dA - I).
    const at: number | StateBlock | null = op.origin !== "s4d" ? null : op.residual ? { ...op.residual, residual: true } : stateLength(section, op);
    if (at !== null) {
      try {
        stabilizeS4DModes(op.weight, q.weight, q.colScale, at, maxLevel);
      } catch (e) {
        if (e instanceof UserError) throw new UserError(e.kind, e.diagnostics.map((d) => ({ ...d, location: { file: model.name, path: op.layer ?? op.out } })));
        throw e;
      }
    }
    if (names !== null && q.exactColumns < op.weight.cols && requestedLevels(model, section, op.out) === undefined) {
      const sliced = sliceWeights(op.weight, q, slices, maxLevel, at);
      if (sliced.parts.length > 1) {
        const r = slicedMatmul(op, sliced, names);
        slicedCount++;
        colScales.set(matmulKey(section, r.matmul.out), { maxLevel, colScale: r.colScale });
        return r.ops;
      }
    }
    colScales.set(matmulKey(section, op.out), { maxLevel, colScale: Array.from(q.colScale) });
    const { weight: _old, ...rest } = op;
    return { ...structuredClone(rest), weight: q.weight };
  };
  const weighted: Model = {
    ...model,
    sections: { step: model.sections.step.flatMap(quantOp("step")), final: model.sections.final.flatMap(quantOp("final")) },
  };

  // 2. Ranges, measured on the weight-quantized model.
  const cal = calibrate(weighted, calibration);
  const attach = (section: Section) => (op: Op): Op => {
    if (op.op !== "matmul") return op;
    const key = matmulKey(section, op.out);
    const w = colScales.get(key)!;
    const r = cal.ranges.get(key)!;
    const inRange = withMargin(r.inAbsMax);
    const quant: MatQuant = {
      maxLevel: w.maxLevel,
      colScale: w.colScale,
      inRange: new Array<number>(op.weight.rows).fill(inRange),
      outRange: Array.from(r.outAbsMax, withMargin),
      calibration: cal.source,
    };
    return { ...op, quant };
  };
  return {
    ...structuredClone({ ...model, sections: { step: [], final: [] } }),
    // The ops were already copied in step 1.
    level: "quantized",
    // What slicing did, for the compile summary (src/summary.ts).
    ...(slicedCount > 0 ? { meta: { ...(model.meta ?? {}), [SLICES_META]: slices, [SLICED_MATMULS_META]: slicedCount } } : {}),
    sections: { step: weighted.sections.step.map(attach("step")), final: weighted.sections.final.map(attach("final")) },
  };
}
