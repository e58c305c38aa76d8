// IR files: reading (parse + validate, with every diagnostic placed at file:line:col) and
// writing in a stable, diff-friendly layout.

import { formatJson, parseJson, rethrowLocated } from "../common/json.js";
import { readText } from "../common/files.js";
import type { Model } from "./types.js";
import { validateModel } from "./validate.js";

/** Parses and validates IR JSON text; `file` names it in diagnostics. */
export function parseModelJson(text: string, file: string): Model {
  const json = parseJson(text, file);
  try {
    return validateModel(json, file);
  } catch (e) {
    rethrowLocated(e, text);
  }
}

export function readModelFile(file: string): Model {
  return parseModelJson(readText(file), file);
}

// Keys in reading order: what an object is, then its operands, then its constants. Keys
// not listed (meta entries) follow alphabetically.
const KEY_ORDER = [
  "irVersion",
  "op",
  "kind",
  "out",
  "name",
  "layer",
  "level",
  "inputs",
  "outputs",
  "state",
  "x",
  "xs",
  "a",
  "b",
  "value",
  "section",
  "size",
  "sections",
  "step",
  "final",
  "channels",
  "modes",
  "discretization",
  "timescale",
  "logAReal",
  "AImag",
  "B",
  "C",
  "D",
  "re",
  "im",
  "origin",
  "weight",
  "bias",
  "gamma",
  "beta",
  "eps",
  "start",
  "length",
  "scale",
  "shift",
  "row",
  "col",
  "rows",
  "cols",
  "blocks",
  "shape",
  "data",
  "quant",
  "levels",
  "maxLevel",
  "colScale",
  "inRange",
  "outRange",
  "calibration",
  "meta",
];
const RANK = new Map(KEY_ORDER.map((k, i) => [k, i]));

function orderKeys(keys: string[]): string[] {
  return [...keys].sort((a, b) => {
    const ra = RANK.get(a) ?? KEY_ORDER.length;
    const rb = RANK.get(b) ?? KEY_ORDER.length;
    return ra !== rb ? ra - rb : a < b ? -1 : a > b ? 1 : 0;
  });
}

/**
 * The model as JSON text: stable key order, 2-space indent, numeric arrays on one line.
 * Equal models give equal text, so IR files diff well and can be compared as text.
 */
export function modelToJson(model: Model): string {
  return formatJson(model, { orderKeys, inlineObjectWidth: 100 });
}
