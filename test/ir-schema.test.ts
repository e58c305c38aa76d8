import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { formatDiagnostic, type Diagnostic } from "../src/common/errors.js";
import { parseJson } from "../src/common/json.js";
import { parseModelJson, readModelFile } from "../src/ir/json.js";
import type { Model } from "../src/ir/types.js";
import { irSchema, OP_LEVELS, validateModel } from "../src/ir/validate.js";
import { userErrors } from "./helpers/user-error.js";

const FIX = "test/fixtures/ir";
const fixture = (name: string): Model => JSON.parse(readFileSync(`${FIX}/${name}.json`, "utf8")) as Model;

/** Runs `fn`, expects a UserError of `kind`, returns its diagnostics. */
function schemaErrors(json: unknown): Diagnostic[] {
  return userErrors(() => validateModel(json, "m.json"), "schema");
}

describe("IR schema", () => {
  test.each(["linear-gelu", "s4d-h2m2", "lowered", "quantized"])("fixture %s is valid", (name) => {
    expect(irSchema().check(fixture(name), "x.json")).toEqual([]);
    expect(readModelFile(`${FIX}/${name}.json`)).toEqual(fixture(name));
  });

  test("the schema's op kinds are exactly the OpKind union", () => {
    const defs = irSchema().schema.definitions as Record<string, { oneOf?: { $ref: string }[]; properties?: { op?: { const?: string; enum?: string[] } } }>;
    const kinds = defs.op!.oneOf!.flatMap((b) => {
      const op = defs[b.$ref.replace("#/definitions/", "")]!.properties!.op!;
      return op.const !== undefined ? [op.const] : op.enum!;
    });
    expect(kinds.sort()).toEqual(Object.keys(OP_LEVELS).sort());
  });

  test("wrong type is reported with file and JSON path", () => {
    const m = fixture("linear-gelu") as unknown as { inputs: { size: unknown }[] };
    m.inputs[0]!.size = "3";
    const d = schemaErrors(m);
    expect(d).toEqual([{ message: 'must be an integer, found the string "3"', location: { file: "m.json", path: "/inputs/0/size" } }]);
    expect(formatDiagnostic(d[0]!)).toBe('m.json (at /inputs/0/size): must be an integer, found the string "3"');
  });

  test("a misspelt property is named, with a suggestion", () => {
    const m = fixture("linear-gelu") as unknown as { sections: { step: Record<string, unknown>[] } };
    m.sections.step[0]!.wieght = m.sections.step[0]!.weight;
    delete m.sections.step[0]!.weight;
    const d = schemaErrors(m);
    expect(d.map((x) => [x.location?.path, x.message])).toEqual([
      ["/sections/step/0", 'missing required property "weight"'],
      ["/sections/step/0/wieght", 'unknown property "wieght" (did you mean "weight"?)'],
    ]);
  });

  test("an unknown op names the op and lists the valid ones (no noise from other branches)", () => {
    const m = fixture("linear-gelu") as unknown as { sections: { step: Record<string, unknown>[] } };
    m.sections.step[1]!.op = "gelo";
    const d = schemaErrors(m);
    expect(d).toHaveLength(1);
    expect(d[0]!.location?.path).toBe("/sections/step/1/op");
    expect(d[0]!.message).toMatch(/^unknown op "gelo" \(did you mean "gelu"\?\); expected one of s4d, linear, .*div_steps$/);
  });

  test("errors inside an op are reported against that op's schema only", () => {
    const m = fixture("lowered") as unknown as { sections: { step: Record<string, unknown>[] } };
    m.sections.step[2]!.length = 0;
    m.sections.step[1]!.origin = "conv";
    const d = schemaErrors(m);
    expect(d.map((x) => [x.location?.path, x.message])).toEqual([
      ["/sections/step/1/origin", 'must be one of "dense", "s4d", found the string "conv"'],
      ["/sections/step/2/length", "must be >= 1, found 0"],
    ]);
  });

  test("missing op tag and bad level", () => {
    const m = fixture("linear-gelu") as unknown as { level: string; sections: { final: Record<string, unknown>[] } };
    delete m.sections.final[1]!.op;
    m.level = "high";
    const d = schemaErrors(m);
    expect(d.map((x) => [x.location?.path, x.message])).toEqual([
      ["/level", 'must be one of "model", "lowered", "quantized", found the string "high"'],
      ["/sections/final/1", 'missing required property "op"'],
    ]);
  });

  test("irVersion must be 1 and the root must be an object", () => {
    expect(schemaErrors({ ...fixture("s4d-h2m2"), irVersion: 2 })[0]!.message).toBe("must be 1, found 2");
    expect(schemaErrors([1, 2])).toEqual([{ message: "must be an object, found an array", location: { file: "m.json", path: "" } }]);
  });

  test("a huge tensor of wrong values yields a bounded diagnostic list", () => {
    const m = fixture("linear-gelu") as unknown as { sections: { step: { weight: { data: unknown[] } }[] } };
    m.sections.step[0]!.weight.data = Array.from({ length: 500 }, () => "x");
    const d = schemaErrors(m);
    expect(d.length).toBe(51);
    expect(d[50]!.message).toBe("... and 450 more problems");
    expect(d[0]!.location?.path).toBe("/sections/step/0/weight/data/0");
  });

  test("parsing text places schema errors at line and column", () => {
    const text = readFileSync(`${FIX}/linear-gelu.json`, "utf8").replace('"size": 3', '"size": -3');
    const d = userErrors(() => parseModelJson(text, "tiny.json"), "schema");
    const line = text.split("\n").findIndex((l) => l.includes('"size": -3')) + 1;
    expect(d).toEqual([{ message: "must be >= 1, found -3", location: { file: "tiny.json", path: "/inputs/0/size", line, column: text.split("\n")[line - 1]!.indexOf("-3") + 1 } }]);
  });
});

describe("JSON syntax errors", () => {
  const cases: [string, string, number, number][] = [
    ['{\n  "a": 1,\n}', "trailing comma before '}'", 2, 9],
    ['{\n  "a": [1, 2,]\n}', "trailing comma before ']'", 2, 13],
    ['{"a": 1 "b": 2}', "expected ',' or '}' after a property value but found '\"' (missing ',' between properties?)", 1, 9],
    ["{'a': 1}", "property names must use double quotes", 1, 2],
    ['{"a": tru}', "unexpected word 'tru' (JSON values are objects, arrays, \"strings\", numbers, true, false and null)", 1, 7],
    ['{"a": NaN}', "unexpected word 'NaN' (JSON values are objects, arrays, \"strings\", numbers, true, false and null)", 1, 7],
    ['{"a": 01}', "invalid number '01'", 1, 7],
    ['{"a": 1.}', "invalid number '1.'", 1, 7],
    ['{"a": "x\n"}', "line break inside a string (unterminated string?)", 1, 9],
    ['{"a": "x\\q"}', "invalid escape '\\q' in a string", 1, 9],
    ['{"a": 1}\n// c', "comments are not allowed in JSON", 2, 1],
    ['{"a": 1} x', "unexpected 'x' after the end of the JSON value", 1, 10],
    ['{"a": ', "expected a value but found the end of the file", 1, 7],
    ['{"a": "abc', "unterminated string", 1, 7],
    ["  \n ", "the file is empty", 2, 2],
    ["\uFEFF{\n\t\"a\" 1}", "expected ':' after property name \"a\" but found '1'", 2, 6],
  ];
  test.each(cases)("%j", (text, message, line, column) => {
    const d = userErrors(() => parseJson(text, "f.json"), "syntax");
    expect(d).toEqual([{ message: `invalid JSON: ${message}`, location: { file: "f.json", line, column } }]);
    expect(formatDiagnostic(d[0]!)).toBe(`f.json:${line}:${column}: invalid JSON: ${message}`);
  });

  test("valid JSON with a BOM parses", () => {
    expect(parseJson('\uFEFF{"a": [1, "x\\u00e9", null, true]}', "f.json")).toEqual({ a: [1, "xé", null, true] });
  });

  test("an IR file with a syntax error reports file:line:col", () => {
    const d = userErrors(() => parseModelJson('{\n  "irVersion": 1,\n  "name": "x",,\n}', "bad.json"), "syntax");
    expect(formatDiagnostic(d[0]!)).toBe("bad.json:3:15: invalid JSON: expected a property name in double quotes but found ','");
  });

  test("a missing IR file is an io error naming the file", () => {
    const d = userErrors(() => readModelFile(`${FIX}/does-not-exist.json`), "io");
    expect(formatDiagnostic(d[0]!)).toBe(`${FIX}/does-not-exist.json: cannot read file: no such file or directory`);
  });
});
