// The compiler's choice among crossbar mappings by the cost model (src/cost/mapping-choice.ts,
// docs/SCHEDULE.md): every candidate compiled and timed, the fastest steady-state step wins.

import { describe, expect, test } from "@jest/globals";
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
    expect(a.candidates.map((c) => c.name)).toEqual(["channel groups", "plain"]);
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
