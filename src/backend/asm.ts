// Human-readable views of a Program: the assembly listing (imssa-disasm, --emit asm) and
// instruction statistics for the compile summary.

import { delayAt } from "./delays.js";
import { OPCODES, type Instr, type Opcode } from "./isa.js";
import { SECTION_NAMES, type IoBuffer, type Program, type SectionName } from "./program.js";

const at = (addr: number): string => `@${addr}`;

/** The shortest decimal that reads back as the same float32 (immediates are float32). */
export function formatFloat32(x: number): string {
  for (let digits = 1; digits < 17; digits++) {
    const s = x.toPrecision(digits);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

/** Operands of one instruction as `name=value` pairs; addresses are `@n`, global ones `g@n`. */
export function formatOperands(ins: Instr): string {
  switch (ins.op) {
    case "mvm":
      return `xbar=${ins.xbar} rows=${ins.rowStart}+${ins.rows} cols=${ins.colStart}+${ins.cols} src=${at(ins.src)} dst=${at(ins.dst)}${ins.acc ? " acc" : ""}`;
    case "vadd":
    case "vsub":
    case "vmul":
      return `dst=${at(ins.dst)} a=${at(ins.a)} b=${at(ins.b)} len=${ins.len}`;
    case "vcopy":
    case "vrelu":
    case "vgelu":
    case "vsigmoid":
    case "vtanh":
    case "vglu":
    case "vdivsteps":
      return `dst=${at(ins.dst)} a=${at(ins.a)} len=${ins.len}`;
    case "vscale":
    case "vnorm":
      return `dst=${at(ins.dst)} a=${at(ins.a)} len=${ins.len} imm=${formatFloat32(ins.imm)}`;
    case "vaffine":
      return `dst=${at(ins.dst)} a=${at(ins.a)} c=${at(ins.c)} len=${ins.len}`;
    case "load":
      return `dst=${at(ins.dst)} global=g@${ins.global} len=${ins.len}`;
    case "store":
      return `global=g@${ins.global} src=${at(ins.src)} len=${ins.len}`;
    case "send":
      return `peer=${ins.peer} src=${at(ins.src)} len=${ins.len} tag=${ins.tag}`;
    case "recv":
      return `peer=${ins.peer} dst=${at(ins.dst)} len=${ins.len} tag=${ins.tag}`;
    case "ext":
      // Which fields are addresses is the plugin's business: show all of them raw.
      return `id=${ins.ext} len=${ins.len} dst=${ins.dst} a=${ins.a} b=${ins.b} c=${ins.c} word=0x${ins.word.toString(16).padStart(8, "0")}`;
  }
}

function ioLines(title: string, list: IoBuffer[]): string[] {
  if (list.length === 0) return [`; ${title}: none`];
  return [`; ${title}:`, ...list.map((io) => `;   ${io.name}[${io.size}] at g@${io.addr}`)];
}

/** Constant values shown per segment; the rest is elided. */
const CONST_PREVIEW = 8;

/** The assembly listing: header comments, then per tile its constants and sections. */
export function formatAsm(p: Program): string {
  const lines: string[] = [
    `; imssa program '${p.modelName}' (format ${p.formatVersion}, compiler ${p.compilerVersion})`,
    `; target: ${p.target.name} (sha256 ${p.target.sha256})`,
    ...ioLines("inputs", p.io.inputs),
    ...ioLines("step outputs", p.io.stepOutputs),
    ...ioLines("final outputs", p.io.finalOutputs),
    `; global memory: ${p.io.globalWords} words`,
    `; crossbars: ${p.crossbars.length}`,
  ];
  for (const x of p.crossbars) {
    const kind = x.weights.kind === "levels" ? "integer levels" : "float weights";
    const cells: ArrayLike<number> = x.weights.kind === "levels" ? x.weights.levels : x.weights.values;
    let nonzero = 0;
    for (let i = 0; i < cells.length; i++) if (cells[i] !== 0) nonzero++;
    lines.push(`;   xbar ${x.id} on tile ${x.tile}: ${x.rows}x${x.cols}, ${kind}, ${nonzero} nonzero cells`);
  }
  p.tiles.forEach((t, i) => {
    const constWords = t.constants.reduce((n, c) => n + c.data.length, 0);
    lines.push("", `.tile ${i}  ; ${t.memoryWords} words of local memory, ${constWords} in ${t.constants.length} constant segments`);
    for (const c of t.constants) {
      const shown = Array.from(c.data.subarray(0, CONST_PREVIEW), formatFloat32).join(", ");
      lines.push(`  .const @${c.addr} len=${c.data.length}  [${shown}${c.data.length > CONST_PREVIEW ? ", ..." : ""}]`);
    }
    for (const name of SECTION_NAMES) {
      const s = t.sections[name];
      lines.push(`.section ${name}  ; ${s.code.length} instructions`);
      const width = String(Math.max(0, s.code.length - 1)).length;
      s.code.forEach((ins, k) => {
        const sym = p.symbols[s.symbols[k]!] ?? "?";
        // A step delay (docs/ISA.md "Step delays") is shown as a suffix of the operands: `+1`.
        const d = delayAt(s, k);
        lines.push(`  ${String(k).padStart(width)}  ${ins.op.padEnd(9)} ${formatOperands(ins)}${d > 0 ? ` +${d}` : ""}  ; ${sym}`);
      });
    }
  });
  return `${lines.join("\n")}\n`;
}

export interface ProgramSummary {
  tiles: number;
  /** Tiles with at least one instruction or crossbar. */
  tilesUsed: number;
  crossbars: number;
  instructions: Record<SectionName, number>;
  byOpcode: Record<SectionName, Partial<Record<Opcode, number>>>;
  /** Local memory words used, per tile. */
  memoryWords: number[];
}

export function summarizeProgram(p: Program): ProgramSummary {
  const instructions = { init: 0, step: 0, final: 0 };
  const byOpcode: ProgramSummary["byOpcode"] = { init: {}, step: {}, final: {} };
  const withXbars = new Set(p.crossbars.map((x) => x.tile));
  let tilesUsed = 0;
  p.tiles.forEach((t, i) => {
    let used = withXbars.has(i);
    for (const name of SECTION_NAMES) {
      const code = t.sections[name].code;
      instructions[name] += code.length;
      if (code.length > 0) used = true;
      for (const ins of code) byOpcode[name][ins.op] = (byOpcode[name][ins.op] ?? 0) + 1;
    }
    if (used) tilesUsed++;
  });
  return { tiles: p.tiles.length, tilesUsed, crossbars: p.crossbars.length, instructions, byOpcode, memoryWords: p.tiles.map((t) => t.memoryWords) };
}

/** Opcodes in numeric order, for stable summary tables. */
export const OPCODE_ORDER: readonly Opcode[] = (Object.keys(OPCODES) as Opcode[]).sort((a, b) => OPCODES[a] - OPCODES[b]);
