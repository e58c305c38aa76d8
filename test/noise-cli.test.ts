// The --noise syntax (src/noise/parse.ts) and imssa-run's noise flags.

import { afterAll, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeProgramFile } from "../src/backend/container.js";
import { UserError } from "../src/common/errors.js";
import { readFloatNpy } from "../src/common/npy.js";
import { main } from "../src/cli/run.js";
import { noiseKeys, parseNoiseArg, parseSeed, resolveNoiseKey } from "../src/noise/parse.js";
import { activeParts, noiseFromTarget, noiseOff } from "../src/noise/spec.js";
import { compile, loadModel } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";

const xbar64 = loadTarget("xbar64");

describe("--noise syntax", () => {
  test("target, off and overrides", () => {
    expect(parseNoiseArg("target", xbar64.noise)).toEqual(noiseFromTarget(xbar64.noise));
    expect(parseNoiseArg("", xbar64.noise)).toEqual(noiseFromTarget(xbar64.noise));
    expect(parseNoiseArg("off", xbar64.noise)).toEqual(noiseOff());
    const m = parseNoiseArg("programming.c0=0.01, read.sigma=0.002,drift.t=86400,drift.compensate=false", xbar64.noise);
    expect(m.programming).toEqual({ ...noiseFromTarget(xbar64.noise).programming, c0: 0.01 });
    expect(m.read.sigma).toBe(0.002);
    expect(m.drift).toMatchObject({ tSeconds: 86400, compensate: false, nu: 0.05 });
    const only = parseNoiseArg("off,faults.stuckAtGMin=0.01", xbar64.noise);
    expect(activeParts(only)).toEqual(["faults"]);
    expect(parseNoiseArg("target,drift.t0=10", xbar64.noise).drift.t0Seconds).toBe(10);
  });

  test("every key resolves; aliases map to their fields", () => {
    for (const k of noiseKeys()) expect(resolveNoiseKey(k, "--noise").name).toBe(k);
    expect(resolveNoiseKey("drift.t", "--param").name).toBe("drift.tSeconds");
    expect(noiseKeys()).toContain("irDrop.wireOhms");
  });

  test.each([
    ["programming.c9=1", /--noise: unknown noise parameter "programming.c9"; known: programming.c0, /],
    ["read=1", /unknown noise parameter "read"/],
    ["read.sigma=abc", /--noise read.sigma: "abc" is not a number/],
    ["read.sigma=-1", /read.sigma = -1 is out of range \(must be >= 0\)/],
    ["drift.t0=0", /drift.t0Seconds = 0 is out of range \(must be > 0\)/],
    ["adc.nonlinearity=-1", /must be > -1 and <= 100/],
    ["drift.compensate=maybe", /"maybe" is not a boolean/],
    ["faults.stuckAtGMin=0.6,faults.stuckAtGMax=0.5", /stuck-at fractions add up to 1\.1/],
    ["read.sigma=0.1,off", /"off" must come first/],
    ["gaussian", /"gaussian" is neither "target", "off" nor key=value/],
  ])("%s is rejected", (spec, message) => {
    expect(() => parseNoiseArg(spec, xbar64.noise)).toThrow(UserError);
    expect(() => parseNoiseArg(spec, xbar64.noise)).toThrow(message);
  });

  test("seeds", () => {
    expect(parseSeed("42", "--seed")).toBe(42);
    expect(() => parseSeed("-1", "--seed")).toThrow(/--seed: "-1" is not an integer seed/);
    expect(() => parseSeed("1.5", "--seed")).toThrow(UserError);
    expect(() => parseSeed("9007199254740993", "--seed")).toThrow(UserError);
  });
});

describe("imssa-run --noise", () => {
  let dir: string;
  let prog: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "imssa-noise-"));
    prog = join(dir, "tiny.xbin");
    writeProgramFile(prog, compile(loadModel("examples/tiny.s4d"), xbar64).program);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function run(...args: string[]): Promise<string> {
    let out = "";
    const spy = jest.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      await main(["node", "imssa-run", prog, "--input", "examples/tiny-input.npy", ...args]);
    } finally {
      spy.mockRestore();
    }
    return out;
  }
  const output = (name: string): number[] => Array.from(readFloatNpy(join(dir, name)).data);

  test("same seed: same file; other seed: other outputs; no --noise: noise-free with a note", async () => {
    await run("-o", join(dir, "clean.npy"));
    const text = await run("-o", join(dir, "a.npy"), "--noise", "--seed", "3", "--report", "--report-json", join(dir, "r.json"));
    await run("-o", join(dir, "b.npy"), "--noise", "target", "--seed", "3");
    await run("-o", join(dir, "c.npy"), "--noise", "--seed", "4");
    await run("-o", join(dir, "off.npy"), "--noise", "off", "--seed", "4");
    expect(output("a.npy")).toEqual(output("b.npy"));
    expect(output("c.npy")).not.toEqual(output("a.npy"));
    expect(output("a.npy")).not.toEqual(output("clean.npy"));
    expect(output("off.npy")).toEqual(output("clean.npy"));
    expect(text).toContain("note: device noise simulated (seed 3): programming noise sigma = gMax * (0.0088 + 0.0246 g/gMax - 0.0032 (g/gMax)^2); read noise sigma = 0.005 gMax per MVM; drift nu = 0.05, t0 = 20 s, t = 3600 s, with global drift compensation");
    const report = JSON.parse(readFileSync(join(dir, "r.json"), "utf8")) as { noise: { simulated: boolean; seed: number; model: { drift: { tSeconds: number } } } };
    expect(report.noise).toMatchObject({ simulated: true, seed: 3, readSeed: 3 });
    expect(report.noise.model.drift.tSeconds).toBe(3600);
    expect(await run("--report")).toMatch(/note: device noise \(programming, read, drift.*\) is configured in target xbar64 but was not simulated/);
  });

  test("--read-seed varies only the per-MVM noise", async () => {
    await run("-o", join(dir, "p1.npy"), "--noise", "off,programming.c0=0.02", "--seed", "5", "--read-seed", "1");
    await run("-o", join(dir, "p2.npy"), "--noise", "off,programming.c0=0.02", "--seed", "5", "--read-seed", "2");
    expect(output("p1.npy")).toEqual(output("p2.npy"));
    await run("-o", join(dir, "r1.npy"), "--noise", "off,read.sigma=0.02", "--seed", "5", "--read-seed", "1");
    await run("-o", join(dir, "r2.npy"), "--noise", "off,read.sigma=0.02", "--seed", "5", "--read-seed", "2");
    expect(output("r1.npy")).not.toEqual(output("r2.npy"));
  });

  test("bad flags are usage errors", async () => {
    await expect(run("--seed", "1")).rejects.toThrow(/--seed and --read-seed need --noise/);
    await expect(run("--noise", "read.sigma=x")).rejects.toThrow(/--noise read.sigma: "x" is not a number/);
    await expect(run("--noise", "--seed", "x")).rejects.toThrow(/--seed: "x" is not an integer seed/);
  });
});
