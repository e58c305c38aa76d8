// Lowering of one IR section (step or final) into the tiles' instruction streams: ops in
// schedule order, each on its scheduled tile; state reads and writes; output stores.

import { fail } from "../common/errors.js";
import type { Model, Op } from "../ir/types.js";
import { lowerMatmul } from "./emit-matmul.js";
import type { Transfers } from "./emit-transfer.js";
import { refOf, SectionValues, wholeBuffer, type Value } from "./emit-values.js";
import { lowerVectorOp } from "./emit-vector.js";
import type { IoBuffer } from "./program.js";
import { orderSection, valueKey, type IrSection, type Placement, type PlacedPiece } from "./schedule.js";
import type { InstrStreams, Ref } from "./streams.js";

/** What every section's lowering shares. */
export interface EmitContext {
  model: Model;
  streams: InstrStreams;
  transfers: Transfers;
  placement: Placement;
  /** Placed pieces per matmul, by valueKey. */
  pieces: Map<string, PlacedPiece[]>;
  /** Buffer of each state, by name. */
  states: Map<string, Ref>;
  inputs: Map<string, IoBuffer>;
  outputs: Map<string, IoBuffer>;
}

function opSymbol(op: Op): string {
  return op.layer ? `${op.layer} (${op.out}: ${op.op})` : `${op.out}: ${op.op}`;
}

/** Lowers `section`; the final section reads step values through `stepValues`. Returns its values. */
export function lowerSection(ctx: EmitContext, section: IrSection, stepValues: SectionValues | null): SectionValues {
  const { model, streams } = ctx;
  streams.section = section;
  const values = new SectionValues(streams, ctx.transfers, ctx.inputs, section, stepValues?.defined ?? null);
  const ops = model.sections[section];
  const defined = new Set(ops.map((o) => o.out));
  const outputs = model.outputs.filter((o) => o.section === section);
  const storeOutput = (out: Model["outputs"][number]): void => {
    streams.attributeTo(`output ${out.name}`);
    const io = ctx.outputs.get(out.name)!;
    const v = values.resolve(out.value);
    const m = v.kind === "mem" ? v : values.local(v, 0);
    streams.store(m.buf.tile, io.addr, refOf(m), m.len);
  };

  for (const op of orderSection(ops)) {
    streams.attributeTo(opSymbol(op));
    const tile = ctx.placement.opTile.get(valueKey(section, op.out)) ?? 0;
    const v = lowerOp(ctx, values, section, op, tile);
    if (v) values.defined.set(op.out, v);
    // Store outputs as soon as they exist, so their buffers need not live to the end.
    for (const out of outputs) if (out.value === op.out && op.op !== "state_write") storeOutput(out);
  }
  // Outputs of values no op of this section defines: model inputs, or step values in final.
  for (const out of outputs) if (!defined.has(out.value)) storeOutput(out);
  return values;
}

/** The instructions of one op on `tile`; its value, or null for a state write. */
function lowerOp(ctx: EmitContext, values: SectionValues, section: IrSection, op: Op, tile: number): Value | null {
  const stateRef = (name: string): Ref => ctx.states.get(name) ?? fail("semantic", `unknown state '${name}'`);
  switch (op.op) {
    case "matmul":
      return lowerMatmul(values, op, ctx.pieces.get(valueKey(section, op.out)) ?? [], tile);
    case "state_read":
      return wholeBuffer(stateRef(op.state).buf);
    case "state_write": {
      const ref = stateRef(op.state);
      const x = values.operand(op.x, ref.buf.tile);
      if (x.len !== ref.buf.len) fail("semantic", `state_write '${op.out}': '${op.x}' has length ${x.len}, state '${op.state}' has ${ref.buf.len}`);
      // Writing the state's own current words back (e.g. an unchanged state) needs no copy.
      if (x.buf !== ref.buf || x.off !== 0) values.streams.copy(ref.buf.tile, ref, refOf(x), x.len);
      return null;
    }
    default:
      return lowerVectorOp(values, op, tile);
  }
}
