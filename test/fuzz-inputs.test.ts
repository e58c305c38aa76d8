// Fixed-seed fuzzing of every input surface (test/fuzz/surfaces.mjs) against src/: each
// generated case must succeed or fail with a UserError, never anything else. Plus the saved
// corpus (test/fuzz/corpus/<surface>/): inputs that once found a bug, replayed every run.
// The long run is `npm run fuzz` (scripts/fuzz.mjs, 10k cases per surface).

import { afterAll, describe, expect, test } from "@jest/globals";
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lib, ROOT } from "./fuzz/lib.js";
import { classify, loadCorpus, makeSurfaces, type Outcome } from "./fuzz/surfaces.mjs";

const scratch = mkdtempSync(join(tmpdir(), "imssa-fuzz-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const surfaces = makeSurfaces({ root: ROOT, scratch, lib }).filter((s) => !s.optIn);
/** Cases per surface: a few seconds each; `npm run fuzz` runs thousands. */
const RUNS = 150;
const SEED = 20261122;

function describeUncaught(r: Outcome): string {
  if (r.outcome !== "uncaught") return r.outcome;
  // Duck-typed: errors from jest's host realm are not instances of the sandbox's Error.
  const e = r.error as { name?: string; message?: string; stack?: string };
  return typeof e === "object" && e !== null ? `uncaught ${e.name}: ${e.message}\n${e.stack ?? ""}` : `uncaught ${String(e)}`;
}

test("every surface the issue names is fuzzed", () => {
  expect(surfaces.map((s) => s.name).sort()).toEqual(["dsl", "ir", "npy", "onnx", "s4d-refs", "safetensors", "target", "xbin"]);
});

describe.each(surfaces.map((s) => [s.name, s] as const))("fuzz surface %s", (name, surface) => {
  test(`${RUNS} generated cases end in success or a UserError`, () => {
    const seen = { ok: 0, user: 0 };
    fc.assert(
      fc.property(surface.arbitrary, (input) => {
        const r = classify(() => surface.run(input), lib.isUserError);
        if (r.outcome === "uncaught") throw new Error(`uncaught exception on a ${name} case: ${describeUncaught(r)}`);
        seen[r.outcome]++;
      }),
      { seed: SEED, numRuns: RUNS },
    );
    // The generators reach both outcomes: a surface whose cases all fail early tests little.
    expect(seen.user).toBeGreaterThan(0);
    expect(seen.ok + seen.user).toBe(RUNS);
  });

  const corpus = loadCorpus(ROOT, name);
  if (corpus.length > 0)
    test.each(corpus.map((c) => [c.file.slice(ROOT.length + 1), c.input] as const))("corpus %s: success or a UserError", (_file, input) => {
      const r = classify(() => surface.run(input), lib.isUserError);
      expect(describeUncaught(r)).toMatch(/^(ok|user)$/);
    });
});

// Opt-in surfaces are not generated here (too slow), but their saved bugs are replayed.
const optIn = makeSurfaces({ root: ROOT, scratch, lib }).filter((s) => s.optIn);
describe.each(optIn.map((s) => [s.name, s] as const))("saved corpus of opt-in surface %s", (name, surface) => {
  const corpus = loadCorpus(ROOT, name);
  if (corpus.length > 0)
    test.each(corpus.map((c) => [c.file.slice(ROOT.length + 1), c.input] as const))("corpus %s: success or a UserError", (_file, input) => {
      const r = classify(() => surface.run(input), lib.isUserError);
      expect(describeUncaught(r)).toMatch(/^(ok|user)$/);
    });
});

// The hostile values the issue names, as fixed cases: each ends in success or one user error.
describe("named hostile target values", () => {
  const base = JSON.parse(readFileSync(join(ROOT, "targets/xbar64.json"), "utf8")) as Record<string, any>;
  const model = lib.tinyModel();
  const cases: [string, (t: Record<string, any>) => void, RegExp][] = [
    ["ADC bits 0", (t) => (t.crossbar.numerics.adcBits = 0), /adcBits.*must be >= 2/],
    ["a 0x0 crossbar", (t) => ((t.crossbar.rows = 0), (t.crossbar.cols = 0)), /rows.*must be >= 1/],
    ["more ADCs than columns", (t) => (t.crossbar.adcsPerCrossbar = 4096), /adcsPerCrossbar/],
    ["gMin above gMax", (t) => ((t.crossbar.gMinUs = 30), (t.crossbar.gMaxUs = 1)), /gMinUs/],
    ["2^31 tiles", (t) => (t.tiles.count = 2 ** 31), /count/],
    ["65536 x 65536 crossbars", (t) => ((t.tiles.count = 65536), (t.tiles.crossbarsPerTile = 65536)), /crossbars/],
    ["an infinite clock", (t) => (t.clockHz = "__INF__"), /clockHz/],
    ["one word of tile memory", (t) => (t.tiles.memoryWords = 1), /needs \d+ words of local memory but target 'xbar64' has 1/],
  ];
  test.each(cases)("%s", (_name, edit, message) => {
    const t = structuredClone(base);
    edit(t);
    const text = JSON.stringify(t).replace('"__INF__"', "1e999");
    const r = classify(() => lib.compile(model, lib.targetFromJson(text, "hostile.json")), lib.isUserError);
    expect(describeUncaught(r)).toBe("user");
    expect(r.outcome === "user" && r.message).toMatch(message);
  });
});
