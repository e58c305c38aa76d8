// Memory that exists before any op is lowered: the global-memory layout of the model's
// inputs and outputs (what the host reads and writes), and the tile-local buffers that
// hold persistent state.

import { fail } from "../common/errors.js";
import { valueSizes } from "../ir/sizes.js";
import type { Model } from "../ir/types.js";
import type { IoBuffer, Program } from "./program.js";
import { fuseRecurrence, type FusedRecurrence } from "./emit-recurrence.js";
import { maximalRuns } from "./emit-runs.js";
import { columnOwners, valueKey, type Placement, type PlacedPiece } from "./schedule.js";
import type { InstrStreams, Ref } from "./streams.js";

/** Inputs, then step outputs, then final outputs, packed from global address 0. */
export function globalLayout(model: Model): Program["io"] {
  const sizes = valueSizes(model);
  let addr = 0;
  const place = (name: string, size: number): IoBuffer => {
    const io = { name, size, addr };
    addr += size;
    return io;
  };
  const inputs = model.inputs.map((i) => place(i.name, i.size));
  const outSize = (o: Model["outputs"][number]): number =>
    (o.section === "final" ? (sizes.final.get(o.value) ?? sizes.step.get(o.value)) : sizes.step.get(o.value)) ??
    fail("semantic", `output '${o.name}' names value '${o.value}', which the ${o.section} section does not define`);
  const stepOutputs = model.outputs.filter((o) => o.section === "step").map((o) => place(o.name, outSize(o)));
  const finalOutputs = model.outputs.filter((o) => o.section === "final").map((o) => place(o.name, outSize(o)));
  if (addr > 0xffffffff) fail("resource", `the model's inputs and outputs need ${addr} words of global memory, more than 32-bit addresses reach`);
  return { inputs, stepOutputs, finalOutputs, globalWords: addr };
}

export function byName(ios: readonly IoBuffer[]): Map<string, IoBuffer> {
  return new Map(ios.map((io) => [io.name, io]));
}

/** Where a state's words live: parts [off, off + len) of the state, each in a pinned buffer. */
export interface StateLayout {
  size: number;
  parts: { off: number; len: number; ref: Ref }[];
  /** Stored in the order its recurrence matmul reads it (emit-recurrence.ts); `parts` is then empty. */
  fused?: FusedRecurrence;
}

/**
 * Pinned buffers for every state: state persists from step to step, and the sequence reset
 * zeroes it along with all tile memory. A state written from a slice of a distributed
 * recurrence matmul (schedule.ts columnOwners) is split the same way, each part on the tile
 * that computes its new value; any other state is one buffer on the tile the schedule chose.
 * A state only its recurrence matmul (and, in the residual form, the add of its increment)
 * reads is stored in that matmul's read order instead (emit-recurrence.ts), unless `fuse`
 * is false.
 */
export function stateLayouts(model: Model, streams: InstrStreams, placement: Placement, pieces: Map<string, PlacedPiece[]>, fuse = true): Map<string, StateLayout> {
  const defs = new Map(model.sections.step.map((op) => [op.out, op]));
  const owners = (st: string, size: number): Int32Array | null => {
    const write = model.sections.step.find((op) => op.op === "state_write" && op.state === st);
    const slice = write && write.op === "state_write" ? defs.get(write.x) : undefined;
    if (!slice || slice.op !== "slice" || slice.length !== size) return null;
    const mm = defs.get(slice.x);
    if (!mm || mm.op !== "matmul") return null;
    const cols = columnOwners(mm, pieces.get(valueKey("step", mm.out)) ?? []);
    return cols ? cols.subarray(slice.start, slice.start + size) : null;
  };
  const states = new Map<string, StateLayout>();
  for (const st of model.state) {
    const fused = fuse ? fuseRecurrence(model, st.name, st.size, pieces, streams) : null;
    if (fused) {
      states.set(st.name, { size: st.size, parts: [], fused });
      continue;
    }
    const own = owners(st.name, st.size);
    const runs: [number, number, number][] = own ? maximalRuns(st.size, (k, start) => own[k] === own[start]).map(([o, n]) => [o, n, own[o]!]) : [[0, st.size, placement.stateTile.get(st.name) ?? 0]];
    states.set(st.name, { size: st.size, parts: runs.map(([off, len, tile]) => ({ off, len, ref: { buf: streams.buffer(tile, len, true), off: 0 } })) });
  }
  return states;
}
