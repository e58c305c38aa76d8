// A self-contained SVG line plot of a sweep: the metric's mean per parameter value with
// ±1 standard deviation error bars, axes with round-number ticks, grid, labels and a title.
// No fonts or scripts are referenced beyond the generic sans-serif family.

import type { SweepTable } from "./table.js";

const W = 640;
const H = 420;
const M = { left: 72, right: 24, top: 52, bottom: 64 };

/** A step of 1, 2 or 5 times a power of ten giving about `target` intervals over `span`. */
export function niceStep(span: number, target = 6): number {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/** Domain widened to whole steps, and its ticks. */
export function niceAxis(lo: number, hi: number): { lo: number; hi: number; step: number; ticks: number[] } {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo);
  const a = Math.floor(lo / step + 1e-9) * step;
  const b = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; a + i * step <= b + step * 1e-9; i++) ticks.push(Number((a + i * step).toPrecision(12)));
  return { lo: a, hi: b, step, ticks };
}

function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(decimals, 12));
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const f2 = (v: number): string => v.toFixed(2);

export function sweepSvg(t: SweepTable): string {
  const xs = t.rows.map((r) => r.value);
  const x = niceAxis(Math.min(...xs), Math.max(...xs));
  const top = Math.max(...t.rows.map((r) => r.mean + r.std));
  const bottom = Math.min(...t.rows.map((r) => r.mean - r.std));
  // Accuracy lives in [0, 1]; an error axis starts at 0 so the growth reads honestly.
  const y = t.metric === "accuracy" ? niceAxis(0, 1) : niceAxis(Math.min(0, bottom), top > 0 ? top * 1.05 : 1);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  // Points stay a little inside the frame, so end points and their error bars are not cut.
  const inset = 12;
  const px = (v: number): number => M.left + inset + ((v - x.lo) / (x.hi - x.lo)) * (pw - 2 * inset);
  const py = (v: number): number => M.top + ph - ((v - y.lo) / (y.hi - y.lo)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(`${t.model} on ${t.target}: ${t.metric} vs ${t.param}`)}</text>`);
  const sub = `mean ± 1 std over ${t.seeds.length} chip seed${t.seeds.length === 1 ? "" : "s"} per point`;
  out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(sub)}</text>`);
  // grid and ticks
  out.push(`<g stroke="#e3e3e3" stroke-width="1">`);
  for (const v of x.ticks) out.push(`<line x1="${f2(px(v))}" y1="${M.top}" x2="${f2(px(v))}" y2="${M.top + ph}"/>`);
  for (const v of y.ticks) out.push(`<line x1="${M.left}" y1="${f2(py(v))}" x2="${M.left + pw}" y2="${f2(py(v))}"/>`);
  out.push(`</g>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<g class="x-ticks" text-anchor="middle">`);
  for (const v of x.ticks)
    out.push(`<line x1="${f2(px(v))}" y1="${M.top + ph}" x2="${f2(px(v))}" y2="${M.top + ph + 5}" stroke="#333"/><text x="${f2(px(v))}" y="${M.top + ph + 19}">${tickLabel(v, x.step)}</text>`);
  out.push(`</g>`);
  out.push(`<g class="y-ticks" text-anchor="end">`);
  for (const v of y.ticks)
    out.push(`<line x1="${M.left - 5}" y1="${f2(py(v))}" x2="${M.left}" y2="${f2(py(v))}" stroke="#333"/><text x="${M.left - 8}" y="${f2(py(v) + 4)}">${tickLabel(v, y.step)}</text>`);
  out.push(`</g>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle" font-size="13">${esc(t.param)}</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13">${esc(t.metric)}</text>`);
  // error bars, line, points
  out.push(`<g class="error-bars" stroke="#1f77b4" stroke-width="1.5">`);
  for (const r of t.rows) {
    const cx = px(r.value);
    const [a, b] = [py(r.mean - r.std), py(r.mean + r.std)];
    out.push(`<line x1="${f2(cx)}" y1="${f2(a)}" x2="${f2(cx)}" y2="${f2(b)}"/><line x1="${f2(cx - 5)}" y1="${f2(a)}" x2="${f2(cx + 5)}" y2="${f2(a)}"/><line x1="${f2(cx - 5)}" y1="${f2(b)}" x2="${f2(cx + 5)}" y2="${f2(b)}"/>`);
  }
  out.push(`</g>`);
  out.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${t.rows.map((r) => `${f2(px(r.value))},${f2(py(r.mean))}`).join(" ")}"/>`);
  out.push(`<g class="points" fill="#1f77b4">`);
  for (const r of t.rows) out.push(`<circle cx="${f2(px(r.value))}" cy="${f2(py(r.mean))}" r="3.5"><title>${esc(`${t.param} = ${r.value}: ${r.mean.toFixed(4)} ± ${r.std.toFixed(4)} (${r.runs} runs)`)}</title></circle>`);
  out.push(`</g>`);
  out.push(`</svg>`);
  return `${out.join("\n")}\n`;
}
