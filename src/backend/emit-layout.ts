// Memory that exists before any op is lowered: the global-memory layout of the model's
// inputs and outputs (what the host reads and writes), and the tile-local buffers that
// hold persistent state.

import { fail } from "../common/errors.js";
import { valueSizes } from "../ir/sizes.js";
import type { Model } from "../ir/types.js";
import type { IoBuffer, Program } from "./program.js";
import type { Placement } from "./schedule.js";
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

/**
 * A pinned buffer per state on the tile the schedule chose: state persists from step to
 * step, and the sequence reset zeroes it along with all tile memory.
 */
export function stateBuffers(model: Model, streams: InstrStreams, placement: Placement): Map<string, Ref> {
  const states = new Map<string, Ref>();
  for (const st of model.state) states.set(st.name, { buf: streams.buffer(placement.stateTile.get(st.name) ?? 0, st.size, true), off: 0 });
  return states;
}
