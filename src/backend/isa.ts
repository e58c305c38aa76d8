// The imssa crossbar ISA. Documented for users in docs/ISA.md; keep both in sync.
//
// Machine: a chip of tiles. Each tile runs its own in-order instruction stream and owns a
// float32 scratchpad ("local memory", word addressed, < 65536 words), some crossbars, a
// vector unit and a port to the interconnect. A chip-level global memory (word addressed,
// 32-bit addresses) holds the per-step model inputs, written by the host before each step,
// and the outputs, read by the host after `step` / `final`.
//
// Every instruction is one fixed-width 128-bit word: four little-endian uint32.
//   w0: bits 0-7 opcode | bits 8-15 flags | bits 16-31 field A (16 bit)
//   w1: field B (low 16) | field C (high 16)
//   w2: field D (low 16) | field E (high 16)
//   w3: field F (32 bit; an address or float32 bits)

export const WORDS_PER_INSTRUCTION = 4;
export const MAX_LOCAL_ADDRESS = 0xffff;
export const MAX_LEN = 0xffff;

export type VecBinaryOp = "vadd" | "vsub" | "vmul";
export type VecUnaryOp = "vcopy" | "vrelu" | "vgelu" | "vsigmoid" | "vtanh";

/**
 * One instruction. Addresses `dst`, `a`, `b`, `src`, `c` are tile-local word addresses unless
 * named `global`. `len` counts float32 elements.
 */
export type Instr =
  /**
   * Crossbar MVM on crossbar `xbar` (global id; must belong to this tile): local
   * mem[src .. src+rows) drives crossbar rows [rowStart, rowStart+rows) (other rows idle);
   * columns [colStart, colStart+cols) are read and written to mem[dst .. dst+cols), or added
   * to it when `acc` (digital partial-sum reduction).
   */
  | { op: "mvm"; xbar: number; rowStart: number; rows: number; colStart: number; cols: number; src: number; dst: number; acc: boolean }
  /** dst[i] = a[i] (+|-|*) b[i]. */
  | { op: VecBinaryOp; dst: number; a: number; b: number; len: number }
  /** dst[i] = f(a[i]); vgelu is the exact erf form. */
  | { op: VecUnaryOp; dst: number; a: number; len: number }
  /** dst[i] = a[i] * imm. */
  | { op: "vscale"; dst: number; a: number; len: number; imm: number }
  /** dst[i] = a[i] * mem[c+i] + mem[c+len+i] (per-element scale, then shift, from constants). */
  | { op: "vaffine"; dst: number; a: number; c: number; len: number }
  /** dst[i] = a[i] * sigmoid(a[len+i]) for i < len (reads 2*len elements). */
  | { op: "vglu"; dst: number; a: number; len: number }
  /** dst = (a - mean(a)) / sqrt(var(a) + imm), over len elements (biased variance). */
  | { op: "vnorm"; dst: number; a: number; len: number; imm: number }
  /** dst[i] = a[i] / T, T = number of steps of the current sequence (final section). */
  | { op: "vdivsteps"; dst: number; a: number; len: number }
  /** local mem[dst ..) = global[global ..), len words. */
  | { op: "load"; dst: number; global: number; len: number }
  /** global[global ..) = local mem[src ..), len words. */
  | { op: "store"; global: number; src: number; len: number }
  /** Sends local mem[src .. src+len) to tile `peer`, matched with its recv by (this tile, tag). */
  | { op: "send"; peer: number; src: number; len: number; tag: number }
  /** Blocks until the message (peer, tag) arrives, writes it to local mem[dst .. dst+len). */
  | { op: "recv"; peer: number; dst: number; len: number; tag: number }
  | ExtInstr;

/**
 * An instruction of the program's target plugin (src/target/plugin.ts, docs/TARGETS.md):
 * `ext` is the plugin's instruction id (0-255). The ISA fixes only the encoding; which of
 * the fields are local addresses, how many words each reads or writes, what it computes and
 * how long it takes are the plugin's declaration. `word` is a raw 32-bit immediate.
 */
export interface ExtInstr {
  op: "ext";
  ext: number;
  len: number;
  dst: number;
  a: number;
  b: number;
  c: number;
  word: number;
}

export type Opcode = Instr["op"];

/** Stable numeric opcodes; never renumber (the binary format depends on them). */
export const OPCODES: Readonly<Record<Opcode, number>> = {
  mvm: 0x01,
  vadd: 0x10,
  vsub: 0x11,
  vmul: 0x12,
  vcopy: 0x18,
  vrelu: 0x19,
  vgelu: 0x1a,
  vsigmoid: 0x1b,
  vtanh: 0x1c,
  vscale: 0x20,
  vaffine: 0x21,
  vglu: 0x22,
  vnorm: 0x23,
  vdivsteps: 0x24,
  load: 0x30,
  store: 0x31,
  send: 0x40,
  recv: 0x41,
  ext: 0x50,
};

const OPCODE_NAMES: ReadonlyMap<number, Opcode> = new Map(Object.entries(OPCODES).map(([k, v]) => [v, k as Opcode]));

const FLAG_ACC = 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function floatBits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
function bitsFloat(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

function pack16(lo: number, hi: number): number {
  return ((lo & 0xffff) | ((hi & 0xffff) << 16)) >>> 0;
}

/** Writes `ins` as 4 words at out[offset ..]. Fields must already be in range (see fieldRangeError). */
export function encodeInstr(ins: Instr, out: Uint32Array, offset: number): void {
  let flags = 0;
  let a = 0;
  let w1 = 0;
  let w2 = 0;
  let w3 = 0;
  switch (ins.op) {
    case "mvm":
      flags = ins.acc ? FLAG_ACC : 0;
      a = ins.xbar;
      w1 = pack16(ins.rowStart, ins.rows);
      w2 = pack16(ins.colStart, ins.cols);
      w3 = pack16(ins.src, ins.dst);
      break;
    case "vadd":
    case "vsub":
    case "vmul":
      a = ins.len;
      w1 = pack16(ins.dst, ins.a);
      w2 = pack16(ins.b, 0);
      break;
    case "vcopy":
    case "vrelu":
    case "vgelu":
    case "vsigmoid":
    case "vtanh":
    case "vglu":
    case "vdivsteps":
      a = ins.len;
      w1 = pack16(ins.dst, ins.a);
      break;
    case "vscale":
    case "vnorm":
      a = ins.len;
      w1 = pack16(ins.dst, ins.a);
      w3 = floatBits(ins.imm);
      break;
    case "vaffine":
      a = ins.len;
      w1 = pack16(ins.dst, ins.a);
      w2 = pack16(ins.c, 0);
      break;
    case "load":
      a = ins.len;
      w1 = pack16(ins.dst, 0);
      w3 = ins.global >>> 0;
      break;
    case "store":
      a = ins.len;
      w1 = pack16(ins.src, 0);
      w3 = ins.global >>> 0;
      break;
    case "send":
      a = ins.len;
      w1 = pack16(ins.src, ins.peer);
      w2 = pack16(ins.tag, 0);
      break;
    case "recv":
      a = ins.len;
      w1 = pack16(ins.dst, ins.peer);
      w2 = pack16(ins.tag, 0);
      break;
    case "ext":
      // The plugin's instruction id travels in the flags byte.
      flags = ins.ext & 0xff;
      a = ins.len;
      w1 = pack16(ins.dst, ins.a);
      w2 = pack16(ins.b, ins.c);
      w3 = ins.word >>> 0;
      break;
  }
  out[offset] = (OPCODES[ins.op] | (flags << 8) | ((a & 0xffff) << 16)) >>> 0;
  out[offset + 1] = w1;
  out[offset + 2] = w2;
  out[offset + 3] = w3;
}

export type DecodeResult = { ok: true; instr: Instr } | { ok: false; error: string };

/** Decodes the instruction at words[offset ..]; unknown opcodes and flags are errors, not exceptions. */
export function decodeInstr(words: Uint32Array, offset: number): DecodeResult {
  const w0 = words[offset]!;
  const w1 = words[offset + 1]!;
  const w2 = words[offset + 2]!;
  const w3 = words[offset + 3]!;
  const code = w0 & 0xff;
  const flags = (w0 >>> 8) & 0xff;
  const A = w0 >>> 16;
  const B = w1 & 0xffff;
  const C = w1 >>> 16;
  const D = w2 & 0xffff;
  const E = w2 >>> 16;
  const op = OPCODE_NAMES.get(code);
  if (op === undefined) return { ok: false, error: `unknown opcode 0x${code.toString(16).padStart(2, "0")}` };
  if (op !== "mvm" && op !== "ext" && flags !== 0) return { ok: false, error: `${op} has no flags, found 0x${flags.toString(16)}` };
  if (op === "mvm" && (flags & ~FLAG_ACC) !== 0) return { ok: false, error: `mvm has unknown flags 0x${flags.toString(16)}` };
  switch (op) {
    case "mvm":
      return { ok: true, instr: { op, xbar: A, rowStart: B, rows: C, colStart: D, cols: E, src: w3 & 0xffff, dst: w3 >>> 16, acc: (flags & FLAG_ACC) !== 0 } };
    case "vadd":
    case "vsub":
    case "vmul":
      return { ok: true, instr: { op, len: A, dst: B, a: C, b: D } };
    case "vcopy":
    case "vrelu":
    case "vgelu":
    case "vsigmoid":
    case "vtanh":
    case "vglu":
    case "vdivsteps":
      return { ok: true, instr: { op, len: A, dst: B, a: C } };
    case "vscale":
    case "vnorm":
      return { ok: true, instr: { op, len: A, dst: B, a: C, imm: bitsFloat(w3) } };
    case "vaffine":
      return { ok: true, instr: { op, len: A, dst: B, a: C, c: D } };
    case "load":
      return { ok: true, instr: { op, len: A, dst: B, global: w3 } };
    case "store":
      return { ok: true, instr: { op, len: A, src: B, global: w3 } };
    case "send":
      return { ok: true, instr: { op, len: A, src: B, peer: C, tag: D } };
    case "recv":
      return { ok: true, instr: { op, len: A, dst: B, peer: C, tag: D } };
    case "ext":
      return { ok: true, instr: { op, ext: flags, len: A, dst: B, a: C, b: D, c: E, word: w3 } };
  }
}

/** Why `ins` cannot be encoded (a field out of its bit range), or null. Checked by the emitter. */
export function fieldRangeError(ins: Instr): string | null {
  // Runs for every emitted instruction: a for-in over the fields (same order as
  // Object.entries on these plain objects) without building an array of pairs per call.
  const fields = ins as unknown as Record<string, unknown>;
  for (const k in fields) {
    if (k === "op" || k === "acc" || k === "imm") continue;
    const v = fields[k] as number;
    if (k === "ext") {
      if (!(Number.isInteger(v) && v >= 0 && v <= 0xff)) return `ext: instruction id ${v} does not fit 8 bits`;
      continue;
    }
    if (k === "global" || k === "word") {
      if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) return `${ins.op}: field ${k}=${v} does not fit 32 bits`;
      continue;
    }
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff)) return `${ins.op}: field ${k}=${v} does not fit 16 bits`;
  }
  return null;
}
