// IR validation: the JSON Schema (ir/ir.schema.json) for structure, then the semantic rules
// a schema cannot express — tensor shapes, SSA, sections, state and IR levels. Every
// problem becomes one Diagnostic located at {file, JSON pointer}; all of them are reported
// at once so a user fixes a file in one round.

import { packageUrl } from "../common/package-root.js";
import { UserError, type Diagnostic } from "../common/errors.js";
import { loadSchema, MAX_DIAGNOSTICS, type SchemaValidator } from "../common/json.js";
import { opOutputSize, type SizeEnv } from "./sizes.js";
import type { BlockMatrix, IrLevel, MatQuant, Model, Op, OpKind, Tensor, WeightQuantSpec } from "./types.js";

/** Which levels may use each op. Typed over OpKind, so a new op in types.ts must be placed here. */
export const OP_LEVELS: Readonly<Record<OpKind, "model" | "lowered" | "both">> = {
  s4d: "model",
  linear: "model",
  layernorm: "model",
  meanpool: "model",
  gelu: "both",
  sigmoid: "both",
  tanh: "both",
  relu: "both",
  glu: "both",
  add: "both",
  mul: "both",
  matmul: "lowered",
  slice: "lowered",
  concat: "lowered",
  affine: "lowered",
  normalize: "lowered",
  state_read: "lowered",
  state_write: "lowered",
  div_steps: "lowered",
};

/** Ops bound to one section: recurrences update state per step, reductions over time run at the end. */
const ONLY_IN: Partial<Record<OpKind, Section>> = {
  s4d: "step",
  state_write: "step",
  meanpool: "final",
  div_steps: "final",
};

type Section = "step" | "final";

let schemaValidator: SchemaValidator | undefined;

/** The compiled IR schema (compiled once, on first use). */
export function irSchema(): SchemaValidator {
  schemaValidator ??= loadSchema(packageUrl("ir/ir.schema.json"));
  return schemaValidator;
}

/** Validates untrusted JSON as an IR model: schema first, then the semantic checks. */
export function validateModel(json: unknown, file: string): Model {
  const problems = irSchema().check(json, file);
  if (problems.length > 0) throw new UserError("schema", problems);
  const model = json as Model;
  checkModel(model, file);
  return model;
}

/**
 * Semantic checks only, for IR built in memory (front ends, passes). Assumes the object has
 * the shape of a Model; runs in time linear in the model size (plus a sort of each matrix's blocks).
 */
export function checkModel(model: Model, file: string): void {
  const diagnostics = new ModelChecker(model, file).run();
  if (diagnostics.length > 0) throw new UserError("semantic", diagnostics);
}

interface Definition {
  path: string;
  /** undefined: defined, but its length is unknown because of an earlier error. */
  size: number | undefined;
  /** false for state_write, whose `out` is reserved but names no value. */
  isValue: boolean;
}

const shapeText = (s: readonly number[]): string => `[${s.join(", ")}]`;

class ModelChecker {
  private readonly diagnostics: Diagnostic[] = [];
  private dropped = 0;
  private readonly level: IrLevel;
  private readonly states = new Map<string, { size: number; path: string }>();
  private readonly defs: Record<Section, Map<string, Definition>> = { step: new Map(), final: new Map() };
  /** Index of the first op defining each name, to explain use-before-definition. */
  private readonly firstOut: Record<Section, Map<string, number>> = { step: new Map(), final: new Map() };
  /** The op that updates each state (an s4d or a state_write); a state has one writer. */
  private readonly stateWriter = new Map<string, string>();

  constructor(
    private readonly model: Model,
    private readonly file: string,
  ) {
    this.level = model.level;
  }

  run(): Diagnostic[] {
    const m = this.model;
    m.inputs.forEach((input, i) => {
      const path = `/inputs/${i}`;
      const prev = this.defs.step.get(input.name);
      if (prev) this.error(`${path}/name`, `input "${input.name}" is already declared at ${prev.path}`);
      else this.defs.step.set(input.name, { path, size: input.size, isValue: true });
    });
    m.state.forEach((s, i) => {
      const path = `/state/${i}`;
      const prev = this.states.get(s.name);
      if (prev) this.error(`${path}/name`, `state "${s.name}" is already declared at ${prev.path}`);
      else this.states.set(s.name, { size: s.size, path });
    });
    for (const section of ["step", "final"] as const) {
      m.sections[section].forEach((op, i) => {
        if (!this.firstOut[section].has(op.out)) this.firstOut[section].set(op.out, i);
      });
    }
    for (const section of ["step", "final"] as const) {
      m.sections[section].forEach((op, i) => this.checkOp(op, section, i));
    }
    this.checkOutputs();
    if (this.dropped > 0) {
      this.diagnostics.push({ message: `... and ${this.dropped} more problem${this.dropped === 1 ? "" : "s"}`, location: { file: this.file } });
    }
    return this.diagnostics;
  }

  private error(path: string, message: string): void {
    if (this.diagnostics.length >= MAX_DIAGNOSTICS) this.dropped++;
    else this.diagnostics.push({ message, location: { file: this.file, path } });
  }

  // --- names ---------------------------------------------------------------------------

  /** Length of value `name` used by an op of `section` at index `index`; reports why it is not usable. */
  private ref(name: string, section: Section, index: number, path: string): number | undefined {
    const d = this.defs[section].get(name);
    if (d) {
      if (!d.isValue) this.error(path, `"${name}" names a state_write, which defines no value`);
      return d.isValue ? d.size : undefined;
    }
    const later = this.firstOut[section].get(name);
    const other: Section = section === "step" ? "final" : "step";
    if (later !== undefined && later >= index) {
      this.error(path, `value "${name}" is used before it is defined (at /sections/${section}/${later})`);
    } else if (section === "final" && this.defs.step.has(name)) {
      this.error(path, `"${name}" is a step value; the final section reads step values only through meanpool`);
    } else if (this.firstOut[other].has(name)) {
      this.error(path, `"${name}" is a ${other}-section value and cannot be used in the ${section} section`);
    } else {
      this.error(path, `undefined value "${name}"`);
    }
    return undefined;
  }

  private stateRef(name: string, path: string): number | undefined {
    const s = this.states.get(name);
    if (!s) this.error(path, `undefined state "${name}" (declare it in "state")`);
    return s?.size;
  }

  private claimState(name: string, opPath: string): void {
    if (!this.states.has(name)) return;
    const prev = this.stateWriter.get(name);
    if (prev) this.error(`${opPath}/state`, `state "${name}" is already updated by ${prev}; each state has exactly one writer`);
    else this.stateWriter.set(name, opPath);
  }

  // --- ops -----------------------------------------------------------------------------

  private checkOp(op: Op, section: Section, index: number): void {
    const path = `/sections/${section}/${index}`;
    const kind = op.op;
    const allowed = OP_LEVELS[kind];
    if (allowed === "model" && this.level !== "model") {
      this.error(`${path}/op`, `op "${kind}" is a model-level op and is not allowed in a "${this.level}" model (lower it first)`);
    } else if (allowed === "lowered" && this.level === "model") {
      this.error(`${path}/op`, `op "${kind}" is a lowered op and is not allowed in a "model"-level model (use level "lowered")`);
    }
    const only = ONLY_IN[kind];
    if (only && only !== section) this.error(`${path}/op`, `op "${kind}" is only allowed in the ${only} section`);

    const ref = (name: string, at: string): number | undefined => this.ref(name, section, index, `${path}/${at}`);
    this.checkOperands(op, path, ref);

    const env: SizeEnv = {
      value: (n) => this.defs[section].get(n)?.size,
      stepValue: (n) => this.defs.step.get(n)?.size,
      state: (n) => this.states.get(n)?.size,
    };
    const size = opOutputSize(op, env);
    const prev = this.defs[section].get(op.out);
    if (prev) this.error(`${path}/out`, `"${op.out}" is already defined at ${prev.path}`);
    else this.defs[section].set(op.out, { path, size: size ?? undefined, isValue: size !== null });
  }

  /** Operand references and per-op shape rules. */
  private checkOperands(op: Op, path: string, ref: (name: string, at: string) => number | undefined): void {
    switch (op.op) {
      case "s4d": {
        const H = op.channels;
        const M = op.modes;
        const n = ref(op.x, "x");
        if (n !== undefined && n !== H) this.error(`${path}/x`, `input "${op.x}" has length ${n} but the s4d layer has ${H} channels`);
        const hm = [H, M];
        this.tensor(op.timescale.value, `${path}/timescale/value`, [H], "timescale (one per channel)");
        if (op.timescale.kind === "dt") this.positive(op.timescale.value.data, `${path}/timescale/value/data`, "dt");
        this.tensor(op.logAReal, `${path}/logAReal`, hm, "logAReal ([channels, modes])");
        this.tensor(op.AImag, `${path}/AImag`, hm, "AImag ([channels, modes])");
        if (op.B) {
          this.tensor(op.B.re, `${path}/B/re`, hm, "B.re ([channels, modes])");
          this.tensor(op.B.im, `${path}/B/im`, hm, "B.im ([channels, modes])");
        }
        this.tensor(op.C.re, `${path}/C/re`, hm, "C.re ([channels, modes])");
        this.tensor(op.C.im, `${path}/C/im`, hm, "C.im ([channels, modes])");
        this.tensor(op.D, `${path}/D`, [H], "D (one per channel)");
        const s = this.stateRef(op.state, `${path}/state`);
        if (s !== undefined && s !== 2 * H * M) {
          this.error(`${path}/state`, `state "${op.state}" has size ${s} but an s4d layer with ${H} channels and ${M} modes needs 2*H*M = ${2 * H * M}`);
        }
        this.claimState(op.state, path);
        this.weightQuant(op.quant, `${path}/quant`);
        return;
      }
      case "linear": {
        const n = ref(op.x, "x");
        const shape = op.weight.shape;
        this.tensor(op.weight, `${path}/weight`);
        if (shape.length !== 2) {
          this.error(`${path}/weight/shape`, `weight must be 2-D [out, in], found shape ${shapeText(shape)}`);
          if (op.bias) this.tensor(op.bias, `${path}/bias`);
        } else {
          const [outF, inF] = shape as [number, number];
          if (n !== undefined && n !== inF) this.error(`${path}/x`, `input "${op.x}" has length ${n} but weight ${shapeText(shape)} expects ${inF} inputs`);
          if (op.bias) this.tensor(op.bias, `${path}/bias`, [outF], "bias (one per output)");
        }
        this.weightQuant(op.quant, `${path}/quant`);
        return;
      }
      case "layernorm": {
        const n = ref(op.x, "x");
        const expect = n === undefined ? undefined : [n];
        this.tensor(op.gamma, `${path}/gamma`, expect, `gamma (input length ${n})`);
        this.tensor(op.beta, `${path}/beta`, expect, `beta (input length ${n})`);
        return;
      }
      case "gelu":
      case "sigmoid":
      case "tanh":
      case "relu":
      case "normalize":
      case "div_steps":
        ref(op.x, "x");
        return;
      case "glu": {
        const n = ref(op.x, "x");
        if (n !== undefined && n % 2 !== 0) this.error(`${path}/x`, `glu needs an even-length input, "${op.x}" has length ${n}`);
        return;
      }
      case "add":
      case "mul": {
        const a = ref(op.a, "a");
        const b = ref(op.b, "b");
        if (a !== undefined && b !== undefined && a !== b) this.error(path, `${op.op} needs equal lengths, "${op.a}" has ${a} and "${op.b}" has ${b}`);
        return;
      }
      case "meanpool": {
        const d = this.defs.step.get(op.x);
        if (!d) {
          const inFinal = this.defs.final.has(op.x);
          this.error(`${path}/x`, inFinal ? `meanpool averages a step value over time; "${op.x}" is a final-section value` : `undefined step value "${op.x}"`);
        } else if (!d.isValue) this.error(`${path}/x`, `"${op.x}" names a state_write, which defines no value`);
        return;
      }
      case "matmul": {
        let total: number | undefined = 0;
        let first: number | undefined;
        for (let k = 0; k < op.xs.length; k++) {
          const n = ref(op.xs[k]!, `xs/${k}`);
          if (k === 0) first = n;
          total = n === undefined || total === undefined ? undefined : total + n;
        }
        const w = op.weight;
        if (total !== undefined && total !== w.rows) {
          this.error(`${path}/weight/rows`, `the inputs [${op.xs.join(", ")}] have total length ${total} but the weight has ${w.rows} rows`);
        }
        this.blockMatrix(w, `${path}/weight`);
        if (op.origin === "s4d" && first !== undefined) this.s4dModes(w, first, `${path}/weight`);
        if (op.residual !== undefined) {
          const r = op.residual;
          if (op.origin !== "s4d") this.error(`${path}/residual`, `only an S4D matmul (origin "s4d") can have the residual recurrence form`);
          else if (r.row + r.length > w.rows || r.col + r.length > w.cols)
            this.error(`${path}/residual`, `the residual state block rows [${r.row}, ${r.row + r.length}) x cols [${r.col}, ${r.col + r.length}) is outside the ${w.rows}x${w.cols} weight`);
        }
        if (op.bias) {
          if (op.bias.length !== w.cols) this.error(`${path}/bias`, `bias has ${op.bias.length} entries but the weight has ${w.cols} columns`);
          this.finite(op.bias, `${path}/bias`);
        }
        if (op.quant) {
          if (this.level === "lowered") this.error(`${path}/quant`, `matmul has a quant record but the model level is "lowered" (quantized matmuls need level "quantized")`);
          this.matQuant(op.quant, w, `${path}/quant`);
        } else if (this.level === "quantized") {
          this.error(path, `matmul "${op.out}" has no quant record; every matmul of a "quantized" model needs one`);
        }
        return;
      }
      case "slice": {
        const n = ref(op.x, "x");
        if (n !== undefined && op.start + op.length > n) {
          this.error(path, `slice [${op.start}, ${op.start + op.length}) is outside "${op.x}" of length ${n}`);
        }
        return;
      }
      case "concat":
        op.xs.forEach((x, k) => ref(x, `xs/${k}`));
        return;
      case "affine": {
        const n = ref(op.x, "x");
        for (const key of ["scale", "shift"] as const) {
          const arr = op[key];
          if (n !== undefined && arr.length !== n) this.error(`${path}/${key}`, `${key} has ${arr.length} entries but "${op.x}" has length ${n}`);
          this.finite(arr, `${path}/${key}`);
        }
        return;
      }
      case "state_read":
        this.stateRef(op.state, `${path}/state`);
        return;
      case "state_write": {
        const n = ref(op.x, "x");
        const s = this.stateRef(op.state, `${path}/state`);
        if (n !== undefined && s !== undefined && n !== s) this.error(`${path}/x`, `"${op.x}" has length ${n} but state "${op.state}" has size ${s}`);
        this.claimState(op.state, path);
        return;
      }
    }
  }

  // --- constants -----------------------------------------------------------------------

  /** data length = product(shape); with `expected`, the shape itself; every entry finite. */
  private tensor(t: Tensor, path: string, expected?: number[], role?: string): void {
    let product = 1;
    for (const d of t.shape) product *= d;
    if (t.data.length !== product) this.error(`${path}/data`, `data has ${t.data.length} entries but shape ${shapeText(t.shape)} needs ${product}`);
    if (expected && (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i]))) {
      this.error(`${path}/shape`, `${role ?? "tensor"} must have shape ${shapeText(expected)}, found ${shapeText(t.shape)}`);
    }
    this.finite(t.data, `${path}/data`);
  }

  /** JSON cannot hold NaN or Infinity, but IR built in memory can. */
  private finite(values: readonly number[], path: string): void {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        this.error(`${path}/${i}`, `must be a finite number, found ${values[i]}`);
        return;
      }
    }
  }

  private positive(values: readonly number[], path: string, what: string): void {
    for (let i = 0; i < values.length; i++) {
      if (!(values[i]! > 0)) {
        this.error(`${path}/${i}`, `${what} must be > 0, found ${values[i]}`);
        return;
      }
    }
  }

  private weightQuant(q: WeightQuantSpec | undefined, path: string): void {
    if (q?.levels !== undefined && q.levels % 2 === 0) this.error(`${path}/levels`, `levels must be odd (2L+1 signed levels -L..L), found ${q.levels}`);
  }

  private matQuant(q: MatQuant, w: BlockMatrix, path: string): void {
    const lengths: [keyof MatQuant & ("colScale" | "inRange" | "outRange"), number, string][] = [
      ["colScale", w.cols, "columns"],
      ["inRange", w.rows, "rows"],
      ["outRange", w.cols, "columns"],
    ];
    for (const [key, n, unit] of lengths) {
      if (q[key].length !== n) this.error(`${path}/${key}`, `${key} has ${q[key].length} entries but the weight has ${n} ${unit}`);
      this.finite(q[key], `${path}/${key}`);
    }
  }

  /**
   * A matmul of origin "s4d" is lower-s4d's fused update: its first operand is the state, and
   * over the state rows and columns it is block-diagonal in 2x2 modes (quantization analyses
   * each mode's block for stability, which is only meaningful if no two modes are coupled).
   */
  private s4dModes(w: BlockMatrix, stateLen: number, path: string): void {
    if (stateLen % 2 !== 0 || stateLen > w.rows || stateLen > w.cols) {
      this.error(path, `an S4D matmul's state operand has length ${stateLen}, which must be even and fit the ${w.rows}x${w.cols} weight`);
      return;
    }
    for (let k = 0; k < w.blocks.length; k++) {
      const b = w.blocks[k]!;
      if (b.data.length !== b.rows * b.cols) continue; // reported by blockMatrix
      for (let r = 0; r < b.rows && b.row + r < stateLen; r++)
        for (let c = 0; c < b.cols && b.col + c < stateLen; c++) {
          const row = b.row + r;
          const col = b.col + c;
          if (row >> 1 !== col >> 1 && b.data[r * b.cols + c] !== 0) {
            this.error(`${path}/blocks/${k}/data/${r * b.cols + c}`, `an S4D matmul must not couple two modes, but state ${row} feeds state ${col} (modes ${row >> 1} and ${col >> 1}; use origin "dense" for a general recurrence)`);
            return;
          }
        }
    }
  }

  /** Blocks lie inside the matrix, have rows*cols entries, and never overlap. */
  private blockMatrix(w: BlockMatrix, path: string): void {
    const inside: number[] = [];
    w.blocks.forEach((b, k) => {
      const bp = `${path}/blocks/${k}`;
      if (b.data.length !== b.rows * b.cols) this.error(`${bp}/data`, `data has ${b.data.length} entries but a ${b.rows}x${b.cols} block needs ${b.rows * b.cols}`);
      this.finite(b.data, `${bp}/data`);
      if (b.row + b.rows > w.rows || b.col + b.cols > w.cols) {
        this.error(bp, `block rows [${b.row}, ${b.row + b.rows}) x cols [${b.col}, ${b.col + b.cols}) is outside the ${w.rows}x${w.cols} matrix`);
      } else inside.push(k);
    });
    // Sweep over rows: the blocks still open at a block's first row all contain that row,
    // so their column ranges are disjoint and can be kept sorted for a binary search.
    inside.sort((a, b) => w.blocks[a]!.row - w.blocks[b]!.row);
    let open: number[] = []; // block indices sorted by col
    for (const k of inside) {
      const b = w.blocks[k]!;
      open = open.filter((o) => w.blocks[o]!.row + w.blocks[o]!.rows > b.row);
      let lo = 0;
      let hi = open.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (w.blocks[open[mid]!]!.col < b.col) lo = mid + 1;
        else hi = mid;
      }
      const before = lo > 0 ? open[lo - 1] : undefined;
      const after = lo < open.length ? open[lo] : undefined;
      const hit =
        before !== undefined && w.blocks[before]!.col + w.blocks[before]!.cols > b.col
          ? before
          : after !== undefined && w.blocks[after]!.col < b.col + b.cols
            ? after
            : undefined;
      if (hit !== undefined) {
        this.error(`${path}/blocks/${k}`, `block overlaps block ${hit} of the same matrix (blocks must be disjoint)`);
        continue;
      }
      open.splice(lo, 0, k);
    }
  }

  // --- outputs -------------------------------------------------------------------------

  private checkOutputs(): void {
    const names = new Map<string, string>();
    this.model.outputs.forEach((o, i) => {
      const path = `/outputs/${i}`;
      const prev = names.get(o.name);
      if (prev) this.error(`${path}/name`, `output "${o.name}" is already declared at ${prev}`);
      else names.set(o.name, path);
      const d = this.defs[o.section].get(o.value);
      if (!d) this.error(`${path}/value`, `output "${o.name}" refers to undefined ${o.section} value "${o.value}"`);
      else if (!d.isValue) this.error(`${path}/value`, `output "${o.name}" refers to a state_write, which defines no value`);
    });
  }
}
