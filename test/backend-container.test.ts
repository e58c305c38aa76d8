import { describe, expect, test } from "@jest/globals";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as flatbuffers from "flatbuffers";
import { crc32, crc32Bytewise, crc32Slice8 } from "../src/backend/checksum.js";
import { decodeProgram, encodeProgram, readProgramFile, TRAILER_BYTES, typedVector, writeProgramFile } from "../src/backend/container.js";
import * as fb from "../src/backend/generated/program_generated.js";
import type { Instr } from "../src/backend/isa.js";
import { BASE_FORMAT_VERSION, FORMAT_VERSION, type Program } from "../src/backend/program.js";
import { UserError } from "../src/common/errors.js";

/** A small program touching every part of the format: all opcodes, both weight kinds, 2 tiles. */
function sampleProgram(): Program {
  const step: Instr[] = [
    { op: "load", dst: 0, global: 0, len: 4 },
    { op: "mvm", xbar: 7, rowStart: 0, rows: 4, colStart: 1, cols: 2, src: 0, dst: 8, acc: false },
    { op: "mvm", xbar: 7, rowStart: 0, rows: 4, colStart: 1, cols: 2, src: 0, dst: 8, acc: true },
    { op: "vadd", dst: 10, a: 8, b: 20, len: 2 },
    { op: "vsub", dst: 10, a: 8, b: 20, len: 2 },
    { op: "vmul", dst: 10, a: 8, b: 20, len: 2 },
    { op: "vcopy", dst: 12, a: 10, len: 2 },
    { op: "vrelu", dst: 12, a: 10, len: 2 },
    { op: "vgelu", dst: 12, a: 10, len: 2 },
    { op: "vsigmoid", dst: 12, a: 10, len: 2 },
    { op: "vtanh", dst: 12, a: 10, len: 2 },
    { op: "vscale", dst: 12, a: 10, len: 2, imm: Math.fround(0.1) },
    { op: "vaffine", dst: 12, a: 10, c: 20, len: 2 },
    { op: "vglu", dst: 12, a: 8, len: 1 },
    { op: "vnorm", dst: 12, a: 10, len: 2, imm: Math.fround(1e-5) },
    { op: "send", peer: 1, src: 12, len: 2, tag: 0 },
    { op: "store", global: 4, src: 12, len: 2 },
  ];
  const empty = { code: [], symbols: [] };
  return {
    // Programs without a target plugin are format 1, like the committed fixture.
    formatVersion: BASE_FORMAT_VERSION,
    compilerVersion: "0.1.0-test",
    modelName: "sample ünïcode",
    target: { name: "toy", sha256: "ab".repeat(32), json: '{"name":"toy"}' },
    io: {
      inputs: [{ name: "u", size: 4, addr: 0 }],
      stepOutputs: [{ name: "y", size: 2, addr: 4 }],
      finalOutputs: [{ name: "m", size: 2, addr: 6 }],
      globalWords: 8,
    },
    crossbars: [
      {
        id: 7,
        tile: 0,
        rows: 4,
        cols: 3,
        weights: { kind: "levels", levels: Int16Array.from([1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12]) },
        inRange: Float32Array.from([1, 2, 3, 4]),
        colScale: Float32Array.from([0.5, 0.25, 0.125]),
        outRange: Float32Array.from([8, 9, 10]),
      },
      {
        id: 3,
        tile: 1,
        rows: 2,
        cols: 2,
        weights: { kind: "float", values: Float32Array.from([0.5, -1.5, 2.25, 1e-3]) },
        inRange: Float32Array.from([1, 1]),
        colScale: Float32Array.from([1, 1]),
        outRange: Float32Array.from([1, 1]),
      },
    ],
    tiles: [
      {
        memoryWords: 24,
        constants: [{ addr: 20, data: Float32Array.from([1, 2, 3, 4]) }],
        sections: { init: empty, step: { code: step, symbols: step.map((_, i) => i % 3) }, final: empty },
      },
      {
        memoryWords: 6,
        constants: [],
        sections: {
          init: empty,
          step: { code: [{ op: "recv", peer: 0, dst: 0, len: 2, tag: 0 }], symbols: [1] },
          final: {
            code: [
              { op: "vdivsteps", dst: 2, a: 0, len: 2 },
              { op: "store", global: 6, src: 2, len: 2 },
            ],
            symbols: [2, 2],
          },
        },
      },
    ],
    symbols: ["layers.0 (z: matmul)", "input u", "output m"],
  };
}

/** sampleProgram with the layout record a compiler writes for reports: pieces on every crossbar and the plan's bounds. */
function sampleWithLayout(): Program {
  const p = sampleProgram();
  p.crossbars[0]!.pieces = [
    { op: "z", section: "step", layer: "layers.0", symbol: 0, rowStart: 0, colStart: 1, inRows: [3, 0, 1], outCols: [5, 4] },
    { op: "w", section: "final", symbol: 2, rowStart: 3, colStart: 0, inRows: [7], outCols: [0] },
  ];
  p.crossbars[1]!.pieces = [];
  p.bounds = {
    lowerBound: 2,
    perMatrix: [
      { op: "z", layer: "layers.0", nonzeroRows: 3, nonzeroCols: 2, nonzeros: 5, lowerBound: 1, used: 1 },
      { op: "w", nonzeroRows: 1, nonzeroCols: 1, nonzeros: 1, lowerBound: 1, used: 1 },
    ],
  };
  return p;
}

/** Payload + a freshly computed trailer, for files that are intact but wrong inside. */
function seal(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + TRAILER_BYTES);
  out.set(payload);
  const v = new DataView(out.buffer);
  v.setUint32(payload.length, payload.length, true);
  v.setUint32(payload.length + 4, crc32(payload), true);
  out.set(new TextEncoder().encode("IMSX"), payload.length + 8);
  return out;
}

const payloadOf = (bytes: Uint8Array): Uint8Array => bytes.slice(0, bytes.length - TRAILER_BYTES);

/** A minimal hand-built payload: one crossbar and one tile whose step section is given raw. */
function rawPayload(opts: { code?: number[]; symbols?: number[]; levels?: number[]; rows?: number; cols?: number }): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const str = (s: string) => b.createString(s);
  const target = fb.TargetInfo.createTargetInfo(b, str("t"), str("0"), str("{}"));
  const io = fb.IoMap.createIoMap(b, fb.IoMap.createInputsVector(b, []), fb.IoMap.createStepOutputsVector(b, []), fb.IoMap.createFinalOutputsVector(b, []), 0);
  const rows = opts.rows ?? 1;
  const cols = opts.cols ?? 1;
  const xb = fb.Crossbar.createCrossbar(
    b,
    0,
    0,
    rows,
    cols,
    fb.Crossbar.createLevelsVector(b, opts.levels ?? new Array(rows * cols).fill(0)),
    0,
    fb.Crossbar.createInRangeVector(b, new Array(rows).fill(1)),
    fb.Crossbar.createColScaleVector(b, new Array(cols).fill(1)),
    fb.Crossbar.createOutRangeVector(b, new Array(cols).fill(1)),
    0,
  );
  const section = (code: number[], symbols: number[], delays?: number[]) =>
    fb.Section.createSection(b, fb.Section.createCodeVector(b, code), fb.Section.createSymbolsVector(b, symbols), delays ? fb.Section.createDelaysVector(b, delays) : 0);
  const init = section([], []);
  const step = section(opts.code ?? [], opts.symbols ?? []);
  const fin = section([], []);
  fb.Tile.startTile(b);
  fb.Tile.addMemoryWords(b, 16);
  fb.Tile.addInitSection(b, init);
  fb.Tile.addStepSection(b, step);
  fb.Tile.addFinalSection(b, fin);
  const tile = fb.Tile.endTile(b);
  const symbols = fb.Program.createSymbolsVector(b, [fb.DebugSymbol.createDebugSymbol(b, str("s"))]);
  const crossbars = fb.Program.createCrossbarsVector(b, [xb]);
  const tiles = fb.Program.createTilesVector(b, [tile]);
  const cv = str("x");
  const mn = str("m");
  fb.Program.startProgram(b);
  fb.Program.addFormatVersion(b, 1);
  fb.Program.addCompilerVersion(b, cv);
  fb.Program.addModelName(b, mn);
  fb.Program.addTarget(b, target);
  fb.Program.addIo(b, io);
  fb.Program.addCrossbars(b, crossbars);
  fb.Program.addTiles(b, tiles);
  fb.Program.addSymbols(b, symbols);
  fb.Program.finishProgramBuffer(b, fb.Program.endProgram(b));
  return b.asUint8Array().slice();
}

function formatError(f: () => unknown): UserError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    const u = e as UserError;
    expect(u.kind).toBe("format");
    expect(u.diagnostics[0]!.location?.file).toBe("model.xbin");
    return u;
  }
  throw new Error("expected a format error");
}

const decode = (bytes: Uint8Array) => () => decodeProgram(bytes, "model.xbin");

describe("CRC-32", () => {
  test("matches the standard check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  test("native, slice-by-8 and byte-at-a-time CRCs agree on every length and alignment", () => {
    const data = new Uint8Array(1 << 12);
    let s = 12345;
    for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
    for (const [start, len] of [[0, 0], [0, 1], [1, 7], [3, 8], [5, 9], [0, 64], [7, 1000], [0, data.length]] as const) {
      const v = data.subarray(start, start + len);
      const want = crc32Bytewise(v);
      expect(crc32Slice8(v)).toBe(want);
      expect(crc32(v)).toBe(want);
    }
  });
});

describe("scalar vectors written as one byte copy", () => {
  /** The same vectors once through the generated per-element code, once through typedVector. */
  const build = (fast: boolean): Uint8Array => {
    const b = new flatbuffers.Builder(16); // small: the copies must survive builder growth
    const levels = Int16Array.from({ length: 1001 }, (_, i) => ((i * 7919) % 65536) - 32768);
    const values = Float32Array.from({ length: 333 }, (_, i) => Math.sin(i) * 1e3);
    const words = Uint32Array.from({ length: 77 }, (_, i) => (i * 2654435761) >>> 0);
    const syms = Int32Array.from({ length: 5 }, (_, i) => -i);
    b.createString("x"); // an odd start, so alignment padding is exercised
    const offs = fast
      ? [typedVector(b, levels, fb.Crossbar.createLevelsVector), typedVector(b, values.subarray(1), fb.Crossbar.createValuesVector), typedVector(b, words, fb.Section.createCodeVector), typedVector(b, syms, fb.Section.createSymbolsVector)]
      : [fb.Crossbar.createLevelsVector(b, levels), fb.Crossbar.createValuesVector(b, values.subarray(1)), fb.Section.createCodeVector(b, words), fb.Section.createSymbolsVector(b, syms)];
    b.startVector(4, offs.length, 4);
    for (const o of offs) b.addOffset(o);
    b.finish(b.endVector());
    return b.asUint8Array();
  };

  test("give the generated code's bytes", () => {
    expect(Buffer.from(build(true)).equals(Buffer.from(build(false)))).toBe(true);
  });
});

describe("xbin container", () => {
  test("encode -> decode gives the same program", () => {
    const p = sampleProgram();
    const bytes = encodeProgram(p);
    expect(decodeProgram(bytes, "model.xbin")).toEqual(p);
  });

  test("the payload is a FlatBuffer with identifier IMSA and the trailer holds its length and CRC", () => {
    const bytes = encodeProgram(sampleProgram());
    expect(new TextDecoder().decode(bytes.subarray(4, 8))).toBe("IMSA");
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const n = bytes.length - TRAILER_BYTES;
    expect(view.getUint32(n, true)).toBe(n);
    expect(view.getUint32(n + 4, true)).toBe(crc32(bytes.subarray(0, n)));
    expect(new TextDecoder().decode(bytes.subarray(n + 8))).toBe("IMSX");
    // Plain flatc-generated readers ignore the trailer.
    const root = fb.Program.getRootAsProgram(new flatbuffers.ByteBuffer(bytes));
    expect(root.modelName()).toBe("sample ünïcode");
  });

  test("decodes from an unaligned view of a larger buffer", () => {
    const bytes = encodeProgram(sampleProgram());
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    expect(decodeProgram(big.subarray(3), "model.xbin")).toEqual(sampleProgram());
    // A Node Buffer at an odd offset (Buffer#slice makes views, not copies).
    expect(decodeProgram(Buffer.from(big.buffer, 3, bytes.length), "model.xbin")).toEqual(sampleProgram());
  });

  test("file round trip through writeProgramFile / readProgramFile", () => {
    const dir = mkdtempSync(join(tmpdir(), "imssa-xbin-"));
    try {
      const file = join(dir, "m.xbin");
      writeProgramFile(file, sampleProgram());
      expect(readProgramFile(file)).toEqual(sampleProgram());
      expect(() => readProgramFile(join(dir, "missing.xbin"))).toThrow(/cannot read file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a committed format-1 file still decodes (format stability)", () => {
    const fixture = new URL("./fixtures/xbin/sample-v1.xbin", import.meta.url);
    if (process.env["IMSSA_WRITE_FIXTURES"] === "1") writeFileSync(fixture, encodeProgram(sampleProgram()));
    expect(existsSync(fixture)).toBe(true);
    expect(decodeProgram(new Uint8Array(readFileSync(fixture)), "model.xbin")).toEqual(sampleProgram());
  });

  test("the crossbar layout and plan bounds round-trip; files without them decode without them", () => {
    const p = sampleWithLayout();
    const back = decodeProgram(encodeProgram(p), "model.xbin");
    expect(back).toEqual(p);
    expect(back.crossbars[0]!.pieces![1]).not.toHaveProperty("layer");
    expect(back.bounds!.perMatrix[1]).not.toHaveProperty("layer");
    const old = decodeProgram(new Uint8Array(readFileSync(new URL("./fixtures/xbin/sample-v1.xbin", import.meta.url))), "model.xbin");
    expect(old).not.toHaveProperty("bounds");
    for (const x of old.crossbars) expect(x).not.toHaveProperty("pieces");
    // Plain flatc-generated readers see the new fields too.
    const root = fb.Program.getRootAsProgram(new flatbuffers.ByteBuffer(encodeProgram(p)));
    expect(root.bounds()!.lowerBound()).toBe(2);
    expect(root.crossbars(0)!.pieces(0)!.layer()).toBe("layers.0");
    expect(Array.from(root.crossbars(0)!.pieces(0)!.inRowsArray()!)).toEqual([3, 0, 1]);
  });

  test("the encoder refuses pieces without bounds and bounds without pieces", () => {
    const noBounds = sampleWithLayout();
    delete noBounds.bounds;
    expect(() => encodeProgram(noBounds)).toThrow(/2 of 2 crossbars have pieces but plan bounds are absent/);
    const noPieces = sampleWithLayout();
    delete noPieces.crossbars[1]!.pieces;
    expect(() => encodeProgram(noPieces)).toThrow(/1 of 2 crossbars have pieces but plan bounds are present/);
  });

  test("inconsistent layouts are format errors", () => {
    const outside = sampleWithLayout();
    outside.crossbars[0]!.pieces![0]!.rowStart = 2; // 2 + 3 rows > 4
    expect(formatError(decode(encodeProgram(outside))).message).toMatch(/crossbar 7, piece 0: rows 2\+3, columns 1\+2 do not fit the 4x3 crossbar/);
    const badSymbol = sampleWithLayout();
    badSymbol.crossbars[0]!.pieces![1]!.symbol = 3;
    expect(formatError(decode(encodeProgram(badSymbol))).message).toMatch(/crossbar 7, piece 1: symbol index 3 is outside the symbol table \(3 entries\)/);
  });

  test("tiny and truncated files", () => {
    const bytes = encodeProgram(sampleProgram());
    expect(formatError(decode(bytes.subarray(0, 5))).message).toMatch(/too short to be an imssa program \(5 bytes\)/);
    expect(formatError(decode(bytes.subarray(0, 12))).message).toMatch(/truncated/);
    expect(formatError(decode(bytes.subarray(0, bytes.length >> 1))).message).toMatch(/truncated/);
    expect(formatError(decode(bytes.subarray(0, bytes.length - 1))).message).toMatch(/truncated/);
    expect(formatError(decode(bytes.subarray(0, bytes.length - TRAILER_BYTES))).message).toMatch(/truncated/);
  });

  test("a corrupted byte is a checksum mismatch", () => {
    const bytes = encodeProgram(sampleProgram());
    for (const at of [0, 9, bytes.length >> 1, bytes.length - TRAILER_BYTES - 1]) {
      const bad = bytes.slice();
      bad[at]! ^= 0x10;
      expect(formatError(decode(bad)).message).toMatch(/checksum mismatch: the file is corrupted/);
    }
    const badCrc = bytes.slice();
    badCrc[bytes.length - 6]! ^= 1;
    expect(formatError(decode(badCrc)).message).toMatch(/checksum mismatch/);
  });

  test("wrong file identifier", () => {
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...new Array(40).fill(0)]);
    expect(formatError(decode(png)).message).toMatch(/not an imssa program \(file identifier "\\x0d\\x0a\\x1a\\x0a", expected "IMSA"\)/);
    const json = new TextEncoder().encode('{"irVersion": 1, "name": "m"}');
    expect(formatError(decode(json)).message).toMatch(/not an imssa program/);
  });

  test("newer format version", () => {
    const bytes = encodeProgram({ ...sampleProgram(), formatVersion: FORMAT_VERSION + 1 });
    expect(formatError(decode(bytes)).message).toBe(
      `model.xbin: format version ${FORMAT_VERSION + 1} is newer than this imssa supports (${FORMAT_VERSION}); upgrade imssa`,
    );
    expect(formatError(decode(encodeProgram({ ...sampleProgram(), formatVersion: 0 }))).message).toMatch(/format version 0 is not valid/);
  });

  test("structurally invalid FlatBuffer with a valid checksum", () => {
    const payload = payloadOf(encodeProgram(sampleProgram()));
    const badRoot = payload.slice();
    new DataView(badRoot.buffer).setUint32(0, payload.length + 100, true);
    expect(formatError(decode(seal(badRoot))).message).toMatch(/structurally invalid program \(not a valid FlatBuffer\): a 4-byte read at offset \d+ is outside/);
    // A root table whose vtable offset points outside the buffer.
    const badVtable = payload.slice();
    const rootPos = new DataView(badVtable.buffer).getUint32(0, true);
    new DataView(badVtable.buffer).setInt32(rootPos, -1_000_000, true);
    expect(formatError(decode(seal(badVtable))).message).toMatch(/structurally invalid program \(not a valid FlatBuffer\): a 2-byte read/);
  });

  test("the hand-built raw payload decodes when consistent", () => {
    const ok = rawPayload({ code: [0x18 | (2 << 16), 0, 0, 0], symbols: [0] });
    const p = decodeProgram(seal(ok), "model.xbin");
    expect(p.tiles[0]!.sections.step.code).toEqual([{ op: "vcopy", dst: 0, a: 0, len: 2 }]);
  });

  test("inconsistent lengths", () => {
    expect(formatError(decode(seal(rawPayload({ code: [0x18, 0, 0, 0, 0], symbols: [0] })))).message).toMatch(
      /tile 0, section step: 5 instruction words is not a multiple of 4/,
    );
    expect(formatError(decode(seal(rawPayload({ code: [0x18, 0, 0, 0], symbols: [] })))).message).toMatch(
      /tile 0, section step: 1 instructions but 0 symbol indices/,
    );
    expect(formatError(decode(seal(rawPayload({ code: [0x18, 0, 0, 0], symbols: [5] })))).message).toMatch(/symbol index 5 is outside the symbol table/);
    expect(formatError(decode(seal(rawPayload({ rows: 2, cols: 3, levels: [1, 2, 3, 4, 5] })))).message).toMatch(
      /crossbar #0 \(id 0\) has 5 weights, expected rows\*cols = 2\*3 = 6/,
    );
  });

  test("undecodable instruction words name tile, section and index", () => {
    const code = [0x18, 0, 0, 0, 0xee, 0, 0, 0];
    expect(formatError(decode(seal(rawPayload({ code, symbols: [0, 0] })))).message).toMatch(
      /tile 0, section step, instruction 1: unknown opcode 0xee/,
    );
  });
});
