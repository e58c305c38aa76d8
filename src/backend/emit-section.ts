// Lowering of one IR section (step or final) into the tiles' instruction streams: ops in
// schedule order, each on its scheduled tile; state reads and writes; output stores.

import { fail } from "../common/errors.js";
import type { Model, Op } from "../ir/types.js";
import { lowerMatmul } from "./emit-matmul.js";
import { fusedStateValue, lowerFusedMatmul, lowerResidualAdd } from "./emit-recurrence.js";
import { lowerPluginMatmul, type PluginEmit } from "./emit-plugin.js";
import type { Transfers } from "./emit-transfer.js";
import type { StateLayout } from "./emit-layout.js";
import { refOf, SectionValues, sliceOf, wholeBuffer, windowParts, type Value } from "./emit-values.js";
import { lowerVectorOp } from "./emit-vector.js";
import type { IoBuffer } from "./program.js";
import { columnOwners, orderSection, valueKey, type IrSection, type Placement, type PlacedPiece } from "./schedule.js";
import type { InstrStreams } from "./streams.js";

/** What every section's lowering shares. */
export interface EmitContext {
  model: Model;
  streams: InstrStreams;
  transfers: Transfers;
  placement: Placement;
  /** Placed pieces per matmul, by valueKey. */
  pieces: Map<string, PlacedPiece[]>;
  /** Buffers of each state, by name. */
  states: Map<string, StateLayout>;
  inputs: Map<string, IoBuffer>;
  outputs: Map<string, IoBuffer>;
  /** The target plugin and the matmuls it computes instead of crossbars (emit-plugin.ts). */
  plugin?: PluginEmit;
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
  const stateOf = (name: string): StateLayout => ctx.states.get(name) ?? fail("semantic", `unknown state '${name}'`);
  switch (op.op) {
    case "matmul": {
      const viaPlugin = ctx.plugin ? lowerPluginMatmul(values, section, op, tile, ctx.plugin) : null;
      if (viaPlugin) return viaPlugin;
      const pieces = ctx.pieces.get(valueKey(section, op.out)) ?? [];
      const fused = section === "step" ? [...ctx.states.values()].find((s) => s.fused?.matmul === op.out)?.fused : undefined;
      if (fused) return lowerFusedMatmul(values, op, pieces, fused);
      return lowerMatmul(values, op, pieces, tile, section === "step" ? columnOwners(op, pieces) : null);
    }
    case "state_read": {
      const { parts, size, fused } = stateOf(op.state);
      if (fused) return fusedStateValue(fused);
      if (parts.length === 1) return wholeBuffer(parts[0]!.ref.buf);
      return { kind: "dist", off: 0, len: size, parts: parts.map((p) => ({ off: p.off, mem: wholeBuffer(p.ref.buf) })) };
    }
    case "state_write": {
      const st = stateOf(op.state);
      const x = values.resolve(op.x);
      if (x.len !== st.size) fail("semantic", `state_write '${op.out}': '${op.x}' has length ${x.len}, state '${op.state}' has ${st.size}`);
      // A fused state's new value is already in place (emit-recurrence.ts).
      if (st.fused) return null;
      for (const part of st.parts) {
        const src = sliceOf(x, part.off, part.len);
        // Writing the state's own current words back (e.g. an unchanged state) needs no copy.
        const own = src.kind === "dist" ? windowParts(src) : [];
        const whole = src.kind === "mem" ? src : own.length === 1 ? own[0]!.mem : null;
        if (whole && whole.buf === part.ref.buf && whole.off === 0) continue;
        values.into(src, part.ref.buf.tile, part.ref);
      }
      return null;
    }
    case "add": {
      // The residual form's add of increment and state, done in place on the state's tiles.
      const fused = section === "step" ? [...ctx.states.values()].find((s) => s.fused?.residual?.out === op.out)?.fused : undefined;
      if (fused) return lowerResidualAdd(values, fused);
      return lowerVectorOp(values, op, tile);
    }
    default:
      return lowerVectorOp(values, op, tile);
  }
}
