// Residual recurrence mapping (IR level "lowered" -> "lowered"): x_k = x_{k-1} + (dA - I) x_{k-1} + dB u_k.
//
// An S4D recurrence matmul maps [x_{k-1}; u...] to [x_k; y...]. Its state->next-state block
// dA holds slow decays (|dA| close to 1), and rounding those entries to the crossbar's weight
// levels (step max|column| / L, about 1/L of the largest entry) changes every mode's decay
// rate by up to half a level: on 31 levels that is the difference between a memory of 30
// steps and one of 1000. This pass puts dA - I on the crossbar instead (entries of size
// dt |A|, a few hundredths) and adds the previous state back digitally, where the vector
// unit's float32 add is exact to float32 rounding. The state no longer passes through the
// DAC and the level grid on its identity path: the DAC error of x_{k-1} and the rounding of
// the block enter only through the crossbar's share of the update (the column scale may still
// be set by dB, which state scaling lets grow to |dA|; see scale-states.ts). Cost: one vector
// `add` of the state length per step, done in place per channel-group tile
// (src/backend/emit-recurrence.ts; docs/QUANTIZATION.md "Cost and default").
//
// Which matmuls: origin "s4d" matmuls of the step section whose operand p is the value of a
// state_read(S), where the unique state_write(S) stores the matmul's result or a slice of it
// of S's length. The state block is found by this dataflow, never by fixed offsets: rows
// [offset of operand p, + n) x cols [slice start, + n) (n = |S|). Other operands (u rows)
// and columns (y) are untouched, so y_k = C dA x_{k-1} + ... stays exactly what it was.
//
// The rewrite: W[row + i][col + i] -= 1 for i < n; the value that held x_k (the slice, or
// the matmul's result when the whole result is the state) now holds the increment, and a new
// `add` op computes x_k = increment + x_{k-1} under the old name (every consumer of x_k,
// the state_write included, is unchanged). The mapping is recorded on the matmul as
// `residual: { row, col, length }`: quantization (quant-s4d: stability of I + q(dA - I)),
// reports and the QAT config read it. A matmul that already has the record is left alone,
// so the pass is idempotent (compiling a `--emit lowered-ir` IR again changes nothing).
//
// In exact arithmetic the model is unchanged. In float64 dA - 1 is exact for dA in
// [0.5, 2] (Sterbenz) and at most one rounding otherwise; the reference evaluator agrees
// with the direct form to float32 rounding (test/residual.test.ts).

import { assert } from "../common/errors.js";
import { valueSizes } from "../ir/sizes.js";
import type { BlockMatrix, MatMulOp, Model, Op } from "../ir/types.js";

/** How an S4D recurrence is mapped to the crossbar (compiler option `--recurrence`). */
export type RecurrenceForm = "direct" | "residual";
export const RECURRENCE_FORMS: readonly RecurrenceForm[] = ["direct", "residual"];
/** The compiler's default (see docs/QUANTIZATION.md "Residual recurrence form" for the measurements behind it). */
export const DEFAULT_RECURRENCE: RecurrenceForm = "residual";

/** Where the state block of one recurrence matmul lies and how its next state is consumed. */
export interface RecurrenceSite {
  /** Index of the matmul in the step section. */
  index: number;
  /** Value name of the previous state (the state_read's result). */
  prev: string;
  /** First weight row of the previous-state operand. */
  row: number;
  /** First weight column of the next state. */
  col: number;
  /** State length n. */
  length: number;
  /** Index of the slice op producing x_k, or -1 when x_k is the matmul's whole result. */
  slice: number;
}

/**
 * The recurrence sites of a lowered model's step section (see the file comment). Matmuls
 * already in residual form are not sites.
 */
export function recurrenceSites(model: Model): RecurrenceSite[] {
  const step = model.sections.step;
  const sizes = valueSizes(model).step;
  const defIndex = new Map<string, number>();
  step.forEach((op, i) => defIndex.set(op.out, i));
  const sites: RecurrenceSite[] = [];
  step.forEach((op, index) => {
    if (op.op !== "matmul" || op.origin !== "s4d" || op.residual !== undefined) return;
    let row = 0;
    const found: Array<Omit<RecurrenceSite, "index">> = [];
    for (const x of op.xs) {
      const n = sizes.get(x);
      if (n === undefined) return;
      const read = step[defIndex.get(x) ?? -1];
      if (read?.op === "state_read") {
        const writes = step.filter((o) => o.op === "state_write" && o.state === read.state);
        if (writes.length === 1) {
          const next = (writes[0] as Extract<Op, { op: "state_write" }>).x;
          if (next === op.out && op.weight.cols === n) found.push({ prev: x, row, col: 0, length: n, slice: -1 });
          else {
            const si = defIndex.get(next) ?? -1;
            const sl = step[si];
            if (sl?.op === "slice" && sl.x === op.out && sl.length === n) found.push({ prev: x, row, col: sl.start, length: n, slice: si });
          }
        }
      }
      row += n;
    }
    // One state feeding itself; a matmul reading several states is not an S4D recurrence.
    if (found.length === 1) sites.push({ index, ...found[0]! });
  });
  return sites;
}

/** W[row + i][col + i] += delta for i < n on a copy (a diagonal entry outside every block gets a 1x1 block). */
export function addToDiagonal(w: BlockMatrix, row: number, col: number, n: number, delta: number): BlockMatrix {
  const blocks = w.blocks.map((b) => ({ ...b, data: b.data.slice() }));
  const extra: BlockMatrix["blocks"] = [];
  for (let i = 0; i < n; i++) {
    const r = row + i;
    const c = col + i;
    const b = blocks.find((x) => r >= x.row && r < x.row + x.rows && c >= x.col && c < x.col + x.cols);
    if (b) b.data[(r - b.row) * b.cols + (c - b.col)] += delta;
    else extra.push({ row: r, col: c, rows: 1, cols: 1, data: [delta] });
  }
  return { rows: w.rows, cols: w.cols, blocks: [...blocks, ...extra] };
}

/** A value name not yet defined in the section. */
function freshName(taken: Set<string>, base: string): string {
  let name = `${base}.delta`;
  for (let k = 2; taken.has(name); k++) name = `${base}.delta${k}`;
  taken.add(name);
  return name;
}

/** Rewrites every recurrence site to the residual form (see the file comment). Pure. */
export function residualRecurrence(model: Model): Model {
  assert(model.level === "lowered", `the residual recurrence pass expects a lowered IR, got "${model.level}"`);
  const out: Model = structuredClone(model);
  const sites = recurrenceSites(out);
  if (sites.length === 0) return out;
  const step = out.sections.step;
  const taken = new Set<string>([...step.map((o) => o.out), ...out.sections.final.map((o) => o.out), ...out.inputs.map((i) => i.name)]);
  // Inserted ops, keyed by the index they follow; applied back to front so indices stay valid.
  const inserts: Array<{ after: number; op: Op }> = [];
  for (const s of sites) {
    const mm = step[s.index] as MatMulOp;
    mm.weight = addToDiagonal(mm.weight, s.row, s.col, s.length, -1);
    mm.residual = { row: s.row, col: s.col, length: s.length };
    const layer = mm.layer !== undefined ? { layer: mm.layer } : {};
    if (s.slice >= 0) {
      // The slice now yields the increment; x_k keeps its name, computed by the add.
      const sl = step[s.slice]!;
      const next = sl.out;
      const delta = freshName(taken, next);
      sl.out = delta;
      inserts.push({ after: s.slice, op: { op: "add", out: next, a: delta, b: s.prev, ...layer } });
    } else {
      // The whole result is the state: consumers of the result move to the add's value.
      const next = freshName(taken, `${mm.out}.next`);
      // Final-section ops see step values only through meanpool.
      for (const op of [...step, ...out.sections.final.filter((o) => o.op === "meanpool")]) {
        if (op === mm) continue;
        const o = op as unknown as Record<string, unknown>;
        for (const k of ["x", "a", "b"]) if (o[k] === mm.out) o[k] = next;
        if (Array.isArray(o.xs)) o.xs = (o.xs as string[]).map((x) => (x === mm.out ? next : x));
      }
      for (const o of out.outputs) if (o.value === mm.out && o.section === "step") o.value = next;
      inserts.push({ after: s.index, op: { op: "add", out: next, a: mm.out, b: s.prev, ...layer } });
    }
  }
  inserts.sort((a, b) => b.after - a.after);
  for (const { after, op } of inserts) step.splice(after + 1, 0, op);
  return out;
}
