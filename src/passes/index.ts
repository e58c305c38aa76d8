// The compiler passes, in pipeline order: lower -> quantize -> tile.

import type { CrossbarPlan } from "../ir/plan.js";
import type { Model } from "../ir/types.js";
import type { Target } from "../target/types.js";
import { lower } from "./lower.js";
import { quantize } from "./quantize.js";
import { tile } from "./tile.js";

export { lower } from "./lower.js";
export { quantize, RANGE_MARGIN } from "./quantize.js";
export { tile, matrixLowerBound } from "./tile.js";
export { calibrate, defaultCalibration, DEFAULT_SEED, DEFAULT_SEQUENCES, DEFAULT_STEPS } from "./calibrate.js";

export interface PassResults {
  lowered: Model;
  quantized: Model;
  plan: CrossbarPlan;
}

/** Runs lower, quantize and tile on a model-level IR. */
export function runPasses(model: Model, target: Target, calibration: Record<string, Float64Array[]>[] | null): PassResults {
  const lowered = lower(model);
  const quantized = quantize(lowered, target, calibration);
  const plan = tile(quantized, target);
  return { lowered, quantized, plan };
}
