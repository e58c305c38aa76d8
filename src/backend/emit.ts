// The emitter: a lowered/quantized model + its crossbar plan -> a Program. This file only
// sequences the steps, each in its own module, in pipeline order:
//   1. schedule.ts     op order, the tile of every crossbar and every op;
//   2. emit-layout.ts  global memory of inputs/outputs, state buffers;
//   3. emit-section.ts each IR section's ops as instructions over symbolic buffers
//                      (streams.ts), built by emit-matmul.ts (with emit-gather.ts) and
//                      emit-vector.ts; values reach other tiles via emit-values.ts and
//                      emit-transfer.ts;
//   4. emit-tiles.ts   buffer addresses (allocate.ts) patched into the instructions;
//   5. images.ts       crossbar images, with the plan's pieces and bounds recorded for reports.

import { fail } from "../common/errors.js";
import { sha256Hex } from "../common/json.js";
import type { CrossbarPlan } from "../ir/plan.js";
import type { Model } from "../ir/types.js";
import { targetToJson } from "../target/load.js";
import type { Target } from "../target/types.js";
import { byName, globalLayout, stateLayouts } from "./emit-layout.js";
import { lowerSection, type EmitContext } from "./emit-section.js";
import { assembleTiles } from "./emit-tiles.js";
import { Transfers } from "./emit-transfer.js";
import { buildImages, planBounds, withPieces } from "./images.js";
import { MAX_LOCAL_ADDRESS } from "./isa.js";
import type { PluginEmit } from "./emit-plugin.js";
import { BASE_FORMAT_VERSION, PLUGIN_FORMAT_VERSION, type PluginIdentity, type Program } from "./program.js";
import { fusedResidualAdds, placementView } from "./emit-recurrence.js";
import { assignCrossbarTiles, piecesByMatmul, placeOps, valueKey } from "./schedule.js";
import { InstrStreams } from "./streams.js";
import { pipelineSteps } from "./software-pipeline.js";
import { occupancy } from "../interp/timing.js";

export interface EmitOptions {
  compilerVersion?: string;
  /** Store recurrence states in their crossbars' read order (emit-recurrence.ts); default on. Off: the plain layout, for comparison. */
  fuseStates?: boolean;
  /** Software-pipeline the step streams with step delays (software-pipeline.ts); default off. */
  pipelineSteps?: boolean;
  /** A plugin target: the plugin, the matmuls it computes (emit-plugin.ts) and its identity for the program. */
  plugin?: PluginEmit & { identity: PluginIdentity };
}

function checkEmittable(model: Model, plan: CrossbarPlan, target: Target): void {
  if (model.level === "model") fail("semantic", `model '${model.name}' is not lowered; run the lowering pass before emission`);
  if (plan.rows !== target.crossbar.rows || plan.cols !== target.crossbar.cols)
    fail("semantic", `the crossbar plan is for ${plan.rows}x${plan.cols} crossbars but target '${target.name}' has ${target.crossbar.rows}x${target.crossbar.cols}`);
  for (const xb of plan.crossbars) if (!(Number.isInteger(xb.id) && xb.id >= 0 && xb.id <= MAX_LOCAL_ADDRESS)) fail("resource", `crossbar id ${xb.id} does not fit the ISA's 16-bit crossbar field`);
}

function targetRecord(target: Target): Program["target"] {
  const json = targetToJson(target);
  return { name: target.name, sha256: sha256Hex(json), json };
}

/** Compiles a lowered (float targets) or quantized model with its crossbar plan to a Program. */
export function emitProgram(model: Model, plan: CrossbarPlan, target: Target, opts: EmitOptions = {}): Program {
  checkEmittable(model, plan, target);
  const tileOf = assignCrossbarTiles(plan, model, target);
  const pieces = piecesByMatmul(plan, tileOf);
  // Tiles no crossbar is on, for stages of vector ops (placeOps).
  const used = new Set([0, ...tileOf.values()]);
  const maxTiles = target.tiles.count === "unlimited" ? used.size + model.sections.step.length : target.tiles.count;
  const spare = Array.from({ length: maxTiles }, (_, t) => t).filter((t) => !used.has(t));
  // A plugin may compute recurrence matmuls itself: states keep the plain layout then.
  const fuse = !opts.plugin && opts.fuseStates !== false;
  // Residual-form state adds done in place (emit-recurrence.ts) are placed as if absent; their
  // placement entry (unused by the fused lowering) is the increment's tile.
  const adds = fuse ? fusedResidualAdds(model, pieces) : new Map<string, string>();
  const placement = placeOps(adds.size > 0 ? placementView(model, adds) : model, pieces, spare);
  for (const [add, slice] of adds) placement.opTile.set(valueKey("step", add), placement.opTile.get(valueKey("step", slice)) ?? 0);
  const io = globalLayout(model);

  const streams = new InstrStreams();
  // Tile 0 always exists (ops and output stores without a scheduled tile fall back to it),
  // and so does every tile holding a crossbar.
  streams.ensureTile(0);
  for (const t of tileOf.values()) streams.ensureTile(t);
  const ctx: EmitContext = {
    model,
    streams,
    transfers: new Transfers(streams),
    placement,
    pieces,
    states: stateLayouts(model, streams, placement, pieces, fuse),
    inputs: byName(io.inputs),
    outputs: byName([...io.stepOutputs, ...io.finalOutputs]),
    ...(opts.plugin ? { plugin: opts.plugin } : {}),
  };
  // `init` stays empty: constants and zeroed state come with the sequence reset.
  const step = lowerSection(ctx, "step", null);
  lowerSection(ctx, "final", step);
  // Plugin instructions declare their accesses at run time only: no reordering around them.
  if (opts.pipelineSteps && !opts.plugin) pipelineSteps(streams, io.inputs, io.stepOutputs, (ins) => occupancy(target, ins).cycles);
  const tiles = assembleTiles(streams, target);

  return {
    formatVersion: opts.plugin ? PLUGIN_FORMAT_VERSION : BASE_FORMAT_VERSION,
    compilerVersion: opts.compilerVersion ?? "unknown",
    modelName: model.name,
    target: targetRecord(target),
    io,
    crossbars: withPieces(buildImages(model, plan, target, tileOf), plan, model, tiles),
    tiles,
    symbols: streams.symbols.names,
    bounds: planBounds(plan),
    ...(opts.plugin ? { plugin: opts.plugin.identity } : {}),
  };
}
