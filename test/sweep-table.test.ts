// Pieces of imssa-sweep that need no interpreter: the --param grid, the metrics, the table
// (statistics, CSV, JSON) and the SVG plot.

import { describe, expect, test } from "@jest/globals";
import { UserError } from "../src/common/errors.js";
import { parseParamGrid } from "../src/sweep/grid.js";
import { accuracy, labelMetric, relativeError } from "../src/sweep/metric.js";
import { niceAxis, niceStep, sweepSvg } from "../src/sweep/plot.js";
import { ProgressBar } from "../src/sweep/progress.js";
import { summarize, tableCsv, tableJson, tableText, type SweepTable } from "../src/sweep/table.js";

describe("--param grid", () => {
  test("start:stop:step includes the stop value and prints round numbers", () => {
    expect(parseParamGrid("programming.scale=0:2:0.5")).toEqual({ key: "programming.scale", values: [0, 0.5, 1, 1.5, 2] });
    expect(parseParamGrid("read.sigma=0:0.3:0.1").values).toEqual([0, 0.1, 0.2, 0.3]);
    expect(parseParamGrid("drift.t=3600:0:-1200")).toEqual({ key: "drift.tSeconds", values: [3600, 2400, 1200, 0] });
    expect(parseParamGrid("programming.c0=0:1:0.3").values).toEqual([0, 0.3, 0.6, 0.9]);
    expect(parseParamGrid("faults.stuckAtGMin=0,0.01,0.05").values).toEqual([0, 0.01, 0.05]);
  });

  test.each([
    ["programming.scale", /expected <name>=<start>:<stop>:<step>/],
    ["nope.x=0:1:1", /unknown noise parameter "nope.x"/],
    ["drift.compensate=0:1:1", /drift.compensate is a switch/],
    ["read.sigma=0:1:0", /the step must not be 0/],
    ["read.sigma=0:1:-0.5", /never gets from 0 to 1/],
    ["read.sigma=0:1", /expected <start>:<stop>:<step>/],
    ["read.sigma=0:1:x", /"x" is not a number/],
    ["read.sigma=-1:1:1", /read.sigma = -1 is out of range/],
    ["read.sigma=0:1:0.0001", /10001 values, more than 1000/],
  ])("%s is rejected", (text, message) => {
    expect(() => parseParamGrid(text)).toThrow(UserError);
    expect(() => parseParamGrid(text)).toThrow(message);
  });
});

describe("metrics", () => {
  test("accuracy takes the first maximum per row", () => {
    const scores = Float32Array.from([0.1, 0.9, 0.2, /**/ 0.5, 0.5, 0.1, /**/ 0, 0, 1]);
    expect(accuracy(scores, 3, Int32Array.from([1, 0, 2]))).toBe(1);
    expect(accuracy(scores, 3, Int32Array.from([1, 1, 0]))).toBeCloseTo(1 / 3, 12);
  });

  test("relative error is ||y - y0|| / ||y0||, absolute RMS for zero references", () => {
    expect(relativeError(Float32Array.from([3, 4]), Float32Array.from([0, 4]))).toBeCloseTo(3 / 4, 12);
    expect(relativeError(Float32Array.from([3, 4]), Float32Array.from([0, 0]))).toBeCloseTo(Math.sqrt(25 / 2), 12);
  });

  test("labels: [B] scores final outputs, [B, T] step outputs; bad shapes and values are user errors", () => {
    expect(labelMetric([0, 2], [2], 2, 5, { step: 0, final: 3 }, "y.npy")).toMatchObject({ kind: "accuracy", on: "final" });
    expect(labelMetric([0, 1, 1, 0], [2, 2], 2, 2, { step: 2, final: 0 }, "y.npy")).toMatchObject({ kind: "accuracy", on: "step" });
    expect(() => labelMetric([0, 3], [2], 2, 5, { step: 0, final: 3 }, "y.npy")).toThrow(/y\.npy: label 1 is 3, not a class index in \[0, 3\)/);
    expect(() => labelMetric([0.5, 1], [2], 2, 5, { step: 0, final: 3 }, "y.npy")).toThrow(/label 0 is 0.5/);
    expect(() => labelMetric([0, 1, 2], [3], 2, 5, { step: 0, final: 3 }, "y.npy")).toThrow(/labels must have shape \[2\] .* or \[2, 5\]/);
    expect(() => labelMetric([0, 1], [2], 2, 5, { step: 3, final: 0 }, "y.npy")).toThrow(/score final outputs, but the program has none/);
  });
});

function table(): SweepTable {
  const values = [0, 0.5, 1];
  const metrics = [
    [0.9, 0.9, 0.9],
    [0.8, 0.7, 0.9],
    [0.5, 0.3, 0.4],
  ];
  return {
    model: "m<1>",
    target: "xbar64",
    param: "programming.scale",
    metric: "accuracy",
    noise: ["read noise sigma = 0.005 gMax per MVM"],
    seeds: [0, 1, 2],
    rows: summarize(values, metrics),
    runs: values.flatMap((value, i) => [0, 1, 2].map((seed) => ({ value, seed, metric: metrics[i]![seed]! }))),
  };
}

describe("table", () => {
  test("mean, sample std, min, max per value", () => {
    const rows = table().rows;
    expect(rows.map((r) => r.runs)).toEqual([3, 3, 3]);
    expect(rows[0]).toEqual({ value: 0, runs: 3, mean: expect.closeTo(0.9, 12), std: expect.closeTo(0, 12), min: 0.9, max: 0.9 });
    expect(rows[1]!.mean).toBeCloseTo(0.8, 12);
    expect(rows[1]!.std).toBeCloseTo(0.1, 12); // sqrt(((-0.1)^2 + 0.1^2) / 2)
    expect([rows[2]!.min, rows[2]!.max]).toEqual([0.3, 0.5]);
    expect(summarize([1], [[0.25]])[0]!.std).toBe(0);
  });

  test("CSV: a header and one line per value; JSON: the whole table with every run", () => {
    const t = table();
    const lines = tableCsv(t).trimEnd().split("\n");
    expect(lines[0]).toBe("param,value,metric,runs,mean,std,min,max");
    expect(lines).toHaveLength(4);
    expect(lines[2]!.split(",").slice(0, 4)).toEqual(["programming.scale", "0.5", "accuracy", "3"]);
    expect(Number(lines[2]!.split(",")[4])).toBeCloseTo(0.8, 12);
    const j = JSON.parse(tableJson(t)) as SweepTable;
    expect(j.rows).toHaveLength(3);
    expect(j.runs).toHaveLength(9);
    expect(j.runs[4]).toEqual({ value: 0.5, seed: 1, metric: 0.7 });
    expect(tableText(t)).toMatch(/^programming\.scale\s+accuracy \(mean ± std\)/);
    expect(tableText(t)).toMatch(/0\.5\s+0\.8000 ± 0\.1000/);
  });
});

describe("SVG plot", () => {
  test("nice ticks", () => {
    expect(niceStep(1)).toBe(0.2);
    expect(niceStep(4)).toBe(0.5);
    expect(niceAxis(0, 2).ticks).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(niceAxis(0, 0.063).ticks).toEqual([0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07]);
    expect(niceAxis(3, 3).ticks.length).toBeGreaterThan(1);
  });

  test("self-contained, one point and error bar per value, labelled axes, escaped text", () => {
    const svg = sweepSvg(table());
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).not.toMatch(/<script|href=|@import|url\(/);
    expect(svg.match(/<circle /g)).toHaveLength(3);
    const bars = svg.slice(svg.indexOf('class="error-bars"'), svg.indexOf("</g>", svg.indexOf('class="error-bars"')));
    expect(bars.match(/<line /g)).toHaveLength(9); // a bar and two caps per point
    expect(svg).toMatch(/>programming\.scale<\/text>/);
    expect(svg).toMatch(/rotate\(-90\)[^>]*>accuracy<\/text>/);
    expect(svg).toContain("m&lt;1&gt; on xbar64: accuracy vs programming.scale");
    // accuracy axis 0..1 with ticks 0, 0.2, ..., 1
    for (const t of ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]) expect(svg).toContain(`>${t}</text>`);
    // Balanced tags (every opened element closed or self-closed).
    const opened = (svg.match(/<(svg|g|text|circle|title)(\s[^>]*[^/])?>/g) ?? []).length;
    const closed = (svg.match(/<\/(svg|g|text|circle|title)>/g) ?? []).length;
    expect(opened).toBe(closed);
  });
});

describe("progress bar", () => {
  test("draws in place on a TTY, stays silent otherwise", () => {
    let out = "";
    const sink = { isTTY: true, columns: 80, write: (s: string) => ((out += s), true) };
    const bar = new ProgressBar(4, "runs", sink);
    bar.update(4);
    bar.finish();
    expect(out).toMatch(/^\r\[#+\] 4\/4 runs, \d+\.\d s\x1b\[K\n$/);
    let quiet = "";
    const pipe = { isTTY: false, write: (s: string) => ((quiet += s), true) };
    const silent = new ProgressBar(4, "runs", pipe);
    silent.update(4);
    silent.finish();
    expect(quiet).toBe("");
  });
});
