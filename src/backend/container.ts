// The .xbin container: a FlatBuffers payload (schema ir/program.fbs, file identifier
// "IMSA") followed by a fixed 12-byte trailer:
//   u32 LE payload length | u32 LE CRC-32 of the payload | "IMSX"
// The trailer sits outside the checksummed bytes, and flatbuffers readers ignore bytes after
// the payload, so other languages can read the file with plain flatc-generated code.
// Decoding checks, in order: identifier, trailer (truncation), checksum, format version,
// structure (every read bounds-checked), lengths, and that each instruction word decodes.
// It does not check what instructions mean; that is the verifier's job (src/interp).

import * as flatbuffers from "flatbuffers";
import { assert, fail, UserError } from "../common/errors.js";
import { readBytes, writeFileAtomic } from "../common/files.js";
import { checkLimit } from "../common/limits.js";
import { crc32 } from "./checksum.js";
import * as fb from "./generated/program_generated.js";
import { decodeInstr, encodeInstr, fieldRangeError, WORDS_PER_INSTRUCTION, type Instr } from "./isa.js";
import {
  FILE_IDENTIFIER,
  FORMAT_VERSION,
  PLUGIN_FORMAT_VERSION,
  SECTION_NAMES,
  type CrossbarImage,
  type CrossbarPiece,
  type IoBuffer,
  type PlanBounds,
  type PluginIdentity,
  type Program,
  type Section,
  type SectionName,
  type TileProgram,
} from "./program.js";
import type { MatrixBound } from "../ir/plan.js";

export const TRAILER_BYTES = 12;
export const TRAILER_MAGIC = "IMSX";
/** A flatbuffer needs at least its root offset and the file identifier. */
const MIN_PAYLOAD_BYTES = 8;

// ---------------------------------------------------------------------------------------
// Encoding

/** FlatBuffers stores scalars little-endian; so do typed arrays on a little-endian host. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type ScalarArray = Uint8Array | Int16Array | Int32Array | Uint32Array | Float32Array;

/**
 * A scalar vector written as one byte copy instead of the generated per-element loop (one
 * `prep` and one `add` call per element: most of the encoding time of a big program, whose
 * weight levels alone are millions of elements). Writes exactly the generated code's bytes:
 * the generated `startVector(size, n, size)` reserves with `prep(4, n * size)` (which for
 * size 2 or 4 already gives the elements their alignment), and `createByteVector` of the
 * array's bytes reserves the same way and copies them in one `set` (FlatBuffers scalars are
 * little-endian, like typed arrays on a little-endian host). Its length word counts bytes, so
 * it is overwritten with the element count. A big-endian host keeps the generated loop.
 * test/backend-container.test.ts compares the two byte for byte.
 */
export function typedVector<A extends ScalarArray>(b: flatbuffers.Builder, data: A, generated: (b: flatbuffers.Builder, data: A) => flatbuffers.Offset): flatbuffers.Offset {
  if (!LITTLE_ENDIAN_HOST) return generated(b, data);
  const offset = b.createByteVector(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const buf = b.dataBuffer();
  buf.writeInt32(buf.capacity() - offset, data.length);
  return offset;
}

/**
 * Bytes the payload will need, to size the builder once: it grows by doubling and copying
 * (at ten million weights the payload is ~400 MB). The bulk (weights, instruction words,
 * constants) is counted exactly, the small tables roughly; an underestimate only costs a
 * growth step, and the initial size does not change the bytes (the builder writes back to
 * front and aligns relative to the end).
 */
function payloadBytesEstimate(p: Program): number {
  let n = 1 << 16;
  for (const x of p.crossbars) {
    n += 256 + (x.weights.kind === "levels" ? 2 * x.weights.levels.length : 4 * x.weights.values.length);
    n += 4 * (x.inRange.length + x.colScale.length + x.outRange.length);
    for (const pc of x.pieces ?? []) n += 96 + 4 * (pc.inRows.length + pc.outCols.length);
  }
  for (const t of p.tiles) {
    n += 256;
    for (const c of t.constants) n += 32 + 4 * c.data.length;
    for (const name of SECTION_NAMES) n += 32 + (4 * WORDS_PER_INSTRUCTION + 4) * t.sections[name].code.length;
  }
  for (const s of p.symbols) n += 24 + 3 * s.length;
  n += 3 * p.target.json.length;
  // The builder cannot grow past 2 GiB; leave larger programs to its own growth and error.
  return Math.min(n, 1 << 30);
}

function encodeSection(b: flatbuffers.Builder, s: Section, where: string): flatbuffers.Offset {
  assert(s.symbols.length === s.code.length, `${where}: ${s.code.length} instructions but ${s.symbols.length} symbols`);
  const words = new Uint32Array(s.code.length * WORDS_PER_INSTRUCTION);
  s.code.forEach((ins, i) => {
    const err = fieldRangeError(ins);
    assert(err === null, `${where}[${i}]: ${err}`);
    encodeInstr(ins, words, i * WORDS_PER_INSTRUCTION);
  });
  const code = typedVector(b, words, fb.Section.createCodeVector);
  const symbols = typedVector(b, Int32Array.from(s.symbols), fb.Section.createSymbolsVector);
  // Stored only when some delay is nonzero: programs without delays stay byte-identical to older ones.
  const delays = s.delays?.some((d) => d !== 0) ? typedVector(b, Uint8Array.from(s.delays), fb.Section.createDelaysVector) : 0;
  return fb.Section.createSection(b, code, symbols, delays);
}

function encodeTile(b: flatbuffers.Builder, t: TileProgram, index: number): flatbuffers.Offset {
  const constants = fb.Tile.createConstantsVector(
    b,
    t.constants.map((c) => fb.ConstSegment.createConstSegment(b, c.addr, typedVector(b, c.data, fb.ConstSegment.createDataVector))),
  );
  const [init, step, fin] = SECTION_NAMES.map((name) => encodeSection(b, t.sections[name], `tile ${index} ${name}`));
  fb.Tile.startTile(b);
  fb.Tile.addMemoryWords(b, t.memoryWords);
  fb.Tile.addConstants(b, constants);
  fb.Tile.addInitSection(b, init!);
  fb.Tile.addStepSection(b, step!);
  fb.Tile.addFinalSection(b, fin!);
  return fb.Tile.endTile(b);
}

/** Layer and op names repeat across pieces and matrices: each is stored once. */
class StringPool {
  private readonly offsets = new Map<string, flatbuffers.Offset>();
  constructor(private readonly b: flatbuffers.Builder) {}
  get(s: string): flatbuffers.Offset {
    let o = this.offsets.get(s);
    if (o === undefined) this.offsets.set(s, (o = this.b.createString(s)));
    return o;
  }
}

const SECTION_CODES: Record<CrossbarPiece["section"], fb.MatmulSection> = { step: fb.MatmulSection.Step, final: fb.MatmulSection.Final };

function encodePiece(b: flatbuffers.Builder, pool: StringPool, p: CrossbarPiece): flatbuffers.Offset {
  const op = pool.get(p.op);
  const layer = p.layer === undefined ? 0 : pool.get(p.layer);
  const inRows = typedVector(b, Uint32Array.from(p.inRows), fb.CrossbarPiece.createInRowsVector);
  const outCols = typedVector(b, Uint32Array.from(p.outCols), fb.CrossbarPiece.createOutColsVector);
  return fb.CrossbarPiece.createCrossbarPiece(b, op, SECTION_CODES[p.section], layer, p.symbol, p.rowStart, p.colStart, inRows, outCols);
}

function encodeCrossbar(b: flatbuffers.Builder, pool: StringPool, x: CrossbarImage): flatbuffers.Offset {
  const levels = x.weights.kind === "levels" ? typedVector(b, x.weights.levels, fb.Crossbar.createLevelsVector) : 0;
  const values = x.weights.kind === "float" ? typedVector(b, x.weights.values, fb.Crossbar.createValuesVector) : 0;
  const inRange = typedVector(b, x.inRange, fb.Crossbar.createInRangeVector);
  const colScale = typedVector(b, x.colScale, fb.Crossbar.createColScaleVector);
  const outRange = typedVector(b, x.outRange, fb.Crossbar.createOutRangeVector);
  const pieces = x.pieces === undefined ? 0 : fb.Crossbar.createPiecesVector(b, x.pieces.map((p) => encodePiece(b, pool, p)));
  return fb.Crossbar.createCrossbar(b, x.id, x.tile, x.rows, x.cols, levels, values, inRange, colScale, outRange, pieces);
}

function encodeBounds(b: flatbuffers.Builder, pool: StringPool, bounds: PlanBounds): flatbuffers.Offset {
  const perMatrix = bounds.perMatrix.map((m) =>
    fb.MatrixBound.createMatrixBound(b, pool.get(m.op), m.layer === undefined ? 0 : pool.get(m.layer), m.nonzeroRows, m.nonzeroCols, m.nonzeros, m.lowerBound, m.used),
  );
  return fb.PlanBounds.createPlanBounds(b, bounds.lowerBound, fb.PlanBounds.createPerMatrixVector(b, perMatrix));
}

function encodeIoList(b: flatbuffers.Builder, list: IoBuffer[]): flatbuffers.Offset[] {
  return list.map((io) => fb.IoBuffer.createIoBuffer(b, b.createString(io.name), io.size, io.addr));
}

function encodePlugin(b: flatbuffers.Builder, pl: PluginIdentity): flatbuffers.Offset {
  const instructions = fb.PluginInfo.createInstructionsVector(
    b,
    pl.instructions.map((i) => fb.PluginInstruction.createPluginInstruction(b, i.id, b.createString(i.mnemonic))),
  );
  return fb.PluginInfo.createPluginInfo(b, b.createString(pl.name), b.createString(pl.version), b.createString(pl.sha256), b.createString(pl.file), instructions);
}

/** The FlatBuffers payload alone (no trailer). Writes `p.formatVersion` as given. */
function encodePayload(p: Program): Uint8Array {
  const b = new flatbuffers.Builder(payloadBytesEstimate(p));
  const compilerVersion = b.createString(p.compilerVersion);
  const modelName = b.createString(p.modelName);
  const target = fb.TargetInfo.createTargetInfo(b, b.createString(p.target.name), b.createString(p.target.sha256), b.createString(p.target.json));
  const io = fb.IoMap.createIoMap(
    b,
    fb.IoMap.createInputsVector(b, encodeIoList(b, p.io.inputs)),
    fb.IoMap.createStepOutputsVector(b, encodeIoList(b, p.io.stepOutputs)),
    fb.IoMap.createFinalOutputsVector(b, encodeIoList(b, p.io.finalOutputs)),
    p.io.globalWords,
  );
  // Pieces and bounds come together: a reader may rely on pieces whenever bounds exist.
  const withPieces = p.crossbars.filter((x) => x.pieces !== undefined).length;
  assert(withPieces === (p.bounds === undefined ? 0 : p.crossbars.length), `${withPieces} of ${p.crossbars.length} crossbars have pieces but plan bounds are ${p.bounds ? "present" : "absent"}`);
  const pool = new StringPool(b);
  const crossbars = fb.Program.createCrossbarsVector(b, p.crossbars.map((x) => encodeCrossbar(b, pool, x)));
  const bounds = p.bounds === undefined ? 0 : encodeBounds(b, pool, p.bounds);
  const tiles = fb.Program.createTilesVector(b, p.tiles.map((t, i) => encodeTile(b, t, i)));
  const symbols = fb.Program.createSymbolsVector(b, p.symbols.map((s) => fb.DebugSymbol.createDebugSymbol(b, b.createString(s))));
  assert(p.plugin === undefined || p.formatVersion >= PLUGIN_FORMAT_VERSION, `a program with a plugin must be format ${PLUGIN_FORMAT_VERSION} or newer, got ${p.formatVersion}`);
  const plugin = p.plugin === undefined ? 0 : encodePlugin(b, p.plugin);
  fb.Program.startProgram(b);
  fb.Program.addFormatVersion(b, p.formatVersion);
  fb.Program.addCompilerVersion(b, compilerVersion);
  fb.Program.addModelName(b, modelName);
  fb.Program.addTarget(b, target);
  fb.Program.addIo(b, io);
  fb.Program.addCrossbars(b, crossbars);
  fb.Program.addTiles(b, tiles);
  fb.Program.addSymbols(b, symbols);
  if (bounds !== 0) fb.Program.addBounds(b, bounds);
  if (plugin !== 0) fb.Program.addPlugin(b, plugin);
  // Unrolled programs only (src/passes/unroll.ts): k = 1 stays absent, byte-identical to before.
  if (p.unroll !== undefined && p.unroll !== 1) fb.Program.addUnroll(b, p.unroll);
  fb.Program.finishProgramBuffer(b, fb.Program.endProgram(b));
  return b.asUint8Array();
}

/**
 * The complete .xbin bytes: payload + trailer. The builder writes back to front, so its
 * buffer usually has unused room before the payload (it was sized from an estimate): the
 * payload then moves toward the front within that buffer, to an 8-byte aligned start (typed
 * views on the result stay aligned, as on a fresh buffer), and the trailer goes after it,
 * instead of copying everything into a second buffer (hundreds of MB for a large program).
 * FlatBuffers offsets are relative, so moving the payload keeps its bytes valid; the bytes
 * returned are the same either way.
 */
export function encodeProgram(p: Program): Uint8Array {
  const payload = encodePayload(p);
  const n = payload.length;
  const start = Math.floor((payload.byteOffset - TRAILER_BYTES) / 8) * 8;
  let out: Uint8Array;
  if (start >= 0) {
    // From the new start to the payload's end: the payload moves 12 to 19 bytes.
    const span = new Uint8Array(payload.buffer, start, payload.byteOffset - start + n);
    span.copyWithin(0, payload.byteOffset - start);
    out = span.subarray(0, n + TRAILER_BYTES);
  } else {
    out = new Uint8Array(n + TRAILER_BYTES);
    out.set(payload, 0);
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(n, n, true);
  view.setUint32(n + 4, crc32(out.subarray(0, n)), true);
  for (let i = 0; i < 4; i++) out[n + 8 + i] = TRAILER_MAGIC.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------
// Decoding

/** Thrown by CheckedByteBuffer; turned into a format error naming the file. */
class OutOfBounds extends Error {}

/**
 * The flatbuffers JS runtime reads whatever an offset points at (undefined past the end
 * becomes 0). Bounds-checking the primitive reads turns every bad offset into an error;
 * the accessors we use go through these (typed-array views throw RangeError on their own).
 */
class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private check(offset: number, size: number): void {
    if (!(Number.isInteger(offset) && offset >= 0 && offset + size <= this.capacity()))
      throw new OutOfBounds(`a ${size}-byte read at offset ${offset} is outside the ${this.capacity()}-byte payload`);
  }
  override readUint8(offset: number): number {
    this.check(offset, 1);
    return super.readUint8(offset);
  }
  override readUint16(offset: number): number {
    this.check(offset, 2);
    return super.readUint16(offset);
  }
  override readInt32(offset: number): number {
    this.check(offset, 4);
    return super.readInt32(offset);
  }
  override __string(offset: number, encoding?: flatbuffers.Encoding): string | Uint8Array {
    const start = offset + this.readInt32(offset);
    const len = this.readInt32(start);
    this.check(start + 4, len);
    return super.__string(offset, encoding);
  }
}

function printable(bytes: Uint8Array): string {
  return Array.from(bytes, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`)).join("");
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, "0")}`;

/** Checks the envelope and returns a private, aligned copy of the payload. */
function openEnvelope(bytes: Uint8Array, file: string): Uint8Array {
  const bad = (message: string): never => fail("format", message, { file });
  if (bytes.length < MIN_PAYLOAD_BYTES) bad(`file is too short to be an imssa program (${bytes.length} bytes)`);
  const ident = bytes.subarray(4, 8);
  if (printable(ident) !== FILE_IDENTIFIER) bad(`not an imssa program (file identifier "${printable(ident)}", expected "${FILE_IDENTIFIER}")`);
  if (bytes.length < MIN_PAYLOAD_BYTES + TRAILER_BYTES) bad(`file is truncated (${bytes.length} bytes, too short for the container trailer)`);
  const end = bytes.length - TRAILER_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (printable(bytes.subarray(bytes.length - 4)) !== TRAILER_MAGIC)
    bad(`file is truncated or has trailing bytes: it does not end with the container trailer "${TRAILER_MAGIC}" (${bytes.length} bytes)`);
  const declared = view.getUint32(end, true);
  if (declared > end) bad(`file is truncated: the trailer declares a ${declared}-byte payload but only ${end} bytes precede it`);
  if (declared < end) bad(`file is damaged: the trailer declares a ${declared}-byte payload but ${end} bytes precede it`);
  const stored = view.getUint32(end + 4, true);
  // A real copy (Buffer#slice would be a view) at offset 0, so typed-array views of its
  // vectors are aligned and the Program shares nothing with the caller's bytes.
  const payload = new Uint8Array(end);
  payload.set(bytes.subarray(0, end));
  const actual = crc32(payload);
  if (stored !== actual) bad(`checksum mismatch: the file is corrupted (stored CRC-32 ${hex32(stored)}, computed ${hex32(actual)})`);
  return payload;
}

function required<T>(v: T | null | undefined, what: string): T {
  if (v === null || v === undefined) throw new OutOfBounds(`required field ${what} is missing`);
  return v;
}

function decodeIo(list: (i: number) => fb.IoBuffer | null, n: number, what: string): IoBuffer[] {
  const out: IoBuffer[] = [];
  for (let i = 0; i < n; i++) {
    const io = required(list(i), `${what}[${i}]`);
    out.push({ name: required(io.name(), `${what}[${i}].name`), size: io.size(), addr: io.addr() });
  }
  return out;
}

function decodeCrossbar(x: fb.Crossbar, index: number, bad: (m: string) => never): CrossbarImage {
  const where = `crossbar #${index} (id ${x.id()})`;
  const rows = x.rows();
  const cols = x.cols();
  const levels = x.levelsArray();
  const values = x.valuesArray();
  if ((levels === null) === (values === null)) bad(`${where} must have exactly one of integer levels and float weights`);
  const weights: CrossbarImage["weights"] = levels !== null ? { kind: "levels", levels: levels.slice() } : { kind: "float", values: values!.slice() };
  const n = weights.kind === "levels" ? weights.levels.length : weights.values.length;
  if (n !== rows * cols) bad(`${where} has ${n} weights, expected rows*cols = ${rows}*${cols} = ${rows * cols}`);
  const vec = (a: Float32Array | null, len: number, name: string): Float32Array => {
    const v = required(a, `${where}.${name}`);
    if (v.length !== len) bad(`${where} ${name} has ${v.length} entries, expected ${len}`);
    return v.slice();
  };
  return {
    id: x.id(),
    tile: x.tile(),
    rows,
    cols,
    weights,
    inRange: vec(x.inRangeArray(), rows, "in_range"),
    colScale: vec(x.colScaleArray(), cols, "col_scale"),
    outRange: vec(x.outRangeArray(), cols, "out_range"),
  };
}

const SECTION_NAMES_BY_CODE: Record<number, CrossbarPiece["section"]> = { [fb.MatmulSection.Step]: "step", [fb.MatmulSection.Final]: "final" };

function decodePieces(x: fb.Crossbar, image: CrossbarImage, symbolCount: number, bad: (m: string) => never): CrossbarPiece[] {
  const pieces: CrossbarPiece[] = [];
  for (let k = 0; k < x.piecesLength(); k++) {
    const where = `crossbar ${image.id}, piece ${k}`;
    const raw = required(x.pieces(k), `crossbars[${image.id}].pieces[${k}]`);
    const section = SECTION_NAMES_BY_CODE[raw.section()] ?? bad(`${where}: unknown matmul section code ${raw.section()}`);
    const inRows = Array.from(raw.inRowsArray() ?? []);
    const outCols = Array.from(raw.outColsArray() ?? []);
    const rowStart = raw.rowStart();
    const colStart = raw.colStart();
    if (rowStart + inRows.length > image.rows || colStart + outCols.length > image.cols)
      bad(`${where}: rows ${rowStart}+${inRows.length}, columns ${colStart}+${outCols.length} do not fit the ${image.rows}x${image.cols} crossbar`);
    if (raw.symbol() >= symbolCount) bad(`${where}: symbol index ${raw.symbol()} is outside the symbol table (${symbolCount} entries)`);
    const layer = raw.layer();
    pieces.push({
      op: required(raw.op(), `${where} op`),
      section,
      ...(layer !== null ? { layer } : {}),
      symbol: raw.symbol(),
      rowStart,
      colStart,
      inRows,
      outCols,
    });
  }
  return pieces;
}

function decodeBounds(raw: fb.PlanBounds): PlanBounds {
  const perMatrix: MatrixBound[] = [];
  for (let i = 0; i < raw.perMatrixLength(); i++) {
    const m = required(raw.perMatrix(i), `bounds.per_matrix[${i}]`);
    const layer = m.layer();
    perMatrix.push({
      op: required(m.op(), `bounds.per_matrix[${i}].op`),
      ...(layer !== null ? { layer } : {}),
      nonzeroRows: m.nonzeroRows(),
      nonzeroCols: m.nonzeroCols(),
      nonzeros: m.nonzeros(),
      lowerBound: m.lowerBound(),
      used: m.used(),
    });
  }
  return { lowerBound: raw.lowerBound(), perMatrix };
}

function decodeSection(s: fb.Section, where: string, symbolCount: number, bad: (m: string) => never, file: string): Section {
  const words = s.codeArray() ?? new Uint32Array(0);
  const symbols = s.symbolsArray() ?? new Int32Array(0);
  if (words.length % WORDS_PER_INSTRUCTION !== 0)
    bad(`${where}: ${words.length} instruction words is not a multiple of ${WORDS_PER_INSTRUCTION}`);
  const count = words.length / WORDS_PER_INSTRUCTION;
  checkLimit("maxInstructions", count, `${where}: the number of instructions`, { file });
  if (symbols.length !== count) bad(`${where}: ${count} instructions but ${symbols.length} symbol indices`);
  const code: Instr[] = [];
  for (let i = 0; i < count; i++) {
    const r = decodeInstr(words, i * WORDS_PER_INSTRUCTION);
    if (!r.ok) bad(`${where}, instruction ${i}: ${r.error}`);
    else code.push(r.instr);
    const sym = symbols[i]!;
    if (sym < 0 || sym >= symbolCount) bad(`${where}, instruction ${i}: symbol index ${sym} is outside the symbol table (${symbolCount} entries)`);
  }
  const delays = s.delaysArray();
  if (delays === null) return { code, symbols: Array.from(symbols) };
  if (delays.length !== count) bad(`${where}: ${count} instructions but ${delays.length} step delays`);
  return { code, symbols: Array.from(symbols), delays: Array.from(delays) };
}

function decodePlugin(raw: fb.PluginInfo, bad: (m: string) => never): PluginIdentity {
  const instructions: PluginIdentity["instructions"] = [];
  for (let i = 0; i < raw.instructionsLength(); i++) {
    const ins = required(raw.instructions(i), `plugin.instructions[${i}]`);
    instructions.push({ id: ins.id(), mnemonic: required(ins.mnemonic(), `plugin.instructions[${i}].mnemonic`) });
  }
  const sha256 = required(raw.sha256(), "plugin.sha256");
  if (!/^[0-9a-f]{64}$/.test(sha256)) bad(`plugin sha256 "${sha256}" is not 64 lowercase hex digits`);
  return {
    name: required(raw.name(), "plugin.name"),
    version: required(raw.version(), "plugin.version"),
    sha256,
    file: required(raw.file(), "plugin.file"),
    instructions,
  };
}

function decodeRoot(root: fb.Program, file: string): Program {
  const bad = (message: string): never => fail("format", message, { file });
  const formatVersion = root.formatVersion();
  if (formatVersion > FORMAT_VERSION) bad(`format version ${formatVersion} is newer than this imssa supports (${FORMAT_VERSION}); upgrade imssa`);
  if (formatVersion < 1) bad(`format version ${formatVersion} is not valid`);

  const symbols: string[] = [];
  for (let i = 0; i < root.symbolsLength(); i++) symbols.push(required(required(root.symbols(i), `symbols[${i}]`).name(), `symbols[${i}].name`));

  const target = required(root.target(), "target");
  const io = required(root.io(), "io");
  const tiles: TileProgram[] = [];
  for (let t = 0; t < root.tilesLength(); t++) {
    const tile = required(root.tiles(t), `tiles[${t}]`);
    const constants: TileProgram["constants"] = [];
    for (let c = 0; c < tile.constantsLength(); c++) {
      const seg = required(tile.constants(c), `tiles[${t}].constants[${c}]`);
      constants.push({ addr: seg.addr(), data: (seg.dataArray() ?? new Float32Array(0)).slice() });
    }
    const raw: Record<SectionName, fb.Section | null> = { init: tile.initSection(), step: tile.stepSection(), final: tile.finalSection() };
    const sections = {} as Record<SectionName, Section>;
    for (const name of SECTION_NAMES) sections[name] = decodeSection(required(raw[name], `tiles[${t}].${name}_section`), `tile ${t}, section ${name}`, symbols.length, bad, file);
    tiles.push({ memoryWords: tile.memoryWords(), constants, sections });
  }
  const rawPlugin = root.plugin();
  if (rawPlugin !== null && formatVersion < PLUGIN_FORMAT_VERSION) bad(`format version ${formatVersion} cannot carry a target plugin record (format ${PLUGIN_FORMAT_VERSION} or newer can)`);
  const rawBounds = root.bounds();
  const crossbars: CrossbarImage[] = [];
  for (let i = 0; i < root.crossbarsLength(); i++) {
    const raw = required(root.crossbars(i), `crossbars[${i}]`);
    const x = decodeCrossbar(raw, i, bad);
    if (x.tile >= tiles.length) bad(`crossbar ${x.id} is on tile ${x.tile} but the program has ${tiles.length} tiles`);
    if (rawBounds !== null) x.pieces = decodePieces(raw, x, symbols.length, bad);
    else if (raw.piecesLength() > 0) bad(`crossbar ${x.id} lists its pieces but the program has no plan bounds`);
    crossbars.push(x);
  }
  return {
    formatVersion,
    compilerVersion: required(root.compilerVersion(), "compiler_version"),
    modelName: required(root.modelName(), "model_name"),
    target: { name: required(target.name(), "target.name"), sha256: required(target.sha256(), "target.sha256"), json: required(target.json(), "target.json") },
    io: {
      inputs: decodeIo((i) => io.inputs(i), io.inputsLength(), "io.inputs"),
      stepOutputs: decodeIo((i) => io.stepOutputs(i), io.stepOutputsLength(), "io.step_outputs"),
      finalOutputs: decodeIo((i) => io.finalOutputs(i), io.finalOutputsLength(), "io.final_outputs"),
      globalWords: io.globalWords(),
    },
    crossbars,
    tiles,
    symbols,
    ...(rawBounds !== null ? { bounds: decodeBounds(rawBounds) } : {}),
    ...(rawPlugin !== null ? { plugin: decodePlugin(rawPlugin, bad) } : {}),
    ...(root.unroll() > 1 ? { unroll: root.unroll() } : {}),
  };
}

/** Decodes .xbin bytes; every problem is a UserError of kind "format" naming `file`. */
export function decodeProgram(bytes: Uint8Array, file: string): Program {
  const payload = openEnvelope(bytes, file);
  try {
    return decodeRoot(fb.Program.getRootAsProgram(new CheckedByteBuffer(payload)), file);
  } catch (e) {
    if (e instanceof UserError) throw e;
    // By name, not instanceof: typed arrays may come from another realm (e.g. jest's sandbox
    // uses the host's typed arrays), whose RangeError is a different class.
    const name = typeof e === "object" && e !== null ? (e as { name?: unknown }).name : undefined;
    if (e instanceof OutOfBounds || name === "RangeError" || name === "TypeError")
      fail("format", `structurally invalid program (not a valid FlatBuffer): ${(e as Error).message}`, { file });
    throw e;
  }
}

/** Writes the program atomically (temp file + rename). */
export function writeProgramFile(file: string, p: Program): void {
  writeFileAtomic(file, encodeProgram(p));
}

export function readProgramFile(file: string): Program {
  return decodeProgram(readBytes(file), file);
}
