// The document shell: one self-contained HTML file (inline CSS, SVG and script, nothing
// fetched), the sections in reading order, and the script behind tooltips, the legend
// highlight and the timeline's detail toggle. The script reads its data from one inline
// JSON block, so the sections stay plain markup.

import type { ReportData } from "./collect.js";
import { esc, scriptJson } from "./format.js";
import { layerColors } from "./layers.js";
import { renderAccuracy } from "./render-accuracy.js";
import { renderEnergy } from "./render-energy.js";
import { renderOccupancy } from "./render-occupancy.js";
import { renderSummary, runDescription } from "./render-summary.js";
import { renderTimeline } from "./render-timeline.js";

const CSS = `
:root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #f6f8fa; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 60px; }
header h1 { margin: 0 0 2px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav { margin: 10px 0 4px; display: flex; gap: 14px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; }
h2 { font-size: 18px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.lead { color: var(--muted); margin: 4px 0 10px; max-width: 1000px; }
.muted { color: var(--muted); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); padding: 10px 12px; overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-weight: 600; color: var(--muted); font-size: 12.5px; border-bottom: 1.5px solid var(--line); }
.num { text-align: right; }
table.summary th { color: var(--muted); font-weight: 500; white-space: nowrap; width: 190px; }
tbody th[scope="row"] { font-weight: 400; }
tr.total th, tr.total td { font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 10px 0 14px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: var(--soft); }
.card-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card-value { font-size: 26px; font-weight: 650; margin: 2px 0; font-variant-numeric: tabular-nums; }
.card-value .of { font-size: 16px; font-weight: 500; color: var(--muted); }
.card-note { color: var(--muted); font-size: 12.5px; }
details { margin-top: 10px; }
summary { cursor: pointer; color: var(--accent); }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin: 0 6px 0 0; vertical-align: -1px; }
.swatch.solid { background: #4e79a7; } .swatch.tint { background: rgba(78,121,167,.28); } .swatch.empty { background: #eef0f3; border: 1px solid #d5d9de; }
.occupancy-key { display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; margin-bottom: 12px; }
table.legend td, table.legend th { padding: 3px 8px; font-size: 13px; }
table.legend tbody tr { cursor: default; }
table.legend tbody tr:hover { background: var(--soft); }
.cell-key { color: var(--muted); font-size: 12.5px; margin: 4px 0 0; max-width: 420px; line-height: 1.9; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px 18px; }
.tile-group { border: 1px solid var(--line); border-radius: 6px; padding: 4px 8px 6px; }
.tile-label { font-size: 11.5px; color: var(--muted); margin-bottom: 3px; }
.tile-xbars { display: flex; gap: 6px; }
figure.xbar { margin: 0; text-align: center; }
figure.xbar figcaption { font-size: 10px; color: var(--muted); line-height: 1.3; }
svg.xbar-grid { display: block; border: 1px solid #c9ced4; cursor: crosshair; }
svg.xbar-grid .cells { fill: #eef0f3; }
svg.xbar-grid .guides { stroke: #fff; stroke-width: .35; stroke-opacity: .8; fill: none; pointer-events: none; }
.tiles.dim .piece { opacity: .12; }
.tiles.dim .piece.hl { opacity: 1; }
.controls { font-size: 13px; color: var(--muted); display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
.unit-key .swatch { margin-left: 10px; }
.gantt-box { border: 1px solid var(--line); border-radius: 6px; padding: 6px 4px; }
svg.gantt { display: block; font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
svg.gantt .band { fill: #fff; } svg.gantt .band.odd { fill: #f4f6f8; }
svg.gantt .tile-name { font-size: 10px; font-weight: 600; fill: var(--ink); }
svg.gantt .lane-name { font-size: 8.5px; fill: var(--muted); text-anchor: end; }
svg.gantt .tick { stroke: #d8dde3; stroke-width: .6; }
svg.gantt .tick-label { font-size: 9.5px; fill: var(--muted); text-anchor: middle; }
svg.gantt .bar:hover { stroke: #000; stroke-width: .8; }
svg.energy { display: block; max-width: 100%; height: auto; margin: 6px 0 12px; }
svg.energy text { font-size: 13px; fill: var(--ink); }
svg.energy .energy-label { text-anchor: end; }
svg.energy .energy-value { fill: var(--muted); }
svg.energy .energy-track { fill: #eef0f3; }
#tip { position: fixed; z-index: 10; display: none; pointer-events: none; max-width: 360px; background: #fff; border: 1px solid #bfc5cc; border-radius: 6px; box-shadow: 0 4px 14px rgba(0,0,0,.14); padding: 8px 10px; font-size: 12.5px; line-height: 1.4; }
#tip .t-title { font-weight: 600; margin-bottom: 2px; }
#tip .t-muted { color: var(--muted); }
#tip svg { display: block; margin-top: 6px; }
#tip svg text { font-size: 9px; fill: var(--muted); }
@media (max-width: 1000px) { .cards { grid-template-columns: repeat(2, 1fr); } }
`;

// Plain ES2017 in the page; kept free of template literals so it embeds verbatim.
const SCRIPT = String.raw`
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("imssa-data").textContent);
  var tip = document.getElementById("tip");
  function h(s) { return String(s).replace(/[&<>"']/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; }); }
  function show(html, ev) {
    tip.innerHTML = html;
    tip.style.display = "block";
    var w = tip.offsetWidth, ht = tip.offsetHeight;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + w > window.innerWidth - 4) x = ev.clientX - w - 14;
    if (y + ht > window.innerHeight - 4) y = Math.max(4, ev.clientY - ht - 14);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  function hide() { tip.style.display = "none"; }
  function swatch(layer) { return '<span class="swatch" style="background:' + (data.colors[layer] || "#888") + '"></span>'; }

  function histogram(hst, layer) {
    var n = hst.counts.length, bw = Math.max(3, Math.min(10, Math.floor(220 / n))), H = 48;
    var max = Math.max.apply(null, hst.counts.concat([1]));
    var out = '<svg width="' + (n * bw + 2) + '" height="' + (H + 14) + '">';
    for (var k = 0; k < n; k++) {
      var bh = hst.counts[k] / max * H;
      out += '<rect x="' + (k * bw + 1) + '" y="' + (H - bh) + '" width="' + (bw - 1) + '" height="' + bh + '" fill="' + (data.colors[layer] || "#4e79a7") + '"></rect>';
    }
    var lo = hst.integer ? -(n - 1) / 2 : hst.lo, hi = hst.integer ? (n - 1) / 2 : hst.lo + n * hst.step;
    out += '<text x="1" y="' + (H + 11) + '">' + h(fmt(lo)) + '</text><text x="' + (n * bw + 1) + '" y="' + (H + 11) + '" text-anchor="end">' + h(fmt(hi)) + "</text></svg>";
    return out;
  }
  function fmt(x) { return Number.isInteger(x) ? String(x) : x.toPrecision(3); }

  function pieceAt(info, row, col) {
    for (var i = 0; i < info.pieces.length; i++) {
      var p = data.occupancy.pieces[info.pieces[i]];
      if (row >= p.r && row < p.r + p.in.length && col >= p.c && col < p.c + p.out.length) return p;
    }
    return null;
  }
  document.querySelectorAll("svg.xbar-grid").forEach(function (svg) {
    var fig = svg.closest("figure");
    var id = fig.getAttribute("data-crossbar");
    var info = data.occupancy.crossbars[id];
    svg.addEventListener("mousemove", function (ev) {
      var box = svg.getBoundingClientRect();
      var col = Math.min(info.cols - 1, Math.max(0, Math.floor((ev.clientX - box.left) / box.width * info.cols)));
      var row = Math.min(info.rows - 1, Math.max(0, Math.floor((ev.clientY - box.top) / box.height * info.rows)));
      var where = "crossbar " + id + " · tile " + info.tile + " (crossbar " + (info.slot + 1) + " of " + info.slots + " on the tile) · cell row " + row + ", column " + col;
      var p = pieceAt(info, row, col);
      if (!p) { show('<div class="t-title">unused cell</div><div class="t-muted">' + h(where) + "</div>", ev); return; }
      var i = p.in[row - p.r], j = p.out[col - p.c];
      var hst = p.hist, nz = hst.counts.reduce(function (a, b) { return a + b; }, 0);
      show('<div class="t-title">' + swatch(p.layer) + h(p.layer) + "</div>" +
        '<div class="t-muted">' + h(p.symbol) + "</div><div>" + h(where) + "</div>" +
        "<div>holds W[" + i + "][" + j + "] of matmul " + h(p.op) + " (" + h(p.section) + " section)</div>" +
        '<div class="t-muted">piece: rows ' + p.r + "–" + (p.r + p.in.length - 1) + ", columns " + p.c + "–" + (p.c + p.out.length - 1) + " · " + nz + " nonzero of " + (nz + hst.zeros) + " cells</div>" +
        "<div>" + (hst.integer ? "weight levels" : "weights") + " of the piece's nonzero cells</div>" + histogram(hst, p.layer), ev);
    });
    svg.addEventListener("mouseleave", hide);
  });

  var tiles = document.querySelector(".tiles");
  document.querySelectorAll("table.legend tbody tr").forEach(function (tr) {
    var layer = tr.getAttribute("data-layer");
    tr.addEventListener("mouseenter", function () {
      tiles.classList.add("dim");
      tiles.querySelectorAll(".piece").forEach(function (g) { g.classList.toggle("hl", g.getAttribute("data-layer") === layer); });
    });
    tr.addEventListener("mouseleave", function () { tiles.classList.remove("dim"); });
  });

  var tl = data.timeline;
  document.querySelectorAll("svg.gantt").forEach(function (svg) {
    svg.addEventListener("mousemove", function (ev) {
      var k = ev.target.getAttribute && ev.target.getAttribute("data-bar");
      if (k === null || k === undefined) { hide(); return; }
      var b = tl.bars[k];
      var ns = (b.end - b.start) / data.clockHz * 1e9;
      show('<div class="t-title">' + h(b.op) + "</div>" + '<div class="t-muted">' + h(b.symbol || "(no symbol)") + "</div>" +
        "<div>tile " + b.tile + " · " + h(b.unit) + " · instruction " + b.pc + "</div>" +
        "<div>cycles " + b.start + "–" + b.end + " of the step (" + (b.end - b.start) + " cycles, " + ns.toPrecision(3) + " ns)</div>", ev);
    });
    svg.addEventListener("mouseleave", hide);
  });
  var toggle = document.getElementById("timeline-detailed");
  if (toggle) toggle.addEventListener("change", function () {
    document.querySelector('svg.gantt[data-view="compact"]').style.display = toggle.checked ? "none" : "";
    document.querySelector('svg.gantt[data-view="detailed"]').style.display = toggle.checked ? "" : "none";
  });
})();
`;

/** The complete report page. */
export function renderPage(d: ReportData): string {
  const colors = layerColors(d.summary);
  const occupancy = renderOccupancy(d, colors);
  const timeline = renderTimeline(d, colors);
  const accuracy = renderAccuracy(d);
  const data = { colors: Object.fromEntries(colors), clockHz: d.run.clockHz, occupancy: occupancy.data, timeline: timeline.data };
  const title = `${d.summary.model} on ${d.summary.target}`;
  const nav = [
    ["summary", "Summary"],
    ["occupancy", "Crossbar occupancy"],
    ["timeline", "Timeline"],
    ["energy", "Energy"],
    ...(accuracy ? [["accuracy", "Outputs"]] : []),
  ]
    .map(([id, label]) => `<a href="#${id}">${label}</a>`)
    .join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="imssa-report ${esc(d.program.compilerVersion)}">
<title>imssa report: ${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header><h1>${esc(title)}</h1><p>imssa report of ${esc(d.programFile)} · run: ${esc(runDescription(d))}</p></header>
<nav>${nav}</nav>
${renderSummary(d)}
${occupancy.html}
${timeline.html}
${renderEnergy(d)}
${accuracy}
</main>
<div id="tip" role="tooltip"></div>
<script type="application/json" id="imssa-data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
