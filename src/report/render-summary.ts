// The summary: headline figures as cards, then the full table. Cells holding a compile
// summary or run report number carry it raw in data-value (data-key names the field), so a
// test can compare them with src/summary.ts without parsing formatted text.

import { SECTION_NAMES } from "../backend/program.js";
import { UNIT_KINDS, type UnitKind } from "../interp/timing.js";
import type { ReportData } from "./collect.js";
import { count, esc, joulesFromPj, pct, si } from "./format.js";

const UNIT_LABEL: Record<UnitKind, string> = { crossbar: "crossbars", vector: "vector units", loadStore: "load/store ports", network: "network ports" };

/** A value with its raw number attached for tests and scripts. */
function v(key: string, raw: number | string, text: string): string {
  return `<span data-key="${esc(key)}" data-value="${esc(raw)}">${esc(text)}</span>`;
}

function card(label: string, value: string, note: string): string {
  return `<div class="card"><div class="card-label">${esc(label)}</div><div class="card-value">${value}</div><div class="card-note">${note}</div></div>`;
}

function row(label: string, value: string): string {
  return `<tr><th scope="row">${esc(label)}</th><td>${value}</td></tr>`;
}

export function runDescription(d: ReportData): string {
  const r = d.run;
  return d.inputFile === null
    ? `one all-zero sequence of ${r.steps} steps (timing and energy do not depend on the data)`
    : `${r.batch} sequence${r.batch === 1 ? "" : "s"} × ${r.steps} steps from ${d.inputFile}`;
}

export function renderSummary(d: ReportData): string {
  const s = d.summary;
  const r = d.run;
  const t = d.target;
  const step = r.sections.stepSteady ?? r.sections.stepFirst;
  const available = s.crossbarsAvailable === "unlimited" ? "unlimited" : count(s.crossbarsAvailable);
  const ratio = s.crossbarsLowerBound > 0 ? `used ×${(s.crossbarsUsed / s.crossbarsLowerBound).toFixed(3)}` : "no weights";
  const tiles = t.tiles.count === "unlimited" ? "unlimited tiles" : `${t.tiles.count} tiles`;
  const cards = [
    card("crossbars used", `${v("crossbarsUsed", s.crossbarsUsed, count(s.crossbarsUsed))}<span class="of"> / ${v("crossbarsAvailable", s.crossbarsAvailable, available)}</span>`, `lower bound ${v("crossbarsLowerBound", s.crossbarsLowerBound, count(s.crossbarsLowerBound))} · ${esc(ratio)}`),
    card("cell utilization", v("cellUtilization", s.cellUtilization, pct(s.cellUtilization)), `of cells in used crossbars hold weights · ${v("weightDensity", s.weightDensity, pct(s.weightDensity))} nonzero`),
    card("cycles per step", v("stepCycles", step.cycles, count(step.cycles)), `${esc(si(r.latency.stepSeconds, "s"))} at ${esc(si(r.clockHz, "Hz"))}`),
    card("energy per step", v("stepEnergyPj", r.energyPj.perStep.total, joulesFromPj(r.energyPj.perStep.total)), `${esc(joulesFromPj(r.energyPj.perSequence.total))} per inference`),
  ].join("");

  const instr = SECTION_NAMES.map((sec) => `${sec} ${v(`instructions.${sec}`, s.instructions[sec], count(s.instructions[sec]))}`).join(" · ");
  const cycles = [
    `first step ${v("stepFirstCycles", r.sections.stepFirst.cycles, count(r.sections.stepFirst.cycles))}`,
    r.sections.stepSteady ? `steady step ${v("stepSteadyCycles", r.sections.stepSteady.cycles, count(r.sections.stepSteady.cycles))}` : "",
    `init ${v("initCycles", r.sections.init.cycles, count(r.sections.init.cycles))}`,
    `final ${v("finalCycles", r.sections.final.cycles, count(r.sections.final.cycles))}`,
    `per inference ${v("sequenceCycles", r.sequenceCycles, count(r.sequenceCycles))}`,
  ]
    .filter((x) => x !== "")
    .join(" · ");
  const rows = [
    row("model", `${esc(s.model)} <span class="muted">(${esc(d.programFile)}, imssa ${esc(d.program.compilerVersion)})</span>`),
    row("target", `${v("target", s.target, s.target)} <span class="muted">— ${esc(t.description)}</span>`),
    row("chip", `${esc(tiles)} × ${t.tiles.crossbarsPerTile} crossbars of ${t.crossbar.rows}×${t.crossbar.cols}, ${esc(t.crossbar.numerics.kind)} numerics, clock ${esc(si(t.clockHz, "Hz"))}`),
    row("crossbars", `${v("crossbarsUsed", s.crossbarsUsed, count(s.crossbarsUsed))} used · ${v("crossbarsAvailable", s.crossbarsAvailable, available)} available · lower bound ${v("crossbarsLowerBound", s.crossbarsLowerBound, count(s.crossbarsLowerBound))} (${esc(ratio)})`),
    row("tiles used", v("tilesUsed", s.tilesUsed, count(s.tilesUsed))),
    row("utilization", `${v("cellUtilization", s.cellUtilization, pct(s.cellUtilization))} of cells in used crossbars hold weights (${v("weightDensity", s.weightDensity, pct(s.weightDensity))} nonzero)`),
    row("instructions", instr),
    row("cycles", cycles),
    row("latency", `${esc(si(r.latency.stepSeconds, "s"))} per step · ${esc(si(r.latency.sequenceSeconds, "s"))} per inference (${r.steps} steps)`),
    row("throughput", `${esc(si(r.throughput.stepsPerSecond, "steps/s"))} · ${esc(si(r.throughput.sequencesPerSecond, "inferences/s"))} · ${esc(si(r.throughput.macsPerSecond, "MAC/s"))}`),
    row("energy", `${v("energyPerStepPj", r.energyPj.perStep.total, joulesFromPj(r.energyPj.perStep.total))} per step · ${v("energyPerInferencePj", r.energyPj.perSequence.total, joulesFromPj(r.energyPj.perSequence.total))} per inference`),
    row("unit utilization (step)", UNIT_KINDS.map((k) => `${UNIT_LABEL[k]} ${pct(step.utilization[k])}`).join(" · ")),
    row("run", esc(runDescription(d))),
    ...r.notes.map((n) => row("note", esc(n))),
  ].join("");
  return `<section id="summary"><h2>Summary</h2><div class="cards">${cards}</div><table class="summary">${rows}</table>
<details><summary>Compile summary as <code>imssa-compile</code> prints it</summary><pre id="compile-summary">${esc(d.summaryText)}</pre></details></section>`;
}
