// Gives a syntax tree its meaning: resolves layer kinds and options, infers every layer's
// input width, unrolls `repeat`, expands pre/post-norm residuals into plain layernorms,
// applies quantization annotations, assigns parameter names, and reports every semantic
// error with its position (all of them, not just the first).
//
// Default layer names follow state-spaces/s4 example.py so that a checkpoint of its S4Model
// loads without renaming:
//   s4d layers                          s4_layers.{i}            i counts s4d layers in order
//   first linear after s4d i in the     s4_layers.{i}.output_linear.0  (the 1x1 Conv1d)
//     same residual body
//   layernorms (incl. pre/post-norm)    norms.{j}                j counts layernorms in order
//   first linear, before any s4d        encoder
//   last linear, after every s4d, outside residual blocks   decoder
//   other linears                       linear.{k}
//   everything else                     {kind}.{k}  (gelu.0, glu.1, residual.0, meanpool.0 ...)
// An explicit name (`name: layer`) replaces the default and is the tensor prefix in a checkpoint.

import { checkElements, checkLimit } from "../../common/limits.js";
import type { Diagnostic } from "../../common/errors.js";
import type { UnaryKind, WeightQuantSpec } from "../../ir/types.js";
import type { S4DInit } from "../s4d-init.js";
import type { Annotation, Arg, LayerStmt, ModelAst, Name, Pos, Statement, Value } from "./ast.js";
import { didYouMean } from "./suggest.js";

// ---------------------------------------------------------------------------------------
// Output of the checker: a flat, fully resolved layer list.

interface LayerBase {
  /** Unique layer name; for weight layers also the parameter prefix. */
  name: string;
  pos: Pos;
}
export interface LinearLayer extends LayerBase {
  kind: "linear";
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  quant?: WeightQuantSpec;
}
export interface S4DLayer extends LayerBase {
  kind: "s4d";
  H: number;
  N: number;
  discretization: "zoh" | "bilinear";
  dtMin: number;
  dtMax: number;
  init: S4DInit;
  quant?: WeightQuantSpec;
}
export interface LayerNormLayer extends LayerBase {
  kind: "layernorm";
  width: number;
  eps: number;
}
export interface ActivationLayer extends LayerBase {
  kind: "activation";
  op: UnaryKind;
  width: number;
}
export interface GluLayer extends LayerBase {
  kind: "glu";
  /** Input width (even); output is half of it. */
  width: number;
}
/** Ends the per-step part: this layer and all after it run once, in the final section. */
export interface MeanPoolLayer extends LayerBase {
  kind: "meanpool";
  width: number;
}
/** x + body(x). */
export interface ResidualLayer extends LayerBase {
  kind: "residual";
  width: number;
  body: Layer[];
}
export type Layer = LinearLayer | S4DLayer | LayerNormLayer | ActivationLayer | GluLayer | MeanPoolLayer | ResidualLayer;

export type CheckedParams = { kind: "init"; seed: number } | { kind: "file"; path: string; pos: Pos };

export interface CheckedModel {
  name: string;
  input: { name: string; size: number };
  output: { name: string; width: number };
  params: CheckedParams;
  layers: Layer[];
}

export interface CheckResult {
  model?: CheckedModel;
  diagnostics: Diagnostic[];
}

// ---------------------------------------------------------------------------------------
// Layer kinds and their options. Positional arguments bind in the order listed.

type OptType =
  | { kind: "int"; min: number }
  | { kind: "number" } // finite and > 0
  | { kind: "bool" }
  | { kind: "enum"; values: readonly string[] };

interface OptSpec {
  name: string;
  type: OptType;
}

const LAYER_OPTIONS: Readonly<Record<string, readonly OptSpec[]>> = {
  linear: [
    { name: "out", type: { kind: "int", min: 1 } },
    { name: "bias", type: { kind: "bool" } },
  ],
  s4d: [
    { name: "N", type: { kind: "int", min: 2 } },
    { name: "modes", type: { kind: "int", min: 1 } },
    { name: "discretization", type: { kind: "enum", values: ["zoh", "bilinear"] } },
    { name: "dt_min", type: { kind: "number" } },
    { name: "dt_max", type: { kind: "number" } },
    { name: "init", type: { kind: "enum", values: ["lin", "inv"] } },
  ],
  layernorm: [{ name: "eps", type: { kind: "number" } }],
  gelu: [],
  sigmoid: [],
  tanh: [],
  relu: [],
  glu: [],
  meanpool: [],
};
const LAYER_KINDS = Object.keys(LAYER_OPTIONS);
const ANNOTATIONS = ["ternary", "levels"];

/** state-spaces defaults: S4D(d_state=64), S4DKernel(dt_min=0.001, dt_max=0.1), nn.LayerNorm(eps=1e-5). */
export const DEFAULTS = { N: 64, discretization: "zoh", dtMin: 0.001, dtMax: 0.1, init: "lin", eps: 1e-5, bias: true } as const;

type Bound = Map<string, { value: number | string | boolean; pos: Pos }>;

// ---------------------------------------------------------------------------------------

interface LinearNote {
  layer: LinearLayer;
  explicit: boolean;
  s4dBefore: number;
  attachedTo?: number;
  inResidual: boolean;
}

/** Per residual body: which s4d layer a following 1x1 projection belongs to. */
interface Scope {
  lastS4d?: number;
  attached: boolean;
  /** False outside residual bodies, where linears are encoder, decoder or linear.{k}. */
  attaches: boolean;
}

interface Flow {
  /** Width of the value flowing into the next layer; undefined after an error made it unknown. */
  width: number | undefined;
  meanpool?: Pos;
  residualDepth: number;
  quant?: WeightQuantSpec;
}

class Checker {
  readonly diagnostics: Diagnostic[] = [];
  private readonly seenDiag = new Set<string>();
  private readonly linears: LinearNote[] = [];
  private readonly named: { layer: Layer; explicit?: Name; kindCounter?: string }[] = [];
  private s4dCount = 0;
  private normCount = 0;
  /** Statements visited with `repeat` unrolled; bounded so `repeat 1e15 {...}` ends quickly. */
  private visited = 0;
  private readonly kindCounts = new Map<string, number>();

  constructor(private readonly file: string) {}

  private where(pos: Pos): { file: string; line: number; column: number } {
    return { file: this.file, line: pos.line, column: pos.column };
  }

  error(pos: Pos, message: string): void {
    // A repeat body is checked once per copy; say each thing once.
    const key = `${pos.line}:${pos.column}:${message}`;
    if (this.seenDiag.has(key)) return;
    this.seenDiag.add(key);
    this.diagnostics.push({ message, location: { file: this.file, line: pos.line, column: pos.column } });
  }

  check(ast: ModelAst): CheckedModel | undefined {
    const input = this.checkInput(ast);
    const params = this.checkParams(ast);
    for (const extra of ast.outputs.slice(1)) this.error(extra.pos, `a model has one output; the first was declared at ${at(ast.outputs[0]!.pos)}`);
    if (ast.body.length === 0) this.error(ast.pos, "the model has no layers: add at least one layer statement, e.g. `linear(1);`");

    const flow: Flow = { width: input?.size, residualDepth: 0 };
    const layers = this.statements(ast.body, flow, { attached: false, attaches: false });
    this.assignNames();
    this.checkUniqueNames();
    if (this.diagnostics.length > 0 || input === undefined || params === undefined || flow.width === undefined) return undefined;
    return {
      name: ast.name.text,
      input,
      output: { name: ast.outputs[0]?.name.text ?? "y", width: flow.width },
      params,
      layers,
    };
  }

  private checkInput(ast: ModelAst): { name: string; size: number } | undefined {
    const [first, ...rest] = ast.inputs;
    for (const extra of rest) this.error(extra.pos, `a model has one input; the first was declared at ${at(first!.pos)}`);
    if (first === undefined) {
      this.error(ast.pos, "missing input declaration: add e.g. `input u[1];` to give the per-step input and its width");
      return undefined;
    }
    if (!isInt(first.size.value) || first.size.value < 1) {
      this.error(first.size.pos, `input width must be a positive integer, found ${first.size.text}`);
      return undefined;
    }
    checkElements([first.size.value], "the input", this.where(first.size.pos));
    return { name: first.name.text, size: first.size.value };
  }

  private checkParams(ast: ModelAst): CheckedParams | undefined {
    const [first, ...rest] = ast.params;
    for (const extra of rest) this.error(extra.pos, `a model has one params declaration; the first was at ${at(first!.pos)}`);
    if (first === undefined) {
      this.error(ast.pos, 'missing params declaration: add `params init seed 0;` or `params from "weights.safetensors";`');
      return undefined;
    }
    if (first.kind === "file") {
      if (first.path.value === "") {
        this.error(first.path.pos, "params file path is empty");
        return undefined;
      }
      return { kind: "file", path: first.path.value, pos: first.path.pos };
    }
    const seed = first.seed;
    if (seed === undefined) return { kind: "init", seed: 0 };
    if (!isInt(seed.value) || !Number.isSafeInteger(seed.value)) {
      this.error(seed.pos, `seed must be a non-negative integer below 2^53, found ${seed.text}`);
      return undefined;
    }
    return { kind: "init", seed: seed.value };
  }

  // --- statements ----------------------------------------------------------------------

  private statements(list: Statement[], flow: Flow, scope: Scope): Layer[] {
    const out: Layer[] = [];
    for (const st of list) this.statement(st, flow, scope, out);
    return out;
  }

  private statement(st: Statement, flow: Flow, scope: Scope, out: Layer[]): void {
    checkLimit("maxLayers", ++this.visited, "the number of layers and blocks after unrolling `repeat`", this.where(st.pos));
    const quant = this.annotations(st);
    const inner: Flow = quant === undefined ? flow : { ...flow, quant };
    switch (st.kind) {
      case "layer":
        this.layer(st, inner, scope, out, quant !== undefined);
        break;
      case "repeat": {
        const n = st.count.value;
        if (!isInt(n) || n < 1) {
          this.error(st.count.pos, `repeat count must be a positive integer, found ${st.count.text}`);
          break;
        }
        if (st.body.length === 0) {
          this.error(st.pos, "empty repeat block");
          break;
        }
        // Unrolled in place: the copies share the enclosing scope.
        for (let i = 0; i < n; i++) for (const s of st.body) this.statement(s, inner, scope, out);
        break;
      }
      case "residual":
        this.residual(st, inner, out);
        break;
    }
    // Width, section and meanpool state flow out; the annotation's quant does not.
    flow.width = inner.width;
    flow.meanpool = inner.meanpool;
  }

  /** Quantization request of a statement's annotations: undefined = none given (inherit). */
  private annotations(st: Statement): WeightQuantSpec | undefined {
    let quant: WeightQuantSpec | undefined;
    let first: Annotation | undefined;
    for (const a of st.annotations) {
      const spec = this.annotation(a);
      if (spec === undefined) continue;
      if (first !== undefined) {
        this.error(a.pos, `conflicting quantization annotations: @${first.name.text} at ${at(first.pos)} already applies here`);
        continue;
      }
      first = a;
      quant = spec;
    }
    return quant;
  }

  private annotation(a: Annotation): WeightQuantSpec | undefined {
    switch (a.name.text) {
      case "ternary":
        if (a.args.length > 0) this.error(a.args[0]!.pos, "@ternary takes no arguments (it means @levels(3))");
        return { levels: 3 };
      case "levels": {
        const v = a.args[0];
        if (a.args.length !== 1 || v!.key !== undefined) {
          this.error(a.pos, "@levels takes one positional argument, the odd number of signed weight levels, e.g. @levels(7)");
          return undefined;
        }
        const n = v!.value;
        if (n.kind !== "number" || !isInt(n.value) || n.value < 3 || n.value % 2 === 0) {
          this.error(n.pos, `@levels needs an odd integer >= 3 (levels -L..L), found ${valueText(n)}`);
          return undefined;
        }
        return { levels: n.value };
      }
      default:
        this.error(a.name.pos, `unknown annotation @${a.name.text}; expected one of ${ANNOTATIONS.map((x) => "@" + x).join(", ")}${didYouMean(`@${a.name.text}`, ANNOTATIONS.map((x) => "@" + x))}`);
        return undefined;
    }
  }

  private residual(st: Extract<Statement, { kind: "residual" }>, flow: Flow, out: Layer[]): void {
    const w = flow.width;
    const inner: Flow = { ...flow, residualDepth: flow.residualDepth + 1 };
    const body: Layer[] = [];
    let eps: number | undefined;
    if (st.norm) {
      const bound = this.bind(st.norm.args, LAYER_OPTIONS.layernorm!, st.norm.mode);
      eps = (bound.get("eps")?.value as number | undefined) ?? DEFAULTS.eps;
      if (st.norm.mode === "prenorm") body.push(this.layernorm(st.norm.pos, w, eps));
    }
    if (st.body.length === 0) this.error(st.pos, "empty residual block: x + body(x) needs at least one layer in the body");
    body.push(...this.statements(st.body, inner, { attached: false, attaches: true }));
    if (inner.meanpool !== undefined && flow.meanpool === undefined) {
      this.error(inner.meanpool, "meanpool cannot be inside a residual block: x + body(x) would add a pooled value to a per-step one");
    }
    if (w !== undefined && inner.width !== undefined && inner.width !== w) {
      this.error(st.pos, `residual block changes the width from ${w} to ${inner.width}; x + body(x) needs the body to keep the width`);
    }
    const layer: ResidualLayer = { kind: "residual", name: "", pos: st.pos, width: w ?? 0, body };
    this.named.push({ layer, kindCounter: "residual" });
    out.push(layer);
    flow.width = w !== undefined && inner.width === w ? w : undefined;
    if (st.norm?.mode === "postnorm") out.push(this.layernorm(st.norm.pos, flow.width, eps!));
  }

  private layernorm(pos: Pos, width: number | undefined, eps: number, explicit?: Name): LayerNormLayer {
    const layer: LayerNormLayer = { kind: "layernorm", name: `norms.${this.normCount++}`, pos, width: width ?? 0, eps };
    this.named.push({ layer, ...(explicit ? { explicit } : {}) });
    return layer;
  }

  // --- single layers -------------------------------------------------------------------

  private layer(st: LayerStmt, flow: Flow, scope: Scope, out: Layer[], annotated: boolean): void {
    const kind = st.op.text;
    const spec = LAYER_OPTIONS[kind];
    if (spec === undefined) {
      this.error(st.op.pos, `unknown layer '${kind}'; expected one of ${LAYER_KINDS.join(", ")}${didYouMean(kind, LAYER_KINDS)}`);
      flow.width = undefined;
      return;
    }
    const bound = this.bind(st.args, spec, kind);
    const w = flow.width;
    const isWeightLayer = kind === "linear" || kind === "s4d";
    if (annotated && !isWeightLayer) this.error(st.annotations[0]!.pos, `quantization annotations apply to weight layers (linear, s4d), not to ${kind}`);
    const quant = isWeightLayer && flow.quant !== undefined ? { quant: { ...flow.quant } } : {};
    const explicit = st.name;

    switch (kind) {
      case "linear": {
        const outF = bound.get("out")?.value as number | undefined;
        // The weight matrix is allocated from these widths: check them before anything else.
        if (outF !== undefined) checkElements(w === undefined ? [outF] : [outF, w], "linear", this.where(st.op.pos));
        if (outF === undefined) this.error(st.op.pos, "linear needs its output width, e.g. linear(64) or linear(out = 64)");
        const layer: LinearLayer = { kind: "linear", name: "", pos: st.pos, inFeatures: w ?? 0, outFeatures: outF ?? 0, bias: (bound.get("bias")?.value as boolean | undefined) ?? DEFAULTS.bias, ...quant };
        const note: LinearNote = { layer, explicit: explicit !== undefined, s4dBefore: this.s4dCount, inResidual: flow.residualDepth > 0 };
        if (scope.attaches && scope.lastS4d !== undefined && !scope.attached) {
          note.attachedTo = scope.lastS4d;
          scope.attached = true;
        }
        this.linears.push(note);
        this.named.push({ layer, ...(explicit ? { explicit } : {}) });
        out.push(layer);
        flow.width = outF;
        return;
      }
      case "s4d": {
        if (flow.meanpool !== undefined) {
          this.error(st.op.pos, `s4d after meanpool (at ${at(flow.meanpool)}): layers after meanpool run once per sequence, where a recurrence has no time steps`);
        }
        const N = this.stateSize(bound);
        if (N !== undefined) checkElements(w === undefined ? [N] : [w, N], "s4d (channels x state size N)", this.where(st.op.pos));
        const dtMin = (bound.get("dt_min")?.value as number | undefined) ?? DEFAULTS.dtMin;
        const dtMax = (bound.get("dt_max")?.value as number | undefined) ?? DEFAULTS.dtMax;
        if (dtMin > dtMax) this.error(bound.get("dt_min")?.pos ?? bound.get("dt_max")!.pos, `dt_min (${dtMin}) must not exceed dt_max (${dtMax})`);
        const i = this.s4dCount++;
        const layer: S4DLayer = {
          kind: "s4d",
          name: `s4_layers.${i}`,
          pos: st.pos,
          H: w ?? 0,
          N: N ?? 0,
          discretization: ((bound.get("discretization")?.value as string | undefined) ?? DEFAULTS.discretization) as S4DLayer["discretization"],
          dtMin,
          dtMax,
          init: ((bound.get("init")?.value as string | undefined) ?? DEFAULTS.init) as S4DInit,
          ...quant,
        };
        scope.lastS4d = i;
        scope.attached = false;
        this.named.push({ layer, ...(explicit ? { explicit } : {}) });
        out.push(layer);
        return;
      }
      case "layernorm":
        out.push(this.layernorm(st.pos, w, (bound.get("eps")?.value as number | undefined) ?? DEFAULTS.eps, explicit));
        return;
      case "glu": {
        if (w !== undefined && w % 2 !== 0) {
          this.error(st.op.pos, `glu splits its input into two halves, but the width here is ${w} (odd); make the previous layer's width even`);
        }
        const layer: GluLayer = { kind: "glu", name: "", pos: st.pos, width: w ?? 0 };
        this.named.push({ layer, kindCounter: "glu", ...(explicit ? { explicit } : {}) });
        out.push(layer);
        flow.width = w !== undefined && w % 2 === 0 ? w / 2 : undefined;
        return;
      }
      case "meanpool": {
        if (flow.meanpool !== undefined) {
          this.error(st.op.pos, `meanpool used twice; the sequence was already pooled at ${at(flow.meanpool)}`);
        }
        const layer: MeanPoolLayer = { kind: "meanpool", name: "", pos: st.pos, width: w ?? 0 };
        this.named.push({ layer, kindCounter: "meanpool", ...(explicit ? { explicit } : {}) });
        out.push(layer);
        flow.meanpool ??= st.op.pos;
        return;
      }
      default: {
        const layer: ActivationLayer = { kind: "activation", op: kind as UnaryKind, name: "", pos: st.pos, width: w ?? 0 };
        this.named.push({ layer, kindCounter: kind, ...(explicit ? { explicit } : {}) });
        out.push(layer);
        return;
      }
    }
  }

  private stateSize(bound: Bound): number | undefined {
    const N = bound.get("N");
    const modes = bound.get("modes");
    if (N !== undefined && modes !== undefined) {
      this.error(modes.pos, "give either N (state size) or modes (= N/2 complex modes), not both");
      return undefined;
    }
    if (modes !== undefined) return 2 * (modes.value as number);
    if (N !== undefined) {
      if ((N.value as number) % 2 !== 0) {
        this.error(N.pos, `s4d state size N must be even (N/2 complex-conjugate modes), found ${N.value}`);
        return undefined;
      }
      return N.value as number;
    }
    return DEFAULTS.N;
  }

  /** Binds positional and keyword arguments to a layer's options, checking each value's type. */
  private bind(args: Arg[], spec: readonly OptSpec[], what: string): Bound {
    const bound: Bound = new Map();
    let positional = 0;
    let sawKeyword = false;
    for (const a of args) {
      let opt: OptSpec | undefined;
      if (a.key === undefined) {
        if (sawKeyword) {
          this.error(a.pos, `positional argument after a keyword argument in ${what}(...)`);
          continue;
        }
        opt = spec[positional++];
        if (opt === undefined) {
          this.error(a.pos, spec.length === 0 ? `${what} takes no arguments` : `too many arguments for ${what}: it takes at most ${spec.length} (${spec.map((s) => s.name).join(", ")})`);
          continue;
        }
      } else {
        sawKeyword = true;
        const key = a.key.text;
        opt = spec.find((s) => s.name === key);
        if (opt === undefined) {
          const names = spec.map((s) => s.name);
          this.error(a.key.pos, names.length === 0 ? `${what} takes no options` : `unknown option '${key}' for ${what}; expected one of ${names.join(", ")}${didYouMean(key, names)}`);
          continue;
        }
      }
      if (bound.has(opt.name)) {
        this.error(a.pos, `option '${opt.name}' of ${what} given twice`);
        continue;
      }
      const v = this.convert(a.value, opt, what);
      if (v !== undefined) bound.set(opt.name, { value: v, pos: a.pos });
    }
    return bound;
  }

  private convert(v: Value, opt: OptSpec, what: string): number | string | boolean | undefined {
    const t = opt.type;
    const where = `option '${opt.name}' of ${what}`;
    switch (t.kind) {
      case "int":
        if (v.kind === "number" && isInt(v.value) && v.value >= t.min) return v.value;
        this.error(v.pos, `${where} must be an integer >= ${t.min}, found ${valueText(v)}`);
        return undefined;
      case "number":
        if (v.kind === "number" && Number.isFinite(v.value) && v.value > 0) return v.value;
        this.error(v.pos, `${where} must be a positive number, found ${valueText(v)}`);
        return undefined;
      case "bool":
        if (v.kind === "ident" && (v.name === "true" || v.name === "false")) return v.name === "true";
        this.error(v.pos, `${where} must be true or false, found ${valueText(v)}`);
        return undefined;
      case "enum":
        if (v.kind === "ident" && t.values.includes(v.name)) return v.name;
        this.error(v.pos, `${where} must be one of ${t.values.join(", ")}, found ${valueText(v)}${v.kind === "ident" ? didYouMean(v.name, t.values) : ""}`);
        return undefined;
    }
  }

  // --- names ---------------------------------------------------------------------------

  private assignNames(): void {
    const lastLinear = this.linears.at(-1);
    let other = 0;
    this.linears.forEach((note, idx) => {
      if (note.explicit) return;
      if (note.attachedTo !== undefined) note.layer.name = `s4_layers.${note.attachedTo}.output_linear.0`;
      else if (idx === 0 && note.s4dBefore === 0) note.layer.name = "encoder";
      else if (note === lastLinear && note.s4dBefore === this.s4dCount && !note.inResidual) note.layer.name = "decoder";
      else note.layer.name = `linear.${other++}`;
    });
    for (const n of this.named) {
      if (n.explicit) n.layer.name = n.explicit.text;
      else if (n.kindCounter !== undefined) {
        const k = this.kindCounts.get(n.kindCounter) ?? 0;
        this.kindCounts.set(n.kindCounter, k + 1);
        n.layer.name = `${n.kindCounter}.${k}`;
      }
    }
  }

  private checkUniqueNames(): void {
    const seen = new Map<string, { layer: Layer; explicit?: Name }>();
    for (const n of this.named) {
      const prev = seen.get(n.layer.name);
      if (prev === undefined) {
        seen.set(n.layer.name, n);
        continue;
      }
      if (prev.layer === n.layer) continue;
      const where = n.explicit?.pos ?? n.layer.pos;
      const how = (x: { layer: Layer; explicit?: Name }) => (x.explicit ? "named" : "given by default to the layer");
      this.error(
        where,
        `layer name '${n.layer.name}' is already ${how(prev)} at ${at(prev.explicit?.pos ?? prev.layer.pos)}; layer names must be unique${
          n.explicit !== undefined && n.explicit === prev.explicit ? " (a named layer inside `repeat` repeats its name: name it outside or drop the name)" : ""
        }`,
      );
    }
  }
}

function isInt(v: number): boolean {
  return Number.isInteger(v);
}

function at(p: Pos): string {
  return `${p.line}:${p.column}`;
}

function valueText(v: Value): string {
  switch (v.kind) {
    case "number":
      return v.text;
    case "string":
      return JSON.stringify(v.value);
    case "ident":
      return `'${v.name}'`;
  }
}

export function checkModelAst(ast: ModelAst, file: string): CheckResult {
  const c = new Checker(file);
  const model = c.check(ast);
  return model ? { model, diagnostics: c.diagnostics } : { diagnostics: c.diagnostics };
}
