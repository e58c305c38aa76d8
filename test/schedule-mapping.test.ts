// The compiler's choice among crossbar mappings by the cost model (src/cost/mapping-choice.ts,
// docs/SCHEDULE.md): every candidate compiled and timed, the fastest steady-state step wins.

import { describe, expect, test } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readProgramFile } from "../src/backend/container.js";
import { measuredStepCycles } from "../src/cost/explain.js";
import { chooseMapping, formatMappingChoice } from "../src/cost/mapping-choice.js";
import { compile } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import { digitsSizeModel } from "./helpers/random-models.js";

describe("mapping choice", () => {
  const target = loadTarget("xbar64");
  const model = digitsSizeModel(4, 8, 32, 1);

  test("the chosen mapping is the fastest candidate on the timing model, and the choice is deterministic", () => {
    const a = chooseMapping(model, target);
    expect(a.candidates.map((c) => c.name)).toEqual(["channel groups", "pipelined", "plain"]);
    for (const c of a.candidates) {
      expect(c.steady).toBeGreaterThanOrEqual(c.bounds!.intervalBound);
      expect(a.chosen.steady).toBeLessThanOrEqual(c.steady);
    }
    // A candidate's figures are those of compiling it alone (timing does not depend on data,
    // so the choice is the same on every run).
    const plain = a.candidates.find((c) => c.name === "plain")!;
    const r = compile(model, target, { groupChannels: false });
    expect(plain.crossbars).toBe(r.plan.crossbars.length);
    expect(plain.steady).toBe(measuredStepCycles(r, target).steady);
    expect(formatMappingChoice(a)).toContain("<- chosen");
  });

  test("when no mapping fits the target, the compiler's resource error", () => {
    // 4 crossbars in all: neither mapping fits, and the error is the compiler's own.
    const tiny = structuredClone(target);
    tiny.tiles = { ...tiny.tiles, count: 1, crossbarsPerTile: 4 };
    expect(() => chooseMapping(model, tiny)).toThrow(/crossbars/);
  });
});

describe("imssa-compile --mapping (the built CLI)", () => {
  const dir = mkdtempSync(join(tmpdir(), "imssa-mapping-"));
  const compileCli = (...args: string[]) => spawnSync(process.execPath, ["dist/cli/compile.js", "examples/tiny.s4d", "--target", "xbar64", ...args], { encoding: "utf8" });

  test("auto (the default) writes the program of the mapping the cost model chose, and --explain says why", () => {
    const auto = join(dir, "auto.xbin");
    const r = compileCli("-o", auto, "--explain", "-q");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("mapping chosen by the cost model");
    const chosen = /^\s+(channel groups|pipelined|plain)\s.*<- chosen$/m.exec(r.stderr)?.[1];
    expect(chosen).toBeDefined();
    const forced = join(dir, "forced.xbin");
    expect(compileCli("-o", forced, "-q", "--mapping", chosen === "channel groups" ? "groups" : chosen!).status).toBe(0);
    expect(readFileSync(auto).equals(readFileSync(forced))).toBe(true);
  });

  test("groups and plain compile once each and differ in crossbar packing; contradicting flags are a usage error", () => {
    const g = join(dir, "g.xbin");
    const p = join(dir, "p.xbin");
    expect(compileCli("-o", g, "-q", "--mapping", "groups").status).toBe(0);
    expect(compileCli("-o", p, "-q", "--no-group-channels").status).toBe(0);
    expect(readProgramFile(p).crossbars.length).toBeLessThanOrEqual(readProgramFile(g).crossbars.length);
    const bad = compileCli("-o", join(dir, "bad.xbin"), "--mapping", "groups", "--no-group-channels");
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--no-group-channels contradicts --mapping groups/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});
