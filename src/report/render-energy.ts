// Energy by component: bars for one (steady-state) step, and a table with the same
// components per step, per inference and for the whole run (docs/TIMING.md, "Energy").

import type { EnergyBreakdown } from "../interp/energy.js";
import type { ReportData } from "./collect.js";
import { esc, joulesFromPj, pct } from "./format.js";

const COMPONENTS: [keyof EnergyBreakdown, string][] = [
  ["cells", "crossbar cells"],
  ["dac", "DAC"],
  ["adc", "ADC"],
  ["vector", "vector unit"],
  ["localMemory", "local memory"],
  ["globalMemory", "global memory"],
  ["interconnect", "interconnect"],
  ["static", "static"],
];

const LABEL_W = 130;
const BAR_W = 560;
const VALUE_W = 170;
const ROW_H = 24;
const BAR_H = 16;
const COLOR = "#4e79a7";

export function renderEnergy(d: ReportData): string {
  const e = d.run.energyPj;
  const step = e.perStep;
  const max = Math.max(...COMPONENTS.map(([k]) => step[k]), Number.MIN_VALUE);
  const bars = COMPONENTS.map(([k, label], i) => {
    const y = i * ROW_H;
    const w = (step[k] / max) * BAR_W;
    const share = step.total > 0 ? step[k] / step.total : 0;
    return `<g class="energy-row" data-component="${k}" data-value="${step[k]}"><text class="energy-label" x="${LABEL_W - 8}" y="${y + ROW_H / 2 + 4}">${esc(label)}</text><rect class="energy-track" x="${LABEL_W}" y="${y + (ROW_H - BAR_H) / 2}" width="${BAR_W}" height="${BAR_H}"/><rect x="${LABEL_W}" y="${y + (ROW_H - BAR_H) / 2}" width="${w.toFixed(2)}" height="${BAR_H}" fill="${COLOR}"/><text class="energy-value" x="${LABEL_W + BAR_W + 8}" y="${y + ROW_H / 2 + 4}">${esc(joulesFromPj(step[k]))} (${pct(share)})</text></g>`;
  });
  const height = COMPONENTS.length * ROW_H;
  const svg = `<svg class="energy" viewBox="0 0 ${LABEL_W + BAR_W + VALUE_W} ${height}" width="${LABEL_W + BAR_W + VALUE_W}" role="img" aria-label="energy per step by component">${bars.join("")}</svg>`;
  const rows = [...COMPONENTS, ["total", "total"] as [keyof EnergyBreakdown, string]]
    .map(([k, label]) => `<tr${k === "total" ? ' class="total"' : ""}><th scope="row">${esc(label)}</th><td class="num">${esc(joulesFromPj(e.perStep[k]))}</td><td class="num">${esc(joulesFromPj(e.perSequence[k]))}</td><td class="num">${esc(joulesFromPj(e.total[k]))}</td></tr>`)
    .join("");
  const table = `<table class="energy-table"><thead><tr><th>component</th><th class="num">per step</th><th class="num">per inference</th><th class="num">whole run</th></tr></thead><tbody>${rows}</tbody></table>`;
  return `<section id="energy"><h2>Energy by component</h2>
<p class="lead">One step: <b>${esc(joulesFromPj(step.total))}</b>. Event counts of the simulation priced with the target's per-event energies; static power is charged over the step's cycles.</p>
${svg}${table}</section>`;
}
