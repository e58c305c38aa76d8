// Output of the tiling/packing pass (src/passes/tile): where every nonzero weight of every
// matmul lives on which crossbar. Input of scheduling/allocation and of the emitter.

/**
 * A rectangular piece of one matmul placed on a crossbar. The piece occupies crossbar rows
 * [rowStart, rowStart + inRows.length) and columns [colStart, colStart + outCols.length);
 * cell (rowStart+a, colStart+b) holds W[inRows[a]][outCols[b]] of matmul `op`.
 * Pieces on one crossbar never share a crossbar row or column, so several pieces can be
 * driven by one MVM without disturbing each other.
 * Every nonzero W[i][j] of a matmul lies in exactly one piece; a column j appearing in
 * several pieces (rows split) yields partial sums that are added digitally.
 */
export interface Piece {
  /** `out` name of the matmul op in the step or final section. */
  op: string;
  section: "step" | "final";
  rowStart: number;
  colStart: number;
  /** Matmul input indices (into the concatenation of `xs`), one per crossbar row used. */
  inRows: number[];
  /** Matmul output indices, one per crossbar column used. */
  outCols: number[];
}

export interface PlannedCrossbar {
  id: number;
  pieces: Piece[];
}

export interface MatrixBound {
  op: string;
  layer?: string;
  nonzeroRows: number;
  nonzeroCols: number;
  nonzeros: number;
  /** max(ceil(nonzeroRows/R), ceil(nonzeroCols/C), ceil(nonzeros/(R*C))). */
  lowerBound: number;
  /** Crossbars holding at least one piece of this matrix. */
  used: number;
}

export interface CrossbarPlan {
  rows: number;
  cols: number;
  crossbars: PlannedCrossbar[];
  /** Sum of per-matrix lower bounds. */
  lowerBound: number;
  perMatrix: MatrixBound[];
}
