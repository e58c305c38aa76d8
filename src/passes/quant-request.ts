// Carries the user's per-layer weight-level request (WeightQuantSpec.levels) from a
// model-level op to the matmul it lowers to. MatMulOp has no field for it, so lowering
// records it in the model's free-form `meta` under a key naming the matmul; quantization
// reads it back. Keys survive the JSON round trip between passes.

import type { Model } from "../ir/types.js";

type Section = "step" | "final";

const PREFIX = "quant.levels:";

export function levelsKey(section: Section, matmul: string): string {
  return `${PREFIX}${section}:${matmul}`;
}

/** The number of signed weight levels requested for a matmul, if any. */
export function requestedLevels(model: Model, section: Section, matmul: string): number | undefined {
  const v = model.meta?.[levelsKey(section, matmul)];
  return typeof v === "number" ? v : undefined;
}
