// Scheduling decisions of the backend, made before any instruction exists:
//   - the op order of each section (state writes last, so every reader of a state's old
//     value runs first and the state needs no double buffering),
//   - which tile holds each planned crossbar (one matmul's crossbars together),
//   - which tile runs each op (a matmul where most of its weights are, a vector op where
//     its first operand is), so values rarely have to travel.

import { fail } from "../common/errors.js";
import type { CrossbarPlan, Piece } from "../ir/plan.js";
import type { Model, Op } from "../ir/types.js";
import type { Target } from "../target/types.js";

export type IrSection = "step" | "final";
export const IR_SECTIONS: readonly IrSection[] = ["step", "final"];

/** `ops` with every state_write moved to the end (relative order otherwise kept). */
export function orderSection(ops: readonly Op[]): Op[] {
  return [...ops.filter((o) => o.op !== "state_write"), ...ops.filter((o) => o.op === "state_write")];
}

/** Key of an op result within the program: names are unique per section only. */
export const valueKey = (section: IrSection, name: string): string => `${section}:${name}`;

export interface PlacedPiece {
  xbar: number;
  tile: number;
  piece: Piece;
}

/**
 * Crossbar id -> tile. Crossbars are grouped by the matmul of their first piece, groups in
 * program order; a group that fits in one tile never straddles two, unless the tile count
 * forces dense packing.
 */
export function assignCrossbarTiles(plan: CrossbarPlan, model: Model, target: Target): Map<number, number> {
  const perTile = target.tiles.crossbarsPerTile;
  const maxTiles = target.tiles.count === "unlimited" ? Number.POSITIVE_INFINITY : target.tiles.count;
  if (plan.crossbars.length > maxTiles * perTile)
    fail("resource", `the model needs ${plan.crossbars.length} crossbars but target '${target.name}' has ${maxTiles * perTile} (${maxTiles} tiles x ${perTile})`);

  const order = new Map<string, number>();
  for (const s of IR_SECTIONS) model.sections[s].forEach((op) => order.set(valueKey(s, op.out), order.size));
  const groups = new Map<number, number[]>();
  for (const xb of plan.crossbars) {
    const first = xb.pieces[0];
    const rank = first ? (order.get(valueKey(first.section, first.op)) ?? Number.MAX_SAFE_INTEGER) : Number.MAX_SAFE_INTEGER;
    groups.set(rank, [...(groups.get(rank) ?? []), xb.id]);
  }
  const ranks = [...groups.keys()].sort((a, b) => a - b);

  const tileOf = new Map<number, number>();
  let tile = 0;
  let used = 0;
  let remaining = plan.crossbars.length;
  for (const rank of ranks) {
    const ids = groups.get(rank)!;
    const fitsFresh = ids.length <= perTile && used + ids.length > perTile && used > 0;
    // Skipping the rest of a tile wastes its free slots; only do it while the tiles left can take everything.
    const tilesLeftAfterSkip = maxTiles - (tile + 1);
    if (fitsFresh && tilesLeftAfterSkip * perTile >= remaining) {
      tile++;
      used = 0;
    }
    for (const id of ids) {
      if (used === perTile) {
        tile++;
        used = 0;
      }
      if (tileOf.has(id)) fail("semantic", `the crossbar plan lists crossbar ${id} twice`);
      tileOf.set(id, tile);
      used++;
      remaining--;
    }
  }
  return tileOf;
}

/** Pieces of every matmul (by valueKey), with their crossbar and tile. */
export function piecesByMatmul(plan: CrossbarPlan, tileOf: Map<number, number>): Map<string, PlacedPiece[]> {
  const out = new Map<string, PlacedPiece[]>();
  for (const xb of plan.crossbars) {
    for (const piece of xb.pieces) {
      const key = valueKey(piece.section, piece.op);
      const list = out.get(key) ?? [];
      list.push({ xbar: xb.id, tile: tileOf.get(xb.id)!, piece });
      out.set(key, list);
    }
  }
  return out;
}

/** The tile holding most of a matmul's weight cells (lowest id on ties), or null without pieces. */
export function matmulHome(pieces: readonly PlacedPiece[]): number | null {
  const area = new Map<number, number>();
  for (const p of pieces) area.set(p.tile, (area.get(p.tile) ?? 0) + p.piece.inRows.length * p.piece.outCols.length);
  let best: number | null = null;
  for (const [tile, a] of area) if (best === null || a > area.get(best)! || (a === area.get(best)! && tile < best)) best = tile;
  return best;
}

/** Operand names an op reads (values, not states). */
export function operandsOf(op: Op): string[] {
  switch (op.op) {
    case "matmul":
    case "concat":
      return op.xs;
    case "add":
    case "mul":
      return [op.a, op.b];
    case "state_read":
      return [];
    default:
      return "x" in op ? [op.x] : [];
  }
}

export interface Placement {
  /** valueKey -> tile that computes the value. */
  opTile: Map<string, number>;
  /** State name -> tile whose memory holds it. */
  stateTile: Map<string, number>;
}

/**
 * Chooses a tile for every op. A value read in `final` but defined in `step` resolves to the
 * step value; model inputs live nowhere (every tile can load them).
 */
export function placeOps(model: Model, pieces: Map<string, PlacedPiece[]>): Placement {
  const inputs = new Set(model.inputs.map((i) => i.name));
  const stateTile = new Map<string, number>();

  const run = (): Map<string, number> => {
    const opTile = new Map<string, number>();
    let last = 0;
    for (const section of IR_SECTIONS) {
      const tileOfValue = (name: string): number | undefined => {
        if (section === "final" && opTile.has(valueKey("final", name))) return opTile.get(valueKey("final", name));
        if (inputs.has(name) && !opTile.has(valueKey("step", name))) return undefined;
        return opTile.get(valueKey("step", name));
      };
      for (const op of orderSection(model.sections[section])) {
        let tile: number | undefined;
        if (op.op === "matmul") tile = matmulHome(pieces.get(valueKey(section, op.out)) ?? []) ?? undefined;
        else if (op.op === "state_read" || op.op === "state_write") tile = stateTile.get(op.state);
        if (tile === undefined) for (const x of operandsOf(op)) if ((tile = tileOfValue(x)) !== undefined) break;
        // Ops with no placed operand (e.g. reading only model inputs) stay where the last op ran.
        if (tile === undefined) tile = op.op === "state_read" ? undefined : last;
        if (tile === undefined) continue;
        opTile.set(valueKey(section, op.out), tile);
        last = tile;
      }
    }
    return opTile;
  };

  // A state lives where its new value is computed; that is known only after placing the
  // ops, and placing state readers needs the state's tile: place twice.
  const first = run();
  for (const section of IR_SECTIONS) {
    for (const op of model.sections[section]) {
      if (op.op !== "state_write" || stateTile.has(op.state)) continue;
      const t = first.get(valueKey(section, op.x)) ?? first.get(valueKey("step", op.x));
      if (t !== undefined) stateTile.set(op.state, t);
    }
  }
  for (const s of model.state) if (!stateTile.has(s.name)) stateTile.set(s.name, 0);
  const opTile = run();
  return { opTile, stateTile };
}
