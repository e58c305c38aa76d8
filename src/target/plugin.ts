// Target plugins: a JavaScript (ESM) module next to a target JSON that overrides parts of the
// backend through the small interface below (docs/TARGETS.md, "Plugin targets"):
//   - extra instructions (`instructions`): encoded as the ISA's `ext` opcode with the
//     plugin's id; the plugin declares which words each reads and writes (the verifier checks
//     them), what it computes (the interpreter runs it) and what it costs (cycles on the
//     tile's digital periphery, energy as the target's own event counts);
//   - lowering hooks (`lowerS4dState`): take a part of the model off the crossbars and emit
//     plugin instructions for it instead.
// Plugin code is untrusted in the sense that any mistake in it must surface as a UserError
// naming the module file and the hook, never as an imssa internal error: every call into the
// plugin goes through `guarded` and every returned value is checked.

import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { isUserError, UserError } from "../common/errors.js";
import { sha256Hex } from "../common/json.js";
import type { PluginIdentity, Program } from "../backend/program.js";
import { loadTarget } from "./load.js";
import type { Target } from "./types.js";

// ---------------------------------------------------------------------------------------
// The interface a plugin module implements (its default export). Keep docs/TARGETS.md and
// examples/targets/digital-ssm.plugin.mjs (JSDoc-typed against these types) in sync.

/** The operand fields of an `ext` instruction (src/backend/isa.ts, ExtInstr). */
export interface ExtOperands {
  /** 16-bit count, by convention an element count. */
  len: number;
  /** 16-bit fields, by convention local word addresses (the plugin's `access` says which are). */
  dst: number;
  a: number;
  b: number;
  c: number;
  /** Raw 32-bit immediate. */
  word: number;
}

/** The address fields an instruction may read from. */
export type ExtReadField = "a" | "b" | "c";

/** Local memory an instruction touches: words [field, field + n) per read field, [dst, dst + dst) written. */
export interface ExtAccess {
  reads: Partial<Record<ExtReadField, number>>;
  /** Words written at `dst` (0: writes nothing). */
  writes: number;
}

/** What `execute` sees of the tile: copies of the declared reads, one write of the declared length. */
export interface ExtIo {
  /** The words the instruction declared it reads at `field`, as float64 copies of local memory. */
  read(field: ExtReadField): Float64Array;
  /** Writes exactly `access.writes` values at `dst`; memory rounds them to the datapath precision. */
  write(values: ArrayLike<number>): void;
}

/** Energy of one instruction, in the target's event units (priced by its `energy` block). */
export interface ExtEvents {
  /** Element operations of the digital periphery, at energy.vectorOpPj each. */
  vectorElementOps?: number;
  /** Local memory words moved, at energy.localWordPj each. */
  localWords?: number;
}

export interface ExtInstructionSpec {
  /** Stable id 0-255: programs store it, so never renumber a released instruction. */
  id: number;
  /** Lower-case name for listings, e.g. "cmac". */
  mnemonic: string;
  /** One line for humans. */
  doc?: string;
  /** Memory the instruction reads and writes, from its operands alone. */
  access(o: ExtOperands): ExtAccess;
  /** Functional semantics. Must be deterministic: same reads, same writes. */
  execute(io: ExtIo, o: ExtOperands): void;
  /** Timing semantics: cycles the tile's digital periphery is busy (integer >= 1). */
  cycles(o: ExtOperands, target: Target): number;
  /** Energy semantics, in the target's event units. */
  events(o: ExtOperands, target: Target): ExtEvents;
}

/** A local-memory operand handed to a lowering hook: an opaque buffer window. */
export interface ExtOperandRef {
  readonly words: number;
  /** `n` words (default: the rest) starting `offset` words into this operand. */
  at(offset: number, n?: number): ExtOperandRef;
}

/** One instruction a lowering hook emits: operand fields as refs (addresses) or numbers. */
export interface ExtEmitOperands {
  len?: number;
  dst?: ExtOperandRef;
  a?: ExtOperandRef;
  b?: ExtOperandRef;
  c?: ExtOperandRef;
  word?: number;
}

/** What a lowering hook can do: allocate tile memory and emit the plugin's instructions. */
export interface ExtEmitter {
  /** Constant words, written to tile memory at the start of every sequence. */
  constant(values: ArrayLike<number>): ExtOperandRef;
  /** Scratch words, valid within this step. */
  scratch(words: number): ExtOperandRef;
  /** Appends instruction `mnemonic` of this plugin to the layer's tile stream. */
  emit(mnemonic: string, operands: ExtEmitOperands): void;
}

/**
 * The diagonal recurrence of one S4D layer, x_k = dA ⊙ x_{k-1} + dB u_k (+ bias) per complex
 * mode (docs/QUANTIZATION.md), H channels with M modes; index h*M + m.
 */
export interface S4DRecurrence {
  /** The layer's name (IR `layer`, else the matmul's value name). */
  layer: string;
  channels: number;
  modes: number;
  dA: { re: Float64Array; im: Float64Array };
  dB: { re: Float64Array; im: Float64Array };
  /**
   * A constant added per mode, x_k = dA ⊙ x_{k-1} + dB u_k + bias: front ends fold affine
   * ops that precede the layer into it (e.g. ONNX models with a norm before the S4D); null
   * when zero, as for every DSL model.
   */
  bias: { re: Float64Array; im: Float64Array } | null;
}

/** What a plugin's lowerS4dState hook gets: the recurrence and where its operands live. */
export interface S4DStateUpdate extends S4DRecurrence {
  /** x_{k-1}: 2HM words, [re, im] per (channel, mode). */
  state: ExtOperandRef;
  /** u_k: H words. */
  input: ExtOperandRef;
  /** x_k: 2HM words, same order; the hook's instructions must write all of them. */
  output: ExtOperandRef;
}

export interface TargetPlugin {
  /** Same character set as target names. */
  name: string;
  /** Recorded in programs; a program refuses to run with another version (or another file). */
  version: string;
  description?: string;
  instructions: ExtInstructionSpec[];
  /**
   * When present, every S4D layer's state update leaves the crossbars: the compiler splits
   * the fused S4D matmul into x_k (this hook) and y_k = 2 Re(C x_k) + D u_k (crossbars),
   * and calls the hook once per layer to emit the instructions computing x_k.
   */
  lowerS4dState?(layer: S4DStateUpdate, out: ExtEmitter): void;
}

// ---------------------------------------------------------------------------------------
// Loading and checking a module.

/** A plugin module loaded, checked and hashed. All calls into it go through `call`. */
export interface LoadedPlugin {
  plugin: TargetPlugin;
  /** Absolute path of the module file. */
  path: string;
  /** sha256 of the module file's bytes. */
  sha256: string;
  byId: ReadonlyMap<number, ExtInstructionSpec>;
  byMnemonic: ReadonlyMap<string, ExtInstructionSpec>;
  /** Runs `fn` (a call into the plugin); anything it throws becomes a UserError naming the module and `hook`. */
  call<T>(hook: string, fn: () => T): T;
  /** A UserError about the plugin's behaviour in `hook` (e.g. a bad return value). */
  error(hook: string, message: string): UserError;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MNEMONIC_PATTERN = /^[a-z][a-z0-9_.]*$/;

function describeThrown(e: unknown): string {
  if (isUserError(e)) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function pluginError(file: string, hook: string, message: string): UserError {
  return new UserError("semantic", `target plugin: ${hook}: ${message}`, { file });
}

function checkShape(raw: unknown, file: string): TargetPlugin {
  const bad = (path: string, message: string): never => {
    throw new UserError("semantic", `target plugin: ${message}`, { file, path });
  };
  if (typeof raw !== "object" || raw === null) return bad("default", "the module's default export must be the plugin object (export default { name, version, instructions, ... })");
  const p = raw as Record<string, unknown>;
  const allowed = new Set(["name", "version", "description", "instructions", "lowerS4dState"]);
  for (const k of Object.keys(p)) if (!allowed.has(k)) bad(k, `unknown plugin member "${k}"; expected ${[...allowed].join(", ")}`);
  if (typeof p.name !== "string" || !NAME_PATTERN.test(p.name)) bad("name", `name must be a string of letters, digits, '_', '.', '-', found ${JSON.stringify(p.name)}`);
  if (typeof p.version !== "string" || p.version === "") bad("version", `version must be a non-empty string, found ${JSON.stringify(p.version)}`);
  if (p.description !== undefined && typeof p.description !== "string") bad("description", "description must be a string");
  if (p.lowerS4dState !== undefined && typeof p.lowerS4dState !== "function") bad("lowerS4dState", "lowerS4dState must be a function");
  if (!Array.isArray(p.instructions)) return bad("instructions", "instructions must be an array (may be empty)");
  const ids = new Set<number>();
  const names = new Set<string>();
  p.instructions.forEach((ins: unknown, i) => {
    const at = `instructions[${i}]`;
    if (typeof ins !== "object" || ins === null) bad(at, "each instruction must be an object");
    const s = ins as Record<string, unknown>;
    if (!(Number.isInteger(s.id) && (s.id as number) >= 0 && (s.id as number) <= 255)) bad(`${at}.id`, `id must be an integer 0-255, found ${JSON.stringify(s.id)}`);
    if (ids.has(s.id as number)) bad(`${at}.id`, `id ${s.id as number} is used twice`);
    ids.add(s.id as number);
    if (typeof s.mnemonic !== "string" || !MNEMONIC_PATTERN.test(s.mnemonic)) bad(`${at}.mnemonic`, `mnemonic must match ${MNEMONIC_PATTERN}, found ${JSON.stringify(s.mnemonic)}`);
    if (names.has(s.mnemonic as string)) bad(`${at}.mnemonic`, `mnemonic "${s.mnemonic as string}" is used twice`);
    names.add(s.mnemonic as string);
    for (const f of ["access", "execute", "cycles", "events"]) if (typeof s[f] !== "function") bad(`${at}.${f}`, `${f} must be a function`);
  });
  return p as unknown as TargetPlugin;
}

/** Loads the plugin module at `file` (a path, resolved against the working directory). */
export async function loadPlugin(file: string): Promise<LoadedPlugin> {
  const path = resolve(file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError("io", `cannot read the target plugin module${code === "ENOENT" ? ": no such file" : `: ${describeThrown(e)}`}`, { file });
  }
  const sha256 = sha256Hex(bytes);
  let mod: Record<string, unknown>;
  try {
    // The hash is part of the URL so a changed file is really re-imported (the ESM loader
    // caches by URL), and the module we run is the one we hashed.
    mod = (await import(`${pathToFileURL(path).href}?sha256=${sha256}`)) as Record<string, unknown>;
  } catch (e) {
    throw pluginError(file, "loading the module", `it threw ${describeThrown(e)}`);
  }
  const plugin = checkShape(mod.default, file);
  const call = <T>(hook: string, fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      // Our own checks of what the plugin did (inside nested calls) are already UserErrors.
      if (isUserError(e)) throw e;
      throw pluginError(file, hook, `the plugin threw ${describeThrown(e)}`);
    }
  };
  return {
    plugin,
    path,
    sha256,
    byId: new Map(plugin.instructions.map((s) => [s.id, s])),
    byMnemonic: new Map(plugin.instructions.map((s) => [s.mnemonic, s])),
    call,
    error: (hook, message) => pluginError(file, hook, message),
  };
}

/** Path of the plugin named by a target's `plugin` field (relative to the target file). */
export function pluginPathOf(target: Target): string | null {
  if (target.plugin === undefined) return null;
  return isAbsolute(target.plugin) ? target.plugin : resolve(dirname(target.source.file), target.plugin);
}

/**
 * How a program records where its plugin was: relative to the working directory when the
 * module is below it (posix separators, so the record is the same on every OS), else absolute.
 */
export function recordedPluginPath(absolute: string, cwd = process.cwd()): string {
  const rel = relative(cwd, absolute);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return absolute;
  return rel.split(sep).join("/");
}

// ---------------------------------------------------------------------------------------
// Targets with plugins, and the identity programs record.

export interface TargetWithPlugin {
  target: Target;
  /** The target's plugin, loaded; null for plain JSON targets. */
  plugin: LoadedPlugin | null;
}

/** Loads a target (shipped name or file) and, when it names one, its plugin module. */
export async function loadTargetWithPlugin(spec: string): Promise<TargetWithPlugin> {
  const target = loadTarget(spec);
  const path = pluginPathOf(target);
  if (path === null) return { target, plugin: null };
  if (!existsSync(path))
    throw new UserError("io", `the target's plugin "${target.plugin}" does not exist (looked for ${path}, relative to the target file)`, { file: target.source.file, path: "/plugin" });
  return { target, plugin: await loadPlugin(path) };
}

/** What a program compiled with `loaded` records about it. */
export function pluginIdentity(loaded: LoadedPlugin): PluginIdentity {
  return {
    name: loaded.plugin.name,
    version: loaded.plugin.version,
    sha256: loaded.sha256,
    file: recordedPluginPath(loaded.path),
    instructions: loaded.plugin.instructions.map((s) => ({ id: s.id, mnemonic: s.mnemonic })).sort((a, b) => a.id - b.id),
  };
}

const describeIdentity = (p: { name: string; version: string; sha256: string }): string => `"${p.name}" version ${p.version} (sha256 ${p.sha256})`;

/**
 * Why `loaded` cannot run a program that recorded `want` (null: it can). The sha256 decides:
 * a plugin is only the same if its file is byte for byte the same.
 */
export function pluginMismatch(want: PluginIdentity, loaded: LoadedPlugin): string | null {
  const have = { name: loaded.plugin.name, version: loaded.plugin.version, sha256: loaded.sha256 };
  if (have.name === want.name && have.version === want.version && have.sha256 === want.sha256) return null;
  const what = have.name !== want.name ? "a different plugin" : have.version !== want.version ? "a different version" : "a modified module file (same name and version)";
  return `the program was compiled with target plugin ${describeIdentity(want)} but ${loaded.path} is ${what}: ${describeIdentity(have)}; recompile the program for this plugin or run it with the module it was compiled with`;
}

export interface PluginLookup {
  /** Explicit module file (imssa-run --plugin). */
  plugin?: string;
  /** Explicit target file whose `plugin` to use (imssa-run --target). */
  target?: string;
}

/**
 * Finds and loads the plugin a program needs: --plugin FILE, else the plugin of --target
 * FILE, else the path the program recorded at compile time (relative to the working
 * directory). Returns null for programs without a plugin. Whether the module found is the
 * right one is checked by the verifier (src/interp/verify.ts) against the recorded sha256.
 */
export async function pluginForProgram(p: Program, programFile: string, lookup: PluginLookup = {}): Promise<LoadedPlugin | null> {
  if (p.plugin === undefined) {
    if (lookup.plugin !== undefined)
      throw new UserError("usage", `--plugin ${lookup.plugin}: the program was compiled for target "${p.target.name}", which has no plugin`, { file: programFile });
    return null;
  }
  const want = p.plugin;
  if (lookup.plugin !== undefined) return loadPlugin(lookup.plugin);
  if (lookup.target !== undefined) {
    const { target, plugin } = await loadTargetWithPlugin(lookup.target);
    if (plugin === null)
      throw new UserError("usage", `target "${target.name}" has no plugin, but the program needs target plugin ${describeIdentity(want)}`, { file: target.source.file });
    return plugin;
  }
  const recorded = isAbsolute(want.file) ? want.file : resolve(want.file);
  if (!existsSync(recorded))
    throw new UserError(
      "usage",
      `the program needs target plugin ${describeIdentity(want)}, recorded at compile time as ${want.file}, which does not exist here (${recorded}); pass the module with --plugin FILE or the target with --target TARGET.json`,
      { file: programFile },
    );
  return loadPlugin(recorded);
}
