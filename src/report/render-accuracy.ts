// Results on real inputs: every output (against the float64 reference when the model was
// given) and ADC saturations per layer. Absent from reports of the zero-sequence run.

import type { ReportData } from "./collect.js";
import { count, esc, pct, sci } from "./format.js";

/** Predicted classes listed per final output before "…". */
const MAX_LISTED = 16;

function outputsTable(d: ReportData): string {
  const withRef = d.referenceFile !== null;
  const head = withRef
    ? "<th>output</th><th>shape</th><th class=num>max abs error</th><th class=num>relative max error</th><th class=num>RMS error</th><th class=num>SNR</th><th class=num>argmax agreement</th>"
    : "<th>output</th><th>shape</th><th class=num>min</th><th class=num>max</th><th class=num>mean |y|</th><th>predicted class per sequence</th>";
  const rows = d.outputs!.map((o) => {
    const name = `<td>${esc(o.name)} <span class="muted">(${o.section})</span></td><td>[${o.shape.join(", ")}]</td>`;
    if (withRef && o.reference) {
      const r = o.reference;
      const snr = Number.isFinite(r.snrDb) ? `${r.snrDb.toFixed(1)} dB` : "exact";
      const agree = r.argmaxAgreement === null ? "–" : pct(r.argmaxAgreement);
      return `<tr data-output="${esc(o.name)}">${name}<td class="num" data-key="maxAbsError" data-value="${r.maxAbsError}">${sci(r.maxAbsError)}</td><td class="num">${sci(r.relativeMaxError)}</td><td class="num">${sci(r.rmsError)}</td><td class="num">${snr}</td><td class="num">${agree}</td></tr>`;
    }
    const classes = o.predicted === null ? "–" : `${o.predicted.slice(0, MAX_LISTED).join(" ")}${o.predicted.length > MAX_LISTED ? " …" : ""}`;
    return `<tr data-output="${esc(o.name)}">${name}<td class="num">${sci(o.min)}</td><td class="num">${sci(o.max)}</td><td class="num">${sci(o.meanAbs)}</td><td>${classes}</td></tr>`;
  });
  const note = withRef
    ? `Interpreter outputs against the float64 reference evaluation of ${esc(d.referenceFile!)} on the same inputs (as <code>imssa-verify</code> compares them).`
    : "Interpreter outputs only: pass <code>--model</code> with the model file to compare them with the float64 reference.";
  return `<p class="lead">${note}</p><table class="outputs"><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function saturationTable(d: ReportData): string {
  const sat = d.saturation!;
  const total = sat.reduce((a, e) => ({ s: a.s + e.saturations, c: a.c + e.conversions }), { s: 0, c: 0 });
  const rows = sat.map(
    (e) =>
      `<tr data-layer="${esc(e.layer)}"><td>${esc(e.layer)}</td><td class="num" data-key="saturations" data-value="${e.saturations}">${count(e.saturations)}</td><td class="num">${count(e.conversions)}</td><td class="num">${pct(e.conversions > 0 ? e.saturations / e.conversions : 0)}</td></tr>`,
  );
  return `<h3>ADC saturations per layer</h3><p class="lead">Conversions whose analog value exceeded the ADC range (clipped), over the whole run: ${count(total.s)} of ${count(total.c)} (${pct(total.c > 0 ? total.s / total.c : 0)}).</p>
<table class="saturation"><thead><tr><th>layer</th><th class="num">saturations</th><th class="num">conversions</th><th class="num">rate</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

export function renderAccuracy(d: ReportData): string {
  if (d.outputs === null) return "";
  return `<section id="accuracy"><h2>Outputs on ${esc(d.inputFile ?? "")}</h2>${outputsTable(d)}${saturationTable(d)}</section>`;
}
