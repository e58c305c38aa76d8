// Command-line syntax of noise models (imssa-run --noise, imssa-sweep --noise / --param):
//
//   target                       the target file's noise blocks (the default)
//   off                          no noise at all
//   [target|off,]key=value,...   overrides on top of the target (or of "off")
//
// Keys are "<part>.<field>" exactly as in the target file's noise section
// (programming.c0, read.sigma, drift.compensate, ...) plus the short aliases drift.t and
// drift.t0 for drift.tSeconds and drift.t0Seconds.

import { UserError } from "../common/errors.js";
import type { NoiseSpec } from "../target/types.js";
import { NOISE_PARTS, noiseFromTarget, noiseOff, type NoiseModel, type NoisePart } from "./spec.js";

const ALIASES: Record<string, string> = { "drift.t": "drift.tSeconds", "drift.t0": "drift.t0Seconds", "read.tRead": "read.tReadSeconds" };

/** Allowed value range per key, mirroring targets/target.schema.json. */
interface Range {
  min?: number;
  /** The bound itself is not allowed. */
  exclusiveMin?: boolean;
  max?: number;
}
const RANGES: Record<string, Range> = {
  "programming.scale": { min: 0 },
  "read.sigma": { min: 0 },
  "read.flickerQs": { min: 0 },
  "read.tReadSeconds": { min: 0, exclusiveMin: true },
  "drift.nu": { min: 0 },
  "drift.nuSigma": { min: 0 },
  "drift.t0Seconds": { min: 0, exclusiveMin: true },
  "drift.tSeconds": { min: 0 },
  "output.sigma": { min: 0 },
  "faults.stuckAtGMin": { min: 0, max: 1 },
  "faults.stuckAtGMax": { min: 0, max: 1 },
  "irDrop.wireOhms": { min: 0 },
  "dac.offsetSigma": { min: 0 },
  "dac.nonlinearity": { min: -1, exclusiveMin: true, max: 100 },
  "adc.offsetSigma": { min: 0 },
  "adc.nonlinearity": { min: -1, exclusiveMin: true, max: 100 },
};

/** Every settable key, in target-file order. */
export function noiseKeys(): string[] {
  const off = noiseOff();
  return NOISE_PARTS.flatMap((part) => Object.keys(off[part]).map((f) => `${part}.${f}`));
}

export interface NoiseKey {
  part: NoisePart;
  field: string;
  /** Canonical "<part>.<field>". */
  name: string;
  boolean: boolean;
}

/** Resolves a key (or alias); `flag` names the option in messages. */
export function resolveNoiseKey(key: string, flag: string): NoiseKey {
  const name = ALIASES[key] ?? key;
  const dot = name.indexOf(".");
  const part = name.slice(0, dot) as NoisePart;
  const field = name.slice(dot + 1);
  const off = noiseOff();
  if (dot < 0 || !NOISE_PARTS.includes(part) || !(field in off[part])) {
    throw new UserError("usage", `${flag}: unknown noise parameter "${key}"; known: ${noiseKeys().join(", ")} (aliases: ${Object.keys(ALIASES).join(", ")})`);
  }
  const value = (off[part] as unknown as Record<string, unknown>)[field];
  return { part, field, name, boolean: typeof value === "boolean" };
}

/** Parses a number; `what` names the option and key for the message. */
export function parseFiniteNumber(text: string, what: string): number {
  const t = text.trim();
  const v = t === "" ? Number.NaN : Number(t);
  if (!Number.isFinite(v)) throw new UserError("usage", `${what}: "${text}" is not a number`);
  return v;
}

function parseBoolean(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (t === "true" || t === "1" || t === "on" || t === "yes") return true;
  if (t === "false" || t === "0" || t === "off" || t === "no") return false;
  throw new UserError("usage", `${what}: "${text}" is not a boolean (true or false)`);
}

function checkRange(k: NoiseKey, v: number, flag: string): void {
  const r = RANGES[k.name];
  if (r === undefined) return;
  const below = r.min !== undefined && (r.exclusiveMin ? v <= r.min : v < r.min);
  const above = r.max !== undefined && v > r.max;
  if (below || above) {
    const lo = r.min === undefined ? "" : `${r.exclusiveMin ? ">" : ">="} ${r.min}`;
    const hi = r.max === undefined ? "" : `<= ${r.max}`;
    throw new UserError("usage", `${flag}: ${k.name} = ${v} is out of range (must be ${[lo, hi].filter((s) => s).join(" and ")})`);
  }
}

/** Sets one parameter on `m` (in place) from its command-line text. */
export function setNoiseParam(m: NoiseModel, key: string, text: string, flag: string): void {
  const k = resolveNoiseKey(key, flag);
  const block = m[k.part] as unknown as Record<string, number | boolean>;
  if (k.boolean) {
    block[k.field] = parseBoolean(text, `${flag} ${k.name}`);
    return;
  }
  const v = parseFiniteNumber(text, `${flag} ${k.name}`);
  checkRange(k, v, flag);
  block[k.field] = v;
}

/** Cross-field rules (the per-field ranges are checked as values are set). */
export function checkNoiseModel(m: NoiseModel, flag: string): void {
  const f = m.faults;
  if (f.stuckAtGMin + f.stuckAtGMax > 1)
    throw new UserError("usage", `${flag}: stuck-at fractions add up to ${f.stuckAtGMin + f.stuckAtGMax}, more than all devices (1)`);
}

/** Parses a --noise argument against the target's noise blocks. */
export function parseNoiseArg(text: string, target: NoiseSpec, flag = "--noise"): NoiseModel {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  let model = noiseFromTarget(target);
  items.forEach((item, i) => {
    if (item === "target" || item === "off") {
      if (i !== 0) throw new UserError("usage", `${flag}: "${item}" must come first (it picks the base the overrides apply to)`);
      if (item === "off") model = noiseOff();
      return;
    }
    const eq = item.indexOf("=");
    if (eq < 0) throw new UserError("usage", `${flag}: "${item}" is neither "target", "off" nor key=value`);
    setNoiseParam(model, item.slice(0, eq).trim(), item.slice(eq + 1), flag);
  });
  checkNoiseModel(model, flag);
  return model;
}

/** A seed from the command line: an integer in [0, 2^53). */
export function parseSeed(text: string, flag: string): number {
  const t = text.trim();
  const v = /^\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!Number.isSafeInteger(v)) throw new UserError("usage", `${flag}: "${text}" is not an integer seed in [0, 2^53)`);
  return v;
}
