// Splitting one matmul into crossbar-sized pieces.
//
// A piece is a set of input rows x a set of output columns; every nonzero W[i][j] must lie in
// exactly one piece (the piece holding both row i and column j), and a piece keeps only rows
// and columns that have a nonzero inside it. The matrix is never densified: everything below
// is a constant number of passes over the stored block entries plus work per nonzero row,
// column and piece.
//
// 1. Connected components of the bipartite nonzero graph (union-find over rows + columns).
//    Independent structure falls apart here: an S4D matmul gives one component per channel,
//    a dense layer one component.
// 2. A component that fits an R x C crossbar is one piece.
// 3. A larger component is cut on a grid of R-row x C-column chunks of an ordering that puts
//    "hub" rows/columns (many times the component's median number of nonzeros) first, then
//    the rest by index. For an S4D channel (2M state rows + u row -> 2M state cols + y
//    col, M = 32 on 64x64) this yields one full 64x64 piece holding u, y and 31.5 modes, and
//    tiny remainders; for a dense matrix it is the plain grid. Each grid cell becomes a piece
//    shrunk to its nonzero rows/columns.
// 4. Pieces of one component with identical row sets (or identical column sets) are merged
//    while they fit: their union rectangle holds only their own cells, so exactly-once
//    coverage is kept while shared rows/columns are counted once.

import type { BlockMatrix } from "../ir/types.js";

export interface SplitPiece {
  inRows: number[];
  outCols: number[];
}

export interface MatrixStats {
  nonzeroRows: number;
  nonzeroCols: number;
  nonzeros: number;
}

function find(parent: Int32Array, x: number): number {
  while (parent[x] !== x) {
    parent[x] = parent[parent[x]]; // path halving
    x = parent[x];
  }
  return x;
}

interface Component {
  rows: number[];
  cols: number[];
}

function components(m: BlockMatrix, rowDeg: Int32Array, colDeg: Int32Array): Component[] {
  const nR = m.rows;
  const parent = new Int32Array(nR + m.cols);
  for (let k = 0; k < parent.length; k++) parent[k] = k;
  // Plain loops over the stored entries (a callback per nonzero cost more than the union-find
  // itself). A row's root is found once per block row and every column joins under it, so
  // it stays the root for the rest of the row; only the partition matters below.
  for (const b of m.blocks) {
    const d = b.data;
    for (let r = 0, e = 0; r < b.rows; r++) {
      const i = b.row + r;
      let root = -1;
      for (let c = 0; c < b.cols; c++, e++) {
        if (d[e] === 0) continue;
        const j = b.col + c;
        rowDeg[i]++;
        colDeg[j]++;
        if (root < 0) root = find(parent, i);
        const other = find(parent, nR + j);
        if (other !== root) parent[other] = root;
      }
    }
  }
  const index = new Int32Array(nR + m.cols).fill(-1);
  const comps: Component[] = [];
  const compOf = (node: number): Component => {
    const root = find(parent, node);
    if (index[root] < 0) {
      index[root] = comps.length;
      comps.push({ rows: [], cols: [] });
    }
    return comps[index[root]];
  };
  for (let i = 0; i < nR; i++) if (rowDeg[i] > 0) compOf(i).rows.push(i);
  for (let j = 0; j < m.cols; j++) if (colDeg[j] > 0) compOf(nR + j).cols.push(j);
  return comps;
}

/** How many times the median degree makes a row or column a hub. */
const HUB_FACTOR = 4;

/**
 * Hubs first, then the rest, each in index order. A hub has many times the typical degree of
 * its component (like the u row and y column of an S4D channel, whatever sparsity
 * quantization left in them); when all degrees are alike (dense blocks) nothing is a hub and
 * the order is plain index order.
 */
function hubsFirst(items: number[], degree: Int32Array): number[] {
  const degrees = Int32Array.from(items, (x) => degree[x]).sort();
  const median = degrees[degrees.length >> 1];
  const threshold = Math.max(HUB_FACTOR * median, 2);
  const hubs: number[] = [];
  const rest: number[] = [];
  for (const x of items) (degree[x] > threshold ? hubs : rest).push(x);
  return hubs.concat(rest);
}

/** Merges pieces whose `same` side is identical while the other side stays within `limit`. */
function mergeIdentical(pieces: SplitPiece[], same: "inRows" | "outCols", limit: number): SplitPiece[] {
  const other = same === "inRows" ? "outCols" : "inRows";
  const groups = new Map<string, SplitPiece[]>();
  for (const p of pieces) {
    const key = p[same]
      .slice()
      .sort((a, b) => a - b)
      .join(",");
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }
  const out: SplitPiece[] = [];
  for (const g of groups.values()) {
    if (g.length === 1) {
      out.push(g[0]);
      continue;
    }
    // First-fit decreasing on the other side's length.
    g.sort((a, b) => b[other].length - a[other].length);
    const merged: SplitPiece[] = [];
    for (const p of g) {
      const host = merged.find((q) => q[other].length + p[other].length <= limit);
      if (host) host[other] = host[other].concat(p[other]);
      else merged.push({ inRows: p.inRows.slice(), outCols: p.outCols.slice() });
    }
    out.push(...merged);
  }
  return out;
}

interface Cell {
  comp: number;
  rowChunk: number;
  colChunk: number;
  rowFlags: Uint8Array;
  colFlags: Uint8Array;
}

export function splitMatrix(m: BlockMatrix, R: number, C: number): { pieces: SplitPiece[]; stats: MatrixStats } {
  const rowDeg = new Int32Array(m.rows);
  const colDeg = new Int32Array(m.cols);
  const comps = components(m, rowDeg, colDeg);
  let nonzeros = 0;
  for (let i = 0; i < m.rows; i++) nonzeros += rowDeg[i];
  const stats: MatrixStats = {
    nonzeroRows: comps.reduce((n, c) => n + c.rows.length, 0),
    nonzeroCols: comps.reduce((n, c) => n + c.cols.length, 0),
    nonzeros,
  };

  const pieces: SplitPiece[] = [];
  // Oversized components: position of every row/column in its component's ordering.
  const rowComp = new Int32Array(m.rows).fill(-1);
  const colComp = new Int32Array(m.cols).fill(-1);
  const rowPos = new Int32Array(m.rows);
  const colPos = new Int32Array(m.cols);
  const big: Array<{ rows: number[]; cols: number[]; colChunks: number; cellBase: number }> = [];
  let cellBase = 0;
  for (const comp of comps) {
    if (comp.rows.length <= R && comp.cols.length <= C) {
      pieces.push({ inRows: comp.rows, outCols: comp.cols });
      continue;
    }
    const rows = hubsFirst(comp.rows, rowDeg);
    const cols = hubsFirst(comp.cols, colDeg);
    const id = big.length;
    rows.forEach((i, p) => {
      rowComp[i] = id;
      rowPos[i] = p;
    });
    cols.forEach((j, p) => {
      colComp[j] = id;
      colPos[j] = p;
    });
    const rowChunks = Math.ceil(rows.length / R);
    const colChunks = Math.ceil(cols.length / C);
    big.push({ rows, cols, colChunks, cellBase });
    cellBase += rowChunks * colChunks;
  }
  if (big.length === 0) return { pieces, stats };

  const cells = new Map<number, Cell>();
  let lastKey = -1;
  let last: Cell | undefined;
  for (const blk of m.blocks) {
    const d = blk.data;
    for (let r = 0, e = 0; r < blk.rows; r++) {
      const i = blk.row + r;
      const id = rowComp[i];
      if (id < 0) {
        e += blk.cols;
        continue;
      }
      const b = big[id];
      const rc = (rowPos[i] / R) | 0;
      for (let c = 0; c < blk.cols; c++, e++) {
        if (d[e] === 0) continue;
        const j = blk.col + c;
        const cc = (colPos[j] / C) | 0;
        const key = b.cellBase + rc * b.colChunks + cc;
        if (key !== lastKey) {
          last = cells.get(key);
          if (!last) {
            last = { comp: id, rowChunk: rc, colChunk: cc, rowFlags: new Uint8Array(R), colFlags: new Uint8Array(C) };
            cells.set(key, last);
          }
          lastKey = key;
        }
        last!.rowFlags[rowPos[i] - rc * R] = 1;
        last!.colFlags[colPos[j] - cc * C] = 1;
      }
    }
  }

  const perComp: SplitPiece[][] = big.map(() => []);
  for (const cell of cells.values()) {
    const b = big[cell.comp];
    const inRows: number[] = [];
    const outCols: number[] = [];
    for (let p = 0; p < R; p++) if (cell.rowFlags[p]) inRows.push(b.rows[cell.rowChunk * R + p]);
    for (let p = 0; p < C; p++) if (cell.colFlags[p]) outCols.push(b.cols[cell.colChunk * C + p]);
    perComp[cell.comp].push({ inRows, outCols });
  }
  for (const list of perComp) pieces.push(...mergeIdentical(mergeIdentical(list, "inRows", C), "outCols", R));
  return { pieces, stats };
}
