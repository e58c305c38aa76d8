// Which layer owns what, and its colour. A layer is keyed as the compile summary keys it:
// the matmul's IR layer name, else the matmul's output name. The same colour marks a layer
// in the occupancy map, the timeline and the legend.

import type { CrossbarPiece, Program } from "../backend/program.js";
import type { CompileSummary } from "../summary.js";

export const layerOf = (p: Pick<CrossbarPiece, "layer" | "op">): string => p.layer ?? p.op;

/** Debug symbol index -> layer, for the symbols the crossbars' pieces carry (every mvm's). */
export function symbolLayers(p: Program): Map<number, string> {
  const out = new Map<number, string>();
  for (const x of p.crossbars) for (const piece of x.pieces ?? []) out.set(piece.symbol, layerOf(piece));
  return out;
}

// Tableau 10: distinguishable, and readable on white with dark text in the tooltips.
const BASE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/** Colour i of an unbounded categorical palette: Tableau 10, then golden-angle hues. */
export function paletteColor(i: number): string {
  if (i < BASE.length) return BASE[i]!;
  const hue = Math.round((i * 137.508) % 360);
  return `hsl(${hue}, 55%, ${i % 2 === 0 ? 48 : 62}%)`;
}

/** Layer -> colour, in the compile summary's layer order (program order of the matmuls). */
export function layerColors(summary: CompileSummary): Map<string, string> {
  return new Map(summary.layers.map((l, i) => [l.layer, paletteColor(i)]));
}
