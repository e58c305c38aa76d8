// Scheduling decisions of the backend, made before any instruction exists:
//   - the op order of each section (state writes last, so every reader of a state's old
//     value runs first and the state needs no double buffering),
//   - which tile holds each planned crossbar (one matmul's crossbars together),
//   - which tile runs each op (a matmul where most of its weights are, a vector op where
//     its first operand is), so values rarely have to travel.

import { fail } from "../common/errors.js";
import { operandsOf } from "../ir/operands.js";
import type { CrossbarPlan, Piece } from "../ir/plan.js";
import type { MatMulOp, Model, Op } from "../ir/types.js";
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
 * Clusters of crossbars that must talk to each other every step: two crossbars are linked
 * when they hold pieces of the same matmul that share an output column (partial sums to
 * add) or an input row (the same input words). Independent channel groups of a recurrence
 * (src/backend/regroup.ts) form separate clusters; a dense matmul is one cluster.
 * Returns the crossbar ids of each cluster, clusters in the order of their first crossbar.
 */
export function crossbarClusters(plan: CrossbarPlan): number[][] {
  const ids = plan.crossbars.map((xb) => xb.id);
  const parent = new Map(ids.map((id) => [id, id]));
  const find = (x: number): number => {
    while (parent.get(x) !== x) {
      const up = parent.get(parent.get(x)!)!;
      parent.set(x, up);
      x = up;
    }
    return x;
  };
  // First crossbar seen per (matmul, column) and (matmul, row): per matmul, two tables
  // indexed by column / row number, -1 = none yet (numeric lookups; a string key per row
  // and column cost more than the rest of the clustering at 10M weights).
  const extent = new Map<string, { cols: number; rows: number }>();
  for (const xb of plan.crossbars)
    for (const p of xb.pieces) {
      const m = valueKey(p.section, p.op);
      const e = extent.get(m) ?? { cols: 0, rows: 0 };
      for (const j of p.outCols) if (j >= e.cols) e.cols = j + 1;
      for (const i of p.inRows) if (i >= e.rows) e.rows = i + 1;
      extent.set(m, e);
    }
  const owners = new Map<string, { cols: Int32Array; rows: Int32Array }>();
  for (const [m, e] of extent) owners.set(m, { cols: new Int32Array(e.cols).fill(-1), rows: new Int32Array(e.rows).fill(-1) });
  const link = (owner: Int32Array, index: number, id: number): void => {
    const other = owner[index]!;
    if (other === -1) owner[index] = id;
    else parent.set(find(id), find(other));
  };
  for (const xb of plan.crossbars)
    for (const p of xb.pieces) {
      const o = owners.get(valueKey(p.section, p.op))!;
      for (const j of p.outCols) link(o.cols, j, xb.id);
      for (const i of p.inRows) link(o.rows, i, xb.id);
    }
  const clusters = new Map<number, number[]>();
  for (const id of ids) {
    const root = find(id);
    const list = clusters.get(root);
    if (list) list.push(id);
    else clusters.set(root, [id]);
  }
  return [...clusters.values()];
}

/**
 * Crossbar id -> tile. Crossbars are grouped in clusters (crossbarClusters), clusters in
 * program order of their first matmul; a cluster that fits in one tile never straddles
 * two, unless the tile count forces dense packing.
 *
 * While tiles are plentiful, a tile holds the clusters of one matmul only. A tile's stream
 * is in order, so a tile holding work of two layers must issue layer l+1 of step t before
 * layer l of step t+1: layer l+1 waits for layer l's result from other tiles, and the
 * loop "layer l on this tile -> other tiles -> layer l+1 on this tile -> layer l of the next
 * step" bounds the interval of overlapped steps at a whole layer's latency (docs/SCHEDULE.md).
 */
export function assignCrossbarTiles(plan: CrossbarPlan, model: Model, target: Target): Map<number, number> {
  const perTile = target.tiles.crossbarsPerTile;
  const maxTiles = target.tiles.count === "unlimited" ? Number.POSITIVE_INFINITY : target.tiles.count;
  if (plan.crossbars.length > maxTiles * perTile)
    fail("resource", `the model needs ${plan.crossbars.length} crossbars but target '${target.name}' has ${maxTiles * perTile} (${maxTiles} tiles x ${perTile})`);

  const order = new Map<string, number>();
  for (const s of IR_SECTIONS) model.sections[s].forEach((op) => order.set(valueKey(s, op.out), order.size));
  const byId = new Map(plan.crossbars.map((xb) => [xb.id, xb]));
  const rankOf = (id: number): number => {
    const first = byId.get(id)!.pieces[0];
    return first ? (order.get(valueKey(first.section, first.op)) ?? Number.MAX_SAFE_INTEGER) : Number.MAX_SAFE_INTEGER;
  };
  const stageOf = (id: number): string => {
    const first = byId.get(id)!.pieces[0];
    return first ? valueKey(first.section, first.op) : "";
  };
  const clusters = crossbarClusters(plan)
    .map((ids, k) => ({ ids, rank: Math.min(...ids.map(rankOf)), k, stage: stageOf(ids[0]!) }))
    .sort((a, b) => a.rank - b.rank || a.k - b.k);

  // First fit: a cluster that fits goes to the first open tile with room for all of it, or
  // opens a tile. When the unopened tiles cannot take what is left, a cluster fills the free
  // slots in tile order instead (dense packing, it may straddle tiles).
  const tileOf = new Map<number, number>();
  const used: number[] = [];
  let remaining = plan.crossbars.length;
  const put = (id: number, tile: number): void => {
    if (tileOf.has(id)) fail("semantic", `the crossbar plan lists crossbar ${id} twice`);
    while (used.length <= tile) used.push(0);
    tileOf.set(id, tile);
    used[tile]!++;
    remaining--;
  };
  const tileStage: string[] = [];
  /** Per tile: program rank of the last cluster placed on it. */
  const tileRank: number[] = [];
  for (const { ids, stage, rank } of clusters) {
    const unopened = (maxTiles - used.length) * perTile;
    // Spread: a tile holds one matmul's clusters only while enough tiles are left for the
    // rest (after this cluster opens a tile of its own).
    const spread = remaining - ids.length <= unopened - perTile;
    // Otherwise a cluster shares a tile, preferably with the stage nearest in program
    // order: a tile holding the first and the last stage of a step (the encoder and the
    // decoder) would carry the whole step's chain in its in-order stream.
    let fit = -1;
    if (ids.length <= perTile && remaining <= unopened)
      used.forEach((n, t) => {
        if (n + ids.length > perTile || (spread && tileStage[t] !== stage)) return;
        if (fit < 0 || Math.abs(tileRank[t]! - rank) < Math.abs(tileRank[fit]! - rank)) fit = t;
      });
    if (fit < 0 && ids.length <= perTile && remaining <= unopened) tileStage[used.length] = stage;
    if (ids.length <= perTile && remaining <= unopened) {
      const tile = fit >= 0 ? fit : used.length;
      for (const id of ids) put(id, tile);
      tileRank[tile] = rank;
      continue;
    }
    for (const id of ids) {
      const free = used.findIndex((n) => n < perTile);
      put(id, free >= 0 ? free : used.length);
      tileRank[free >= 0 ? free : used.length - 1] = rank;
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
export function placeOps(model: Model, pieces: Map<string, PlacedPiece[]>, spareTiles: readonly number[] = []): Placement {
  const inputs = new Set(model.inputs.map((i) => i.name));
  const stateTile = new Map<string, number>();

  const matmulTiles = new Set<number>();
  for (const list of pieces.values()) {
    const home = matmulHome(list);
    if (home !== null) matmulTiles.add(home);
  }
  const run = (): Map<string, number> => {
    const opTile = new Map<string, number>();
    const spare = [...spareTiles];
    /** Position of each placed value in section order (step before final). */
    const defined = new Map<string, number>();
    let last = 0;
    for (const section of IR_SECTIONS) {
      const tileOfValue = (name: string): number | undefined => {
        if (section === "final" && opTile.has(valueKey("final", name))) return opTile.get(valueKey("final", name));
        if (inputs.has(name) && !opTile.has(valueKey("step", name))) return undefined;
        return opTile.get(valueKey("step", name));
      };
      const ordered = orderSection(model.sections[section]);
      const distributed = distributedResults(model.sections[section], section, pieces);
      ordered.forEach((op, k) => {
        let tile: number | undefined;
        if (op.op === "matmul") tile = matmulHome(pieces.get(valueKey(section, op.out)) ?? []) ?? undefined;
        // A vector op reading a distributed recurrence result (each channel group's tile holds
        // its columns) gathers it wherever it runs. On the matmul's home, a channel-group
        // tile, its receives would block that tile's stream (the next step's gathers and
        // MVMs) until the slowest group finished; run it where its result goes next instead.
        else if (op.op !== "slice" && op.op !== "state_write" && operandsOf(op).some((x) => distributed.has(x))) tile = consumerMatmulTile(ordered, k, section, pieces);
        else if (op.op === "state_read" || op.op === "state_write") tile = stateTile.get(op.state);
        // A two-operand vector op runs where its operand computed last is (a residual add
        // where the block's output is, not where the skip value is): the tile that computed
        // the earlier operand then need not wait for the later one, so its stream can go on
        // with the next step while this one finishes (steps overlap, docs/TIMING.md).
        if (tile === undefined && (op.op === "add" || op.op === "mul")) {
          let latest = -1;
          for (const x of operandsOf(op)) {
            const t = tileOfValue(x);
            const at = defined.get(valueKey(section, x)) ?? defined.get(valueKey("step", x)) ?? -1;
            if (t !== undefined && (tile === undefined || at > latest)) [tile, latest] = [t, at];
          }
          // A residual add after a dense layer (its later operand computed where a matmul
          // finishes) starts a stage of its own on a spare tile, with the ops that follow
          // it: a tile issues in order, so the matmul's tile would otherwise hold the whole
          // chain matmul -> activation -> add -> norm -> sends of every step, and that chain
          // (not any unit's load) would set the interval of overlapped steps.
          // Only in a pipeline of tiles (some recurrence is distributed over channel-group
          // tiles): a model that fits one tile stays on it.
          if (tile !== undefined && distributed.size > 0 && matmulTiles.has(tile) && operandsOf(op).every((x) => tileOfValue(x) !== undefined) && spare.length > 0) tile = spare.shift()!;
        }
        if (tile === undefined) for (const x of operandsOf(op)) if ((tile = tileOfValue(x)) !== undefined) break;
        // Ops with no placed operand (e.g. reading only model inputs) stay where the last op ran.
        if (tile === undefined) tile = op.op === "state_read" ? undefined : last;
        if (tile === undefined) return;
        opTile.set(valueKey(section, op.out), tile);
        defined.set(valueKey(section, op.out), defined.size);
        last = tile;
      });
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

/** Names of the values (recurrence matmul results and slices of them) that stay distributed over tiles. */
function distributedResults(ops: readonly Op[], section: IrSection, pieces: Map<string, PlacedPiece[]>): Set<string> {
  const out = new Set<string>();
  if (section !== "step") return out;
  for (const op of ops) {
    if (op.op === "matmul" && columnOwners(op, pieces.get(valueKey(section, op.out)) ?? []) !== null) out.add(op.out);
    else if (op.op === "slice" && out.has(op.x)) out.add(op.out);
  }
  return out;
}

/** Home tile of the first matmul after position `k` that depends on `ordered[k]`'s result, if any. */
function consumerMatmulTile(ordered: readonly Op[], k: number, section: IrSection, pieces: Map<string, PlacedPiece[]>): number | undefined {
  const reached = new Set([ordered[k]!.out]);
  for (const op of ordered.slice(k + 1)) {
    if (!operandsOf(op).some((x) => reached.has(x))) continue;
    if (op.op === "matmul") return matmulHome(pieces.get(valueKey(section, op.out)) ?? []) ?? undefined;
    reached.add(op.out);
  }
  return undefined;
}

/**
 * For a recurrence matmul (S4D origin) whose output columns each live on exactly one tile:
 * that tile per column. Such a matmul leaves its result distributed (each tile finishes
 * its own columns, no partial sums travel) and the state it feeds is stored where its
 * words are computed. Null for any other matmul (its result is gathered on its home tile).
 */
export function columnOwners(op: MatMulOp, pieces: readonly PlacedPiece[]): Int32Array | null {
  if (op.origin !== "s4d") return null;
  const owner = new Int32Array(op.weight.cols).fill(-1);
  const tiles = new Set<number>();
  for (const { tile, piece } of pieces) {
    if (piece.inRows.length === 0) continue;
    tiles.add(tile);
    for (const j of piece.outCols) {
      if (owner[j] !== -1 && owner[j] !== tile) return null;
      owner[j] = tile;
    }
  }
  if (tiles.size < 2) return null;
  // Columns without weights (bias or zero only) go to the tile of their nearest column to
  // the left (or, at the start, the first owned column).
  let last = owner.find((t) => t !== -1)!;
  for (let j = 0; j < owner.length; j++) {
    if (owner[j] === -1) owner[j] = last;
    else last = owner[j]!;
  }
  return owner;
}
