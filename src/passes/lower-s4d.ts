// The fused S4D step matrix. One matmul per step maps [x_{k-1}; u_k] to [x_k; y_k]:
//   x_k = dA x_{k-1} + dB u_k
//   y_k = 2 Re(sum_n C_n x_k,n) + D u_k = 2 Re(sum_n C_n dA_n x_{k-1},n) + (2 Re(sum_n C_n dB_n) + D) u_k
// so the recurrence costs a single crossbar MVM whose state outputs feed back as inputs.
//
// Layout (crossbar orientation, rows = inputs, cols = outputs), H channels, M modes:
//   rows [0, 2HM): previous state, index (h*M + m)*2 + {0: re, 1: im} (the S4DOp state order)
//   rows [2HM, 2HM + H): u_h
//   cols [0, 2HM): new state (same order),  cols [2HM, 2HM + H): y_h
// The matrix is stored as small blocks that hold only structurally nonzero entries (per mode
// a 2x2 rotation block, per channel a B row, a C column and the D entry), so its size is
// linear in H*M instead of (2HM+H)^2.

import { discretizeS4D } from "../common/s4d-math.js";
import type { BlockMatrix, MatrixBlock, S4DOp } from "../ir/types.js";

export function fusedS4DMatrix(op: S4DOp): BlockMatrix {
  const { channels: H, modes: M } = op;
  const { dA, dB } = discretizeS4D(op);
  const stateLen = 2 * H * M;
  const blocks: MatrixBlock[] = [];
  for (let h = 0; h < H; h++) {
    const base = 2 * h * M;
    const cCol = new Array<number>(2 * M);
    const bRow = new Array<number>(2 * M);
    let cdb = 0; // Re(sum_m C_m dB_m)
    for (let m = 0; m < M; m++) {
      const i = h * M + m;
      const ar = dA.re[i];
      const ai = dA.im[i];
      // Rotation-scaling block: xr' = ar xr - ai xi, xi' = ai xr + ar xi; W[in][out].
      blocks.push({ row: base + 2 * m, col: base + 2 * m, rows: 2, cols: 2, data: [ar, ai, -ai, ar] });
      const cr = op.C.re.data[i];
      const ci = op.C.im.data[i];
      // 2 Re((cr + i ci)(ar + i ai)(xr + i xi)) = 2 (p xr - q xi) with p + iq = C dA.
      const p = cr * ar - ci * ai;
      const q = cr * ai + ci * ar;
      cCol[2 * m] = 2 * p;
      cCol[2 * m + 1] = -2 * q;
      bRow[2 * m] = dB.re[i];
      bRow[2 * m + 1] = dB.im[i];
      cdb += cr * dB.re[i] - ci * dB.im[i];
    }
    const uRow = stateLen + h;
    const yCol = stateLen + h;
    blocks.push({ row: base, col: yCol, rows: 2 * M, cols: 1, data: cCol });
    blocks.push({ row: uRow, col: base, rows: 1, cols: 2 * M, data: bRow });
    blocks.push({ row: uRow, col: yCol, rows: 1, cols: 1, data: [2 * cdb + op.D.data[h]] });
  }
  return { rows: stateLen + H, cols: stateLen + H, blocks };
}
