// Functional model of the vector unit. Every arithmetic step is rounded to the datapath
// precision (`round`); a transcendental function (GELU, sigmoid, tanh) counts as one step,
// evaluated in float64 and rounded once. All operands are read before the first result is
// written, so overlapping source and destination ranges behave like a copy-in/copy-out unit.
// Loops index memory directly (no subarray views): this runs for every vector instruction
// of every step, and allocations would dominate small instructions.

import type { Instr } from "../backend/isa.js";
import { gelu, sigmoid } from "./math.js";
import type { Memory } from "./memory.js";

export type VectorInstr = Extract<
  Instr,
  { op: "vadd" | "vsub" | "vmul" | "vcopy" | "vrelu" | "vgelu" | "vsigmoid" | "vtanh" | "vscale" | "vaffine" | "vglu" | "vnorm" | "vdivsteps" }
>;

type Buf = Memory | Float64Array;

export class VectorUnit {
  private readonly scratch: Float64Array[] = [new Float64Array(256), new Float64Array(256), new Float64Array(256)];

  constructor(
    /** Rounds one intermediate result to the datapath precision. */
    private readonly round: (x: number) => number,
  ) {}

  /**
   * mem itself when mem[addr, addr+n) can be read while dst[.., +dstLen) is written in
   * ascending order (no overlap, or the same start), else a copy in scratch slot `slot`
   * (then the operand starts at offset 0).
   */
  private source(mem: Memory, addr: number, n: number, dst: number, dstLen: number, slot: number): Buf {
    if (addr === dst || addr >= dst + dstLen || dst >= addr + n) return mem;
    let s = this.scratch[slot]!;
    if (s.length < n) s = this.scratch[slot] = new Float64Array(n);
    for (let i = 0; i < n; i++) s[i] = mem[addr + i]!;
    return s;
  }

  /** Executes `ins` on `mem`; `steps` is T of the current sequence (for vdivsteps). */
  exec(ins: VectorInstr, mem: Memory, steps: number): void {
    const r = this.round;
    const { dst, len } = ins;
    const x = this.source(mem, ins.a, ins.op === "vglu" ? 2 * len : len, dst, len, 0);
    const xo = x === mem ? ins.a : 0;
    switch (ins.op) {
      case "vadd":
      case "vsub":
      case "vmul": {
        const y = this.source(mem, ins.b, len, dst, len, 1);
        const yo = y === mem ? ins.b : 0;
        if (ins.op === "vadd") for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]! + y[yo + i]!;
        else if (ins.op === "vsub") for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]! - y[yo + i]!;
        else for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]! * y[yo + i]!;
        return;
      }
      case "vcopy":
        for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]!;
        return;
      case "vrelu":
        for (let i = 0; i < len; i++) {
          const v = x[xo + i]!;
          mem[dst + i] = v > 0 ? v : 0;
        }
        return;
      case "vgelu":
        for (let i = 0; i < len; i++) mem[dst + i] = gelu(x[xo + i]!);
        return;
      case "vsigmoid":
        for (let i = 0; i < len; i++) mem[dst + i] = sigmoid(x[xo + i]!);
        return;
      case "vtanh":
        for (let i = 0; i < len; i++) mem[dst + i] = Math.tanh(x[xo + i]!);
        return;
      case "vscale": {
        const k = r(ins.imm);
        for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]! * k;
        return;
      }
      case "vdivsteps":
        for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]! / steps;
        return;
      case "vaffine": {
        const c = this.source(mem, ins.c, 2 * len, dst, len, 1);
        const co = c === mem ? ins.c : 0;
        for (let i = 0; i < len; i++) mem[dst + i] = r(x[xo + i]! * c[co + i]!) + c[co + len + i]!;
        return;
      }
      case "vglu":
        for (let i = 0; i < len; i++) mem[dst + i] = x[xo + i]! * r(sigmoid(x[xo + len + i]!));
        return;
      case "vnorm":
        return layerNorm(mem, dst, x, xo, len, r(ins.imm), r);
    }
  }
}

/**
 * (x - mean) / sqrt(var + eps) with a sequential accumulator in datapath precision:
 * pass 1 sums x, pass 2 sums (x - mean)^2 (biased variance), then one subtract and one
 * divide per element.
 */
function layerNorm(mem: Memory, dst: number, x: Buf, xo: number, len: number, eps: number, r: (x: number) => number): void {
  let sum = 0;
  for (let i = 0; i < len; i++) sum = r(sum + x[xo + i]!);
  const mean = r(sum / len);
  let sq = 0;
  for (let i = 0; i < len; i++) {
    const d = r(x[xo + i]! - mean);
    sq = r(sq + r(d * d));
  }
  const variance = r(sq / len);
  const sd = r(Math.sqrt(r(variance + eps)));
  for (let i = 0; i < len; i++) mem[dst + i] = r(x[xo + i]! - mean) / sd;
}
