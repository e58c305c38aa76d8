// The QAT configuration: build it from a compile result, validate it against
// ir/qat.schema.json, write and read it. See src/qat/types.ts for the structure and
// docs/QAT.md for the workflow.

import type { Diagnostic } from "../common/errors.js";
import { UserError } from "../common/errors.js";
import { readText } from "../common/files.js";
import { formatJson, loadSchema, parseJson, rethrowLocated, type SchemaValidator } from "../common/json.js";
import { packageUrl } from "../common/package-root.js";
import type { CompileResult } from "../pipeline.js";
import type { Target } from "../target/types.js";
import { buildQatConfig, type QatBuildOptions } from "./build.js";
import type { QatConfig } from "./types.js";

export { buildQatConfig, type QatBuildOptions } from "./build.js";
export * from "./types.js";

let validator: SchemaValidator | undefined;

function schema(): SchemaValidator {
  validator ??= loadSchema(packageUrl("ir/qat.schema.json"));
  return validator;
}

/** Schema problems of a QAT configuration (empty when valid). */
export function checkQatConfig(data: unknown, file: string): Diagnostic[] {
  return schema().check(data, file);
}

/** Keys first in this order, the rest as inserted: the summary fields of an object before its long arrays. */
const KEY_ORDER = ["format", "version", "compilerVersion", "name", "section", "layer", "origin", "op", "out"];

function orderKeys(keys: string[]): string[] {
  const first = KEY_ORDER.filter((k) => keys.includes(k));
  return [...first, ...keys.filter((k) => !KEY_ORDER.includes(k))];
}

/** The configuration as JSON text, after checking it against the schema (a failure is a compiler bug). */
export function qatConfigToJson(config: QatConfig, file = "<qat-config>"): string {
  const problems = checkQatConfig(config, file);
  if (problems.length > 0) {
    throw new Error(`internal error: the QAT configuration does not match ir/qat.schema.json:\n${problems.map((d) => `  ${d.location?.path ?? ""}: ${d.message}`).join("\n")}`);
  }
  return formatJson(config, { orderKeys, inlineObjectWidth: 160 });
}

/** Builds, validates and serializes the configuration of a compile result. */
export function emitQatConfig(result: CompileResult, target: Target, opts: QatBuildOptions): string {
  return qatConfigToJson(buildQatConfig(result, target, opts));
}

/** Reads and validates a qat.json file. */
export function readQatConfig(file: string): QatConfig {
  const text = readText(file);
  const data = parseJson(text, file);
  const problems = checkQatConfig(data, file);
  if (problems.length > 0) {
    try {
      throw new UserError("schema", problems);
    } catch (e) {
      rethrowLocated(e, text);
    }
  }
  return data as QatConfig;
}
