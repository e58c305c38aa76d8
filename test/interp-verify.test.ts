import { describe, expect, test } from "@jest/globals";
import { createHash } from "node:crypto";
import type { Instr } from "../src/backend/isa.js";
import type { Program, SectionName } from "../src/backend/program.js";
import { UserError } from "../src/common/errors.js";
import { verifyProgram } from "../src/interp/verify.js";
import { loadTarget } from "../src/target/load.js";
import { ProgramBuilder } from "./helpers/program-builder.js";

// Base program: tile 0 loads x, runs a 4x4 MVM and sends the result to tile 1, which stores it.
function base(): ProgramBuilder {
  const b = new ProgramBuilder(loadTarget("xbar64"), { tiles: 2, memoryWords: 64, globalWords: 64 });
  b.input("x", 4, 0).stepOutput("y", 4, 8);
  b.crossbar({ tile: 0, rows: 4, cols: 4, levels: new Array(16).fill(1) });
  b.crossbar({ tile: 1, rows: 4, cols: 4, levels: new Array(16).fill(-1) });
  b.constant(0, 40, [1, 2, 3]);
  b.emit(0, "step", [
    { op: "load", dst: 0, global: 0, len: 4 },
    { op: "mvm", xbar: 0, rowStart: 0, rows: 4, colStart: 0, cols: 4, src: 0, dst: 4, acc: false },
    { op: "send", peer: 1, src: 4, len: 4, tag: 3 },
  ]);
  b.emit(1, "step", [
    { op: "recv", peer: 0, dst: 0, len: 4, tag: 3 },
    { op: "store", global: 8, src: 0, len: 4 },
  ]);
  return b;
}

function verifyError(p: Program): string {
  try {
    verifyProgram(p, "m.xbin");
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).kind).toBe("verify");
    return (e as UserError).message;
  }
  throw new Error("verifier accepted the program");
}

/** Base program with one extra instruction appended to (tile, section). */
function withInstr(tile: number, section: SectionName, ins: Instr): Program {
  return base().emit(tile, section, ins).build();
}

describe("verifier accepts", () => {
  test("the base program", () => {
    expect(() => verifyProgram(base().build(), "m.xbin")).not.toThrow();
  });
});

describe("verifier: program-level checks", () => {
  test("target sha256 mismatch", () => {
    const p = base().build();
    p.target.sha256 = "0".repeat(64);
    expect(verifyError(p)).toMatch(/^m\.xbin: embedded target "xbar64" does not match its sha256 \(recorded 0{64}, computed [0-9a-f]{64}\)$/);
  });
  test("embedded target that does not validate", () => {
    const p = base().build();
    const t = JSON.parse(p.target.json) as { clockHz: number };
    t.clockHz = -5;
    p.target.json = JSON.stringify(t);
    p.target.sha256 = createHashHex(p.target.json);
    expect(verifyError(p)).toMatch(/embedded target is invalid: .*clockHz/);
  });
  test("target name differs from the embedded description", () => {
    const p = base().build();
    p.target.name = "other";
    expect(verifyError(p)).toMatch(/target name "other" differs from the embedded target's name "xbar64"/);
  });
  test("unknown format version", () => {
    const p = base().build();
    p.formatVersion = 99;
    expect(verifyError(p)).toMatch(/format version 99 is not supported/);
  });
  test("more tiles than the target has", () => {
    const p = base().build();
    while (p.tiles.length < 33) p.tiles.push(structuredClone(p.tiles[1]!));
    p.tiles.forEach((t) => (t.sections.step = { code: [], symbols: [] }));
    p.crossbars.length = 0;
    expect(verifyError(p)).toMatch(/program uses 33 tiles, target xbar64 has 32/);
  });
  test("tile memory larger than the target's", () => {
    const p = base().build();
    p.tiles[1]!.memoryWords = 70000;
    expect(verifyError(p)).toMatch(/tile 1: memoryWords 70000 exceeds the target's 65536 words per tile/);
  });
  test("I/O buffer outside global memory", () => {
    const p = base().build();
    p.io.stepOutputs[0]!.addr = 62;
    expect(verifyError(p)).toMatch(/step output "y" \[62, 66\) lies outside global memory \(64 words\)/);
  });
  test("constants outside tile memory", () => {
    const p = base().constant(1, 62, [1, 2, 3]).build();
    expect(verifyError(p)).toMatch(/tile 1: constant block 0 \[62, 65\) lies outside the tile's 64 memory words/);
  });
  test("debug symbols out of step with the code", () => {
    const p = base().build();
    p.tiles[0]!.sections.step.symbols.pop();
    expect(verifyError(p)).toMatch(/tile 0, section step: 2 debug symbols for 3 instructions/);
    const q = base().build();
    q.tiles[0]!.sections.step.symbols[1] = 5;
    expect(verifyError(q)).toMatch(/tile 0, section step, instruction 1: debug symbol 5 is not in the symbol table/);
  });
});

describe("verifier: crossbar images", () => {
  test("crossbar on a tile that does not exist", () => {
    const p = base().build();
    p.crossbars[1]!.tile = 2;
    expect(verifyError(p)).toMatch(/crossbar 1: tile 2 does not exist \(program has 2 tiles\)/);
  });
  test("more crossbars on a tile than the target allows", () => {
    const b = base();
    for (let i = 0; i < 8; i++) b.crossbar({ tile: 1, rows: 1, cols: 1, levels: [0] });
    expect(verifyError(b.build())).toMatch(/tile 1: 9 crossbars, target xbar64 has 8 per tile/);
  });
  test("duplicate crossbar ids", () => {
    const b = base();
    b.crossbar({ tile: 1, rows: 1, cols: 1, levels: [0], id: 0 });
    expect(verifyError(b.build())).toMatch(/crossbar 0: duplicate crossbar id/);
  });
  test("image larger than the target's crossbars", () => {
    const b = base();
    b.crossbar({ tile: 1, rows: 65, cols: 1, levels: new Array(65).fill(0) });
    expect(verifyError(b.build())).toMatch(/crossbar 2: size 65x1 does not fit the target's 64x64 crossbars/);
  });
  test("array lengths", () => {
    const p = base().build();
    p.crossbars[0]!.inRange = new Float32Array(3).fill(1);
    expect(verifyError(p)).toMatch(/crossbar 0: inRange has 3 entries, expected 4/);
    const q = base().build();
    q.crossbars[1]!.weights = { kind: "levels", levels: new Int16Array(15) };
    expect(verifyError(q)).toMatch(/crossbar 1: levels has 15 entries, expected 16/);
  });
  test("levels outside the device range", () => {
    const p = base().build();
    if (p.crossbars[0]!.weights.kind === "levels") p.crossbars[0]!.weights.levels[6] = 16;
    expect(verifyError(p)).toMatch(/crossbar 0: level 16 at row 1, column 2 is outside \[-15, 15\]/);
  });
  test("float weights on a quantized target", () => {
    const p = base().build();
    p.crossbars[0]!.weights = { kind: "float", values: new Float32Array(16) };
    expect(verifyError(p)).toMatch(/crossbar 0: float weights on quantized target xbar64/);
  });
  test("non-positive DAC/ADC ranges", () => {
    const p = base().build();
    p.crossbars[1]!.outRange[2] = 0;
    expect(verifyError(p)).toMatch(/crossbar 1: outRange\[2\] = 0 must be positive and finite/);
  });
});

describe("verifier: instructions", () => {
  test("message format names file, tile, section, instruction and mnemonic", () => {
    expect(verifyError(withInstr(1, "step", { op: "vadd", dst: 70000, a: 0, b: 0, len: 1 }))).toBe(
      "m.xbin: tile 1, section step, instruction 2 (vadd): field dst=70000 does not fit 16 bits",
    );
  });
  test("local range beyond the tile's memory", () => {
    expect(verifyError(withInstr(0, "step", { op: "vadd", dst: 0, a: 0, b: 61, len: 4 }))).toMatch(
      /tile 0, section step, instruction 3 \(vadd\): b range \[61, 65\) exceeds the tile's 64 memory words/,
    );
  });
  test("global range beyond global memory", () => {
    expect(verifyError(withInstr(0, "init", { op: "load", dst: 0, global: 63, len: 2 }))).toMatch(
      /tile 0, section init, instruction 0 \(load\): global range \[63, 65\) exceeds global memory \(64 words\)/,
    );
  });
  test("mvm on a crossbar that does not exist", () => {
    const ins: Instr = { op: "mvm", xbar: 9, rowStart: 0, rows: 1, colStart: 0, cols: 1, src: 0, dst: 0, acc: false };
    expect(verifyError(withInstr(0, "step", ins))).toMatch(/tile 0, section step, instruction 3 \(mvm\): crossbar 9 does not exist/);
  });
  test("mvm on another tile's crossbar", () => {
    const ins: Instr = { op: "mvm", xbar: 0, rowStart: 0, rows: 1, colStart: 0, cols: 1, src: 0, dst: 0, acc: false };
    expect(verifyError(withInstr(1, "step", ins))).toMatch(/tile 1, section step, instruction 2 \(mvm\): crossbar 0 belongs to tile 0/);
  });
  test("mvm row window outside the crossbar", () => {
    const ins: Instr = { op: "mvm", xbar: 0, rowStart: 2, rows: 3, colStart: 0, cols: 1, src: 0, dst: 0, acc: false };
    expect(verifyError(withInstr(0, "final", ins))).toMatch(/tile 0, section final, instruction 0 \(mvm\): rows \[2, 5\) exceed crossbar 0's 4 rows/);
  });
  test("mvm column window outside the crossbar", () => {
    const ins: Instr = { op: "mvm", xbar: 1, rowStart: 0, rows: 4, colStart: 4, cols: 1, src: 0, dst: 0, acc: true };
    expect(verifyError(withInstr(1, "step", ins))).toMatch(/instruction 2 \(mvm\): columns \[4, 5\) exceed crossbar 1's 4 columns/);
  });
  test("mvm source window beyond memory", () => {
    const ins: Instr = { op: "mvm", xbar: 0, rowStart: 0, rows: 4, colStart: 0, cols: 1, src: 62, dst: 0, acc: false };
    expect(verifyError(withInstr(0, "step", ins))).toMatch(/instruction 3 \(mvm\): src range \[62, 66\) exceeds/);
  });
  test("vglu reads 2*len elements", () => {
    // a = 56, len = 4: reads [56, 64) is fine; a = 57 reads [57, 65)
    expect(() => verifyProgram(withInstr(0, "step", { op: "vglu", dst: 0, a: 56, len: 4 }), "m.xbin")).not.toThrow();
    expect(verifyError(withInstr(0, "step", { op: "vglu", dst: 0, a: 57, len: 4 }))).toMatch(/instruction 3 \(vglu\): a range \[57, 65\) exceeds/);
  });
  test("vaffine reads 2*len constants", () => {
    expect(verifyError(withInstr(0, "step", { op: "vaffine", dst: 0, a: 0, c: 58, len: 4 }))).toMatch(/instruction 3 \(vaffine\): c range \[58, 66\) exceeds/);
  });
  test("zero-length vector op", () => {
    expect(verifyError(withInstr(0, "step", { op: "vcopy", dst: 0, a: 1, len: 0 }))).toMatch(/instruction 3 \(vcopy\): len must be at least 1/);
  });
  test("non-finite or negative immediates", () => {
    expect(verifyError(withInstr(0, "step", { op: "vscale", dst: 0, a: 1, len: 1, imm: NaN }))).toMatch(/instruction 3 \(vscale\): immediate NaN is not finite/);
    expect(verifyError(withInstr(0, "step", { op: "vnorm", dst: 0, a: 1, len: 1, imm: -1 }))).toMatch(/instruction 3 \(vnorm\): epsilon -1 is negative/);
  });
  test("vdivsteps outside the final section", () => {
    expect(verifyError(withInstr(1, "step", { op: "vdivsteps", dst: 0, a: 0, len: 1 }))).toMatch(/tile 1, section step, instruction 2 \(vdivsteps\): vdivsteps is only allowed in the final section/);
    expect(() => verifyProgram(withInstr(1, "final", { op: "vdivsteps", dst: 0, a: 0, len: 1 }), "m.xbin")).not.toThrow();
  });
  test("send to a tile that does not exist", () => {
    expect(verifyError(withInstr(0, "step", { op: "send", peer: 5, src: 0, len: 1, tag: 0 }))).toMatch(/instruction 3 \(send\): peer tile 5 does not exist \(program has 2 tiles\)/);
  });
  test("send to its own tile", () => {
    expect(verifyError(withInstr(1, "step", { op: "send", peer: 1, src: 0, len: 1, tag: 0 }))).toMatch(/tile 1, section step, instruction 2 \(send\): sends to its own tile/);
  });
  test("recv from its own tile", () => {
    expect(verifyError(withInstr(0, "init", { op: "recv", peer: 0, dst: 0, len: 1, tag: 0 }))).toMatch(/tile 0, section init, instruction 0 \(recv\): receives from its own tile/);
  });
});

describe("verifier: messages and global memory", () => {
  test("send without a matching recv", () => {
    expect(verifyError(withInstr(0, "step", { op: "send", peer: 1, src: 0, len: 1, tag: 4 }))).toBe(
      "m.xbin: tile 0, section step, instruction 3 (send): no matching recv from tile 0 with tag 4 on tile 1 in section step",
    );
  });
  test("recv without a matching send", () => {
    expect(verifyError(withInstr(1, "step", { op: "recv", peer: 0, dst: 0, len: 1, tag: 9 }))).toMatch(
      /tile 1, section step, instruction 2 \(recv\): no matching send to tile 1 with tag 9 on tile 0 in section step/,
    );
  });
  test("a matching pair must be in the same section", () => {
    const p = base().emit(0, "init", { op: "send", peer: 1, src: 0, len: 2, tag: 1 }).emit(1, "final", { op: "recv", peer: 0, dst: 0, len: 2, tag: 1 }).build();
    const msg = verifyError(p);
    expect(msg).toMatch(/tile 0, section init, instruction 0 \(send\): no matching recv/);
    expect(msg).toMatch(/tile 1, section final, instruction 0 \(recv\): no matching send/);
  });
  test("length mismatch between send and recv", () => {
    const p = base().build();
    const r = p.tiles[1]!.sections.step.code[0]!;
    if (r.op === "recv") r.len = 3;
    expect(verifyError(p)).toMatch(/tile 1, section step, instruction 0 \(recv\): receives 3 words but the matching send \(tile 0, instruction 2\) sends 4/);
  });
  test("duplicate tag between the same tiles in one section", () => {
    const p = base()
      .emit(0, "step", { op: "send", peer: 1, src: 0, len: 4, tag: 3 })
      .emit(1, "step", { op: "recv", peer: 0, dst: 8, len: 4, tag: 3 })
      .build();
    const msg = verifyError(p);
    expect(msg).toMatch(/tile 0, section step, instruction 3 \(send\): duplicate send to tile 1 with tag 3 \(first at instruction 2\)/);
    expect(msg).toMatch(/tile 1, section step, instruction 2 \(recv\): duplicate recv from tile 0 with tag 3 \(first at instruction 0\)/);
  });
  test("two tiles storing to overlapping global words in one section race", () => {
    expect(verifyError(withInstr(0, "step", { op: "store", global: 10, src: 0, len: 4 }))).toMatch(
      /tile 1, section step, instruction 1 \(store\): global words \[8, 12\) are also stored by tile 0 \(instruction 3\) in section step/,
    );
  });
  test("a tile loading what another tile stores in the same section races", () => {
    expect(verifyError(withInstr(0, "step", { op: "load", dst: 20, global: 11, len: 1 }))).toMatch(
      /tile 0, section step, instruction 3 \(load\): global words \[11, 12\) are also stored by tile 1 \(instruction 1\)/,
    );
    // the same load in the next section is ordered by the section barrier
    expect(() => verifyProgram(withInstr(0, "final", { op: "load", dst: 20, global: 11, len: 1 }), "m.xbin")).not.toThrow();
  });
});

function createHashHex(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}
