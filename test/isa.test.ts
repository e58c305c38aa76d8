import { describe, expect, test } from "@jest/globals";
import { decodeInstr, encodeInstr, fieldRangeError, OPCODES, type Instr } from "../src/backend/isa.js";

const samples: Instr[] = [
  { op: "mvm", xbar: 513, rowStart: 3, rows: 61, colStart: 0, cols: 64, src: 1000, dst: 65535, acc: true },
  { op: "mvm", xbar: 0, rowStart: 0, rows: 1, colStart: 63, cols: 1, src: 0, dst: 2, acc: false },
  { op: "vadd", dst: 1, a: 2, b: 3, len: 4 },
  { op: "vsub", dst: 10, a: 20, b: 30, len: 65535 },
  { op: "vmul", dst: 0, a: 0, b: 0, len: 1 },
  { op: "vcopy", dst: 7, a: 8, len: 9 },
  { op: "vrelu", dst: 7, a: 8, len: 9 },
  { op: "vgelu", dst: 7, a: 8, len: 9 },
  { op: "vsigmoid", dst: 7, a: 8, len: 9 },
  { op: "vtanh", dst: 7, a: 8, len: 9 },
  { op: "vscale", dst: 1, a: 2, len: 3, imm: 0.015625 },
  { op: "vaffine", dst: 1, a: 2, c: 300, len: 3 },
  { op: "vglu", dst: 1, a: 2, len: 3 },
  { op: "vnorm", dst: 1, a: 2, len: 3, imm: 1e-5 },
  { op: "vdivsteps", dst: 1, a: 2, len: 3 },
  { op: "load", dst: 5, global: 0xfffffff0, len: 6 },
  { op: "store", global: 12, src: 5, len: 6 },
  { op: "send", peer: 3, src: 4, len: 5, tag: 6 },
  { op: "recv", peer: 3, dst: 4, len: 5, tag: 6 },
  // A target plugin's instruction: id in the flags byte, all fields raw (docs/ISA.md).
  { op: "ext", ext: 255, len: 65535, dst: 1, a: 2, b: 3, c: 4, word: 0xffffffff },
];

describe("ISA encoding", () => {
  test("every opcode has a sample", () => {
    expect(new Set(samples.map((s) => s.op))).toEqual(new Set(Object.keys(OPCODES)));
  });
  test.each(samples)("round trip %o", (ins) => {
    expect(fieldRangeError(ins)).toBeNull();
    const words = new Uint32Array(4);
    encodeInstr(ins, words, 0);
    const back = decodeInstr(words, 0);
    expect(back.ok).toBe(true);
    if (back.ok) expect(back.instr).toEqual(ins.op === "vnorm" ? { ...ins, imm: Math.fround(ins.imm) } : ins);
  });
  test("unknown opcode and stray flags are decode errors", () => {
    expect(decodeInstr(new Uint32Array([0xee, 0, 0, 0]), 0)).toEqual({ ok: false, error: "unknown opcode 0xee" });
    const r = decodeInstr(new Uint32Array([OPCODES.vadd | (1 << 8), 0, 0, 0]), 0);
    expect(r.ok).toBe(false);
  });
  test("out-of-range fields are reported before encoding", () => {
    expect(fieldRangeError({ op: "vadd", dst: 70000, a: 0, b: 0, len: 1 })).toMatch(/dst=70000/);
    expect(fieldRangeError({ op: "load", dst: 0, global: -1, len: 1 })).toMatch(/global/);
    expect(fieldRangeError({ op: "ext", ext: 256, len: 1, dst: 0, a: 0, b: 0, c: 0, word: 0 })).toMatch(/instruction id 256 does not fit 8 bits/);
    expect(fieldRangeError({ op: "ext", ext: 1, len: 1, dst: 0, a: 0, b: 0, c: 0, word: 2 ** 32 })).toMatch(/field word=4294967296 does not fit 32 bits/);
  });
});
