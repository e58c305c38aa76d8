// Packing pieces onto crossbars. Pieces sharing a crossbar use disjoint crossbar rows and
// disjoint crossbar columns, so a crossbar is a bin with two capacities (R rows, C columns)
// and pieces are stacked along its diagonal: each one starts at the rows and columns used
// so far. Minimizing bins is two-dimensional vector bin packing; the heuristic:
//
// 1. Large pieces (more than half the rows or half the columns) conflict pairwise in that
//    dimension; first-fit decreasing by area, so a tall piece can still pair with a wide one.
// 2. Small pieces fill the slack large pieces left (best fit), then the rest go to
//    k = max(ceil(sum rows / R), ceil(sum cols / C)) fresh bins, each piece (largest first)
//    to the candidate bin whose fuller dimension stays lowest. Balancing both dimensions is
//    what lets row-heavy and column-heavy remainders (e.g. 2x1 and 1x3 S4D leftovers) share
//    bins instead of one dimension filling up first; a new bin opens only if nothing fits.
// Cost: O(n log n) in the number of pieces plus the first-fit scans over bins that still
// have room in both dimensions.

export interface PackItem<T> {
  rows: number;
  cols: number;
  ref: T;
}

export interface Placement<T> {
  ref: T;
  rowStart: number;
  colStart: number;
}

interface Bin<T> {
  id: number;
  usedRows: number;
  usedCols: number;
  items: Placement<T>[];
}

/** How many heap entries a small piece looks at before it opens a new bin. */
const LOOKAHEAD = 8;

class BinHeap<T> {
  private readonly heap: Bin<T>[] = [];
  constructor(
    private readonly R: number,
    private readonly C: number,
  ) {}
  load(b: Bin<T>): number {
    return Math.max(b.usedRows / this.R, b.usedCols / this.C);
  }
  private less(a: Bin<T>, b: Bin<T>): boolean {
    const la = this.load(a);
    const lb = this.load(b);
    return la < lb || (la === lb && a.id < b.id);
  }
  get size(): number {
    return this.heap.length;
  }
  push(b: Bin<T>): void {
    const h = this.heap;
    h.push(b);
    let k = h.length - 1;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!this.less(h[k], h[p])) break;
      [h[k], h[p]] = [h[p], h[k]];
      k = p;
    }
  }
  pop(): Bin<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const end = h.pop()!;
    if (h.length > 0) {
      h[0] = end;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        const r = l + 1;
        let m = k;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === k) break;
        [h[k], h[m]] = [h[m], h[k]];
        k = m;
      }
    }
    return top;
  }
}

export function packItems<T>(items: readonly PackItem<T>[], R: number, C: number): Placement<T>[][] {
  const bins: Bin<T>[] = [];
  const newBin = (): Bin<T> => {
    const b: Bin<T> = { id: bins.length, usedRows: 0, usedCols: 0, items: [] };
    bins.push(b);
    return b;
  };
  const fits = (b: Bin<T>, it: PackItem<T>): boolean => b.usedRows + it.rows <= R && b.usedCols + it.cols <= C;
  const place = (b: Bin<T>, it: PackItem<T>): void => {
    b.items.push({ ref: it.ref, rowStart: b.usedRows, colStart: b.usedCols });
    b.usedRows += it.rows;
    b.usedCols += it.cols;
  };

  const large: PackItem<T>[] = [];
  const small: PackItem<T>[] = [];
  for (const it of items) {
    if (it.rows > R || it.cols > C || it.rows < 1 || it.cols < 1) throw new Error(`internal error: piece ${it.rows}x${it.cols} cannot go on a ${R}x${C} crossbar`);
    (2 * it.rows > R || 2 * it.cols > C ? large : small).push(it);
  }

  // 1. Large pieces.
  large.sort((a, b) => b.rows * b.cols - a.rows * a.cols);
  let open: Bin<T>[] = [];
  for (const it of large) {
    let host = open.find((b) => fits(b, it));
    if (!host) {
      host = newBin();
      open.push(host);
    }
    place(host, it);
    if (host.usedRows === R || host.usedCols === C) open = open.filter((b) => b !== host);
  }

  // 2a. Small pieces into the slack of large bins (best fit: least room left over).
  small.sort((a, b) => Math.max(b.rows / R, b.cols / C) - Math.max(a.rows / R, a.cols / C) || b.rows + b.cols - (a.rows + a.cols));
  const rest: PackItem<T>[] = [];
  for (const it of small) {
    let best: Bin<T> | undefined;
    let bestLeft = Infinity;
    for (const b of open) {
      if (!fits(b, it)) continue;
      const left = (R - b.usedRows - it.rows) / R + (C - b.usedCols - it.cols) / C;
      if (left < bestLeft) {
        bestLeft = left;
        best = b;
      }
    }
    if (best) place(best, it);
    else rest.push(it);
  }

  // 2b. The remaining small pieces, balanced over fresh bins.
  if (rest.length > 0) {
    const heap = new BinHeap<T>(R, C);
    const sumRows = rest.reduce((n, it) => n + it.rows, 0);
    const sumCols = rest.reduce((n, it) => n + it.cols, 0);
    const k = Math.max(Math.ceil(sumRows / R), Math.ceil(sumCols / C));
    for (let n = 0; n < k; n++) heap.push(newBin());
    for (const it of rest) {
      const seen: Bin<T>[] = [];
      let best: Bin<T> | undefined;
      let bestLoad = Infinity;
      while (seen.length < LOOKAHEAD && heap.size > 0) {
        const b = heap.pop()!;
        seen.push(b);
        if (!fits(b, it)) continue;
        const load = Math.max((b.usedRows + it.rows) / R, (b.usedCols + it.cols) / C);
        if (load < bestLoad) {
          bestLoad = load;
          best = b;
        }
      }
      if (!best) {
        best = newBin();
        seen.push(best);
      }
      place(best, it);
      for (const b of seen) heap.push(b);
    }
  }

  return bins.filter((b) => b.items.length > 0).map((b) => b.items);
}
