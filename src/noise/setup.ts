// From a run's noise request to what the crossbars need: null when the model changes
// nothing (the run then takes the exact noise-free path), else the model, both seeds and
// the device parameters of the target.

import { UserError } from "../common/errors.js";
import type { Target } from "../target/types.js";
import { DeviceBuffers, type ChipSpec } from "./chip.js";
import { noiseActive, type NoiseConfig, type NoiseModel } from "./spec.js";

export interface NoiseSetup {
  model: NoiseModel;
  seed: number;
  readSeed: number;
  chip: ChipSpec & { /** Physical rows of a crossbar: bit lines run to the last one (IR drop). */ physRows: number };
  /** Work arrays shared by the crossbars while the chip is programmed. */
  buffers: DeviceBuffers;
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError("usage", `${what} must be an integer in [0, 2^53), got ${seed}`);
}

/** Validates a noise request against the program's target; `file` names the program in messages. */
export function noiseSetup(target: Target, config: NoiseConfig | null | undefined, file: string): NoiseSetup | null {
  if (config === null || config === undefined || !noiseActive(config.model)) return null;
  checkSeed(config.seed, "the noise seed (--seed)");
  const readSeed = config.readSeed ?? config.seed;
  checkSeed(readSeed, "the read-noise seed (--read-seed)");
  const n = target.crossbar.numerics;
  if (n.kind !== "quantized")
    throw new UserError("unsupported", `device noise needs quantized crossbar numerics (weight levels on conductances); target ${target.name} has float numerics`, { file });
  const { gMinUs, gMaxUs, rows } = target.crossbar;
  return { model: config.model, seed: config.seed, readSeed, chip: { gMinUs, gMaxUs, maxLevel: n.deviceLevels - 1, physRows: rows }, buffers: new DeviceBuffers() };
}
