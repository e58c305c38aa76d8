// Resource limits: the one place that says how big an input may declare itself to be.
// Readers check declared sizes (a tensor's shape, a program's memory, a DSL repeat count)
// against these limits *before* allocating or looping, so a hostile or corrupt file gets a
// "resource" UserError instead of an out-of-memory crash or a hang. docs/LIMITS.md lists
// them; each can be raised (or lowered) with an environment variable, and every imssa-*
// command also accepts `--max-elements N` (handled once, in src/cli/main.ts).

import { UserError, type SourceLocation } from "./errors.js";

export interface Limits {
  /** Elements of any one array an input declares (npy, safetensors, ONNX tensors, matrices). */
  maxElements: number;
  /** Bytes of any one input file read into memory. */
  maxFileBytes: number;
  /** Layers of a model after `repeat` unrolling (DSL) or nodes of a graph (ONNX). */
  maxLayers: number;
  /** Words of global memory a program may declare (the interpreter allocates them). */
  maxGlobalWords: number;
  /** Instructions of a program, all tiles and sections together. */
  maxInstructions: number;
  /** Nesting depth of nested structures (ONNX subgraphs, npy header literals). */
  maxNesting: number;
}

/** Defaults: far above every shipped example, well below what a 64-bit Node process can hold. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxElements: 100_000_000, // 800 MB as float64
  maxFileBytes: 1024 * 1024 * 1024, // 1 GiB
  maxLayers: 10_000,
  maxGlobalWords: 1 << 26, // 256 MiB of float32 words
  maxInstructions: 10_000_000,
  maxNesting: 64,
});

/** Environment variable of each limit (IMSSA_MAX_ELEMENTS, ...). */
export const LIMIT_ENV: Readonly<Record<keyof Limits, string>> = Object.freeze({
  maxElements: "IMSSA_MAX_ELEMENTS",
  maxFileBytes: "IMSSA_MAX_FILE_BYTES",
  maxLayers: "IMSSA_MAX_LAYERS",
  maxGlobalWords: "IMSSA_MAX_GLOBAL_WORDS",
  maxInstructions: "IMSSA_MAX_INSTRUCTIONS",
  maxNesting: "IMSSA_MAX_NESTING",
});

/** Parses a limit value: a positive integer, "1e9" and "1_000_000" allowed. */
export function parseLimit(text: string, what: string): number {
  const v = Number(text.trim().replace(/_/g, ""));
  if (!(Number.isSafeInteger(v) && v >= 1)) throw new UserError("usage", `${what}: "${text}" is not a positive integer`);
  return v;
}

function fromEnv(env: NodeJS.ProcessEnv): Limits {
  const out: Limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(LIMIT_ENV) as (keyof Limits)[]) {
    const text = env[LIMIT_ENV[key]];
    if (text !== undefined && text !== "") out[key] = parseLimit(text, LIMIT_ENV[key]);
  }
  return out;
}

let current: Limits | undefined;

/** The limits in force: defaults, overridden by the environment, then by setLimits. */
export function limits(): Readonly<Limits> {
  current ??= fromEnv(process.env);
  return current;
}

/** Overrides some limits for this process (the CLI's --max-elements, tests). */
export function setLimits(overrides: Partial<Limits>): void {
  current = { ...limits(), ...overrides };
}

/** Back to defaults + environment (tests). */
export function resetLimits(): void {
  current = undefined;
}

/** Product of dimensions, or Infinity once it passes 2^53 (so huge shapes compare safely). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n === 0) return 0;
  }
  return Number.isSafeInteger(n) ? n : Infinity;
}

const HINT = (key: keyof Limits) => `(limit ${key}; raise it with ${LIMIT_ENV[key]}=N${key === "maxElements" ? " or --max-elements N" : ""}, see docs/LIMITS.md)`;

/** Throws a "resource" UserError when `value` exceeds the limit `key`. */
export function checkLimit(key: keyof Limits, value: number, what: string, location?: SourceLocation): void {
  const max = limits()[key];
  if (!(value <= max)) throw new UserError("resource", `${what} is ${value === Infinity ? "more than 2^53" : value}, more than the limit of ${max} ${HINT(key)}`, location);
}

/** The message for a shape above maxElements, or null when it is within the limit. */
export function elementsProblem(shape: readonly number[], what: string): string | null {
  const n = elementCount(shape);
  const max = limits().maxElements;
  if (n <= max) return null;
  const count = n === Infinity ? "more than 2^53" : String(n);
  return `${what} declares shape [${shape.join(", ")}] with ${count} elements, more than the limit of ${max} ${HINT("maxElements")}`;
}

/** Throws a "resource" UserError when a declared shape has more elements than maxElements. */
export function checkElements(shape: readonly number[], what: string, location?: SourceLocation): number {
  const problem = elementsProblem(shape, what);
  if (problem !== null) throw new UserError("resource", problem, location);
  return elementCount(shape);
}
