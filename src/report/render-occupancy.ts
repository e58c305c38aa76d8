// The crossbar occupancy map: every used crossbar as a small grid, grouped by tile. A
// piece's cells are tinted in its layer's colour and its nonzero weights drawn solid, so
// both packing (tinted area) and sparsity (solid cells) show. Hovering a grid shows the
// layer, crossbar/tile coordinates, the cell's matmul entry and the piece's weight-level
// histogram (page.ts's script, fed by the data returned here).

import type { CrossbarImage, CrossbarPiece } from "../backend/program.js";
import { maxWeightLevel, type Target } from "../target/types.js";
import type { ReportData } from "./collect.js";
import { count, esc, pct } from "./format.js";
import { layerOf } from "./layers.js";

/** Display size of the longer crossbar side, in CSS pixels: one pixel per cell within these bounds. */
const MIN_GRID_PX = 64;
const MAX_GRID_PX = 128;
/** Faint guide lines every this many cells. */
const GUIDE_CELLS = 8;
/** Bins of the float-numerics weight histogram (exact zeros are counted apart). */
const FLOAT_BINS = 16;

/**
 * Weight histogram of one piece, zeros counted apart (a piece of a sparse matmul is mostly
 * zeros, which would flatten every other bar). Bin k covers [lo + k*step, lo + (k+1)*step);
 * integer levels use step 1 centred on each level.
 */
export interface Histogram {
  lo: number;
  step: number;
  counts: number[];
  zeros: number;
  integer: boolean;
}

/** Tooltip data of one piece (short keys: there are hundreds of them in the page). */
export interface PieceInfo {
  xbar: number;
  layer: string;
  symbol: string;
  op: string;
  section: string;
  r: number;
  c: number;
  in: number[];
  out: number[];
  hist: Histogram;
}

export interface CrossbarInfo {
  tile: number;
  /** Position among the tile's crossbars, and how many the tile holds. */
  slot: number;
  slots: number;
  rows: number;
  cols: number;
  pieces: number[];
}

export interface OccupancyData {
  crossbars: Record<number, CrossbarInfo>;
  pieces: PieceInfo[];
}

function cellValue(x: CrossbarImage, row: number, col: number): number {
  const i = row * x.cols + col;
  return x.weights.kind === "levels" ? x.weights.levels[i]! : x.weights.values[i]!;
}

function histogram(x: CrossbarImage, p: CrossbarPiece, target: Target): Histogram {
  const values: number[] = [];
  let zeros = 0;
  for (let a = 0; a < p.inRows.length; a++)
    for (let b = 0; b < p.outCols.length; b++) {
      const w = cellValue(x, p.rowStart + a, p.colStart + b);
      if (w === 0) zeros++;
      else values.push(w);
    }
  const L = maxWeightLevel(target);
  if (x.weights.kind === "levels" && L !== null) {
    const counts = new Array<number>(2 * L + 1).fill(0);
    for (const w of values) counts[w + L]!++;
    return { lo: -L - 0.5, step: 1, counts, zeros, integer: true };
  }
  const m = values.reduce((a, w) => Math.max(a, Math.abs(w)), 0) || 1;
  const step = (2 * m) / FLOAT_BINS;
  const counts = new Array<number>(FLOAT_BINS).fill(0);
  for (const w of values) counts[Math.min(FLOAT_BINS - 1, Math.floor((w + m) / step))]!++;
  return { lo: -m, step, counts, zeros, integer: false };
}

/** One path of unit squares for the nonzero cells of a piece, horizontal runs merged. */
function nonzeroPath(x: CrossbarImage, p: CrossbarPiece): { d: string; nonzeros: number } {
  const parts: string[] = [];
  let nonzeros = 0;
  for (let a = 0; a < p.inRows.length; a++) {
    const row = p.rowStart + a;
    let b = 0;
    while (b < p.outCols.length) {
      if (cellValue(x, row, p.colStart + b) === 0) {
        b++;
        continue;
      }
      const from = b;
      while (b < p.outCols.length && cellValue(x, row, p.colStart + b) !== 0) b++;
      nonzeros += b - from;
      parts.push(`M${p.colStart + from} ${row}h${b - from}v1h-${b - from}z`);
    }
  }
  return { d: parts.join(""), nonzeros };
}

function guides(rows: number, cols: number): string {
  const d: string[] = [];
  for (let c = GUIDE_CELLS; c < cols; c += GUIDE_CELLS) d.push(`M${c} 0V${rows}`);
  for (let r = GUIDE_CELLS; r < rows; r += GUIDE_CELLS) d.push(`M0 ${r}H${cols}`);
  return d.join("");
}

function gridPixels(rows: number, cols: number): { w: number; h: number } {
  const longer = Math.max(rows, cols);
  const scale = Math.min(MAX_GRID_PX, Math.max(MIN_GRID_PX, longer)) / longer;
  return { w: Math.round(cols * scale), h: Math.round(rows * scale) };
}

export function renderOccupancy(d: ReportData, colors: ReadonlyMap<string, string>): { html: string; data: OccupancyData } {
  const p = d.program;
  const data: OccupancyData = { crossbars: {}, pieces: [] };
  const byTile = new Map<number, CrossbarImage[]>();
  for (const x of p.crossbars) byTile.set(x.tile, [...(byTile.get(x.tile) ?? []), x]);
  const groups: string[] = [];
  for (const tile of [...byTile.keys()].sort((a, b) => a - b)) {
    const list = byTile.get(tile)!;
    const figures = list.map((x, slot) => {
      const { w, h } = gridPixels(x.rows, x.cols);
      const info: CrossbarInfo = { tile, slot, slots: list.length, rows: x.rows, cols: x.cols, pieces: [] };
      const shapes = (x.pieces ?? []).map((piece) => {
        const k = data.pieces.length;
        info.pieces.push(k);
        const layer = layerOf(piece);
        data.pieces.push({
          xbar: x.id,
          layer,
          symbol: p.symbols[piece.symbol] ?? "",
          op: piece.op,
          section: piece.section,
          r: piece.rowStart,
          c: piece.colStart,
          in: piece.inRows,
          out: piece.outCols,
          hist: histogram(x, piece, d.target),
        });
        const color = colors.get(layer) ?? "#888";
        const { d: path } = nonzeroPath(x, piece);
        return `<g class="piece" data-piece="${k}" data-layer="${esc(layer)}"><rect x="${piece.colStart}" y="${piece.rowStart}" width="${piece.outCols.length}" height="${piece.inRows.length}" fill="${color}" fill-opacity="0.28"/><path d="${path}" fill="${color}"/></g>`;
      });
      data.crossbars[x.id] = info;
      return `<figure class="xbar" data-crossbar="${x.id}" data-tile="${tile}"><svg class="xbar-grid" viewBox="0 0 ${x.cols} ${x.rows}" width="${w}" height="${h}" shape-rendering="crispEdges" role="img" aria-label="crossbar ${x.id} on tile ${tile}"><rect class="cells" width="${x.cols}" height="${x.rows}"/>${shapes.join("")}<path class="guides" d="${guides(x.rows, x.cols)}"/></svg><figcaption>#${x.id}</figcaption></figure>`;
    });
    groups.push(`<div class="tile-group"><div class="tile-label">tile ${tile}</div><div class="tile-xbars">${figures.join("")}</div></div>`);
  }

  const s = d.summary;
  const sat = new Map((d.saturation ?? []).map((e) => [e.layer, e]));
  const legendRows = s.layers.map((l) => {
    const e = sat.get(l.layer);
    const satCell = d.saturation ? `<td class="num">${e ? `${count(e.saturations)} / ${count(e.conversions)} (${pct(e.conversions > 0 ? e.saturations / e.conversions : 0)})` : "–"}</td>` : "";
    return `<tr data-layer="${esc(l.layer)}"><td><span class="swatch" style="background:${colors.get(l.layer) ?? "#888"}"></span>${esc(l.layer)}</td><td class="num" data-key="layer.crossbars" data-value="${l.crossbars}">${count(l.crossbars)}</td><td class="num" data-key="layer.lowerBound" data-value="${l.lowerBound}">${count(l.lowerBound)}</td>${satCell}</tr>`;
  });
  const satHead = d.saturation ? `<th class="num">ADC saturations / conversions</th>` : "";
  const legend = `<table class="legend"><thead><tr><th>layer</th><th class="num">crossbars</th><th class="num">lower bound</th>${satHead}</tr></thead><tbody>${legendRows.join("")}</tbody></table>`;
  const key = `<p class="cell-key"><span class="swatch solid"></span>nonzero weight<br><span class="swatch tint"></span>cell of a piece, holding zero<br><span class="swatch empty"></span>unused cell<br>Rows are crossbar inputs (top to bottom), columns its outputs; faint lines every ${GUIDE_CELLS} cells.</p>`;
  const html = `<section id="occupancy"><h2>Crossbar occupancy</h2>
<p class="lead">${count(p.crossbars.length)} crossbars on ${count(byTile.size)} tiles, coloured by the layer whose weights they hold. Hover a crossbar for the cell's layer, its matmul entry and the weight-level histogram of the piece.</p>
<div class="occupancy-key">${legend}${key}</div><div class="tiles">${groups.join("")}</div></section>`;
  return { html, data };
}
