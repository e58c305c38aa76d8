// k-step unrolling (IR level "lowered" -> "lowered"): one program step advances the model k
// time steps, so one crossbar MVM advances every diagonal S4D recurrence k steps.
//
// The step section becomes k sub-steps. Input u of width d becomes k*d (time steps
// t+1..t+k concatenated), every step output of width o becomes k*o (y_{t+1..t+k}), and:
//
//   * An S4D recurrence, out = [x; u_1..] @ W with W = [[A, Cm], [Bm, Dm]] (rows: state, then
//     the other inputs; cols: new state, then the outputs y), found by its dataflow
//     (state_read S -> matmul -> slice [0, L) -> state_write S, see lower-s4d.ts), becomes ONE
//     matmul [x_t; u_0; ..; u_{k-1}] -> [x_{t+k}; y_0; ..; y_{k-1}] (row-vector convention,
//     sub-steps 0-based, x^(j+1) = x^(j) A + u_j Bm + b_s, y_j = x^(j) Cm + u_j Dm + b_y):
//         x_{t+k} = x_t A^k + sum_i u_i Bm A^(k-1-i)            + b_s (I + A + .. + A^(k-1))
//         y_j     = x_t A^j Cm + sum_{i<j} u_i Bm A^(j-1-i) Cm + u_j Dm
//                                                              + b_s (I + .. + A^(j-1)) Cm + b_y
//     computed with sparse products on the lowered weight (state scaling included: it is a
//     similarity transform, so it commutes). In the residual form (src/passes/residual.ts:
//     the matmul holds Q = A - I, an `add` restores x_{t+1} = delta + x_t) the pass unrolls
//     A = Q + I and keeps the form: the merged matmul holds A^k - I, one add after it. Powers of a 2x2-block-diagonal A stay 2x2-block-
//     diagonal, so the result is stored as small blocks again and every S4D channel stays one
//     connected component of the nonzero graph (the channel-group tiler relies on it).
//   * Any other state (meanpool accumulators, recurrences of other shapes) is chained through
//     the sub-steps: sub-step j reads what sub-step j-1 wrote, only the last sub-step writes.
//     This is exact for every state, just not one MVM per k steps.
//   * Every other op is replicated per sub-step under fresh names (a dense matmul becomes k
//     matmuls, hence k times its crossbars: the backend has no way to share one crossbar
//     between sub-steps).
//   * div_steps in `final` divides by the number of program steps; the pass scales its operand
//     by 1/k first, so it divides by the number of time steps (the IR stays self-contained:
//     the reference evaluator runs the unrolled IR on chunked sequences unchanged).
//
// The unrolled IR records k (`Model.unroll`); the program records it too, and the runtime
// (src/interp/run.ts) chunks [B, T, d] inputs into program steps and un-chunks outputs.
// A sequence whose length T is not a multiple of k is zero-padded at its end: exact for step
// outputs (the padded steps' outputs are dropped), not for final outputs (the padded steps
// would enter the final readout), so programs with final outputs refuse such T.
// The pass is pure: the input model is not modified and shares no arrays with the output.

import { assert, UserError } from "../common/errors.js";
import { MAX_UNROLL } from "../backend/program.js";
import { NameSource } from "../ir/names.js";
import { operandsOf } from "../ir/operands.js";
import { valueSizes } from "../ir/sizes.js";
import type { BinaryOp, BlockMatrix, MatMulOp, MatrixBlock, Model, Op, SliceOp, StateReadOp, StateWriteOp } from "../ir/types.js";
import { levelsKey, requestedLevels } from "./quant-request.js";

export { MAX_UNROLL };

/** A deep copy of `op` with every operand renamed by `f` and its result named `out`. */
function renamed(op: Op, out: string, f: (v: string) => string): Op {
  const c = structuredClone(op) as unknown as Record<string, unknown>;
  for (const k of ["x", "a", "b"]) if (typeof c[k] === "string") c[k] = f(c[k] as string);
  if (Array.isArray(c.xs)) c.xs = (c.xs as string[]).map(f);
  c.out = out;
  return c as unknown as Op;
}

// --- sparse matrix algebra (row -> col -> value) ---------------------------------------

type Sparse = Map<number, Map<number, number>>;

function put(m: Sparse, r: number, c: number, v: number): void {
  if (v === 0) return;
  let row = m.get(r);
  if (!row) m.set(r, (row = new Map()));
  row.set(c, (row.get(c) ?? 0) + v);
}

/** The entries of `w` in rows [r0, r1) and cols [c0, c1), re-indexed from 0. */
function sub(w: BlockMatrix, r0: number, r1: number, c0: number, c1: number): Sparse {
  const m: Sparse = new Map();
  for (const b of w.blocks)
    for (let r = 0; r < b.rows; r++) {
      const row = b.row + r;
      if (row < r0 || row >= r1) continue;
      for (let c = 0; c < b.cols; c++) {
        const col = b.col + c;
        if (col >= c0 && col < c1) put(m, row - r0, col - c0, b.data[r * b.cols + c]!);
      }
    }
  return m;
}

function mul(a: Sparse, b: Sparse): Sparse {
  const out: Sparse = new Map();
  for (const [r, row] of a)
    for (const [k, v] of row) {
      const bk = b.get(k);
      if (bk) for (const [c, w] of bk) put(out, r, c, v * w);
    }
  return out;
}

function identity(n: number): Sparse {
  const m: Sparse = new Map();
  for (let i = 0; i < n; i++) put(m, i, i, 1);
  return m;
}

function addInto(acc: Sparse, m: Sparse): void {
  for (const [r, row] of m) for (const [c, v] of row) put(acc, r, c, v);
}

/** A row vector as a 1-row sparse matrix. */
function rowVector(v: readonly number[]): Sparse {
  const m: Sparse = new Map();
  v.forEach((x, i) => put(m, 0, i, x));
  return m;
}

/**
 * Entries (global row, col) -> blocks: each row's nonzero columns split into runs of
 * consecutive columns, and a run continues the block above it when that block covers the
 * same columns and ends on the previous row. A 2x2 rotation stays one 2x2 block, a channel's
 * C column one 2M x 1 block, so the matrix stays as small as its structure.
 */
function toBlocks(rows: number, cols: number, m: Sparse): BlockMatrix {
  const blocks: MatrixBlock[] = [];
  const open = new Map<string, { block: MatrixBlock; last: number }>();
  const rowIds = [...m.keys()].sort((a, b) => a - b);
  for (const r of rowIds) {
    const entries = [...m.get(r)!.entries()].filter(([, v]) => v !== 0).sort((a, b) => a[0] - b[0]);
    let i = 0;
    while (i < entries.length) {
      let j = i + 1;
      while (j < entries.length && entries[j]![0] === entries[j - 1]![0] + 1) j++;
      const c0 = entries[i]![0];
      const key = `${c0}:${j - i}`;
      const values = entries.slice(i, j).map(([, v]) => v);
      const prev = open.get(key);
      if (prev && prev.last === r - 1) {
        prev.block.rows++;
        prev.block.data.push(...values);
        prev.last = r;
      } else {
        const block: MatrixBlock = { row: r, col: c0, rows: 1, cols: j - i, data: values };
        blocks.push(block);
        open.set(key, { block, last: r });
      }
      i = j;
    }
  }
  return { rows, cols, blocks: blocks.sort((a, b) => a.row - b.row || a.col - b.col) };
}

/**
 * The k-step matrix and bias of a recurrence matmul with state length L (see the file
 * comment): rows [state; u_0; ..; u_{k-1}], cols [state; y_0; ..; y_{k-1}].
 */
export function unrolledRecurrence(w: BlockMatrix, bias: readonly number[] | undefined, L: number, k: number, residual = false): { weight: BlockMatrix; bias?: number[] } {
  const n = w.rows - L;
  const P = w.cols - L;
  // Residual form: the state block holds A - I (and will hold A^k - I).
  const A = sub(w, 0, L, 0, L);
  if (residual) addInto(A, identity(L));
  const Bm = sub(w, L, w.rows, 0, L);
  const Cm = sub(w, 0, L, L, w.cols);
  const Dm = sub(w, L, w.rows, L, w.cols);
  const pow: Sparse[] = [identity(L)];
  for (let i = 1; i <= k; i++) pow.push(mul(pow[i - 1]!, A));
  const BA = pow.map((p) => mul(Bm, p)); // Bm A^i
  const AC = pow.map((p) => mul(p, Cm)); // A^i Cm
  const out: Sparse = new Map();
  const place = (m: Sparse, r0: number, c0: number): void => {
    for (const [r, row] of m) for (const [c, v] of row) put(out, r0 + r, c0 + c, v);
  };
  place(pow[k]!, 0, 0);
  if (residual) for (let i = 0; i < L; i++) put(out, i, i, -1);
  for (let i = 0; i < k; i++) place(BA[k - 1 - i]!, L + i * n, 0);
  for (let j = 0; j < k; j++) {
    const col = L + j * P;
    place(AC[j]!, 0, col);
    place(Dm, L + j * n, col);
    for (let i = 0; i < j; i++) place(mul(BA[j - 1 - i]!, Cm), L + i * n, col);
  }
  const weight = toBlocks(L + k * n, L + k * P, out);
  if (bias === undefined) return { weight };
  // b_s (I + .. + A^(j-1)) accumulated per sub-step.
  const bs = rowVector(bias.slice(0, L));
  const by = bias.slice(L);
  const result = new Array<number>(L + k * P).fill(0);
  const geometric: Sparse = new Map(); // sum_{l<j} A^l
  for (let j = 0; j < k; j++) {
    const yb = mul(mul(bs, geometric), Cm).get(0);
    for (let c = 0; c < P; c++) result[L + j * P + c] = by[c]! + (yb?.get(c) ?? 0);
    addInto(geometric, pow[j]!);
  }
  const xb = mul(bs, geometric).get(0);
  for (let c = 0; c < L; c++) result[c] = xb?.get(c) ?? 0;
  return { weight, bias: result };
}

// --- the pass --------------------------------------------------------------------------

/** An S4D recurrence the pass turns into one k-step matmul. */
interface Recurrence {
  index: number;
  op: MatMulOp;
  read: StateReadOp;
  write: StateWriteOp;
  /** slice(op, 0, L): the new state (residual form: its increment), used by the state_write (the add) alone. */
  next: SliceOp;
  /** Residual form only: x_{t+1} = next + x_t, used by the state_write alone. */
  add?: BinaryOp;
  L: number;
}

/**
 * The S4D matmuls whose dataflow is exactly state_read -> matmul -> slice [0, L) ->
 * state_write, or in residual form state_read -> matmul -> slice [0, L) -> add(slice, read) -> state_write.
 */
function recurrences(model: Model): Map<number, Recurrence> {
  const step = model.sections.step;
  const sizes = valueSizes(model).step;
  const users = new Map<string, Op[]>();
  for (const op of step) for (const v of operandsOf(op)) users.set(v, [...(users.get(v) ?? []), op]);
  const isOutput = (v: string) => model.outputs.some((o) => o.section === "step" && o.value === v);
  const out = new Map<number, Recurrence>();
  step.forEach((op, index) => {
    if (op.op !== "matmul" || op.origin !== "s4d" || op.xs.length < 2) return;
    const first = op.xs[0]!;
    const read = step.find((o) => o.out === first);
    if (read?.op !== "state_read") return;
    if (step.filter((o) => o.op === "state_read" && o.state === read.state).length !== 1) return;
    const L = sizes.get(first);
    if (L === undefined || L >= op.weight.cols || L >= op.weight.rows) return;
    const res = op.residual;
    if (res !== undefined && (res.row !== 0 || res.col !== 0 || res.length !== L)) return;
    if ((users.get(first) ?? []).length !== (res ? 2 : 1) || op.xs.indexOf(first, 1) !== -1 || isOutput(first)) return;
    const writes = step.filter((o): o is StateWriteOp => o.op === "state_write" && o.state === read.state);
    if (writes.length !== 1) return;
    const write = writes[0]!;
    let add: BinaryOp | undefined;
    let nextName = write.x;
    if (res) {
      const a = step.find((o) => o.out === write.x);
      if (a?.op !== "add" || a.b !== first || (users.get(a.out) ?? []).length !== 1 || isOutput(a.out)) return;
      add = a;
      nextName = a.a;
    }
    const next = step.find((o) => o.out === nextName);
    if (next?.op !== "slice" || next.x !== op.out || next.start !== 0 || next.length !== L) return;
    if ((users.get(next.out) ?? []).length !== 1 || isOutput(next.out) || isOutput(op.out)) return;
    // Every other user sees output columns only (whole slices of one sub-step's y).
    for (const u of users.get(op.out) ?? []) {
      if (u === next) continue;
      if (u.op !== "slice" || u.start < L || u.start + u.length > op.weight.cols) return;
    }
    out.set(index, { index, op, read, write, next, ...(add ? { add } : {}), L });
  });
  return out;
}

interface Placed {
  op: Op;
  /** Priority of the topological order: original index, then sub-step. */
  key: [number, number];
}

/** Topological order of `ops` (values and state write-after-read), ties broken by key. */
function order(ops: Placed[], file: string): Op[] {
  const defined = new Map<string, number>();
  ops.forEach((p, i) => {
    if (p.op.op !== "state_write") defined.set(p.op.out, i);
  });
  const deps: number[][] = ops.map(() => []);
  const readersOfState = new Map<string, number[]>();
  ops.forEach((p, i) => {
    for (const v of operandsOf(p.op)) {
      const d = defined.get(v);
      if (d !== undefined) deps[i]!.push(d);
    }
  });
  // A state's write comes after the reads of its old value and their users.
  ops.forEach((p, i) => {
    if (p.op.op !== "state_read") return;
    const st = p.op.state;
    const list = readersOfState.get(st) ?? [];
    list.push(i);
    ops.forEach((q, j) => {
      if (operandsOf(q.op).includes(p.op.out)) list.push(j);
    });
    readersOfState.set(st, list);
  });
  ops.forEach((p, i) => {
    if (p.op.op === "state_write") deps[i]!.push(...(readersOfState.get(p.op.state) ?? []).filter((j) => j !== i));
  });
  const remaining = deps.map((d) => new Set(d).size);
  const dependents: number[][] = ops.map(() => []);
  deps.forEach((d, i) => {
    for (const j of new Set(d)) dependents[j]!.push(i);
  });
  const cmp = (a: number, b: number): number => ops[a]!.key[0] - ops[b]!.key[0] || ops[a]!.key[1] - ops[b]!.key[1] || a - b;
  const ready = ops.map((_, i) => i).filter((i) => remaining[i] === 0);
  const out: Op[] = [];
  while (ready.length > 0) {
    ready.sort(cmp);
    const i = ready.shift()!;
    out.push(ops[i]!.op);
    for (const j of dependents[i]!) if (--remaining[j]! === 0) ready.push(j);
  }
  if (out.length !== ops.length)
    throw new UserError("unsupported", "cannot unroll: an S4D recurrence's input depends on its own output within one step (a feedback loop around the layer)", { file });
  return out;
}

/** Checks a requested unroll factor: an integer in [1, MAX_UNROLL]. */
export function checkUnrollFactor(k: number, where: string): void {
  if (!Number.isInteger(k) || k < 1 || k > MAX_UNROLL) throw new UserError("usage", `${where}: the unroll factor must be an integer from 1 to ${MAX_UNROLL}, found ${k}`);
}

/** The model unrolled k steps per program step (see the file comment); k = 1 returns a copy. */
export function unroll(model: Model, k: number, file: string = model.name): Model {
  assert(model.level === "lowered", `unrolling expects a lowered IR, got "${model.level}"`);
  checkUnrollFactor(k, file);
  if ((model.unroll ?? 1) !== 1)
    throw new UserError("usage", `model '${model.name}' is already unrolled ${model.unroll} steps per program step; compile its model-level IR (or a lowered IR without unrolling) instead`, { file });
  if (k === 1) return structuredClone(model);
  const step = model.sections.step;
  const names = new NameSource([...model.inputs.map((i) => i.name), ...step.map((o) => o.out), ...model.sections.final.map((o) => o.out)]);
  const recs = recurrences(model);
  const recOfNext = new Map([...recs.values()].map((r) => [r.next.out, r]));
  const recOfMatmul = new Map([...recs.values()].map((r) => [r.op.out, r]));
  const recOfAdd = new Map([...recs.values()].flatMap((r) => (r.add ? [[r.add.out, r] as const] : [])));
  const recStates = new Set([...recs.values()].map((r) => r.read.state));
  const writeOf = new Map<string, StateWriteOp>();
  for (const op of step) if (op.op === "state_write") {
    if (writeOf.has(op.state)) throw new UserError("unsupported", `cannot unroll: state "${op.state}" is written twice in one step`, { file });
    writeOf.set(op.state, op);
  }
  const meta: Record<string, string | number | boolean> = { ...(model.meta ?? {}) };
  const placed: Placed[] = [];
  const ren: Array<Map<string, string>> = [];
  const uOf = new Map<Recurrence, string[][]>();
  const inputs = model.inputs.map((inp) => ({ name: inp.name, size: inp.size * k }));

  for (let j = 0; j < k; j++) {
    const r = new Map<string, string>();
    ren.push(r);
    const name = (v: string): string => {
      const m = r.get(v);
      assert(m !== undefined, `unroll: value "${v}" used before its definition in sub-step ${j}`);
      return m;
    };
    model.inputs.forEach((inp, n) => {
      const v = names.fresh(`${inp.name}.t${j}`);
      r.set(inp.name, v);
      placed.push({ op: { op: "slice", out: v, x: inp.name, start: j * inp.size, length: inp.size }, key: [-model.inputs.length + n, j] });
    });
    step.forEach((op, i) => {
      const fresh = (): string => (j === 0 ? op.out : names.fresh(`${op.out}.t${j}`));
      const layer = op.layer !== undefined ? { layer: op.layer } : {};
      if (op.op === "state_read") {
        const w = writeOf.get(op.state);
        if (recStates.has(op.state)) {
          if (j === 0) {
            r.set(op.out, op.out);
            placed.push({ op: structuredClone(op), key: [i, 0] });
          }
          return;
        }
        if (j > 0 && w !== undefined) {
          // Chained: this sub-step starts from what the previous one wrote.
          r.set(op.out, ren[j - 1]!.get(w.x)!);
          return;
        }
        const out = fresh();
        r.set(op.out, out);
        placed.push({ op: { ...structuredClone(op), out }, key: [i, j] });
        return;
      }
      if (op.op === "state_write") {
        // Once, after the last sub-step (under its own name: no other sub-step emits a write).
        if (j === k - 1) placed.push({ op: { op: "state_write", out: op.out, state: op.state, x: name(op.x), ...layer }, key: [i, j] });
        return;
      }
      const rec = op.op === "matmul" ? recOfMatmul.get(op.out) : undefined;
      if (rec) {
        const us = uOf.get(rec) ?? [];
        us.push(rec.op.xs.slice(1).map(name));
        uOf.set(rec, us);
        r.set(op.out, op.out);
        if (j === k - 1) {
          const { weight, bias } = unrolledRecurrence(rec.op.weight, rec.op.bias, rec.L, k, rec.add !== undefined);
          const merged: MatMulOp = { ...structuredClone(rec.op), xs: [rec.read.out, ...us.flat()], weight, ...(bias ? { bias } : {}) };
          placed.push({ op: merged, key: [i, 0] });
        }
        return;
      }
      const recAdd = op.op === "add" ? recOfAdd.get(op.out) : undefined;
      if (recAdd && op.op === "add") {
        // Residual form: x_{t+k} = (A^k - I) part + x_t, once, after the last sub-step.
        const out = fresh();
        r.set(op.out, out);
        if (j === k - 1) placed.push({ op: { ...structuredClone(op), out, a: name(op.a), b: recAdd.read.out }, key: [i, j] });
        return;
      }
      if (op.op === "slice" && recOfMatmul.has(op.x)) {
        const rc = recOfMatmul.get(op.x)!;
        const out = fresh();
        r.set(op.out, out);
        if (recOfNext.get(op.out) === rc) {
          // The new state exists once, after the last sub-step.
          if (j === k - 1) placed.push({ op: { ...structuredClone(op), out, x: rc.op.out }, key: [i, j] });
          return;
        }
        const P = rc.op.weight.cols - rc.L;
        placed.push({ op: { ...structuredClone(op), out, x: rc.op.out, start: rc.L + j * P + (op.start - rc.L) }, key: [i, j] });
        return;
      }
      const out = fresh();
      r.set(op.out, out);
      placed.push({ op: renamed(op, out, name), key: [i, j] });
      if (op.op === "matmul" && j > 0) {
        const levels = requestedLevels(model, "step", op.out);
        if (levels !== undefined) meta[levelsKey("step", out)] = levels;
      }
    });
  }
  // Step outputs: the k sub-steps' vectors concatenated.
  const concatOf = new Map<string, string>();
  const outputs = model.outputs.map((o) => {
    if (o.section !== "step") return { ...o };
    let v = concatOf.get(o.value);
    if (v === undefined) {
      v = names.fresh(`${o.value}.unrolled`);
      concatOf.set(o.value, v);
      placed.push({ op: { op: "concat", out: v, xs: ren.map((r) => r.get(o.value)!) }, key: [step.length, 0] });
    }
    return { ...o, value: v };
  });

  // Final: div_steps divides by program steps; 1/k first makes it a mean over time steps.
  const finalSizes = valueSizes(model).final;
  const final: Op[] = [];
  for (const op of model.sections.final) {
    if (op.op !== "div_steps") {
      final.push(structuredClone(op));
      continue;
    }
    const n = finalSizes.get(op.x)!;
    const scaled = names.fresh(`${op.out}.per_time_step`);
    const layer = op.layer !== undefined ? { layer: op.layer } : {};
    final.push({ op: "affine", out: scaled, x: op.x, scale: new Array<number>(n).fill(1 / k), shift: new Array<number>(n).fill(0), ...layer });
    final.push({ ...structuredClone(op), x: scaled });
  }

  return {
    irVersion: model.irVersion,
    name: model.name,
    level: model.level,
    inputs,
    outputs,
    state: model.state.map((s) => ({ ...s })),
    sections: { step: order(placed, file), final },
    unroll: k,
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
  };
}

// --- sequences of the original model <-> program steps of the unrolled one -------------

/** Program steps for T time steps. */
export const programSteps = (T: number, k: number): number => Math.ceil(T / k);

/**
 * One sequence of per-time-step input vectors as the unrolled model's per-program-step
 * vectors: k consecutive vectors concatenated, the last group zero-padded.
 */
export function chunkSequence(seq: Record<string, Float64Array[]>, k: number): Record<string, Float64Array[]> {
  if (k === 1) return seq;
  const out: Record<string, Float64Array[]> = {};
  for (const [name, steps] of Object.entries(seq)) {
    const d = steps[0]?.length ?? 0;
    const chunks: Float64Array[] = [];
    for (let t = 0; t < steps.length; t += k) {
      const v = new Float64Array(k * d);
      for (let j = 0; j < k && t + j < steps.length; j++) v.set(steps[t + j]!, j * d);
      chunks.push(v);
    }
    out[name] = chunks;
  }
  return out;
}

/** Per-program-step vectors of width k*o back to T per-time-step vectors of width o. */
export function unchunkSteps(chunks: readonly Float64Array[], k: number, T: number): Float64Array[] {
  if (k === 1) return chunks.slice(0, T);
  const out: Float64Array[] = [];
  for (const c of chunks) {
    const o = c.length / k;
    for (let j = 0; j < k && out.length < T; j++) out.push(c.slice(j * o, (j + 1) * o));
  }
  return out;
}

/** The sequence zero-padded at its end to a multiple of k time steps (what the runtime feeds). */
export function padSequence(seq: Record<string, Float64Array[]>, k: number): Record<string, Float64Array[]> {
  const out: Record<string, Float64Array[]> = {};
  for (const [name, steps] of Object.entries(seq)) {
    const d = steps[0]?.length ?? 0;
    const padded = steps.slice();
    while (padded.length % k !== 0) padded.push(new Float64Array(d));
    out[name] = padded;
  }
  return out;
}

/** Step outputs of a (padded) evaluation of the source model as the unrolled model's: k steps concatenated. */
export function chunkOutputs(result: { step: Record<string, Float64Array[]>; final: Record<string, Float64Array> }, k: number): { step: Record<string, Float64Array[]>; final: Record<string, Float64Array> } {
  return { step: chunkSequence(result.step, k), final: result.final };
}
