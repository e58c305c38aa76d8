// The IR side of a plugin's `lowerS4dState` hook: splits every fused S4D recurrence matmul
// of a lowered model (src/passes/lower-s4d.ts) by columns into
//   next = [x_{k-1}; u_k] @ W[:, 0:2HM)       the state update x_k = dA ⊙ x_{k-1} + dB u_k,
//                                              computed by the plugin, not on crossbars;
//   y    = [x_{k-1}; u_k] @ W[:, 2HM:2HM+H)   2 Re(C dA x_{k-1}) + (2 Re(C dB) + D) u_k,
//                                              on crossbars (the fused matrix's own y columns).
// y reads x_{k-1} rather than x_k: the same weights as the all-crossbar mapping (so a
// comparison isolates the state update), no division by dA to recover C, and the crossbars
// need not wait for the plugin. Both halves stay ordinary `matmul` ops, so the reference
// evaluator, calibration and verification treat the split model like any other; the plugin
// matmuls are only marked (by name) so tiling skips them and the emitter hands them to the
// plugin.
//
// Only the exact pattern lower() produces is split (state_read -> matmul -> slice state ->
// state_write, slice y) with the diagonal structure checked entry by entry; a recurrence of
// another shape (e.g. one lifted from an ONNX graph that is not diagonal) stays on the
// crossbars.

import type { BlockMatrix, MatMulOp, Model, Op } from "../ir/types.js";
import { operandsOf } from "../ir/operands.js";
import { levelsKey } from "../passes/quant-request.js";
import type { S4DRecurrence } from "./plugin.js";

type Section = "step" | "final";

export interface PluginSplit {
  /** The lowered model with every matched S4D matmul split in two. */
  model: Model;
  /** The state-update matmuls the plugin computes, by `section:name`, with their recurrences. */
  taken: Map<string, S4DRecurrence>;
}

/** Columns [from, from + n) of `w` as a new block matrix (blocks clipped, empty ones dropped). */
export function columnSlice(w: BlockMatrix, from: number, n: number): BlockMatrix {
  const blocks: BlockMatrix["blocks"] = [];
  for (const b of w.blocks) {
    const lo = Math.max(b.col, from);
    const hi = Math.min(b.col + b.cols, from + n);
    if (lo >= hi) continue;
    const cols = hi - lo;
    const data = new Array<number>(b.rows * cols);
    for (let r = 0; r < b.rows; r++) for (let c = 0; c < cols; c++) data[r * cols + c] = b.data[r * b.cols + (lo - b.col) + c]!;
    blocks.push({ row: b.row, col: lo - from, rows: b.rows, cols, data });
  }
  return { rows: w.rows, cols: n, blocks };
}

/**
 * dA, dB of a state-update matrix W [2HM + H, 2HM] if it has the diagonal S4D structure
 * (per mode the block [[ar, ai], [-ai, ar]] on its own rows/columns, per channel a B row
 * feeding only its own modes, nothing else); null otherwise.
 */
export function diagonalRecurrence(w: BlockMatrix, H: number, M: number): Omit<S4DRecurrence, "layer" | "bias"> | null {
  const S = 2 * H * M;
  if (w.rows !== S + H || w.cols !== S) return null;
  // One pass over the stored entries (O(nonzeros), the matrix is (2HM+H) x 2HM): each
  // nonzero must sit in its mode's 2x2 block or in its channel's B row.
  const block = new Float64Array(4 * H * M); // per mode [a00, a01, a10, a11] (row-major, W[in][out])
  const b = new Float64Array(S); // B row entries, by state column
  for (const blk of w.blocks)
    for (let r = 0; r < blk.rows; r++)
      for (let c = 0; c < blk.cols; c++) {
        const v = blk.data[r * blk.cols + c]!;
        if (v === 0) continue;
        const row = blk.row + r;
        const col = blk.col + c;
        if (row < S) {
          if (row >> 1 !== col >> 1) return null;
          block[4 * (row >> 1) + 2 * (row & 1) + (col & 1)] = v;
        } else {
          const h = row - S;
          if (col < 2 * h * M || col >= 2 * (h + 1) * M) return null;
          b[col] = v;
        }
      }
  const dA = { re: new Float64Array(H * M), im: new Float64Array(H * M) };
  const dB = { re: new Float64Array(H * M), im: new Float64Array(H * M) };
  for (let i = 0; i < H * M; i++) {
    const [a00, a01, a10, a11] = [block[4 * i]!, block[4 * i + 1]!, block[4 * i + 2]!, block[4 * i + 3]!];
    // xr' = ar xr - ai xi, xi' = ai xr + ar xi in crossbar orientation: [[ar, ai], [-ai, ar]].
    if (a10 !== -a01 || a11 !== a00) return null;
    dA.re[i] = a00;
    dA.im[i] = a01;
    dB.re[i] = b[2 * i]!;
    dB.im[i] = b[2 * i + 1]!;
  }
  return { channels: H, modes: M, dA, dB };
}

/** Splits the fused S4D matmuls of `lowered` (see the header); pure. */
export function splitS4DForPlugin(lowered: Model): PluginSplit {
  const taken = new Map<string, S4DRecurrence>();
  const meta: Record<string, string | number | boolean> = { ...(lowered.meta ?? {}) };
  const stateSize = new Map(lowered.state.map((s) => [s.name, s.size]));
  const splitSection = (section: Section): Op[] => {
    const ops = lowered.sections[section];
    const readers = (name: string): Op[] => ops.filter((o) => operandsOf(o).includes(name));
    const isOutput = (name: string): boolean => lowered.outputs.some((o) => o.value === name);
    const replace = new Map<Op, Op[]>();
    for (const mm of ops) {
      if (mm.op !== "matmul" || mm.origin !== "s4d" || mm.xs.length !== 2) continue;
      const read = ops.find((o) => o.op === "state_read" && o.out === mm.xs[0]);
      if (!read || read.op !== "state_read") continue;
      const S = stateSize.get(read.state) ?? -1;
      const H = mm.weight.cols - S;
      if (S <= 0 || H <= 0 || S % (2 * H) !== 0 || mm.weight.rows !== S + H) continue;
      const users = readers(mm.out);
      const next = users.find((o) => o.op === "slice" && o.x === mm.out && o.start === 0 && o.length === S);
      const y = users.find((o) => o.op === "slice" && o.x === mm.out && o.start === S && o.length === H);
      if (users.length !== 2 || !next || !y || isOutput(mm.out)) continue;
      const write = ops.find((o) => o.op === "state_write" && o.x === next.out && o.state === read.state);
      if (!write) continue;
      const rec = diagonalRecurrence(columnSlice(mm.weight, 0, S), H, S / (2 * H));
      if (rec === null) continue;
      const layer = mm.layer !== undefined ? { layer: mm.layer } : {};
      // A bias (front ends fold affine ops before the layer into it) splits with the columns.
      const stateBias = mm.bias?.slice(0, S);
      const yBias = mm.bias?.slice(S, S + H);
      const stateMm: MatMulOp = { op: "matmul", out: next.out, xs: [...mm.xs], weight: columnSlice(mm.weight, 0, S), ...(stateBias ? { bias: stateBias } : {}), origin: "s4d", ...layer };
      const yMm: MatMulOp = { op: "matmul", out: y.out, xs: [...mm.xs], weight: columnSlice(mm.weight, S, H), ...(yBias ? { bias: yBias } : {}), origin: "dense", ...layer };
      const bias =
        stateBias && stateBias.some((v) => v !== 0)
          ? { re: Float64Array.from({ length: S / 2 }, (_, i) => stateBias[2 * i]!), im: Float64Array.from({ length: S / 2 }, (_, i) => stateBias[2 * i + 1]!) }
          : null;
      replace.set(mm, [stateMm, yMm]);
      replace.set(next, []);
      replace.set(y, []);
      taken.set(`${section}:${next.out}`, { layer: mm.layer ?? mm.out, ...rec, bias });
      // A weight-level request of the S4D layer applies to what stays on crossbars.
      const key = levelsKey(section, mm.out);
      if (key in meta) {
        meta[levelsKey(section, y.out)] = meta[key]!;
        delete meta[key];
      }
    }
    return ops.flatMap((o) => replace.get(o) ?? [structuredClone(o)]);
  };
  const step = splitSection("step");
  const final = splitSection("final");
  const model: Model = {
    ...lowered,
    inputs: lowered.inputs.map((i) => ({ ...i })),
    outputs: lowered.outputs.map((o) => ({ ...o })),
    state: lowered.state.map((s) => ({ ...s })),
    sections: { step, final },
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
  };
  if (Object.keys(meta).length === 0) delete model.meta;
  return { model, taken };
}

/** `model` without the plugin's matmuls: what tiling sees (they get no crossbars). */
export function withoutTaken(model: Model, taken: ReadonlyMap<string, unknown>): Model {
  const keep = (section: Section) => model.sections[section].filter((o) => !(o.op === "matmul" && taken.has(`${section}:${o.out}`)));
  return { ...model, sections: { step: keep("step"), final: keep("final") } };
}

/**
 * The quantized model as the chip computes it: the plugin's matmuls keep their float weights
 * and carry no quant record (they are not on crossbars, so no DAC/ADC/levels apply; the
 * verifier's bound and reports see them as exact), everything else as quantized.
 */
export function unquantizeTaken(quantized: Model, lowered: Model, taken: ReadonlyMap<string, unknown>): Model {
  const restore = (section: Section): Op[] =>
    quantized.sections[section].map((o) => {
      if (o.op !== "matmul" || !taken.has(`${section}:${o.out}`)) return o;
      const original = lowered.sections[section].find((l) => l.op === "matmul" && l.out === o.out);
      if (!original) throw new Error(`internal error: plugin matmul '${o.out}' is missing from the lowered model`);
      return structuredClone(original);
    });
  return { ...quantized, sections: { step: restore("step"), final: restore("final") } };
}
