// Which local-memory words and global-memory words an instruction reads and writes. The
// verifier bounds-checks these ranges; the timing model's scoreboard tracks hazards on them.

import type { Instr } from "../backend/isa.js";

export interface Range {
  /** Field name the range starts at (for error messages). */
  field: string;
  addr: number;
  len: number;
}

export interface Access {
  reads: Range[];
  write: Range | null;
  /** Global memory range touched by load/store. */
  global: Range | null;
}

export function accessOf(ins: Instr): Access {
  switch (ins.op) {
    case "mvm": {
      const out: Range = { field: "dst", addr: ins.dst, len: ins.cols };
      const reads: Range[] = [{ field: "src", addr: ins.src, len: ins.rows }];
      if (ins.acc) reads.push(out); // partial-sum accumulation reads the old value
      return { reads, write: out, global: null };
    }
    case "vadd":
    case "vsub":
    case "vmul":
      return {
        reads: [
          { field: "a", addr: ins.a, len: ins.len },
          { field: "b", addr: ins.b, len: ins.len },
        ],
        write: { field: "dst", addr: ins.dst, len: ins.len },
        global: null,
      };
    case "vcopy":
    case "vrelu":
    case "vgelu":
    case "vsigmoid":
    case "vtanh":
    case "vscale":
    case "vnorm":
    case "vdivsteps":
      return { reads: [{ field: "a", addr: ins.a, len: ins.len }], write: { field: "dst", addr: ins.dst, len: ins.len }, global: null };
    case "vaffine":
      return {
        reads: [
          { field: "a", addr: ins.a, len: ins.len },
          { field: "c", addr: ins.c, len: 2 * ins.len },
        ],
        write: { field: "dst", addr: ins.dst, len: ins.len },
        global: null,
      };
    case "vglu":
      return { reads: [{ field: "a", addr: ins.a, len: 2 * ins.len }], write: { field: "dst", addr: ins.dst, len: ins.len }, global: null };
    case "load":
      return { reads: [], write: { field: "dst", addr: ins.dst, len: ins.len }, global: { field: "global", addr: ins.global, len: ins.len } };
    case "store":
      return { reads: [{ field: "src", addr: ins.src, len: ins.len }], write: null, global: { field: "global", addr: ins.global, len: ins.len } };
    case "send":
      return { reads: [{ field: "src", addr: ins.src, len: ins.len }], write: null, global: null };
    case "recv":
      return { reads: [], write: { field: "dst", addr: ins.dst, len: ins.len }, global: null };
    case "ext":
      // What an ext instruction touches is the target plugin's declaration, not the ISA's.
      throw new Error("internal error: accesses of ext instructions come from the target plugin (src/target/plugin-runtime.ts)");
  }
}
