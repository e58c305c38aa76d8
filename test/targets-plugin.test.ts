// Target plugins (src/target/plugin.ts, docs/TARGETS.md "Plugin targets"): the example
// targets compile and verify against the float reference, the digital-ssm plugin's state
// update is more accurate than crossbars, programs record the plugin's identity in the .xbin,
// and every way a plugin or a program/plugin pairing can go wrong is a UserError naming the
// file and what was expected.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { decodeProgram, encodeProgram, readProgramFile } from "../src/backend/container.js";
import { decodeInstr, encodeInstr, type Instr } from "../src/backend/isa.js";
import { BASE_FORMAT_VERSION, PLUGIN_FORMAT_VERSION, type Program } from "../src/backend/program.js";
import { UserError } from "../src/common/errors.js";
import { readFloatNpy } from "../src/common/npy.js";
import { runProgram } from "../src/interp/run.js";
import { checkProgram } from "../src/interp/verify.js";
import type { Model } from "../src/ir/types.js";
import { compile, loadModel } from "../src/pipeline.js";
import { loadTarget, targetFromJson } from "../src/target/load.js";
import { loadPlugin, loadTargetWithPlugin, pluginForProgram, pluginPathOf, type LoadedPlugin } from "../src/target/plugin.js";
import type { Target } from "../src/target/types.js";
import { verifyModel } from "../src/verify/index.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { splitS4DForPlugin } from "../src/target/plugin-split.js";

const EXAMPLE_PLUGIN = "examples/targets/digital-ssm.plugin.mjs";
const EXAMPLE_TARGET = "./examples/targets/digital-ssm.json";

let dir: string;
let tiny: Model;
let input: { data: Float32Array; shape: number[] };
let ssm: { target: Target; plugin: LoadedPlugin };
let ssmProgram: Program;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "imssa-plugin-"));
  tiny = loadModel("examples/tiny.s4d");
  input = readFloatNpy("examples/tiny-input.npy");
  const loaded = await loadTargetWithPlugin(EXAMPLE_TARGET);
  ssm = { target: loaded.target, plugin: loaded.plugin! };
  ssmProgram = compile(tiny, ssm.target, { plugin: ssm.plugin }).program;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A plugin module in the temp dir that starts from the example and changes `body`. */
function variant(name: string, body: string): string {
  const file = join(dir, `${name}.mjs`);
  const base = pathToFileURL(resolve(EXAMPLE_PLUGIN)).href;
  writeFileSync(file, `import base from ${JSON.stringify(base)};\n${body}\n`);
  return file;
}

async function rejects(p: Promise<unknown> | (() => unknown)): Promise<UserError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error("expected a UserError");
}

const shape3 = (s: number[]): [number, number, number] => [s[0]!, s[1]!, s[2]!];

describe("every shipped target and both example targets run the tiny model within the verify bound", () => {
  const specs = ["ideal", "xbar64", "xbar128", "xbar256", "./examples/targets/xbar32-adc4.json", EXAMPLE_TARGET];
  test.each(specs)("%s", async (spec) => {
    const { target, plugin } = await loadTargetWithPlugin(spec);
    expect(plugin === null).toBe(spec !== EXAMPLE_TARGET);
    const r = verifyModel(tiny, target, input.data, input.shape, { calibration: null, inputFile: "examples/tiny-input.npy", plugin });
    for (const o of r.outputs) expect(o.maxAbsError).toBeLessThanOrEqual(o.bound);
    expect(r.pass).toBe(true);
  });
});

describe("digital-ssm: the S4D state update runs on the plugin's unit", () => {
  test("the program records the plugin and uses its cmac instruction instead of state-update MVMs", () => {
    const p = ssmProgram;
    expect(p.formatVersion).toBe(PLUGIN_FORMAT_VERSION);
    expect(p.plugin).toEqual({
      name: "digital-ssm",
      version: "1.0.0",
      sha256: createHash("sha256").update(readFileSync(EXAMPLE_PLUGIN)).digest("hex"),
      file: EXAMPLE_PLUGIN,
      instructions: [{ id: 1, mnemonic: "cmac" }],
    });
    const code = p.tiles.flatMap((t) => t.sections.step.code);
    const ext = code.filter((i) => i.op === "ext");
    // tiny: one S4D layer, H = 4 channels, M = 4 modes: one cmac over all 16 modes.
    expect(ext).toHaveLength(1);
    expect(ext[0]).toMatchObject({ ext: 1, len: 16, word: 4 });
    // Plain targets stay at format 1 and record no plugin.
    const plain = compile(tiny, loadTarget("xbar64")).program;
    expect(plain.formatVersion).toBe(BASE_FORMAT_VERSION);
    expect(plain).not.toHaveProperty("plugin");
  });

  test("the plugin identity and ext instructions round-trip through the .xbin container", () => {
    const back = decodeProgram(encodeProgram(ssmProgram), "m.xbin");
    expect(back).toEqual(ssmProgram);
    const ins: Instr = { op: "ext", ext: 200, len: 65535, dst: 1, a: 2, b: 3, c: 65535, word: 0xdeadbeef };
    const words = new Uint32Array(4);
    encodeInstr(ins, words, 0);
    expect(decodeInstr(words, 0)).toEqual({ ok: true, instr: ins });
  });

  test("the committed format-1 fixture still loads", () => {
    const old = readProgramFile("test/fixtures/xbin/sample-v1.xbin");
    expect(old.formatVersion).toBe(1);
    expect(old).not.toHaveProperty("plugin");
  });

  test("more accurate than xbar64's direct recurrence (the state path is not quantized), and float32-exact with float crossbars", async () => {
    const err = (target: Target, plugin: LoadedPlugin | null): number =>
      verifyModel(tiny, target, input.data, input.shape, { calibration: null, inputFile: "x", plugin, recurrence: "direct" }).outputs[0]!.maxAbsError;
    const viaPlugin = err(ssm.target, ssm.plugin);
    // The direct form: dA itself on the crossbar, the state path the plugin replaces (the
    // residual default quantizes only dA - I there and is closer to the plugin).
    const viaCrossbars = err(loadTarget("xbar64"), null);
    // Measured: 2.45e-2 vs 1.48e-1 (docs/TARGETS.md). Same crossbars, same readout weights:
    // only the state update differs.
    expect(viaPlugin).toBeLessThan(viaCrossbars / 2);
    // With float crossbars only float32 rounding is left, and the float bound (1e-5 relative) holds.
    const json = JSON.parse(readFileSync(EXAMPLE_TARGET, "utf8")) as Record<string, unknown> & { crossbar: Record<string, unknown> };
    json["name"] = "digital-ssm-float";
    json.crossbar["numerics"] = { kind: "float" };
    const floatTarget = targetFromJson(JSON.stringify(json), resolve("examples/targets/digital-ssm-float.json"));
    const r = verifyModel(tiny, floatTarget, input.data, input.shape, { calibration: null, inputFile: "x", plugin: await loadPlugin(pluginPathOf(floatTarget)!) });
    expect(r.boundMethod).toBe("float32+weight-levels");
    expect(r.pass).toBe(true);
    expect(r.outputs[0]!.relativeMaxError).toBeLessThan(1e-5);
  });

  test("--compare shows both mappings side by side", async () => {
    const { compareTargets } = await import("../src/compare.js");
    const rows = compareTargets(tiny, [loadTarget("xbar64"), await loadTargetWithPlugin(EXAMPLE_TARGET)]);
    expect(rows.map((r) => r.target)).toEqual(["xbar64", "digital-ssm"]);
    expect(rows.every((r) => r.fits)).toBe(true);
  });
});

describe("the IR split (src/target/plugin-split.ts)", () => {
  test("an ONNX model's S4D layers split, biases included, and the split model computes the same", () => {
    const onnx = loadModel("test/fixtures/onnx/digits64_op13.onnx");
    const { model, taken } = splitS4DForPlugin(onnx);
    // Both layers; the second has a norm before it whose shift the lifter folded into a bias.
    expect([...taken.keys()]).toEqual(["step:s0_in.next", "step:s1_in.next"]);
    const [first, second] = [...taken.values()];
    expect(first!.bias).toBeNull();
    const fused = onnx.sections.step.find((o) => o.op === "matmul" && o.out === "s1_in.next.mm");
    const bias = fused!.op === "matmul" ? fused!.bias! : [];
    expect(Array.from(second!.bias!.re.slice(0, 3))).toEqual([bias[0], bias[2], bias[4]]);
    expect(Array.from(second!.bias!.im.slice(0, 3))).toEqual([bias[1], bias[3], bias[5]]);
    // Same function: the float64 reference on both, a few steps of the fixture's input.
    const x = readFloatNpy("test/fixtures/onnx/digits64_op13.input.npy");
    const steps = Array.from({ length: 8 }, (_, t) => Float64Array.of(x.data[t]!));
    const a = evaluateSequence(onnx, { [onnx.inputs[0]!.name]: steps });
    const b = evaluateSequence(model, { [onnx.inputs[0]!.name]: steps });
    for (const [name, v] of Object.entries(a.step)) v.forEach((row, t) => row.forEach((y, i) => expect(Math.abs(b.step[name]![t]![i]! - y)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(y)))));
  });
});

describe("program/plugin mismatches are refused with the expected identity", () => {
  const run = (p: Program, plugin: LoadedPlugin | null) => runProgram(p, input.data, shape3(input.shape), { file: "m.xbin", plugin });

  test("without the plugin", async () => {
    const e = await rejects(() => run(ssmProgram, null));
    expect(e.kind).toBe("usage");
    expect(e.message).toMatch(/^m\.xbin: the program was compiled for target "digital-ssm" with target plugin "digital-ssm" version 1\.0\.0 \(sha256 [0-9a-f]{64}, recorded as examples\/targets\/digital-ssm\.plugin\.mjs\) and cannot run without it/);
  });

  test("with another version, or a modified file of the same version", async () => {
    const other = await loadPlugin(variant("v2", 'export default { ...base, version: "2.0.0" };'));
    expect((await rejects(() => run(ssmProgram, other))).message).toMatch(/compiled with target plugin "digital-ssm" version 1\.0\.0 .* but .*v2\.mjs is a different version: "digital-ssm" version 2\.0\.0/);
    const edited = await loadPlugin(variant("edited", "export default base; // edited"));
    expect((await rejects(() => run(ssmProgram, edited))).message).toMatch(/edited\.mjs is a modified module file \(same name and version\)/);
  });

  test("a recorded plugin path that does not exist names what to pass instead", async () => {
    const moved = { ...ssmProgram, plugin: { ...ssmProgram.plugin!, file: "nowhere/digital-ssm.plugin.mjs" } };
    const e = await rejects(pluginForProgram(moved, "m.xbin"));
    expect(e.message).toMatch(/^m\.xbin: the program needs target plugin "digital-ssm" version 1\.0\.0 .*recorded at compile time as nowhere\/digital-ssm\.plugin\.mjs, which does not exist here .*--plugin FILE or the target with --target TARGET\.json/);
    // --target finds it through the target file, --plugin directly; both are then checked by sha256.
    expect((await pluginForProgram(moved, "m.xbin", { target: EXAMPLE_TARGET }))!.sha256).toBe(ssmProgram.plugin!.sha256);
    expect((await pluginForProgram(moved, "m.xbin", { plugin: EXAMPLE_PLUGIN }))!.sha256).toBe(ssmProgram.plugin!.sha256);
  });

  test("ext instructions the plugin does not declare, or whose declared accesses leave tile memory", () => {
    const bad = structuredClone(ssmProgram);
    const at = bad.tiles.findIndex((t) => t.sections.step.code.some((i) => i.op === "ext"));
    const code = bad.tiles[at]!.sections.step.code;
    const k = code.findIndex((i) => i.op === "ext");
    code[k] = { ...(code[k] as Extract<Instr, { op: "ext" }>), ext: 7 };
    expect(() => checkProgram(bad, "m.xbin", ssm.plugin)).toThrow(/instruction \d+ \(ext\): plugin "digital-ssm" declares no instruction with id 7 \(it declares 1\)/);
    code[k] = { ...(code[k] as Extract<Instr, { op: "ext" }>), ext: 1, c: 65500 };
    expect(() => checkProgram(bad, "m.xbin", ssm.plugin)).toThrow(/cmac: c range \[65500, 65596\) exceeds the tile's \d+ memory words/);
    code[k] = { ...(code[k] as Extract<Instr, { op: "ext" }>), c: 0, word: 3 };
    // The plugin's own check of its operands (len must be a multiple of word) surfaces as a plugin error.
    expect(() => checkProgram(bad, "m.xbin", ssm.plugin)).toThrow(/digital-ssm\.plugin\.mjs: target plugin: instructions\[cmac\]\.access: the plugin threw Error: cmac: len 16 must be a positive multiple of word/);
  });
});

describe("a plugin that misbehaves is a UserError naming the module and the hook", () => {
  test("throws while loading", async () => {
    const file = join(dir, "throws.mjs");
    writeFileSync(file, 'throw new Error("no unit today");\n');
    const e = await rejects(loadPlugin(file));
    expect(e.message).toBe(`${file}: target plugin: loading the module: it threw Error: no unit today`);
  });

  test("has the wrong shape", async () => {
    const e = await rejects(loadPlugin(variant("noversion", "const { version, ...rest } = base; export default rest;")));
    expect(e.message).toMatch(/noversion\.mjs \(at version\): target plugin: version must be a non-empty string, found undefined$/);
    const dup = variant("dup", "export default { ...base, instructions: [...base.instructions, { ...base.instructions[0], mnemonic: 'cmac2' }] };");
    expect((await rejects(loadPlugin(dup))).message).toMatch(/dup\.mjs \(at instructions\[1\]\.id\): target plugin: id 1 is used twice/);
  });

  test("throws while lowering", async () => {
    const plugin = await loadPlugin(variant("lowering", 'export default { ...base, lowerS4dState() { throw new RangeError("too many modes"); } };'));
    const e = await rejects(() => compile(tiny, ssm.target, { plugin }));
    expect(e.message).toMatch(/lowering\.mjs: target plugin: lowerS4dState \(layer s4_layers\.0\): the plugin threw RangeError: too many modes$/);
  });

  test("emits instructions that break its own declarations", async () => {
    // 4 modes need a 24-word table (6 words per mode).
    const small = await loadPlugin(variant("small", "export default { ...base, lowerS4dState(layer, out) { out.emit('cmac', { len: 4, word: 4, dst: layer.output, a: layer.state, b: layer.input, c: out.constant(new Float64Array(16)) }); } };"));
    expect((await rejects(() => compile(tiny, ssm.target, { plugin: small }))).message).toMatch(/small\.mjs: target plugin: lowerS4dState \(layer s4_layers\.0\): emit\("cmac"\): the instruction accesses 24 words at c but the c operand has 16$/);
    const plugin = await loadPlugin(variant("partial", "export default { ...base, lowerS4dState(layer, out) { out.emit('cmac', { len: 4, word: 4, dst: layer.output, a: layer.state, b: layer.input, c: out.constant(new Float64Array(24)) }); } };"));
    expect((await rejects(() => compile(tiny, ssm.target, { plugin }))).message).toMatch(/partial\.mjs: target plugin: lowerS4dState \(layer s4_layers\.0\): the hook's instructions must write all 32 words of layer\.output \(x_k\); word 8 is never written/);
    const unknown = await loadPlugin(variant("unknown", "export default { ...base, lowerS4dState(layer, out) { out.emit('fft', {}); } };"));
    expect((await rejects(() => compile(tiny, ssm.target, { plugin: unknown }))).message).toMatch(/emit\("fft"\): the plugin declares no such instruction \(it declares cmac\)/);
  });

  test("throws while executing, or writes the wrong number of words", async () => {
    // Same lowering, so the program is the one for the example plugin except for the identity.
    const throwing = await loadPlugin(variant("exec", "export default { ...base, instructions: base.instructions.map((i) => ({ ...i, execute() { throw new Error('parity error'); } })) };"));
    const p = compile(tiny, ssm.target, { plugin: throwing }).program;
    const e = await rejects(() => runProgram(p, input.data, shape3(input.shape), { file: "m.xbin", plugin: throwing }));
    expect(e.message).toMatch(/exec\.mjs: target plugin: instructions\[cmac\]\.execute: the plugin threw Error: parity error$/);
    const short = await loadPlugin(variant("short", "export default { ...base, instructions: base.instructions.map((i) => ({ ...i, execute(io) { io.write([1, 2]); } })) };"));
    const q = compile(tiny, ssm.target, { plugin: short }).program;
    expect((await rejects(() => runProgram(q, input.data, shape3(input.shape), { file: "m.xbin", plugin: short }))).message).toMatch(
      /short\.mjs: target plugin: instructions\[cmac\]\.execute: the plugin threw Error: write\(\) got 2 values, the access declares 32 written words$/,
    );
  });
});

describe("invalid plugin target files", () => {
  const write = (name: string, edit: (t: Record<string, unknown>) => void): string => {
    const t = JSON.parse(readFileSync(EXAMPLE_TARGET, "utf8")) as Record<string, unknown>;
    delete t["$schema"];
    edit(t);
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(t, null, 2));
    return file;
  };

  test("a plugin that is not a JavaScript module path is a schema error at /plugin", async () => {
    const file = write("bad-plugin.json", (t) => (t["plugin"] = "./digital-ssm.plugin.ts"));
    const e = await rejects(loadTargetWithPlugin(file));
    expect(e.kind).toBe("schema");
    expect(e.diagnostics[0]!.location).toMatchObject({ file, path: "/plugin" });
  });

  test("a plugin file that does not exist names the target file and where it looked", async () => {
    const file = write("missing-plugin.json", (t) => (t["plugin"] = "./missing.mjs"));
    const e = await rejects(loadTargetWithPlugin(file));
    expect(e.message).toBe(`${file} (at /plugin): the target's plugin "./missing.mjs" does not exist (looked for ${join(dir, "missing.mjs")}, relative to the target file)`);
  });

  test("compiling for a plugin target without loading its plugin is refused", async () => {
    const e = await rejects(() => compile(tiny, ssm.target));
    expect(e.message).toMatch(/digital-ssm\.json: target "digital-ssm" has a plugin \(\.\/digital-ssm\.plugin\.mjs\), which this command does not load \(imssa-compile, imssa-run and imssa-verify do; API: loadTargetWithPlugin\)$/);
  });
});
