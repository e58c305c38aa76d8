// Sparse entries -> BlockMatrix. Each row's nonzeros are cut into runs of adjacent columns,
// and equal runs in consecutive rows are stacked into one block. A dense matrix becomes one
// block; a diagonal S4D update becomes exactly the DSL's blocks (2x2 per mode, a C column
// and a B row per channel, the D entry), because those are its maximal runs.

import type { BlockMatrix, MatrixBlock } from "../../ir/types.js";

/** entries[i] = the (column, value) pairs of row i, any order, no duplicate columns. */
export function blockMatrix(rows: number, cols: number, entries: Array<Array<[number, number]>>): BlockMatrix {
  const blocks: MatrixBlock[] = [];
  // Open blocks by "c0:c1" run key; each ends at the previous row while it is extendable.
  let open = new Map<string, { block: MatrixBlock; values: number[][] }>();
  const close = (o: { block: MatrixBlock; values: number[][] }): void => {
    o.block.data = o.values.flat();
    blocks.push(o.block);
  };
  for (let i = 0; i < rows; i++) {
    const row = (entries[i] ?? []).filter(([, v]) => v !== 0).sort((a, b) => a[0] - b[0]);
    const next = new Map<string, { block: MatrixBlock; values: number[][] }>();
    let k = 0;
    while (k < row.length) {
      let e = k;
      while (e + 1 < row.length && row[e + 1]![0] === row[e]![0] + 1) e++;
      const c0 = row[k]![0];
      const c1 = row[e]![0];
      const values = row.slice(k, e + 1).map(([, v]) => v);
      const key = `${c0}:${c1}`;
      const prev = open.get(key);
      if (prev) {
        prev.block.rows++;
        prev.values.push(values);
        open.delete(key);
        next.set(key, prev);
      } else {
        next.set(key, { block: { row: i, col: c0, rows: 1, cols: c1 - c0 + 1, data: [] }, values: [values] });
      }
      k = e + 1;
    }
    for (const o of open.values()) close(o);
    open = next;
  }
  for (const o of open.values()) close(o);
  blocks.sort((a, b) => a.row - b.row || a.col - b.col);
  return { rows, cols, blocks };
}
