// Occupancy of each instruction on its execution unit, from the target's parameters alone
// (timing never depends on data). docs/TIMING.md derives and explains every formula.

import type { Instr } from "../backend/isa.js";
import type { Target } from "../target/types.js";

/** Execution unit classes of a tile. A tile has one of each, plus one unit per crossbar. */
export type UnitKind = "crossbar" | "vector" | "loadStore" | "network";
export const UNIT_KINDS: readonly UnitKind[] = ["crossbar", "vector", "loadStore", "network"];

/** Phases of an MVM, in cycles; their sum is the crossbar's occupancy. */
export interface MvmPhases {
  dac: number;
  integration: number;
  adc: number;
  local: number;
}

export function mvmPhases(t: Target, rows: number, cols: number): MvmPhases {
  const x = t.crossbar;
  // Float numerics have no DAC resolution; their inputs are applied in one DAC step.
  const dacBits = x.numerics.kind === "quantized" ? x.numerics.dacBits : 1;
  return {
    dac: x.inputMode === "bit-serial" ? dacBits * x.dacCyclesPerBit : x.dacCyclesPerBit,
    integration: x.integrationCycles,
    adc: Math.ceil(cols / x.adcsPerCrossbar) * x.adcCyclesPerConversion,
    local: Math.ceil((rows + cols) / t.memory.localWordsPerCycle),
  };
}

/** Vector-unit cycles per group of `lanes` elements for one instruction. */
export function vectorCyclesPerGroup(t: Target, op: Instr["op"]): number {
  const l = t.vector.latency;
  switch (op) {
    case "vadd":
    case "vsub":
    case "vcopy":
    case "vaffine":
    case "vdivsteps":
    case "vscale":
      return l.add;
    case "vmul":
      return l.mul;
    case "vglu":
      return l.mul + l.sigmoid;
    case "vrelu":
      return l.relu;
    case "vgelu":
      return l.gelu;
    case "vsigmoid":
      return l.sigmoid;
    case "vtanh":
      return l.tanh;
    case "vnorm":
      // mean pass + variance pass, then subtract (add) and divide (mul) passes
      return 2 * l.reduce + l.add + l.mul;
    default:
      throw new Error(`internal error: ${op} is not a vector instruction`);
  }
}

export interface Occupancy {
  /** null: the instruction occupies no unit (recv only waits for its message). */
  unit: UnitKind | null;
  /** Cycles the unit is busy; results are ready this many cycles after the start (>= 1). */
  cycles: number;
}

export function occupancy(t: Target, ins: Instr): Occupancy {
  let unit: UnitKind | null;
  let cycles: number;
  switch (ins.op) {
    case "mvm": {
      const p = mvmPhases(t, ins.rows, ins.cols);
      unit = "crossbar";
      cycles = p.dac + p.integration + p.adc + p.local;
      break;
    }
    case "load":
    case "store":
      unit = "loadStore";
      cycles = t.memory.globalLatencyCycles + Math.ceil(ins.len / t.memory.globalWordsPerCycle);
      break;
    case "send":
      unit = "network";
      cycles = Math.ceil(ins.len / t.interconnect.wordsPerCycle);
      break;
    case "recv":
      unit = null;
      cycles = 1;
      break;
    default:
      unit = "vector";
      cycles = Math.ceil(ins.len / t.vector.lanes) * vectorCyclesPerGroup(t, ins.op);
  }
  return { unit, cycles: Math.max(1, cycles) };
}
