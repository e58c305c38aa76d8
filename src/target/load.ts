// Finding and loading target descriptions: a shipped name ("xbar64") or the path of a
// user's JSON file. A loaded Target records where it came from and the sha256 of its
// canonical JSON, which compiled programs embed so results can be traced to the exact
// hardware description.

import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { packageUrl } from "../common/package-root.js";
import { UserError } from "../common/errors.js";
import { readText } from "../common/files.js";
import { canonicalJson, parseJson, rethrowLocated, sha256Hex } from "../common/json.js";
import { validateTargetJson } from "./schema.js";
import type { Target } from "./types.js";

const TARGETS_DIR = packageUrl("targets/");
const SCHEMA_FILE = "target.schema.json";

/** True when `spec` names a file rather than a shipped target. */
export function isTargetPath(spec: string): boolean {
  return spec.includes("/") || spec.includes("\\") || spec.endsWith(".json");
}

function shippedNames(): string[] {
  return readdirSync(fileURLToPath(TARGETS_DIR))
    .filter((f) => f.endsWith(".json") && f !== SCHEMA_FILE)
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

function shippedFile(name: string): string {
  return fileURLToPath(new URL(`${name}.json`, TARGETS_DIR));
}

/** Loads a shipped target by name or a target file by path. */
export function loadTarget(spec: string): Target {
  if (isTargetPath(spec)) return targetFromJson(readText(spec), spec);
  const names = shippedNames();
  if (!names.includes(spec)) {
    throw new UserError("usage", `unknown target "${spec}"; available targets: ${names.join(", ")} (or give the path of a target .json file)`);
  }
  const file = shippedFile(spec);
  const target = targetFromJson(readText(file), file);
  if (target.name !== spec) {
    throw new UserError("semantic", `target file is installed as "${spec}" but declares name "${target.name}"`, { file, path: "/name" });
  }
  return target;
}

/** Parses and validates target JSON (a file's text or a program's embedded copy). */
export function targetFromJson(json: string, file: string): Target {
  const data = parseJson(json, file);
  try {
    const description = validateTargetJson(data, file);
    return { ...description, source: { file, sha256: sha256Hex(canonicalJson(description)) } };
  } catch (e) {
    rethrowLocated(e, json);
  }
}

/** Canonical JSON of the description (sorted keys, no whitespace, no `source`): what `source.sha256` hashes. */
export function targetToJson(t: Target): string {
  const { source: _where, ...description } = t;
  return canonicalJson(description);
}

/** The shipped targets, by name. */
export function listTargets(): { name: string; description: string; file: string }[] {
  return shippedNames().map((name) => {
    const t = loadTarget(name);
    return { name: t.name, description: t.description, file: t.source.file };
  });
}
