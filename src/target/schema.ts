// Validation of a target description: targets/target.schema.json for structure and ranges,
// then the cross-field rules a JSON Schema cannot express.

import { UserError, type Diagnostic } from "../common/errors.js";
import { packageUrl } from "../common/package-root.js";
import { loadSchema, type SchemaValidator } from "../common/json.js";
import type { Target } from "./types.js";

/** A target as written in its JSON file: everything but `source`, which the loader adds. */
export type TargetDescription = Omit<Target, "source">;

/** Crossbar ids and tile ids travel in 16-bit instruction fields. */
const MAX_IDS = 0x10000;

let schemaValidator: SchemaValidator | undefined;

export function targetSchema(): SchemaValidator {
  schemaValidator ??= loadSchema(packageUrl("targets/target.schema.json"));
  return schemaValidator;
}

/** Checks untrusted JSON as a target description; returns it without the editor-only `$schema` member. */
export function validateTargetJson(json: unknown, file: string): TargetDescription {
  const problems = targetSchema().check(json, file);
  if (problems.length > 0) throw new UserError("schema", problems);
  const { $schema: _editorHint, ...description } = json as TargetDescription & { $schema?: string };
  const inconsistent = consistencyProblems(description, file);
  if (inconsistent.length > 0) throw new UserError("semantic", inconsistent);
  return description;
}

function consistencyProblems(t: TargetDescription, file: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  const add = (path: string, message: string): void => {
    out.push({ message, location: { file, path } });
  };
  const xb = t.crossbar;
  if (!(xb.gMinUs < xb.gMaxUs)) add("/crossbar/gMinUs", `gMinUs (${xb.gMinUs} uS) must be below gMaxUs (${xb.gMaxUs} uS)`);
  if (xb.adcsPerCrossbar > xb.cols) {
    add("/crossbar/adcsPerCrossbar", `a crossbar with ${xb.cols} columns cannot use ${xb.adcsPerCrossbar} ADCs (at most one per column)`);
  }
  if (xb.numerics.kind === "quantized" && xb.numerics.deviceLevels < 2) {
    add("/crossbar/numerics/deviceLevels", "quantized numerics need at least 2 device levels");
  }
  if (t.tiles.count !== "unlimited" && t.tiles.count * t.tiles.crossbarsPerTile > MAX_IDS) {
    add(
      "/tiles",
      `${t.tiles.count} tiles x ${t.tiles.crossbarsPerTile} crossbars = ${t.tiles.count * t.tiles.crossbarsPerTile} crossbars, more than the ${MAX_IDS} that 16-bit crossbar ids can address`,
    );
  }
  const faults = t.noise.faults;
  if (faults && faults.stuckAtGMin + faults.stuckAtGMax > 1) {
    add("/noise/faults", `stuck-at fractions add up to ${faults.stuckAtGMin + faults.stuckAtGMax}, more than all devices (1)`);
  }
  return out;
}
