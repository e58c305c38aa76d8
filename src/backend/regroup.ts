// Locality-aware tiling: the same crossbar plan format as src/passes/tile.ts, but the
// independent parts of a recurrence matmul (the channels of an S4D layer: connected
// components of its nonzero graph) are packed in groups that fit one tile, and no crossbar
// mixes pieces of two groups.
//
// Why: the plain packer fills crossbars with the small remainder pieces of many channels
// (an S4D channel is 65 x 65 on a 64 x 64 crossbar), so one channel's partial sums and
// state words end up on several tiles and every step moves the whole state over the
// network (digits on xbar64: 6975 cycles per step, 10% network and 0.6% crossbar
// utilization). Grouped, a channel group's state, MVMs and partial sums stay on one tile
// and only its few input and output words travel (docs/SCHEDULE.md).
//
// The plan's pieces keep referring to the original matmul and its row/column indices, so
// every consumer of the plan (emitter, error bounds, QAT export, reports) is unchanged.

import { UserError } from "../common/errors.js";
import type { CrossbarPlan, MatrixBound } from "../ir/plan.js";
import type { BlockMatrix, MatMulOp, MatrixBlock, Model, Op } from "../ir/types.js";
import { packItems } from "../passes/pack.js";
import { splitMatrix } from "../passes/split.js";
import { matrixLowerBound, tile } from "../passes/tile.js";
import { totalCrossbars, type Target } from "../target/types.js";

/** Union-find over rows (0..R-1) and columns (R..R+C-1) of one matrix. */
function componentOf(m: BlockMatrix): { id: (i: number) => number; cols: Map<number, number[]>; nonzero: Set<number> } {
  const parent = new Int32Array(m.rows + m.cols).map((_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) x = parent[x] = parent[parent[x]!]!;
    return x;
  };
  for (const b of m.blocks)
    for (let r = 0; r < b.rows; r++)
      for (let c = 0; c < b.cols; c++) if (b.data[r * b.cols + c] !== 0) parent[find(b.row + r)] = find(m.rows + b.col + c);
  const cols = new Map<number, number[]>();
  for (let j = 0; j < m.cols; j++) {
    const root = find(m.rows + j);
    const list = cols.get(root);
    if (list) list.push(j);
    else cols.set(root, [j]);
  }
  const nonzero = new Set<number>();
  for (const b of m.blocks)
    for (let r = 0; r < b.rows; r++) for (let c = 0; c < b.cols; c++) if (b.data[r * b.cols + c] !== 0) nonzero.add(find(b.row + r));
  return { id: find, cols, nonzero };
}

/**
 * `m` restricted to the entries whose row belongs to a component in `keep` (zeros elsewhere),
 * for many `keep` sets of one matrix. The greedy grouping below asks this once per channel
 * with the group so far; walking every block of the matrix each time made it quadratic in
 * the channels (H = 256: most of the compile). Each block's components are found once, and
 * a restriction visits only the blocks of its components, in matrix order, so it returns
 * the same blocks as the walk over all of them.
 */
class Restrictor {
  /** Per block: the components of the rows of its nonzero entries. */
  private readonly blockComps: number[][];
  private readonly byComp = new Map<number, number[]>();

  constructor(
    private readonly m: BlockMatrix,
    private readonly rowComponent: (i: number) => number,
  ) {
    this.blockComps = m.blocks.map((b, bi) => {
      const comps = new Set<number>();
      for (let k = 0; k < b.data.length; k++) if (b.data[k] !== 0) comps.add(rowComponent(b.row + Math.floor(k / b.cols)));
      for (const c of comps) {
        const list = this.byComp.get(c);
        if (list) list.push(bi);
        else this.byComp.set(c, [bi]);
      }
      return [...comps];
    });
  }

  restrict(keep: ReadonlySet<number>): BlockMatrix {
    const touched = new Set<number>();
    for (const c of keep) for (const bi of this.byComp.get(c) ?? []) touched.add(bi);
    const blocks: MatrixBlock[] = [];
    for (const bi of [...touched].sort((a, b) => a - b)) {
      const b = this.m.blocks[bi]!;
      const whole = this.blockComps[bi]!.every((c) => keep.has(c));
      const data = whole ? b.data.map((v) => (v !== 0 ? v : 0)) : b.data.map((v, k) => (v !== 0 && keep.has(this.rowComponent(b.row + Math.floor(k / b.cols))) ? v : 0));
      blocks.push({ ...b, data });
    }
    return { rows: this.m.rows, cols: this.m.cols, blocks };
  }
}

/** Crossbars the packer needs for `m` alone. */
function crossbarsFor(m: BlockMatrix, R: number, C: number): number {
  const { pieces } = splitMatrix(m, R, C);
  return packItems(
    pieces.map((p) => ({ rows: p.inRows.length, cols: p.outCols.length, ref: p })),
    R,
    C,
  ).length;
}

/**
 * Channel groups of a recurrence matmul: consecutive components (by first column), as many
 * per group as fit `perTile` crossbars. Null when everything fits one tile anyway.
 */
export function channelGroups(op: MatMulOp, R: number, C: number, perTile: number): Set<number>[] | null {
  const comp = componentOf(op.weight);
  // Columns without any nonzero weight form empty components: nothing to place.
  const roots = [...comp.cols.entries()].filter(([root]) => comp.nonzero.has(root)).sort((a, b) => a[1][0]! - b[1][0]!).map(([r]) => r);
  if (roots.length < 2) return null;
  const restrictor = new Restrictor(op.weight, comp.id);
  const fits = (group: number[]): boolean => crossbarsFor(restrictor.restrict(new Set(group)), R, C) <= perTile;
  // Greedy in column order: a group takes components while its pieces still pack into one
  // tile's crossbars. Components are not all alike (a mode whose input and output weights
  // quantize to zero is a component of its own), so the groups are not evened out by count.
  const groups: Set<number>[] = [];
  let current: number[] = [];
  for (const root of roots) {
    if (current.length > 0 && !fits([...current, root])) {
      groups.push(new Set(current));
      current = [];
    }
    current.push(root);
  }
  groups.push(new Set(current));
  if (groups.length < 2) return null; // the whole matmul fits one tile: nothing to separate
  return groups;
}

interface SubModel {
  model: Model;
}

function withOps(model: Model, step: Op[], final: Op[]): Model {
  return { ...model, sections: { step, final } };
}

/** Merges the plans of disjoint sub-models (crossbars renumbered in order). */
function mergePlans(model: Model, plans: CrossbarPlan[], R: number, C: number): CrossbarPlan {
  const crossbars = plans.flatMap((p) => p.crossbars).map((xb, id) => ({ ...xb, id }));
  const bounds = new Map<string, MatrixBound>();
  for (const p of plans)
    for (const m of p.perMatrix) {
      const have = bounds.get(m.op);
      bounds.set(
        m.op,
        have
          ? { ...have, nonzeroRows: have.nonzeroRows + m.nonzeroRows, nonzeroCols: have.nonzeroCols + m.nonzeroCols, nonzeros: have.nonzeros + m.nonzeros, used: have.used + m.used }
          : { ...m },
      );
    }
  const perMatrix: MatrixBound[] = [];
  for (const s of ["step", "final"] as const)
    for (const op of model.sections[s]) {
      const m = op.op === "matmul" ? bounds.get(op.out) : undefined;
      if (m) perMatrix.push({ ...m, lowerBound: matrixLowerBound(m.nonzeroRows, m.nonzeroCols, m.nonzeros, R, C) });
    }
  return { rows: R, cols: C, crossbars, lowerBound: perMatrix.reduce((n, m) => n + m.lowerBound, 0), perMatrix };
}

/** Recurrence matmuls: S4D-origin matmuls of the step section (their state stays on the chip). */
const isRecurrence = (op: Op): op is MatMulOp => op.op === "matmul" && op.origin === "s4d";

/**
 * The crossbar plan with recurrence channels grouped per tile (see the file comment), or
 * the plain tile() plan when grouping does not apply or the grouped plan would not fit.
 */
export function tileForLocality(model: Model, target: Target): CrossbarPlan {
  const plain = (): CrossbarPlan => tile(model, target);
  if (model.level === "model") return plain();
  const R = target.crossbar.rows;
  const C = target.crossbar.cols;
  const perTile = target.tiles.crossbarsPerTile;
  const subs: SubModel[] = [];
  const rest: Op[] = [];
  for (const op of model.sections.step) {
    const groups = isRecurrence(op) ? channelGroups(op, R, C, perTile) : null;
    if (!groups || op.op !== "matmul") {
      rest.push(op);
      continue;
    }
    const restrictor = new Restrictor(op.weight, componentOf(op.weight).id);
    for (const g of groups) subs.push({ model: withOps(model, [{ ...op, weight: restrictor.restrict(g) }], []) });
  }
  if (subs.length === 0) return plain();
  const unlimited: Target = { ...target, tiles: { ...target.tiles, count: "unlimited" } };
  const tryPlan = (others: SubModel[]): CrossbarPlan | null => {
    try {
      const merged = mergePlans(model, [...others, ...subs].map((s) => tile(s.model, unlimited)), R, C);
      return merged.crossbars.length <= totalCrossbars(target) ? merged : null;
    } catch (e) {
      if (e instanceof UserError) return null;
      throw e;
    }
  };
  // The other step matmuls each on crossbars of their own (the final section's together):
  // a crossbar shared by two stages of a step (say the encoder and the last block's output
  // linear, which the packer puts together when both are small) puts both on one tile, whose
  // in-order stream then holds the whole chain of a step, and overlapped steps gain nothing
  // (digits on xbar256: 673 cycles per step with and without overlap). Costs a crossbar per
  // small matmul; when that does not fit, they share as before.
  // Separating groups costs crossbars (remainders are no longer shared); keep the plain
  // plan when the grouped one does not fit the chip.
  const together = tryPlan([{ model: withOps(model, rest, model.sections.final) }]);
  if (together && !sharesStepStages(together)) return together;
  const stages = rest.filter((op) => op.op === "matmul").map((op) => ({ model: withOps(model, [op], []) }));
  return tryPlan([...stages, { model: withOps(model, [], model.sections.final) }]) ?? together ?? plain();
}

/** Whether some crossbar holds pieces of two different matmuls of the step section. */
export function sharesStepStages(plan: CrossbarPlan): boolean {
  return plan.crossbars.some((xb) => new Set(xb.pieces.filter((p) => p.section === "step").map((p) => p.op)).size > 1);
}
