// The plugin-target workflow as users run it from the repository root (docs/TARGETS.md,
// "Plugin targets"): compile, run (the plugin found through the program's recorded path, or
// --target / --plugin from elsewhere), verify and compare; and the CLI's exit 1 with one
// message naming the file for a missing or failing plugin.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { readNpy } from "../src/common/npy.js";

let dir: string;
beforeAll(() => {
  if (!existsSync("dist/cli/compile.js")) throw new Error("dist/ is missing: run `npm run build` (npm test does it)");
  dir = mkdtempSync(join(tmpdir(), "imssa-plugin-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(tool: "compile" | "run" | "verify" | "disasm", args: string[], cwd = process.cwd()) {
  const r = spawnSync(process.execPath, [resolve(`dist/cli/${tool}.js`), ...args], { encoding: "utf8", cwd });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const noStack = (text: string): void => expect(text).not.toMatch(/^\s+at .+\(.*:\d+:\d+\)$/m);
const TARGET = "./examples/targets/digital-ssm.json";

describe("compile, run, verify and compare on the digital-ssm plugin target", () => {
  test("the documented commands succeed from the repository root", () => {
    const xbin = join(dir, "tiny.xbin");
    const c = cli("compile", ["examples/tiny.s4d", "--target", TARGET, "-o", xbin]);
    expect(c.code).toBe(0);
    expect(c.err).toMatch(/ext 1\b/);
    const d = cli("disasm", [xbin]);
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/\bext\b +id=1 len=16 /);
    const y = join(dir, "y.npy");
    const r = cli("run", [xbin, "--input", "examples/tiny-input.npy", "--output", y]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(readNpy(y).shape).toEqual([2, 32, 1]);
    const v = cli("verify", ["examples/tiny.s4d", "--target", TARGET, "--input", "examples/tiny-input.npy"]);
    expect(v.code).toBe(0);
    expect(v.out).toMatch(/verification passed/);
    const cmp = cli("compile", ["examples/tiny.s4d", "--compare", `xbar64,${TARGET}`]);
    expect(cmp.code).toBe(0);
    expect(cmp.out).toMatch(/^xbar64 /m);
    expect(cmp.out).toMatch(/^digital-ssm /m);
  });

  test("elsewhere the run needs --target (or --plugin); without, exit 1 naming the program and the plugin", () => {
    const xbin = join(dir, "tiny2.xbin");
    expect(cli("compile", ["examples/tiny.s4d", "--target", TARGET, "-o", xbin, "-q"]).code).toBe(0);
    const y = join(dir, "y2.npy");
    const input = resolve("examples/tiny-input.npy");
    const bare = cli("run", [xbin, "--input", input, "--output", y], dir);
    expect(bare.code).toBe(1);
    expect(bare.err).toMatch(new RegExp(`^imssa-run: error: ${xbin.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: the program needs target plugin "digital-ssm" version 1\\.0\\.0`));
    noStack(bare.err);
    expect(existsSync(y)).toBe(false);
    expect(cli("run", [xbin, "--input", input, "--output", y, "--target", resolve(TARGET)], dir).code).toBe(0);
  });

  test("a plugin that throws while lowering: exit 1, the module and hook named, no output file", () => {
    const plugin = join(dir, "boom.plugin.mjs");
    writeFileSync(plugin, `import base from ${JSON.stringify(pathToFileURL(resolve("examples/targets/digital-ssm.plugin.mjs")).href)};\nexport default { ...base, lowerS4dState() { throw new Error("boom"); } };\n`);
    const target = join(dir, "boom.json");
    writeFileSync(target, JSON.stringify({ ...(JSON.parse(readFileSync(TARGET, "utf8")) as object), $schema: undefined, name: "boom", plugin: "./boom.plugin.mjs" }));
    const out = join(dir, "boom.xbin");
    const c = cli("compile", ["examples/tiny.s4d", "--target", target, "-o", out]);
    expect(c.code).toBe(1);
    expect(c.err).toBe(`imssa-compile: error: ${plugin}: target plugin: lowerS4dState (layer s4_layers.0): the plugin threw Error: boom\n`);
    expect(existsSync(out)).toBe(false);
  });
});

