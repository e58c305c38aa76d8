// The HTML report without a browser: the figures it is built from, what the page contains,
// that it is self-contained and escapes what it shows, and the imssa-report CLI.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeProgram, encodeProgram, writeProgramFile } from "../src/backend/container.js";
import type { Program } from "../src/backend/program.js";
import { main as reportMain } from "../src/cli/report.js";
import { UserError } from "../src/common/errors.js";
import { readFloatNpy } from "../src/common/npy.js";
import { compile, loadModel, type CompileResult } from "../src/pipeline.js";
import { buildReportHtml, collectReport, DEFAULT_STEPS, renderPage, type ReportInput } from "../src/report/index.js";
import { compileSummaryOf, planOf } from "../src/report/layout.js";
import { esc } from "../src/report/format.js";
import { formatSummary, summarize } from "../src/summary.js";
import { loadTarget } from "../src/target/load.js";
import { verifyModel } from "../src/verify/index.js";

const xbar64 = loadTarget("xbar64");
let tiny: CompileResult;
let tinyProgram: Program;
let digits: CompileResult;
let digitsProgram: Program;
let dir: string;

/** Through the container, as imssa-report reads it. */
const viaFile = (p: Program, name: string): Program => decodeProgram(encodeProgram(p), name);

beforeAll(() => {
  tiny = compile(loadModel("examples/tiny.s4d"), xbar64);
  tinyProgram = viaFile(tiny.program, "tiny.xbin");
  digits = compile(loadModel("examples/digits.s4d"), xbar64);
  digitsProgram = viaFile(digits.program, "digits.xbin");
  dir = mkdtempSync(join(tmpdir(), "imssa-report-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tinyInput(): ReportInput {
  const x = readFloatNpy("examples/tiny-input.npy");
  return { data: x.data, shape: [x.shape[0]!, x.shape[1]!, x.shape[2]!], file: "examples/tiny-input.npy" };
}

/** The page's inline JSON data block. */
function pageData(html: string): { timeline: { bars: { tile: number; unit: string; op: string; start: number; end: number; pc: number }[] }; occupancy: { pieces: unknown[] } } {
  const m = /<script type="application\/json" id="imssa-data">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!);
}

/** data-value of the first element with this data-key. */
function valueOf(html: string, key: string): string {
  const m = new RegExp(`data-key="${key.replace(/\./g, "\\.")}" data-value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`no data-key ${key} in the page`);
  return m[1]!;
}

describe("figures rebuilt from the program file", () => {
  test("the crossbar plan and the compile summary equal the compiler's", () => {
    for (const [c, p] of [
      [tiny, tinyProgram],
      [digits, digitsProgram],
    ] as const) {
      expect(planOf(p, xbar64, "m.xbin")).toEqual(c.plan);
      expect(compileSummaryOf(p, xbar64, "m.xbin")).toEqual(summarize(c, xbar64));
    }
  });

  test("a program without the layout record asks to be compiled again", () => {
    const old = viaFile(tiny.program, "old.xbin");
    delete old.bounds;
    for (const x of old.crossbars) delete x.pieces;
    const err = (() => {
      try {
        collectReport(old, { programFile: "old.xbin", input: null });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).kind).toBe("unsupported");
    expect((err as UserError).message).toMatch(/^old\.xbin: the program does not record its crossbar layout .* compile the model again/);
  });
});

describe("the page", () => {
  let html: string;
  beforeAll(() => {
    html = buildReportHtml(digitsProgram, { programFile: "digits.xbin", input: null });
  });

  test("is self-contained: no external resource, no network", () => {
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*"(?!#)/i);
    expect(html).not.toMatch(/url\(|@import|https?:\/\//i);
    expect(html.match(/<script\b[^>]*>/g)!.every((s) => !/\bsrc=/.test(s))).toBe(true);
  });

  test("shows the compile summary's numbers", () => {
    const s = summarize(digits, xbar64);
    expect(Number(valueOf(html, "crossbarsUsed"))).toBe(s.crossbarsUsed);
    expect(valueOf(html, "crossbarsAvailable")).toBe(String(s.crossbarsAvailable));
    expect(Number(valueOf(html, "crossbarsLowerBound"))).toBe(s.crossbarsLowerBound);
    expect(Number(valueOf(html, "tilesUsed"))).toBe(s.tilesUsed);
    expect(Number(valueOf(html, "cellUtilization"))).toBe(s.cellUtilization);
    expect(Number(valueOf(html, "weightDensity"))).toBe(s.weightDensity);
    for (const sec of ["init", "step", "final"] as const) expect(Number(valueOf(html, `instructions.${sec}`))).toBe(s.instructions[sec]);
    // The text imssa-compile prints is on the page verbatim (escaped).
    expect(html).toContain(`<pre id="compile-summary">${esc(formatSummary(s))}</pre>`);
  });

  test("one occupancy grid per used crossbar, one timeline bar per step instruction", () => {
    expect(html.match(/<figure class="xbar"/g)!.length).toBe(digitsProgram.crossbars.length);
    const stepInstructions = digitsProgram.tiles.reduce((n, t) => n + t.sections.step.code.length, 0);
    const data = pageData(html);
    expect(data.timeline.bars.length).toBe(stepInstructions);
    // compact and detailed views draw the same bars
    expect(html.match(/<rect class="bar"/g)!.length).toBe(2 * stepInstructions);
    expect(data.occupancy.pieces.length).toBe(digitsProgram.crossbars.reduce((n, x) => n + x.pieces!.length, 0));
  });

  test("the zero-sequence run uses the documented length and shows no output section", () => {
    const d = collectReport(tinyProgram, { programFile: "tiny.xbin", input: null });
    expect(d.run.steps).toBe(DEFAULT_STEPS);
    expect(d.run.batch).toBe(1);
    expect(d.outputs).toBeNull();
    expect(renderPage(d)).not.toContain('id="accuracy"');
    expect(collectReport(tinyProgram, { programFile: "tiny.xbin", input: null, steps: 5 }).run.steps).toBe(5);
  });

  test("escapes names from the program file", () => {
    const evil = viaFile(tiny.program, "evil.xbin");
    evil.modelName = '<img src=x onerror="alert(1)">';
    evil.symbols = evil.symbols.map((s) => `${s}</script><script>alert(2)</script>`);
    const page = buildReportHtml(evil, { programFile: "a&b.xbin", input: null });
    expect(page).not.toContain("<img src=x");
    expect(page).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(page).toContain("a&amp;b.xbin");
    expect(page.match(/<\/script>/g)!.length).toBe(2); // the data block and the script, nothing from the data
    expect(page).not.toContain("<script>alert");
  });
});

describe("runs on real inputs", () => {
  test("outputs against the reference match imssa-verify's comparison; saturations per layer add up", () => {
    const input = tinyInput();
    const model = loadModel("examples/tiny.s4d");
    const d = collectReport(tinyProgram, { programFile: "tiny.xbin", input, reference: { model, file: "examples/tiny.s4d" } });
    const verify = verifyModel(model, xbar64, input.data, input.shape, { calibration: null, inputFile: input.file });
    expect(d.outputs!.map((o) => [o.name, o.reference!.maxAbsError, o.reference!.rmsError])).toEqual(verify.outputs.map((o) => [o.name, o.maxAbsError, o.rmsError]));
    expect(d.saturation!.reduce((n, e) => n + e.conversions, 0)).toBe(d.run.saturation.conversions);
    expect(d.saturation!.reduce((n, e) => n + e.saturations, 0)).toBe(d.run.saturation.saturations);
    // Layers as the compile summary names them (every conversion belongs to a matmul's layer).
    const layers = summarize(tiny, xbar64).layers.map((l) => l.layer);
    for (const e of d.saturation!) expect(layers).toContain(e.layer);
    const page = renderPage(d);
    expect(page).toContain('id="accuracy"');
    expect(page).toContain("ADC saturations per layer");
  });

  test("without a model only the interpreter's outputs are shown", () => {
    const d = collectReport(digitsProgram, { programFile: "digits.xbin", input: { ...tinyInput(), data: new Float32Array(2 * 8 * 1), shape: [2, 8, 1] } });
    expect(d.outputs!.map((o) => [o.name, o.shape, o.reference])).toEqual([["logits", [2, 10], null]]);
    expect(d.outputs![0]!.predicted).toHaveLength(2);
    expect(renderPage(d)).toContain("pass <code>--model</code>");
  });

  test("a model other than the program's is refused", () => {
    const other = loadModel("examples/digits.s4d");
    expect(() => collectReport(tinyProgram, { programFile: "tiny.xbin", input: tinyInput(), reference: { model: other, file: "examples/digits.s4d" } })).toThrow(
      /examples\/digits\.s4d: model 'digits' is not the program's model 'tiny'; pass the model the program was compiled from/,
    );
  });
});

describe("imssa-report", () => {
  const argv = (...args: string[]): string[] => ["node", "imssa-report", ...args];

  test("writes the page, with inputs and the model", async () => {
    const xbin = join(dir, "tiny.xbin");
    writeProgramFile(xbin, tiny.program);
    const out = join(dir, "tiny.html");
    await reportMain(argv(xbin, "-o", out, "--input", "examples/tiny-input.npy", "--model", "examples/tiny.s4d"));
    const html = readFileSync(out, "utf8");
    expect(html).toContain('id="accuracy"');
    expect(html).toContain("2 sequences × 32 steps from examples/tiny-input.npy");
    await reportMain(argv(xbin, "-o", out, "--steps", "3"));
    expect(readFileSync(out, "utf8")).toContain("one all-zero sequence of 3 steps");
  });

  test("usage errors name the problem and write nothing", async () => {
    const xbin = join(dir, "tiny2.xbin");
    writeProgramFile(xbin, tiny.program);
    const out = join(dir, "never.html");
    await expect(reportMain(argv(xbin, "-o", out, "--model", "examples/tiny.s4d"))).rejects.toThrow(/--model compares outputs on real inputs: give --input/);
    await expect(reportMain(argv(xbin, "-o", out, "--steps", "0"))).rejects.toThrow(/--steps must be a positive integer, found '0'/);
    await expect(reportMain(argv(xbin, "-o", out, "--steps", "4", "--input", "examples/tiny-input.npy"))).rejects.toThrow(/with --input the input file sets the steps/);
    await expect(reportMain(argv(join(dir, "missing.xbin"), "-o", out))).rejects.toThrow(/missing\.xbin: cannot read file/);
    expect(existsSync(out)).toBe(false);
  });
});
