// Instructions for the lowered ops that run on a tile's vector unit (everything but matmul
// and state access). Each op runs on the tile the schedule chose, reading local copies of
// its operands, and defines a fresh buffer there (a slice defines no buffer at all).

import { fail } from "../common/errors.js";
import type { MatMulOp, Op, StateReadOp, StateWriteOp, UnaryKind } from "../ir/types.js";
import { lengthChunks } from "./emit-runs.js";
import { refOf, sliceOf, windowParts, type SectionValues, type Value } from "./emit-values.js";
import { MAX_LEN, type VecUnaryOp } from "./isa.js";
import { at } from "./streams.js";

/** Ops left for the vector unit; anything but a lowered one is rejected here. */
export type VectorOp = Exclude<Op, MatMulOp | StateReadOp | StateWriteOp>;

/** Elementwise ops with one operand: one vector instruction each. */
const ELEMENTWISE_OPCODES: Record<UnaryKind | "div_steps", VecUnaryOp | "vdivsteps"> = { gelu: "vgelu", sigmoid: "vsigmoid", tanh: "vtanh", relu: "vrelu", div_steps: "vdivsteps" };

export function lowerVectorOp(values: SectionValues, op: VectorOp, tile: number): Value {
  const streams = values.streams;
  switch (op.op) {
    case "slice": {
      const x = values.resolve(op.x);
      if (op.start < 0 || op.start + op.length > x.len) fail("semantic", `slice '${op.out}' [${op.start}, ${op.start + op.length}) is outside '${op.x}' (length ${x.len})`);
      return sliceOf(x, op.start, op.length);
    }
    case "concat": {
      const parts = op.xs.map((x) => values.resolve(x));
      const out = values.fresh(tile, parts.reduce((n, p) => n + p.len, 0));
      let o = 0;
      for (const p of parts) {
        values.into(p, tile, at(refOf(out), o));
        o += p.len;
      }
      return out;
    }
    case "affine": {
      const x = values.operand(op.x, tile);
      const out = values.fresh(tile, x.len);
      // vaffine reads [scale(len), shift(len)] per chunk.
      const table = new Float32Array(2 * x.len);
      for (const [o, n] of lengthChunks(x.len)) {
        table.set(op.scale.slice(o, o + n), 2 * o);
        table.set(op.shift.slice(o, o + n), 2 * o + n);
      }
      const c = streams.constant(tile, table);
      for (const [o, n] of lengthChunks(x.len))
        streams.emit(tile, { op: "vaffine", dst: 0, a: 0, c: 0, len: n }, { dst: at(refOf(out), o), a: at(refOf(x), o), c: at(c, 2 * o) });
      return out;
    }
    case "normalize": {
      // Mean and variance span the whole vector, so it cannot be split into chunks.
      const x = values.operand(op.x, tile);
      if (x.len > MAX_LEN) fail("resource", `normalize '${op.out}' over ${x.len} elements exceeds the ISA vector length limit ${MAX_LEN}`);
      const out = values.fresh(tile, x.len);
      if (x.len > 0) streams.emit(tile, { op: "vnorm", dst: 0, a: 0, len: x.len, imm: Math.fround(op.eps) }, { dst: refOf(out), a: refOf(x) });
      return out;
    }
    case "gelu":
    case "sigmoid":
    case "tanh":
    case "relu":
    case "div_steps": {
      // On a distributed value (a recurrence's output, each tile holding its columns) an
      // elementwise op runs on every part where it is: a few words per tile instead of a
      // gather, and the result travels once, to its consumer.
      const whole = values.resolve(op.x);
      if (whole.kind === "dist" && op.op !== "div_steps") {
        const parts = windowParts(whole).map(({ at: off, mem }) => {
          const out = values.fresh(mem.buf.tile, mem.len);
          streams.unary(ELEMENTWISE_OPCODES[op.op], mem.buf.tile, refOf(out), refOf(mem), mem.len);
          return { off, mem: out };
        });
        return { kind: "dist", parts, off: 0, len: whole.len };
      }
      const x = values.operand(op.x, tile);
      const out = values.fresh(tile, x.len);
      streams.unary(ELEMENTWISE_OPCODES[op.op], tile, refOf(out), refOf(x), x.len);
      return out;
    }
    case "glu": {
      // vglu pairs element i with element len + i, so it cannot be split into chunks.
      const x = values.operand(op.x, tile);
      const half = x.len / 2;
      if (half > MAX_LEN) fail("resource", `glu '${op.out}' over ${x.len} elements exceeds the ISA vector length limit ${MAX_LEN}`);
      const out = values.fresh(tile, half);
      if (half > 0) streams.emit(tile, { op: "vglu", dst: 0, a: 0, len: half }, { dst: refOf(out), a: refOf(x) });
      return out;
    }
    case "add":
    case "mul": {
      const a = values.operand(op.a, tile);
      const b = values.operand(op.b, tile);
      if (a.len !== b.len) fail("semantic", `${op.op} '${op.out}': operands have lengths ${a.len} and ${b.len}`);
      const out = values.fresh(tile, a.len);
      streams.binary(op.op === "add" ? "vadd" : "vmul", tile, refOf(out), refOf(a), refOf(b), a.len);
      return out;
    }
    default:
      return fail("unsupported", `op '${op.out}' (${op.op}) is not a lowered op; run the lowering pass before emission`);
  }
}
