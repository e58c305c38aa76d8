import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { formatDiagnostic } from "../src/common/errors.js";
import { canonicalJson, sha256Hex } from "../src/common/json.js";
import { isTargetPath, listTargets, loadTarget, targetFromJson, targetToJson } from "../src/target/load.js";
import { targetSchema } from "../src/target/schema.js";
import { maxWeightLevel, totalCrossbars } from "../src/target/types.js";
import { userErrors } from "./helpers/user-error.js";

const FIX = "test/fixtures/targets";

describe("shipped targets", () => {
  test("xbar64 loads with the documented parameters", () => {
    const t = loadTarget("xbar64");
    expect(t.name).toBe("xbar64");
    expect(t.crossbar).toMatchObject({ rows: 64, cols: 64, numerics: { kind: "quantized", deviceLevels: 16, dacBits: 8, adcBits: 8 }, inputMode: "bit-serial" });
    expect(maxWeightLevel(t)).toBe(15);
    expect(totalCrossbars(t)).toBe(256);
    expect(t.tiles.memoryWords).toBe(65536);
    expect(t.noise.drift).toEqual({ nu: 0.05, t0Seconds: 20, compensate: true });
    expect(t.source.file).toBe(resolve("targets/xbar64.json"));
    expect("$schema" in t).toBe(false);
  });

  test("ideal loads: float numerics, unlimited tiles, no noise", () => {
    const t = loadTarget("ideal");
    expect(t.crossbar.numerics).toEqual({ kind: "float" });
    expect(maxWeightLevel(t)).toBeNull();
    expect(totalCrossbars(t)).toBe(Number.POSITIVE_INFINITY);
    expect(t.noise).toEqual({});
    expect([t.crossbar.rows, t.crossbar.cols]).toEqual([64, 64]);
  });

  test("listTargets names every shipped target, each named like its file", () => {
    const list = listTargets();
    expect(list.map((t) => t.name)).toEqual(["ideal", "xbar128", "xbar256", "xbar64"]);
    for (const t of list) {
      expect(t.file).toBe(resolve(`targets/${t.name}.json`));
      expect(t.description.length).toBeGreaterThan(10);
    }
  });

  test("an unknown name lists the available targets", () => {
    const d = userErrors(() => loadTarget("xbar512"), "usage");
    expect(d[0]!.message).toBe('unknown target "xbar512"; available targets: ideal, xbar128, xbar256, xbar64 (or give the path of a target .json file)');
    // The schema file sits next to the targets but is not one.
    expect(userErrors(() => loadTarget("target.schema"), "usage")[0]!.message).toMatch(/^unknown target "target.schema"/);
  });

  test("every schema property documents itself", () => {
    const missing: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (typeof node !== "object" || node === null) return;
      const n = node as Record<string, unknown>;
      if (n.properties && typeof n.properties === "object") {
        for (const [k, v] of Object.entries(n.properties as Record<string, Record<string, unknown>>)) {
          const target = typeof v.$ref === "string" && v.description === undefined ? (targetSchema().schema.definitions as Record<string, Record<string, unknown>>)[v.$ref.split("/").pop()!] : v;
          if (typeof target?.description !== "string" && typeof target?.title !== "string") missing.push(`${path}/${k}`);
        }
      }
      for (const [k, v] of Object.entries(n)) walk(v, `${path}/${k}`);
    };
    walk(targetSchema().schema, "");
    expect(missing).toEqual([]);
  });
});

describe("hashing and canonical JSON", () => {
  test("source.sha256 is the hash of targetToJson, which is canonical and has no $schema/source", () => {
    const t = loadTarget("xbar64");
    const json = targetToJson(t);
    expect(t.source.sha256).toBe(sha256Hex(json));
    expect(t.source.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(json).toBe(JSON.stringify(JSON.parse(json)));
    expect(json).not.toMatch(/\$schema|"source"/);
    expect(json.startsWith('{"clockHz":1000000000,"crossbar":{"adcCyclesPerConversion":1,')).toBe(true);
    const raw = JSON.parse(readFileSync("targets/xbar64.json", "utf8")) as Record<string, unknown>;
    delete raw.$schema;
    expect(json).toBe(canonicalJson(raw));
  });

  test("the hash ignores key order, whitespace, number spelling and $schema", () => {
    const a = loadTarget("xbar64");
    const b = loadTarget(`${FIX}/xbar64-reordered.json`);
    expect(b.source.file).toBe(`${FIX}/xbar64-reordered.json`);
    expect(b.source.sha256).toBe(a.source.sha256);
    expect(targetToJson(b)).toBe(targetToJson(a));
  });

  test("the hash changes with any value", () => {
    const text = readFileSync("targets/xbar64.json", "utf8");
    const a = targetFromJson(text, "a.json");
    const b = targetFromJson(text.replace('"integrationCycles": 10', '"integrationCycles": 11'), "b.json");
    expect(b.source.sha256).not.toBe(a.source.sha256);
  });

  test("an embedded target reloads to the same target", () => {
    const t = loadTarget("ideal");
    const again = targetFromJson(targetToJson(t), "model.xbin#target");
    expect(again).toEqual({ ...t, source: { file: "model.xbin#target", sha256: t.source.sha256 } });
  });

  test("canonicalJson sorts keys at every depth and drops undefined members", () => {
    expect(canonicalJson({ b: [{ z: 1, a: -0.5 }], a: "x", c: undefined })).toBe('{"a":"x","b":[{"a":-0.5,"z":1}]}');
  });
});

describe("loading by path", () => {
  test("relative and absolute paths, and names ending in .json are paths", () => {
    expect(isTargetPath("xbar64")).toBe(false);
    expect(isTargetPath("my.json")).toBe(true);
    expect(isTargetPath("dir\\t")).toBe(true);
    const abs = resolve(`${FIX}/xbar64-reordered.json`);
    expect(loadTarget(abs).source.file).toBe(abs);
    expect(loadTarget("./targets/ideal.json").name).toBe("ideal");
    const d = userErrors(() => loadTarget("xbar64.json"), "io");
    expect(formatDiagnostic(d[0]!)).toBe("xbar64.json: cannot read file: no such file or directory");
  });

  test("schema errors name the file, the JSON path and the line", () => {
    const file = `${FIX}/bad-schema.json`;
    const d = userErrors(() => loadTarget(file), "schema");
    const lines = readFileSync(file, "utf8").split("\n");
    const lineOf = (s: string): number => lines.findIndex((l) => l.includes(s)) + 1;
    expect(d.map((x) => formatDiagnostic(x))).toEqual([
      `${file}:${lineOf('"crossbar"')}:15 (at /crossbar): missing required property "adcCyclesPerConversion"`,
      `${file}:${lineOf('"rows"')}:13 (at /crossbar/rows): must be an integer, found the string "64"`,
      `${file}:${lineOf('"adcBits"')}:18 (at /crossbar/numerics/adcBits): must be >= 2, found 0`,
      `${file}:${lineOf('"count"')}:14 (at /tiles/count): must be an integer from 1 to 65536 or "unlimited", found -2`,
      `${file}:${lineOf('"vector"')}:13 (at /vector): missing required property "lanes"`,
      `${file}:${lineOf('"lanse"')}:14 (at /vector/lanse): unknown property "lanse" (did you mean "lanes"?)`,
    ]);
  });

  test("consistency errors the schema cannot express", () => {
    const file = `${FIX}/inconsistent.json`;
    const d = userErrors(() => loadTarget(file), "semantic");
    expect(d.map((x) => [x.location?.path, x.message])).toEqual([
      ["/crossbar/gMinUs", "gMinUs (30 uS) must be below gMaxUs (25 uS)"],
      ["/crossbar/adcsPerCrossbar", "a crossbar with 64 columns cannot use 65 ADCs (at most one per column)"],
      ["/tiles", "65536 tiles x 8 crossbars = 524288 crossbars, more than the 65536 that 16-bit crossbar ids can address"],
      ["/noise/faults", "stuck-at fractions add up to 1.1, more than all devices (1)"],
    ]);
    expect(d.every((x) => x.location?.file === file && x.location.line !== undefined)).toBe(true);
  });

  test("JSON syntax errors give file:line:col", () => {
    const d = userErrors(() => loadTarget(`${FIX}/syntax-error.json`), "syntax");
    expect(formatDiagnostic(d[0]!)).toBe(`${FIX}/syntax-error.json:4:3: invalid JSON: expected ',' or '}' after a property value but found '"' (missing ',' between properties?)`);
  });

  test("numerics kind is checked against its own variant only", () => {
    const text = readFileSync("targets/ideal.json", "utf8");
    const d = userErrors(() => targetFromJson(text.replace('{ "kind": "float" }', '{ "kind": "float", "dacBits": 8 }'), "t.json"), "schema");
    expect(d.map((x) => [x.location?.path, x.message])).toEqual([["/crossbar/numerics/dacBits", 'unknown property "dacBits"']]);
    const d2 = userErrors(() => targetFromJson(text.replace('{ "kind": "float" }', '{ "kind": "analog" }'), "t.json"), "schema");
    expect(d2.map((x) => [x.location?.path, x.message])).toEqual([["/crossbar/numerics/kind", 'unknown kind "analog"; expected one of float, quantized']]);
  });
});
