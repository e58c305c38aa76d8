// Energy model: the simulation counts events, this module prices them with the target's
// per-event energies. docs/TIMING.md defines each event.

import type { Instr } from "../backend/isa.js";
import type { Target } from "../target/types.js";
import { accessOf } from "./access.js";

/** Event counts of one instruction, a section, or a whole run. */
export interface EventCounts {
  /** Crossbar cells activated (driven rows x read columns), i.e. MACs. */
  cells: number;
  dacConversions: number;
  adcConversions: number;
  vectorElementOps: number;
  localWords: number;
  globalWords: number;
  interconnectWords: number;
}

export interface EnergyBreakdown {
  cells: number;
  dac: number;
  adc: number;
  vector: number;
  localMemory: number;
  globalMemory: number;
  interconnect: number;
  static: number;
  total: number;
}

export function zeroCounts(): EventCounts {
  return { cells: 0, dacConversions: 0, adcConversions: 0, vectorElementOps: 0, localWords: 0, globalWords: 0, interconnectWords: 0 };
}

export function addCounts(into: EventCounts, c: EventCounts, times = 1): void {
  into.cells += c.cells * times;
  into.dacConversions += c.dacConversions * times;
  into.adcConversions += c.adcConversions * times;
  into.vectorElementOps += c.vectorElementOps * times;
  into.localWords += c.localWords * times;
  into.globalWords += c.globalWords * times;
  into.interconnectWords += c.interconnectWords * times;
}

/** Vector-unit passes over the data: vglu multiplies and evaluates a sigmoid, vnorm makes four passes. */
function vectorPasses(op: Instr["op"]): number {
  return op === "vglu" ? 2 : op === "vnorm" ? 4 : 1;
}

export function countsOf(ins: Instr): EventCounts {
  const c = zeroCounts();
  switch (ins.op) {
    case "mvm":
      c.cells = ins.rows * ins.cols;
      c.dacConversions = ins.rows;
      c.adcConversions = ins.cols;
      c.localWords = ins.rows + ins.cols;
      return c;
    case "load":
    case "store":
      c.globalWords = ins.len;
      c.localWords = ins.len;
      return c;
    case "send":
      c.interconnectWords = ins.len;
      c.localWords = ins.len;
      return c;
    case "recv":
      c.localWords = ins.len;
      return c;
    default: {
      const a = accessOf(ins);
      c.vectorElementOps = ins.len * vectorPasses(ins.op);
      c.localWords = a.reads.reduce((s, r) => s + r.len, 0) + (a.write?.len ?? 0);
      return c;
    }
  }
}

/** Prices event counts plus static power over `cycles` clock cycles, in picojoules. */
export function energyOf(t: Target, c: EventCounts, cycles: number): EnergyBreakdown {
  const e = t.energy;
  const parts = {
    cells: c.cells * e.cellPj,
    dac: c.dacConversions * e.dacConversionPj,
    adc: c.adcConversions * e.adcConversionPj,
    vector: c.vectorElementOps * e.vectorOpPj,
    localMemory: c.localWords * e.localWordPj,
    globalMemory: c.globalWords * e.globalWordPj,
    interconnect: c.interconnectWords * e.interconnectWordPj,
    // mW * s = mJ = 1e9 pJ
    static: ((e.staticMw * cycles) / t.clockHz) * 1e9,
  };
  const total = Object.values(parts).reduce((s, v) => s + v, 0);
  return { ...parts, total };
}
