// Builds small Programs by hand for interpreter tests: tiles, crossbar images, constants,
// I/O buffers and instruction streams, with the target embedded exactly as the emitter does
// (canonical JSON + sha256).

import { createHash } from "node:crypto";
import type { Instr } from "../../src/backend/isa.js";
import { FORMAT_VERSION, type CrossbarImage, type IoBuffer, type Program, type SectionName, type TileProgram } from "../../src/backend/program.js";
import { loadTarget, targetToJson } from "../../src/target/load.js";
import type { Target } from "../../src/target/types.js";

/** A shipped target with fields changed by `patch` (on a deep copy). */
export function patchedTarget(name: string, patch: (t: Target) => void): Target {
  const t = structuredClone(loadTarget(name));
  patch(t);
  return t;
}

/**
 * Target "small" of the timing tests (interp-timing, schedule-pipeline): 8x8 crossbars,
 * 4-bit bit-serial DAC, 10 integration cycles, 2 ADCs, short latencies, so intervals can be
 * derived by hand.
 */
export function smallTimingTarget(patch?: (t: Target) => void): Target {
  return patchedTarget("xbar64", (t) => {
    t.name = "small";
    t.clockHz = 1e9;
    t.crossbar = {
      ...t.crossbar,
      rows: 8,
      cols: 8,
      numerics: { kind: "quantized", deviceLevels: 16, dacBits: 4, adcBits: 8 },
      inputMode: "bit-serial",
      dacCyclesPerBit: 1,
      integrationCycles: 10,
      adcsPerCrossbar: 2,
      adcCyclesPerConversion: 1,
    };
    t.vector = { lanes: 4, precision: "float32", latency: { add: 1, mul: 2, relu: 1, gelu: 5, sigmoid: 3, tanh: 3, reduce: 2 } };
    t.memory = { globalLatencyCycles: 10, globalWordsPerCycle: 2, localWordsPerCycle: 4 };
    t.interconnect = { latencyCycles: 5, wordsPerCycle: 2 };
    t.energy = { cellPj: 1, dacConversionPj: 2, adcConversionPj: 3, vectorOpPj: 4, localWordPj: 5, globalWordPj: 6, interconnectWordPj: 7, staticMw: 1 };
    patch?.(t);
  });
}

export interface CrossbarSpec {
  tile: number;
  rows: number;
  cols: number;
  /** Row-major rows*cols integer levels (quantized targets) ... */
  levels?: number[];
  /** ... or float values (float targets). */
  values?: number[];
  inRange?: number[];
  colScale?: number[];
  outRange?: number[];
  id?: number;
}

export class ProgramBuilder {
  readonly tiles: TileProgram[] = [];
  readonly crossbars: CrossbarImage[] = [];
  readonly io: Program["io"];
  private readonly symbols: string[] = [];

  constructor(
    readonly target: Target,
    opts: { tiles?: number; memoryWords?: number; globalWords?: number } = {},
  ) {
    for (let i = 0; i < (opts.tiles ?? 1); i++) {
      const empty = (): { code: Instr[]; symbols: number[] } => ({ code: [], symbols: [] });
      this.tiles.push({ memoryWords: opts.memoryWords ?? 256, constants: [], sections: { init: empty(), step: empty(), final: empty() } });
    }
    this.io = { inputs: [], stepOutputs: [], finalOutputs: [], globalWords: opts.globalWords ?? 256 };
  }

  input(name: string, size: number, addr: number): this {
    this.io.inputs.push({ name, size, addr } satisfies IoBuffer);
    return this;
  }

  stepOutput(name: string, size: number, addr: number): this {
    this.io.stepOutputs.push({ name, size, addr });
    return this;
  }

  finalOutput(name: string, size: number, addr: number): this {
    this.io.finalOutputs.push({ name, size, addr });
    return this;
  }

  constant(tile: number, addr: number, data: number[]): this {
    this.tiles[tile]!.constants.push({ addr, data: Float32Array.from(data) });
    return this;
  }

  /** Adds a crossbar image; ranges default to 1 / scales to 1. Returns its id. */
  crossbar(s: CrossbarSpec): number {
    const id = s.id ?? this.crossbars.length;
    const fill = (v: number[] | undefined, n: number): Float32Array => (v ? Float32Array.from(v) : new Float32Array(n).fill(1));
    const weights: CrossbarImage["weights"] =
      s.levels !== undefined ? { kind: "levels", levels: Int16Array.from(s.levels) } : { kind: "float", values: Float32Array.from(s.values ?? []) };
    this.crossbars.push({
      id,
      tile: s.tile,
      rows: s.rows,
      cols: s.cols,
      weights,
      inRange: fill(s.inRange, s.rows),
      colScale: fill(s.colScale, s.cols),
      outRange: fill(s.outRange, s.cols),
    });
    return id;
  }

  /** Appends instructions; `delay` > 0 gives them that step delay (docs/ISA.md "Step delays"). */
  emit(tile: number, section: SectionName, ins: Instr | Instr[], symbol = "main", delay = 0): this {
    let sym = this.symbols.indexOf(symbol);
    if (sym < 0) sym = this.symbols.push(symbol) - 1;
    const sec = this.tiles[tile]!.sections[section];
    for (const i of Array.isArray(ins) ? ins : [ins]) {
      if (delay !== 0 && sec.delays === undefined) sec.delays = sec.code.map(() => 0);
      sec.code.push(i);
      sec.symbols.push(sym);
      sec.delays?.push(delay);
    }
    return this;
  }

  build(modelName = "test"): Program {
    const json = targetToJson(this.target);
    return {
      formatVersion: FORMAT_VERSION,
      compilerVersion: "test",
      modelName,
      target: { name: this.target.name, sha256: createHash("sha256").update(json, "utf8").digest("hex"), json },
      io: structuredClone(this.io),
      crossbars: this.crossbars.map((x) => ({ ...x })),
      tiles: structuredClone(this.tiles),
      symbols: [...this.symbols],
    };
  }
}
