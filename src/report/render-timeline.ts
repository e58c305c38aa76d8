// The Gantt chart of one step: the first step's schedule from the interpreter's timing
// model, the very timeline `imssa-run --trace` exports (src/interp/trace.ts). Two views of
// the same bars: compact (a tile's crossbars share one row) and detailed (one row per
// unit). Crossbar bars take their layer's colour, other units a colour per unit kind.

import type { ReportData } from "./collect.js";
import { count, esc, si } from "./format.js";
import { symbolLayers } from "./layers.js";
import type { TimelineBar, TimelineLane } from "../interp/trace.js";

const LABEL_W = 150;
const PLOT_W = 1000;
const RIGHT_PAD = 12;
const AXIS_H = 22;
const LANE_H = 11;
const BAR_PAD = 1.5;
const TILE_GAP = 5;
/** Aim for about this many axis ticks. */
const TICKS = 10;

/** Colours of the units that are not crossbars (crossbars use their layer's colour). */
export const UNIT_COLORS: Record<string, { color: string; label: string }> = {
  vector: { color: "#4d4d4d", label: "vector unit" },
  loadStore: { color: "#a6761d", label: "load/store port" },
  send: { color: "#1b9e77", label: "network send" },
  recv: { color: "#c7c7c7", label: "network recv (waiting for data)" },
};

/** The unit kind of a lane, from the names src/interp/trace.ts gives them. */
function laneKind(lane: TimelineLane): "crossbar" | keyof typeof UNIT_COLORS {
  if (lane.name.startsWith("crossbar")) return "crossbar";
  if (lane.name.startsWith("vector")) return "vector";
  if (lane.name.startsWith("load")) return "loadStore";
  return lane.name.endsWith("send") ? "send" : "recv";
}

const SHORT: Record<string, string> = { vector: "vector", loadStore: "load/store", send: "send", recv: "recv" };

/** One row of the chart: the bars (indices into the step's bars) it draws. */
interface Row {
  tile: number;
  label: string;
  crossbars: boolean;
  bars: number[];
}

/** 1, 2 or 5 times a power of ten, giving about TICKS ticks over `span`. */
function tickStep(span: number): number {
  const raw = Math.max(1, span) / TICKS;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

export interface TimelineData {
  /** Start of the step, in absolute cycles (bars are shown relative to it). */
  start: number;
  cycles: number;
  bars: { tile: number; unit: string; op: string; symbol: string; start: number; end: number; pc: number }[];
}

function rowsOf(lanes: readonly TimelineLane[], bars: readonly TimelineBar[], compact: boolean): Row[] {
  const byLane = new Map<string, number[]>();
  bars.forEach((b, i) => {
    const key = `${b.tile}:${b.tid}`;
    byLane.set(key, [...(byLane.get(key) ?? []), i]);
  });
  const rows: Row[] = [];
  const merged = new Map<number, { row: Row; n: number }>();
  for (const lane of lanes) {
    const mine = byLane.get(`${lane.tile}:${lane.tid}`);
    if (!mine) continue;
    const kind = laneKind(lane);
    if (compact && kind === "crossbar") {
      let m = merged.get(lane.tile);
      if (!m) {
        m = { row: { tile: lane.tile, label: "", crossbars: true, bars: [] }, n: 0 };
        merged.set(lane.tile, m);
        rows.push(m.row);
      }
      m.n++;
      m.row.bars.push(...mine);
      m.row.label = `crossbars (${m.n})`;
    } else rows.push({ tile: lane.tile, label: kind === "crossbar" ? lane.name.replace("crossbar", "xbar") : SHORT[kind]!, crossbars: kind === "crossbar", bars: mine });
  }
  // Within a tile: crossbars first (where the MACs happen), then the other units in lane order.
  return rows.sort((a, b) => a.tile - b.tile || Number(b.crossbars) - Number(a.crossbars));
}

function chart(rows: readonly Row[], bars: readonly TimelineBar[], start: number, cycles: number, colorOf: (b: TimelineBar) => string, view: string, hidden: boolean): string {
  const x = (c: number): number => LABEL_W + ((c - start) / Math.max(1, cycles)) * PLOT_W;
  const parts: string[] = [];
  let y = AXIS_H;
  let lastTile = -1;
  const rowY: number[] = [];
  for (const row of rows) {
    if (row.tile !== lastTile && lastTile !== -1) y += TILE_GAP;
    rowY.push(y);
    y += LANE_H;
    lastTile = row.tile;
  }
  const height = y + 4;
  // Tile bands: alternate shading, the tile's name once at its first row.
  let i = 0;
  while (i < rows.length) {
    const tile = rows[i]!.tile;
    let j = i;
    while (j < rows.length && rows[j]!.tile === tile) j++;
    const top = rowY[i]!;
    const bottom = rowY[j - 1]! + LANE_H;
    parts.push(`<rect class="band${tile % 2 ? " odd" : ""}" x="0" y="${top - 1}" width="${LABEL_W + PLOT_W}" height="${bottom - top + 2}"/>`);
    parts.push(`<text class="tile-name" x="4" y="${top + LANE_H - 2}">tile ${tile}</text>`);
    i = j;
  }
  rows.forEach((row, r) => parts.push(`<text class="lane-name" x="${LABEL_W - 6}" y="${rowY[r]! + LANE_H - 2.5}">${esc(row.label)}</text>`));
  const step = tickStep(cycles);
  for (let c = 0; c <= cycles; c += step) {
    const tx = x(start + c).toFixed(1);
    parts.push(`<line class="tick" x1="${tx}" x2="${tx}" y1="${AXIS_H - 4}" y2="${height}"/><text class="tick-label" x="${tx}" y="${AXIS_H - 7}">${count(c)}</text>`);
  }
  rows.forEach((row, r) => {
    for (const k of row.bars) {
      const b = bars[k]!;
      const bx = x(b.start);
      const w = Math.max(0.6, x(b.end) - bx);
      parts.push(`<rect class="bar" data-bar="${k}" x="${bx.toFixed(2)}" y="${(rowY[r]! + BAR_PAD).toFixed(1)}" width="${w.toFixed(2)}" height="${LANE_H - 2 * BAR_PAD}" fill="${colorOf(b)}"/>`);
    }
  });
  return `<svg class="gantt" data-view="${view}" viewBox="0 0 ${LABEL_W + PLOT_W + RIGHT_PAD} ${height}" width="100%"${hidden ? ' style="display:none"' : ""} role="img" aria-label="${view} timeline of one step">${parts.join("")}</svg>`;
}

export function renderTimeline(d: ReportData, colors: ReadonlyMap<string, string>): { html: string; data: TimelineData } {
  const tl = d.timeline;
  const bars = tl.bars.filter((b) => b.section === "step");
  // The step spans from its first issue to its last completion: the section's cycle count.
  const start = bars.length > 0 ? Math.min(...bars.map((b) => b.start)) : 0;
  const cycles = bars.length > 0 ? Math.max(...bars.map((b) => b.end)) - start : 0;
  const laneOf = new Map(tl.lanes.map((l) => [`${l.tile}:${l.tid}`, l]));
  const layers = symbolLayers(d.program);
  const symbolIndex = new Map(d.program.symbols.map((s, i) => [s, i]));
  const colorOf = (b: TimelineBar): string => {
    const kind = laneKind(laneOf.get(`${b.tile}:${b.tid}`)!);
    if (kind !== "crossbar") return UNIT_COLORS[kind]!.color;
    return colors.get(layers.get(symbolIndex.get(b.symbol) ?? -1) ?? "") ?? "#888";
  };
  const data: TimelineData = {
    start,
    cycles,
    bars: bars.map((b) => ({ tile: b.tile, unit: laneOf.get(`${b.tile}:${b.tid}`)!.name, op: b.op, symbol: b.symbol, start: b.start - start, end: b.end - start, pc: b.pc })),
  };
  const compact = chart(rowsOf(tl.lanes, bars, true), bars, start, cycles, colorOf, "compact", false);
  const detailed = chart(rowsOf(tl.lanes, bars, false), bars, start, cycles, colorOf, "detailed", true);
  const idle = tl.lanes.length - new Set(bars.map((b) => `${b.tile}:${b.tid}`)).size;
  const unitKey = Object.values(UNIT_COLORS)
    .map((u) => `<span class="swatch" style="background:${u.color}"></span>${esc(u.label)}`)
    .join(" ");
  const html = `<section id="timeline"><h2>Timeline of one step</h2>
<p class="lead">The first step of the run: <b data-key="timelineCycles" data-value="${cycles}">${count(cycles)} cycles</b> (${esc(si(cycles / d.run.clockHz, "s"))} at ${esc(si(d.run.clockHz, "Hz"))}), ${count(bars.length)} instructions on ${count(new Set(bars.map((b) => b.tile)).size)} tiles. Every bar is one instruction on the unit it occupies, from the interpreter's timing model (docs/TIMING.md); <code>imssa-run --trace</code> exports the same schedule for Perfetto. ${idle > 0 ? `${count(idle)} units idle during the step are not shown.` : ""}</p>
<p class="controls"><label><input type="checkbox" id="timeline-detailed"> one row per crossbar</label> <span class="unit-key">crossbars in the colour of their layer, ${unitKey}</span></p>
<div class="gantt-box">${compact}${detailed}</div></section>`;
  return { html, data };
}
