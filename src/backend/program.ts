// The in-memory form of a compiled program (.xbin). The emitter builds it, the container
// module (src/backend/container.ts) writes/reads it as FlatBuffers (ir/program.fbs), the
// interpreter executes it.
//
// Execution of one sequence of T steps:
//   1. every tile's local memory is zeroed, then its `constants` are written (this is also
//      how all persistent state is reset: state lives in tile memory);
//   2. `init` runs once; 3. for t in 0..T-1: the host writes each input vector to global
//      memory at its `addr`, `step` runs, the host reads `stepOutputs`;
//   4. `final` runs once (vdivsteps sees T) and the host reads `finalOutputs`.
// A section of the chip "runs" by running every tile's stream for that section to
// completion (tiles synchronise only through send/recv); the next section starts when all
// tiles are done.

import type { MatrixBound, Piece } from "../ir/plan.js";
import type { Instr } from "./isa.js";

/**
 * The newest format this imssa reads and writes. Format 2 adds the plugin record
 * (Program.plugin) and the `ext` opcode; a program without a plugin is still written as
 * format 1, byte-compatible with older readers, so only plugin programs need a new imssa.
 */
export const FORMAT_VERSION = 2;
/** The format of programs that use a target plugin. */
export const PLUGIN_FORMAT_VERSION = 2;
/** The format of programs without a plugin (unchanged since format 1). */
export const BASE_FORMAT_VERSION = 1;
export const FILE_IDENTIFIER = "IMSA";

/** Largest k of `imssa-compile --unroll k` (src/passes/unroll.ts); also what a program may record. */
export const MAX_UNROLL = 16;

export type SectionName = "init" | "step" | "final";
export const SECTION_NAMES: readonly SectionName[] = ["init", "step", "final"];

/** A vector in global memory the host writes (inputs) or reads (outputs). */
export interface IoBuffer {
  name: string;
  size: number;
  /** Global memory word address. */
  addr: number;
}

/**
 * A programmed crossbar. Functional semantics per MVM (quantized numerics, D = 2^(dacBits-1)-1,
 * Q = 2^(adcBits-1)-1):
 *   code_i = clamp(round(x_i / inRange[i] * D), -D, D)               (DAC, per driven row)
 *   s_j    = sum_i code_i * levels[i*cols + j]                        (integer analog sum)
 *   v_j    = s_j * colScale[j] / D                                    (output units)
 *   y_j    = clamp(round(v_j / outRange[j] * Q), -Q, Q) * outRange[j] / Q  (ADC; |v_j| > outRange[j] is a saturation)
 * so colScale[j] already includes the DAC range of the rows that feed column j (the emitter
 * folds it in). Float numerics: y_j = sum_i x_i * values[i*cols + j]; ranges unused.
 */
export interface CrossbarImage {
  id: number;
  tile: number;
  rows: number;
  cols: number;
  weights: { kind: "levels"; levels: Int16Array } | { kind: "float"; values: Float32Array };
  inRange: Float32Array; // [rows]
  colScale: Float32Array; // [cols]
  outRange: Float32Array; // [cols]
  /**
   * What the compiler placed on this crossbar: the plan's pieces (src/ir/plan.ts), each with
   * the matmul's layer and the debug symbol its mvm instructions carry. Present exactly when
   * Program.bounds is (programs of older compilers have neither); the interpreter ignores it.
   */
  pieces?: CrossbarPiece[];
}

export interface CrossbarPiece extends Piece {
  /** The matmul's IR `layer`, when it has one. */
  layer?: string;
  /** Index into Program.symbols. */
  symbol: number;
}

/** The crossbar plan's packing figures, so the compile summary can be rebuilt from the program alone. */
export interface PlanBounds {
  /** Sum of the per-matrix lower bounds. */
  lowerBound: number;
  perMatrix: MatrixBound[];
}

export interface Section {
  code: Instr[];
  /** Per instruction: index into Program.symbols naming the source op / layer. */
  symbols: number[];
  /** Step section only, per instruction: its step delay (docs/ISA.md "Step delays"). Absent: all 0. */
  delays?: number[];
}

export interface TileProgram {
  /** Local memory words this tile uses (highest address + 1); <= target memoryWords. */
  memoryWords: number;
  /** Written into local memory at the start of every sequence (weights' biases, LN params ...). */
  constants: { addr: number; data: Float32Array }[];
  sections: Record<SectionName, Section>;
}

export interface Program {
  formatVersion: number;
  compilerVersion: string;
  modelName: string;
  /** The target description exactly as compiled for (canonical JSON) and its sha256. */
  target: { name: string; sha256: string; json: string };
  io: {
    inputs: IoBuffer[];
    stepOutputs: IoBuffer[];
    finalOutputs: IoBuffer[];
    /** Global memory size in words. */
    globalWords: number;
  };
  crossbars: CrossbarImage[];
  /** Index = tile id. */
  tiles: TileProgram[];
  /** Debug symbol table: source op / layer names. */
  symbols: string[];
  /** Packing figures of the crossbar plan; absent in programs of older compilers. */
  bounds?: PlanBounds;
  /**
   * The target plugin the program needs (its `ext` instructions run the plugin's semantics):
   * absent for programs of plain JSON targets. Present only in format >= 2.
   */
  plugin?: PluginIdentity;
  /**
   * Time steps per program step (src/passes/unroll.ts): the input and step-output buffers
   * hold `unroll` consecutive time steps concatenated; the runtime chunks [B, T, d] inputs
   * into ceil(T / unroll) program steps and un-chunks the outputs. Absent: 1.
   */
  unroll?: number;
}

/** Which plugin module a program was compiled with, exactly (src/target/plugin.ts). */
export interface PluginIdentity {
  /** The plugin's declared name and version. */
  name: string;
  version: string;
  /** sha256 (hex) of the module file's bytes: a program refuses to run with any other file. */
  sha256: string;
  /**
   * Where the module was at compile time: a path relative to the working directory of the
   * compiler when it was below it (posix separators), else absolute. A hint for finding the
   * module at run time; the sha256 decides whether a file is the right one.
   */
  file: string;
  /** The plugin's instructions the program may use: id -> mnemonic (for disassembly and checks). */
  instructions: { id: number; mnemonic: string }[];
}
