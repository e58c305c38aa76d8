// The float64 reference evaluator: the ground truth every later phase is checked against.
// It runs any IR level (model, lowered, quantized) in the recurrent step form, one sequence
// at a time, exactly as the IR semantics in src/ir/types.ts describe.
//
// A model is compiled once into closures over preallocated buffers (one per value, two per
// state: the value at the start of the step and the value being written), so evaluating a
// step allocates nothing. State writes become visible at the end of the step, which gives
// state_read its "value at the start of this step" meaning regardless of op order.

import { UserError, assert, type SourceLocation } from "../common/errors.js";
import { discretizeS4D } from "../common/s4d-math.js";
import type { MatMulOp, Model, Op, S4DOp, Tensor } from "../ir/types.js";
import { denseInto, gluInto, layerNormInto, packedMatmulInto, packMatmul, unaryFunction, unaryInto } from "./kernels.js";

export interface EvaluateOptions {
  /**
   * Called after every step with copies of the model inputs and all step-section values
   * (state_write defines none) of that step; the copies may be kept.
   */
  onStep?: (t: number, values: ReadonlyMap<string, Float64Array>) => void;
  /**
   * Called after every step without copying anything: read the step's values through
   * `ReferenceEvaluator.liveStepValue` inside the call, and copy what must be kept.
   */
  onStepLive?: (t: number) => void;
}

/**
 * Called after every matmul with its concatenated input (read only: it may be the operand
 * value itself) and its output (bias included), which the hook may modify in place. This is how src/verify/ models quantization as
 * noise on top of the exact float evaluation, without a second evaluator.
 */
export type MatmulHook = (op: MatMulOp, section: "step" | "final", x: Float64Array, y: Float64Array) => void;

export interface EvaluatorHooks {
  matmul?: MatmulHook;
}

export interface SequenceResult {
  /** Per step output (by output name): T vectors. */
  step: Record<string, Float64Array[]>;
  /** Per final output (by output name): one vector. */
  final: Record<string, Float64Array>;
}

export interface BatchResult {
  /** [B, T, stepWidth]: all step outputs concatenated in declaration order; null if none. */
  step: Float64Array | null;
  /** [B, finalWidth]: all final outputs concatenated in declaration order; null if none. */
  final: Float64Array | null;
  stepWidth: number;
  finalWidth: number;
}

type Section = "step" | "final";

interface StateBuffers {
  size: number;
  /** Value at the start of the current step (after the last step, during final). */
  cur: Float64Array;
  /** Value written during the current step; copied to `cur` at the end of the step. */
  next: Float64Array;
}

interface NamedBuffer {
  name: string;
  buf: Float64Array;
}

function modelFile(model: Model): string {
  const source = model.meta?.["source"];
  return typeof source === "string" ? source : `<model ${model.name}>`;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A model compiled for repeated evaluation. Not reentrant: one sequence at a time. */
export class ReferenceEvaluator {
  readonly model: Model;
  /** Length of every step-section value, model inputs included. */
  readonly stepSizes: ReadonlyMap<string, number>;
  /** Length of every final-section value. */
  readonly finalSizes: ReadonlyMap<string, number>;

  private readonly file: string;
  private readonly inputs: NamedBuffer[] = [];
  private readonly stepValues = new Map<string, Float64Array>();
  private readonly finalValues = new Map<string, Float64Array>();
  private readonly stepNames = new Set<string>();
  private readonly finalNames = new Set<string>();
  private readonly states = new Map<string, StateBuffers>();
  private readonly stepOps: Array<() => void> = [];
  private readonly finalOps: Array<() => void> = [];
  /** States written by the step section, committed at the end of each step. */
  private readonly stepWrites = new Set<StateBuffers>();
  private readonly finalWrites = new Set<StateBuffers>();
  /** Running sums feeding the final section's meanpool ops. */
  private readonly pools: Array<{ src: Float64Array; sum: Float64Array }> = [];
  private readonly stepOutputs: NamedBuffer[] = [];
  private readonly finalOutputs: NamedBuffer[] = [];
  /** Number of steps of the sequence being evaluated (read by meanpool and div_steps). */
  private steps = 0;

  private readonly hooks: EvaluatorHooks;

  constructor(model: Model, hooks: EvaluatorHooks = {}) {
    this.model = model;
    this.hooks = hooks;
    this.file = modelFile(model);
    for (const s of model.state) {
      if (this.states.has(s.name)) this.fail(`state "${s.name}" is declared twice`, "/state");
      if (!Number.isInteger(s.size) || s.size < 0) this.fail(`state "${s.name}" has invalid size ${s.size}`, "/state");
      this.states.set(s.name, { size: s.size, cur: new Float64Array(s.size), next: new Float64Array(s.size) });
    }
    model.inputs.forEach((inp, i) => {
      if (!Number.isInteger(inp.size) || inp.size < 0) this.fail(`input "${inp.name}" has invalid size ${inp.size}`, `/inputs/${i}`);
      const buf = this.define("step", inp.name, inp.size, `/inputs/${i}`);
      this.inputs.push({ name: inp.name, buf });
    });
    model.sections.step.forEach((op, i) => this.stepOps.push(this.compileOp(op, "step", i)));
    model.sections.final.forEach((op, i) => this.finalOps.push(this.compileOp(op, "final", i)));
    const outNames = new Set<string>();
    model.outputs.forEach((o, i) => {
      const path = `/outputs/${i}`;
      if (outNames.has(o.name)) this.fail(`output "${o.name}" is declared twice`, path);
      outNames.add(o.name);
      const values = o.section === "step" ? this.stepValues : this.finalValues;
      const buf = values.get(o.value);
      if (!buf) this.fail(`output "${o.name}" refers to "${o.value}", which is not a value of the ${o.section} section`, path);
      (o.section === "step" ? this.stepOutputs : this.finalOutputs).push({ name: o.name, buf });
    });
    this.stepSizes = new Map([...this.stepValues].map(([k, v]) => [k, v.length]));
    this.finalSizes = new Map([...this.finalValues].map(([k, v]) => [k, v.length]));
  }

  get inputNames(): string[] {
    return this.inputs.map((i) => i.name);
  }

  get stepOutputWidths(): number[] {
    return this.stepOutputs.map((o) => o.buf.length);
  }

  get finalOutputWidths(): number[] {
    return this.finalOutputs.map((o) => o.buf.length);
  }

  /**
   * Runs one sequence of T steps from zero state. `loadInputs(t, buffers)` fills the input
   * buffers (in model.inputs order) for step t; `afterStep(t)` sees the step's values.
   */
  run(T: number, loadInputs: (t: number, buffers: Float64Array[]) => void, afterStep?: (t: number) => void): void {
    if (!Number.isInteger(T) || T < 1) throw new UserError("usage", `a sequence must have at least one step (got ${T})`, { file: this.file });
    for (const s of this.states.values()) {
      s.cur.fill(0);
      s.next.fill(0);
    }
    for (const p of this.pools) p.sum.fill(0);
    this.steps = T;
    const buffers = this.inputs.map((i) => i.buf);
    for (let t = 0; t < T; t++) {
      loadInputs(t, buffers);
      for (const op of this.stepOps) op();
      for (const s of this.stepWrites) s.cur.set(s.next);
      for (const p of this.pools) {
        for (let i = 0; i < p.sum.length; i++) p.sum[i] += p.src[i];
      }
      afterStep?.(t);
    }
    for (const op of this.finalOps) op();
  }

  /** Copies the current step outputs (valid inside `afterStep`). */
  stepOutputValues(): Array<{ name: string; value: Float64Array }> {
    return this.stepOutputs.map((o) => ({ name: o.name, value: o.buf.slice() }));
  }

  /**
   * The evaluator's own buffer of an input or step value (undefined for an unknown name): it
   * holds the current step's value inside `afterStep` and is overwritten by the next step.
   */
  liveStepValue(name: string): Float64Array | undefined {
    return this.stepValues.get(name);
  }

  /** Copies of all inputs and step values (valid inside `afterStep`). */
  stepValueSnapshot(): Map<string, Float64Array> {
    return new Map([...this.stepValues].map(([k, v]) => [k, v.slice()]));
  }

  /** Writes step outputs, concatenated, into `dst` at `offset` (valid inside `afterStep`). */
  copyStepOutputs(dst: Float64Array, offset: number): void {
    for (const o of this.stepOutputs) {
      dst.set(o.buf, offset);
      offset += o.buf.length;
    }
  }

  /** Writes final outputs, concatenated, into `dst` at `offset` (valid after `run`). */
  copyFinalOutputs(dst: Float64Array, offset: number): void {
    for (const o of this.finalOutputs) {
      dst.set(o.buf, offset);
      offset += o.buf.length;
    }
  }

  finalOutputValues(): Array<{ name: string; value: Float64Array }> {
    return this.finalOutputs.map((o) => ({ name: o.name, value: o.buf.slice() }));
  }

  // ---- compilation -------------------------------------------------------------------

  private fail(message: string, path: string): never {
    const loc: SourceLocation = { file: this.file, path };
    throw new UserError("semantic", message, loc);
  }

  private define(section: Section, name: string, size: number, path: string): Float64Array {
    const names = section === "step" ? this.stepNames : this.finalNames;
    if (typeof name !== "string" || name === "") this.fail(`missing result name`, path);
    if (names.has(name)) this.fail(`"${name}" is defined twice in the ${section} section`, path);
    names.add(name);
    const buf = new Float64Array(size);
    (section === "step" ? this.stepValues : this.finalValues).set(name, buf);
    return buf;
  }

  private use(section: Section, name: string, path: string): Float64Array {
    const buf = (section === "step" ? this.stepValues : this.finalValues).get(name);
    if (buf) return buf;
    if (section === "final" && this.stepValues.has(name)) {
      this.fail(`"${name}" is a step value; the final section can read step values only through meanpool`, path);
    }
    const later = section === "step" && this.model.sections.step.some((op) => op.out === name);
    this.fail(later ? `"${name}" is used before it is defined` : `unknown value "${name}" in the ${section} section`, path);
  }

  private state(name: string, path: string): StateBuffers {
    const s = this.states.get(name);
    if (!s) this.fail(`unknown state "${name}"`, path);
    return s;
  }

  private claimWrite(section: Section, s: StateBuffers, name: string, path: string): void {
    const writes = section === "step" ? this.stepWrites : this.finalWrites;
    if (writes.has(s)) this.fail(`state "${name}" is written twice in the ${section} section`, path);
    writes.add(s);
  }

  private vector(t: Tensor | number[], expected: number, what: string, path: string): Float64Array {
    const data = Array.isArray(t) ? t : t.data;
    if (!Array.isArray(t) && product(t.shape) !== t.data.length) {
      this.fail(`${what}: shape [${t.shape.join(", ")}] does not match its ${t.data.length} values`, path);
    }
    if (data.length !== expected) this.fail(`${what} must have ${expected} values, got ${data.length}`, path);
    return Float64Array.from(data);
  }

  private sameLength(a: Float64Array, b: Float64Array, what: string, path: string): void {
    if (a.length !== b.length) this.fail(`${what}: operand lengths differ (${a.length} vs ${b.length})`, path);
  }

  private compileOp(op: Op, section: Section, index: number): () => void {
    const path = `/sections/${section}/${index}`;
    switch (op.op) {
      case "s4d":
        return this.compileS4D(op, section, path);
      case "linear": {
        const x = this.use(section, op.x, path);
        const [nOut, nIn] = op.weight.shape;
        if (op.weight.shape.length !== 2 || nOut === undefined || nIn === undefined) this.fail(`linear weight must be 2-D [out, in]`, path);
        if (nIn !== x.length) this.fail(`linear weight expects ${nIn} inputs, "${op.x}" has ${x.length}`, path);
        const w = this.vector(op.weight, nOut * nIn, "linear weight", path);
        const b = op.bias ? this.vector(op.bias, nOut, "linear bias", path) : null;
        const y = this.define(section, op.out, nOut, path);
        return () => denseInto(w, b, x, y);
      }
      case "layernorm": {
        const x = this.use(section, op.x, path);
        const g = this.vector(op.gamma, x.length, "layernorm gamma", path);
        const b = this.vector(op.beta, x.length, "layernorm beta", path);
        const y = this.define(section, op.out, x.length, path);
        const eps = op.eps;
        return () => layerNormInto(x, g, b, eps, y);
      }
      case "normalize": {
        const x = this.use(section, op.x, path);
        const y = this.define(section, op.out, x.length, path);
        const eps = op.eps;
        return () => layerNormInto(x, null, null, eps, y);
      }
      case "gelu":
      case "sigmoid":
      case "tanh":
      case "relu": {
        const x = this.use(section, op.x, path);
        const y = this.define(section, op.out, x.length, path);
        const f = unaryFunction(op.op);
        return () => unaryInto(f, x, y);
      }
      case "glu": {
        const x = this.use(section, op.x, path);
        if (x.length % 2 !== 0) this.fail(`glu needs an even-length input, "${op.x}" has ${x.length}`, path);
        const y = this.define(section, op.out, x.length / 2, path);
        return () => gluInto(x, y);
      }
      case "add":
      case "mul": {
        const a = this.use(section, op.a, path);
        const b = this.use(section, op.b, path);
        this.sameLength(a, b, op.op, path);
        const y = this.define(section, op.out, a.length, path);
        return op.op === "add"
          ? () => {
              for (let i = 0; i < y.length; i++) y[i] = a[i] + b[i];
            }
          : () => {
              for (let i = 0; i < y.length; i++) y[i] = a[i] * b[i];
            };
      }
      case "meanpool": {
        if (section !== "final") this.fail(`meanpool is only allowed in the final section`, path);
        const src = this.use("step", op.x, path);
        const sum = new Float64Array(src.length);
        this.pools.push({ src, sum });
        const y = this.define(section, op.out, src.length, path);
        return () => {
          for (let i = 0; i < y.length; i++) y[i] = sum[i] / this.steps;
        };
      }
      case "div_steps": {
        if (section !== "final") this.fail(`div_steps is only allowed in the final section`, path);
        const x = this.use(section, op.x, path);
        const y = this.define(section, op.out, x.length, path);
        return () => {
          for (let i = 0; i < y.length; i++) y[i] = x[i] / this.steps;
        };
      }
      case "matmul":
        return this.compileMatmul(op, section, path);
      case "slice": {
        const x = this.use(section, op.x, path);
        const { start, length } = op;
        if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > x.length) {
          this.fail(`slice [${start}, ${start + length}) is outside "${op.x}" (length ${x.length})`, path);
        }
        const y = this.define(section, op.out, length, path);
        return () => y.set(x.subarray(start, start + length));
      }
      case "concat": {
        const xs = op.xs.map((n) => this.use(section, n, path));
        const y = this.define(
          section,
          op.out,
          xs.reduce((n, x) => n + x.length, 0),
          path,
        );
        return () => {
          let at = 0;
          for (const x of xs) {
            y.set(x, at);
            at += x.length;
          }
        };
      }
      case "affine": {
        const x = this.use(section, op.x, path);
        const scale = this.vector(op.scale, x.length, "affine scale", path);
        const shift = this.vector(op.shift, x.length, "affine shift", path);
        const y = this.define(section, op.out, x.length, path);
        return () => {
          for (let i = 0; i < y.length; i++) y[i] = x[i] * scale[i] + shift[i];
        };
      }
      case "state_read": {
        const s = this.state(op.state, path);
        const y = this.define(section, op.out, s.size, path);
        return () => y.set(s.cur);
      }
      case "state_write": {
        const s = this.state(op.state, path);
        const x = this.use(section, op.x, path);
        if (x.length !== s.size) this.fail(`state "${op.state}" has size ${s.size}, "${op.x}" has length ${x.length}`, path);
        this.claimWrite(section, s, op.state, path);
        // Defines no value, but its name still takes part in the uniqueness rule.
        this.define(section, op.out, 0, path);
        (section === "step" ? this.stepValues : this.finalValues).delete(op.out);
        return () => s.next.set(x);
      }
      default: {
        const unknown: never = op;
        this.fail(`unknown op "${(unknown as { op: string }).op}"`, path);
      }
    }
  }

  private compileMatmul(op: Extract<Op, { op: "matmul" }>, section: Section, path: string): () => void {
    const xs = op.xs.map((n) => this.use(section, n, path));
    const rows = xs.reduce((n, x) => n + x.length, 0);
    const w = op.weight;
    if (w.rows !== rows) this.fail(`matmul weight has ${w.rows} rows but its inputs total ${rows} values`, path);
    const natural = (v: number): boolean => Number.isInteger(v) && v >= 0;
    w.blocks.forEach((b, k) => {
      // Plain checks, no array per block: an S4D matrix has a 2x2 block per mode.
      const ok =
        natural(b.row) &&
        natural(b.col) &&
        natural(b.rows) &&
        natural(b.cols) &&
        b.row + b.rows <= w.rows &&
        b.col + b.cols <= w.cols &&
        b.data.length === b.rows * b.cols;
      if (!ok) this.fail(`matmul block ${k} (${b.rows}x${b.cols} at ${b.row},${b.col}, ${b.data.length} values) does not fit the ${w.rows}x${w.cols} matrix`, path);
    });
    const packed = packMatmul(w.blocks);
    const bias = op.bias ? this.vector(op.bias, w.cols, "matmul bias", path) : null;
    const y = this.define(section, op.out, w.cols, path);
    // Quantized matmuls carry dequantized weights in `weight`; `quant` only describes how the
    // hardware represents them, so the reference ignores it.
    const hook = this.hooks.matmul;
    if (xs.length === 1 && !hook) return () => packedMatmulInto(packed, bias, xs[0]!, y);
    const x = xs.length === 1 ? xs[0]! : new Float64Array(rows);
    return () => {
      if (xs.length > 1) {
        let at = 0;
        for (const v of xs) {
          x.set(v, at);
          at += v.length;
        }
      }
      packedMatmulInto(packed, bias, x, y);
      hook?.(op, section, x, y);
    };
  }

  private compileS4D(op: S4DOp, section: Section, path: string): () => void {
    const loc: SourceLocation = { file: this.file, path };
    const { dA, dB } = discretizeS4D(op, loc);
    const H = op.channels;
    const M = op.modes;
    const u = this.use(section, op.x, path);
    if (u.length !== H) this.fail(`s4d has ${H} channels, "${op.x}" has length ${u.length}`, path);
    const s = this.state(op.state, path);
    if (s.size !== 2 * H * M) this.fail(`s4d state "${op.state}" must have size 2*H*M = ${2 * H * M}, declared ${s.size}`, path);
    this.claimWrite(section, s, op.state, path);
    const cRe = Float64Array.from(op.C.re.data);
    const cIm = Float64Array.from(op.C.im.data);
    const D = Float64Array.from(op.D.data);
    const y = this.define(section, op.out, H, path);
    const { cur, next } = s;
    // Plain locals: the inner loop is the evaluator's hot spot, keep property loads out of it.
    const aRe = dA.re;
    const aIm = dA.im;
    const bRe = dB.re;
    const bIm = dB.im;
    assert(cRe.length === H * M && D.length === H, "discretizeS4D checked the s4d shapes");
    return () => {
      for (let h = 0; h < H; h++) {
        const uh = u[h];
        let acc = 0;
        for (let m = h * M, end = m + M; m < end; m++) {
          const xr = cur[2 * m];
          const xi = cur[2 * m + 1];
          const ar = aRe[m];
          const ai = aIm[m];
          const nr = ar * xr - ai * xi + bRe[m] * uh;
          const ni = ar * xi + ai * xr + bIm[m] * uh;
          next[2 * m] = nr;
          next[2 * m + 1] = ni;
          acc += cRe[m] * nr - cIm[m] * ni;
        }
        y[h] = 2 * acc + D[h] * uh;
      }
    };
  }
}

// ---- entry points ----------------------------------------------------------------------

/**
 * Evaluates one sequence. `inputs` maps every model input name to its T step vectors.
 * Returns every step output's T vectors and every final output's vector.
 */
export function evaluateSequence(model: Model, inputs: Record<string, Float64Array[]>, opts: EvaluateOptions = {}): SequenceResult {
  return evaluateSequenceWith(new ReferenceEvaluator(model), inputs, opts);
}

/** As evaluateSequence, reusing an already compiled evaluator. */
export function evaluateSequenceWith(ev: ReferenceEvaluator, inputs: Record<string, Float64Array[]>, opts: EvaluateOptions = {}): SequenceResult {
  const file = modelFile(ev.model);
  const names = ev.inputNames;
  if (names.length === 0) throw new UserError("usage", `model "${ev.model.name}" has no inputs, so the number of steps is undefined`, { file });
  for (const key of Object.keys(inputs)) {
    if (!names.includes(key)) throw new UserError("usage", `"${key}" is not an input of model "${ev.model.name}" (inputs: ${names.join(", ")})`, { file });
  }
  const seqs = names.map((n) => {
    const seq = inputs[n];
    if (!seq) throw new UserError("usage", `missing values for input "${n}"`, { file });
    return seq;
  });
  const T = seqs[0]!.length;
  seqs.forEach((seq, k) => {
    if (seq.length !== T) throw new UserError("usage", `input "${names[k]}" has ${seq.length} steps, input "${names[0]}" has ${T}`, { file });
    const size = ev.stepSizes.get(names[k]!)!;
    seq.forEach((v, t) => {
      if (v.length !== size) throw new UserError("usage", `input "${names[k]}" step ${t} has length ${v.length}, expected ${size}`, { file });
    });
  });

  const step: Record<string, Float64Array[]> = {};
  for (const name of ev.model.outputs.filter((o) => o.section === "step").map((o) => o.name)) step[name] = [];
  ev.run(
    T,
    (t, buffers) => buffers.forEach((b, k) => b.set(seqs[k]![t]!)),
    (t) => {
      for (const o of ev.stepOutputValues()) step[o.name]!.push(o.value);
      opts.onStep?.(t, ev.stepValueSnapshot());
      opts.onStepLive?.(t);
    },
  );
  const final: Record<string, Float64Array> = {};
  for (const o of ev.finalOutputValues()) final[o.name] = o.value;
  return { step, final };
}

/**
 * Evaluates a batch for a single-input model: `batch` is [B, T, d] row-major. Step outputs
 * (all of them, concatenated in declaration order) come back as [B, T, stepWidth], final
 * outputs as [B, finalWidth]; a section without outputs gives null.
 */
export function evaluateBatch(model: Model, batch: Float64Array, B: number, T: number): BatchResult {
  const ev = new ReferenceEvaluator(model);
  const file = modelFile(model);
  if (model.inputs.length !== 1) {
    throw new UserError("usage", `batch evaluation needs a model with exactly one input, "${model.name}" has ${model.inputs.length}`, { file });
  }
  if (!Number.isInteger(B) || B < 0) throw new UserError("usage", `invalid batch size ${B}`, { file });
  const d = model.inputs[0]!.size;
  if (batch.length !== B * T * d) {
    throw new UserError("usage", `batch has ${batch.length} values, expected B*T*d = ${B}*${T}*${d} = ${B * T * d}`, { file });
  }
  const stepWidth = ev.stepOutputWidths.reduce((a, b) => a + b, 0);
  const finalWidth = ev.finalOutputWidths.reduce((a, b) => a + b, 0);
  const hasStep = ev.stepOutputWidths.length > 0;
  const hasFinal = ev.finalOutputWidths.length > 0;
  const step = hasStep ? new Float64Array(B * T * stepWidth) : null;
  const final = hasFinal ? new Float64Array(B * finalWidth) : null;
  for (let b = 0; b < B; b++) {
    ev.run(
      T,
      (t, buffers) => buffers[0]!.set(batch.subarray((b * T + t) * d, (b * T + t + 1) * d)),
      step ? (t) => ev.copyStepOutputs(step, (b * T + t) * stepWidth) : undefined,
    );
    if (final) ev.copyFinalOutputs(final, b * finalWidth);
  }
  return { step, final, stepWidth, finalWidth };
}
