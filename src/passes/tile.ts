// Tiling and packing (lowered or quantized IR -> CrossbarPlan): cuts every matmul into
// pieces that fit the target's crossbars (split.ts), packs the pieces of all matmuls onto
// shared crossbars (pack.ts), and reports per-matrix lower bounds next to the crossbars
// actually used. Fails with a "resource" error when the chip has too few crossbars.

import { UserError } from "../common/errors.js";
import type { CrossbarPlan, MatrixBound, Piece, PlannedCrossbar } from "../ir/plan.js";
import type { MatMulOp, Model } from "../ir/types.js";
import { totalCrossbars, type Target } from "../target/types.js";
import { packItems, type PackItem } from "./pack.js";
import { splitMatrix, type SplitPiece } from "./split.js";

interface Ref {
  matrix: number;
  piece: SplitPiece;
}

interface MatrixInfo {
  op: MatMulOp;
  section: "step" | "final";
}

/** max(ceil(nonzero rows / R), ceil(nonzero cols / C), ceil(nonzeros / (R C))). */
export function matrixLowerBound(nonzeroRows: number, nonzeroCols: number, nonzeros: number, R: number, C: number): number {
  return Math.max(Math.ceil(nonzeroRows / R), Math.ceil(nonzeroCols / C), Math.ceil(nonzeros / (R * C)));
}

function layerName(op: MatMulOp): string {
  return op.layer ?? op.out;
}

export function tile(model: Model, target: Target): CrossbarPlan {
  if (model.level === "model") {
    throw new UserError("semantic", `tiling expects a lowered or quantized IR, got level "model"`, { file: model.name });
  }
  const R = target.crossbar.rows;
  const C = target.crossbar.cols;
  const matrices: MatrixInfo[] = [];
  for (const section of ["step", "final"] as const) {
    for (const op of model.sections[section]) if (op.op === "matmul") matrices.push({ op, section });
  }

  const items: PackItem<Ref>[] = [];
  const perMatrix: MatrixBound[] = matrices.map(({ op }, matrix) => {
    const { pieces, stats } = splitMatrix(op.weight, R, C);
    for (const piece of pieces) items.push({ rows: piece.inRows.length, cols: piece.outCols.length, ref: { matrix, piece } });
    return {
      op: op.out,
      ...(op.layer !== undefined ? { layer: op.layer } : {}),
      ...stats,
      lowerBound: matrixLowerBound(stats.nonzeroRows, stats.nonzeroCols, stats.nonzeros, R, C),
      used: 0,
    };
  });

  const bins = packItems(items, R, C);
  const crossbars: PlannedCrossbar[] = bins.map((placements, id) => {
    const pieces: Piece[] = placements.map(({ ref, rowStart, colStart }) => ({
      op: matrices[ref.matrix].op.out,
      section: matrices[ref.matrix].section,
      rowStart,
      colStart,
      inRows: ref.piece.inRows,
      outCols: ref.piece.outCols,
    }));
    for (const m of new Set(placements.map((p) => p.ref.matrix))) perMatrix[m].used++;
    return { id, pieces };
  });

  const available = totalCrossbars(target);
  if (crossbars.length > available) throw resourceError(model, target, crossbars, matrices, available);

  return { rows: R, cols: C, crossbars, lowerBound: perMatrix.reduce((n, m) => n + m.lowerBound, 0), perMatrix };
}

function resourceError(model: Model, target: Target, crossbars: PlannedCrossbar[], matrices: MatrixInfo[], available: number): UserError {
  const byOp = new Map(matrices.map((m) => [`${m.section}:${m.op.out}`, layerName(m.op)]));
  const perLayer = new Map<string, Set<number>>();
  for (const xb of crossbars) {
    for (const p of xb.pieces) {
      const layer = byOp.get(`${p.section}:${p.op}`)!;
      const set = perLayer.get(layer) ?? new Set<number>();
      set.add(xb.id);
      perLayer.set(layer, set);
    }
  }
  const top = [...perLayer]
    .map(([layer, set]) => ({ layer, n: set.size }))
    .sort((a, b) => b.n - a.n)
    .slice(0, 3)
    .map((l) => `${l.layer} (${l.n})`)
    .join(", ");
  const { count, crossbarsPerTile } = target.tiles;
  return new UserError(
    "resource",
    `model "${model.name}" needs ${crossbars.length} crossbars of ${target.crossbar.rows}x${target.crossbar.cols}, ` +
      `but target ${target.name} has ${available} (${count} tiles x ${crossbarsPerTile}); largest layers: ${top}`,
    { file: model.name },
  );
}
