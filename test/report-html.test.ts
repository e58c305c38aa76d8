// The report of examples/digits.s4d compiled for xbar64, rendered in headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core): the key elements exist and match
// the compile summary, the tooltips work, nothing is fetched, and a screenshot is saved
// (to docs/report-screenshot.png with IMSSA_UPDATE_SCREENSHOT=1, else to a temp dir).

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { decodeProgram, encodeProgram } from "../src/backend/container.js";
import { compile, loadModel } from "../src/pipeline.js";
import { pct } from "../src/report/format.js";
import { buildReportHtml } from "../src/report/index.js";
import { summarize, type CompileSummary } from "../src/summary.js";
import { loadTarget } from "../src/target/load.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = new URL("../docs/report-screenshot.png", import.meta.url);
/** Width of the README screenshot and how much of the page (from the top) it shows. */
const SHOT_WIDTH = 1320;
const SHOT_HEIGHT = 3000;

let dir: string;
let context: BrowserContext;
let page: Page;
let summary: CompileSummary;
let stepInstructions: number;
const requests: string[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium is not installed at ${CHROMIUM}: the report test needs a real browser. Install it with \`apt-get install -y chromium\` (CI does).`);
  const target = loadTarget("xbar64");
  const compiled = compile(loadModel("examples/digits.s4d"), target);
  summary = summarize(compiled, target);
  // As imssa-report sees it: through the .xbin container.
  const program = decodeProgram(encodeProgram(compiled.program), "digits.xbin");
  stepInstructions = program.tiles.reduce((n, t) => n + t.sections.step.code.length, 0);
  dir = mkdtempSync(join(tmpdir(), "imssa-report-html-"));
  const file = join(dir, "digits.html");
  writeFileSync(file, buildReportHtml(program, { programFile: "digits.xbin", input: null }));

  context = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: SHOT_WIDTH, height: 1000 },
  });
  page = await context.newPage();
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  await page.goto(pathToFileURL(file).href);
});

afterAll(async () => {
  await context?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const attr = async (selector: string, name: string): Promise<string | null> => page.locator(selector).first().getAttribute(name);

describe("the report in Chromium", () => {
  test("loads without script errors and fetches nothing", () => {
    expect(pageErrors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:"))).toEqual([]);
  });

  test("the summary shows the compile summary's numbers", async () => {
    const table = "table.summary";
    expect(Number(await attr(`${table} [data-key="crossbarsUsed"]`, "data-value"))).toBe(summary.crossbarsUsed);
    expect(await attr(`${table} [data-key="crossbarsAvailable"]`, "data-value")).toBe(String(summary.crossbarsAvailable));
    expect(Number(await attr(`${table} [data-key="crossbarsLowerBound"]`, "data-value"))).toBe(summary.crossbarsLowerBound);
    expect(Number(await attr(`${table} [data-key="tilesUsed"]`, "data-value"))).toBe(summary.tilesUsed);
    for (const sec of ["init", "step", "final"] as const) expect(Number(await attr(`${table} [data-key="instructions.${sec}"]`, "data-value"))).toBe(summary.instructions[sec]);
    // and the visible text says the same
    expect(await page.locator(`${table} [data-key="crossbarsUsed"]`).textContent()).toBe(String(summary.crossbarsUsed));
    expect(await page.locator(`${table} [data-key="cellUtilization"]`).textContent()).toBe(pct(summary.cellUtilization));
    await expect(page.locator(".card").first().textContent()).resolves.toContain(`${summary.crossbarsUsed}`);
    expect(await page.locator("#compile-summary").textContent()).toContain(`crossbars     ${summary.crossbarsUsed} used`);
  });

  test("one occupancy grid per used crossbar, every one drawn", async () => {
    const grids = page.locator("figure.xbar svg.xbar-grid");
    expect(await grids.count()).toBe(summary.crossbarsUsed);
    const box = await grids.last().boundingBox();
    expect(box!.width).toBeGreaterThan(30);
    expect(await page.locator("table.legend tbody tr").count()).toBe(summary.layers.length);
  });

  test("hovering a crossbar shows its layer, coordinates and weight histogram", async () => {
    const grid = page.locator("figure.xbar svg.xbar-grid").first();
    await grid.hover({ position: { x: 20, y: 20 } });
    const tip = page.locator("#tip");
    await expect(tip.isVisible()).resolves.toBe(true);
    const text = (await tip.textContent()) ?? "";
    expect(text).toMatch(/crossbar \d+ · tile \d+/);
    expect(summary.layers.some((l) => text.includes(l.layer)) || text.includes("unused cell")).toBe(true);
    await page.mouse.move(0, 0);
  });

  test("the timeline draws a bar per step instruction, and the detailed view on request", async () => {
    const compact = page.locator('svg.gantt[data-view="compact"] rect.bar');
    expect(await compact.count()).toBe(stepInstructions);
    expect(await page.locator('svg.gantt[data-view="compact"]').isVisible()).toBe(true);
    const widest = await compact.evaluateAll((bars) => Math.max(...bars.map((b) => b.getBoundingClientRect().width)));
    expect(widest).toBeGreaterThan(1);
    await page.locator("#timeline-detailed").check();
    expect(await page.locator('svg.gantt[data-view="detailed"]').isVisible()).toBe(true);
    expect(await page.locator('svg.gantt[data-view="compact"]').isVisible()).toBe(false);
    expect(await page.locator('svg.gantt[data-view="detailed"] rect.bar').count()).toBe(stepInstructions);
    await page.locator("#timeline-detailed").uncheck();
  });

  test("the energy breakdown has a bar per component", async () => {
    expect(await page.locator("svg.energy .energy-row").count()).toBeGreaterThanOrEqual(8);
  });

  test("screenshot", async () => {
    const update = process.env["IMSSA_UPDATE_SCREENSHOT"] === "1";
    const out = update ? SCREENSHOT : pathToFileURL(join(dir, "report-screenshot.png"));
    await page.setViewportSize({ width: SHOT_WIDTH, height: SHOT_HEIGHT });
    await page.evaluate("window.scrollTo(0, 0)");
    // Show the tooltip of a crossbar holding more than one piece, as a reader would hover it.
    const mixed = page.locator("figure.xbar").filter({ has: page.locator(".piece + .piece") }).first();
    const target = (await mixed.count()) > 0 ? mixed : page.locator("figure.xbar").first();
    await target.locator("svg").hover({ position: { x: 12, y: 12 } });
    const png = await page.screenshot({ path: out.pathname, fullPage: false });
    expect(png.length).toBeGreaterThan(10_000);
  });
});
