// Every shipped target and the documented example target (examples/targets/) compile and run
// the example models within the bound their quantization implies, and a broken target file
// is reported with its file and JSON path.

import { describe, expect, test } from "@jest/globals";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readFloatNpy } from "../src/common/npy.js";
import { compile, loadModel } from "../src/pipeline.js";
import { listTargets, loadTarget } from "../src/target/load.js";
import { maxWeightLevel, totalCrossbars, type Target } from "../src/target/types.js";
import { verifyModel } from "../src/verify/index.js";
import { userError } from "./helpers/user-error.js";

const EXAMPLE_TARGET = "./examples/targets/xbar32-adc4.json";
const TARGETS = ["xbar64", "xbar128", "xbar256", "ideal", EXAMPLE_TARGET];

/** The example input, cut to its first two sequences and at most 24 steps to keep the suite fast. */
function exampleInput(name: "tiny" | "digits"): { data: Float32Array; shape: [number, number, number] } {
  const { data, shape } = readFloatNpy(`examples/${name}-input.npy`);
  const [B, T, d] = shape as [number, number, number];
  const b = Math.min(B, 2);
  const t = Math.min(T, 24);
  const out = new Float32Array(b * t * d);
  for (let i = 0; i < b; i++) out.set(data.subarray(i * T * d, (i * T + t) * d), i * t * d);
  return { data: out, shape: [b, t, d] };
}

function verifyExample(name: "tiny" | "digits", target: Target) {
  const model = loadModel(`examples/${name}.s4d`);
  const input = exampleInput(name);
  return verifyModel(model, target, input.data, input.shape, { calibration: null, inputFile: `examples/${name}-input.npy` });
}

describe("shipped and example targets", () => {
  test("the shipped targets include xbar64, xbar128, xbar256 and ideal", () => {
    const names = listTargets().map((t) => t.name);
    for (const n of ["ideal", "xbar64", "xbar128", "xbar256"]) expect(names).toContain(n);
  });

  test("xbar128 and xbar256 differ from xbar64 in size, devices, converters, tiles, latency and energy", () => {
    const [t64, t128, t256] = ["xbar64", "xbar128", "xbar256"].map(loadTarget) as [Target, Target, Target];
    expect([t128.crossbar.rows, t128.crossbar.cols, t256.crossbar.rows, t256.crossbar.cols]).toEqual([128, 128, 256, 256]);
    expect([maxWeightLevel(t64), maxWeightLevel(t128), maxWeightLevel(t256)]).toEqual([15, 31, 63]);
    for (const t of [t128, t256]) {
      const n = t.crossbar.numerics;
      const n64 = t64.crossbar.numerics;
      if (n.kind !== "quantized" || n64.kind !== "quantized") throw new Error("expected quantized numerics");
      expect(n.adcBits).toBeGreaterThan(n64.adcBits);
      expect(t.crossbar.adcsPerCrossbar).toBeGreaterThan(t64.crossbar.adcsPerCrossbar);
      expect(t.tiles.count).not.toBe(t64.tiles.count);
      expect(t.energy.adcConversionPj).toBeGreaterThan(t64.energy.adcConversionPj);
      expect(t.description).toMatch(/illustrative/i);
    }
    // Longer bit lines integrate longer.
    expect(t64.crossbar.integrationCycles).toBeLessThan(t128.crossbar.integrationCycles);
    expect(t128.crossbar.integrationCycles).toBeLessThan(t256.crossbar.integrationCycles);
    expect(t256.tiles.crossbarsPerTile).not.toBe(t64.tiles.crossbarsPerTile);
  });

  test("the example target is a 32x32, 4-bit-ADC target loaded by path", () => {
    const t = loadTarget(EXAMPLE_TARGET);
    expect(t.name).toBe("xbar32-adc4");
    expect(t.crossbar).toMatchObject({ rows: 32, cols: 32, numerics: { kind: "quantized", adcBits: 4 } });
    expect(t.source.file).toBe(EXAMPLE_TARGET);
    expect(totalCrossbars(t)).toBe(16);
  });

  describe.each(TARGETS)("%s", (spec) => {
    const target = loadTarget(spec);

    test("tiny compiles, runs and stays within the verification bound", () => {
      const r = verifyExample("tiny", target);
      expect(r.outputs.length).toBeGreaterThan(0);
      for (const o of r.outputs) expect(o.maxAbsError).toBeLessThanOrEqual(o.bound);
      expect(r.pass).toBe(true);
      expect(r.boundMethod).toBe(target.crossbar.numerics.kind === "float" ? "float32+weight-levels" : "quantization-noise");
    });

    test("digits compiles, runs and verifies, or is refused with a resource error", () => {
      if (spec === EXAMPLE_TARGET) {
        // 16 crossbars of 32x32 cannot hold digits' two N = 64 S4D blocks.
        const e = userError(() => compile(loadModel("examples/digits.s4d"), target));
        expect(e.kind).toBe("resource");
        expect(e.message).toMatch(/^digits: model "digits" needs \d+ crossbars of 32x32, but target xbar32-adc4 has 16 \(4 tiles x 4\)/);
        return;
      }
      const r = verifyExample("digits", target);
      expect(r.pass).toBe(true);
      expect(r.outputs.map((o) => o.name)).toEqual(["logits"]);
      // The quantized targets keep the argmax of every sequence (class decisions agree).
      expect(r.outputs[0]!.argmaxAgreement).toBe(1);
    });
  });
});

describe("an invalid target file", () => {
  const dir = mkdtempSync(join(tmpdir(), "imssa-targets-"));
  const base = JSON.parse(readFileSync(EXAMPLE_TARGET, "utf8")) as Record<string, any>;
  const write = (name: string, data: unknown): string => {
    const file = join(dir, name);
    writeFileSync(file, typeof data === "string" ? data : JSON.stringify(data, null, 2));
    return file;
  };

  test("a schema violation names the file, the JSON path and the line", () => {
    const bad = structuredClone(base);
    bad.crossbar.numerics.adcBits = 1;
    const file = write("adc1.json", bad);
    const e = userError(() => loadTarget(file));
    expect(e.kind).toBe("schema");
    const d = e.diagnostics.find((x) => x.location?.path === "/crossbar/numerics/adcBits");
    expect(d).toBeDefined();
    expect(d!.location!.file).toBe(file);
    expect(d!.location!.line).toBeGreaterThan(1);
    expect(e.message).toContain(`${file}:`);
    expect(e.message).toContain("(at /crossbar/numerics/adcBits)");
  });

  test("a misspelt field is refused, not ignored", () => {
    const bad = structuredClone(base);
    bad.crossbar.adcPerCrossbar = 4;
    const file = write("typo.json", bad);
    const e = userError(() => loadTarget(file));
    expect(e.kind).toBe("schema");
    expect(e.diagnostics.some((d) => d.location?.file === file && d.location.path?.startsWith("/crossbar") && /adcPerCrossbar/.test(d.message))).toBe(true);
  });

  test("an inconsistent target (more ADCs than columns) names the field", () => {
    const bad = structuredClone(base);
    bad.crossbar.adcsPerCrossbar = 64;
    const file = write("adcs.json", bad);
    const e = userError(() => loadTarget(file));
    expect(e.kind).toBe("semantic");
    expect(e.diagnostics[0]!.location).toMatchObject({ file, path: "/crossbar/adcsPerCrossbar" });
  });

  test("broken JSON names the file and line", () => {
    const file = write("broken.json", '{ "name": "x",\n  "clockHz": }');
    const e = userError(() => loadTarget(file));
    expect(e.kind).toBe("syntax");
    expect(e.diagnostics[0]!.location).toMatchObject({ file, line: 2 });
  });

  test("a missing file is an io error naming it", () => {
    const file = resolve(dir, "absent.json");
    const e = userError(() => loadTarget(file));
    expect(e.kind).toBe("io");
    expect(e.message).toContain(file);
  });
});
