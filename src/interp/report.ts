// The run report: cycles, latency, throughput, utilization, energy and ADC saturations,
// as a JSON-friendly object and as a readable table.

import type { Program } from "../backend/program.js";
import type { NoiseSetup } from "../noise/setup.js";
import { activeParts, describeNoise, noiseFromTarget, type NoiseModel, type NoisePart } from "../noise/spec.js";
import type { Target } from "../target/types.js";
import { addCounts, energyOf, zeroCounts, type EnergyBreakdown, type EventCounts } from "./energy.js";
import { zeroBusy, type Machine, type SectionRun } from "./machine.js";
import { UNIT_KINDS, type UnitKind } from "./timing.js";

export interface SectionStats {
  /** Number of section executions these figures average over. */
  runs: number;
  cycles: number;
  instructions: number;
  /** Crossbar multiply-accumulates (activated cells). */
  macs: number;
  busyCycles: Record<UnitKind, number>;
  /** busyCycles / (units of that kind * cycles). */
  utilization: Record<UnitKind, number>;
  events: EventCounts;
  energyPj: EnergyBreakdown;
}

export interface SaturationEntry {
  saturations: number;
  conversions: number;
}

export interface RunReport {
  model: string;
  target: string;
  clockHz: number;
  batch: number;
  steps: number;
  tiles: number;
  units: Record<UnitKind, number>;
  sections: {
    init: SectionStats;
    stepFirst: SectionStats;
    /**
     * Average over rounds 1..D-1 of a program with step delays (docs/ISA.md "Step delays"),
     * which run only part of the stream; absent without.
     */
    prologue?: SectionStats;
    /** Average over steps 2..T of every sequence (rounds D..T-1 with step delays); null when there are none. */
    stepSteady: SectionStats | null;
    /** Average over the drain rounds of a program with step delays (docs/ISA.md "Step delays"); absent without. */
    drain?: SectionStats;
    final: SectionStats;
  };
  /** init + all steps + final of one sequence (every sequence takes the same time). */
  sequenceCycles: number;
  /** All sequences back to back. */
  totalCycles: number;
  latency: { stepSeconds: number; sequenceSeconds: number; totalSeconds: number };
  throughput: { stepsPerSecond: number; sequencesPerSecond: number; macsPerSecond: number };
  /** Over the whole run. */
  utilization: Record<UnitKind, number>;
  energyPj: { perStep: EnergyBreakdown; perSequence: EnergyBreakdown; total: EnergyBreakdown };
  saturation: SaturationEntry & {
    perCrossbar: (SaturationEntry & { crossbar: number; tile: number })[];
    perSymbol: (SaturationEntry & { symbol: string })[];
  };
  /** Device noise of the run (docs/NOISE.md); absent in reports written before noise existed. */
  noise?: NoiseReport;
  /** Caveats about what the run did and did not model. */
  notes: string[];
}

export interface NoiseReport {
  /** Whether any noise was simulated; false: exact noise-free numerics. */
  simulated: boolean;
  /** The parts that were simulated (none when not simulated). */
  parts: NoisePart[];
  /** Chip and read seeds; null when not simulated. */
  seed: number | null;
  readSeed: number | null;
  /** The full model that ran; null when not simulated. */
  model: NoiseModel | null;
}

/** Sums section runs, for averaging. */
export class SectionAccumulator {
  runs = 0;
  cycles = 0;
  instructions = 0;
  readonly busy = zeroBusy();
  readonly counts = zeroCounts();

  add(r: SectionRun): void {
    this.runs++;
    this.cycles += r.cycles;
    this.instructions += r.instructions;
    for (const k of UNIT_KINDS) this.busy[k] += r.busy[k];
    addCounts(this.counts, r.counts);
  }

  /** Per-run averages. */
  stats(t: Target, units: Record<UnitKind, number>): SectionStats {
    const n = Math.max(1, this.runs);
    const cycles = this.cycles / n;
    const events = zeroCounts();
    addCounts(events, this.counts, 1 / n);
    const busyCycles = zeroBusy();
    const utilization = zeroBusy();
    for (const k of UNIT_KINDS) {
      busyCycles[k] = this.busy[k] / n;
      utilization[k] = ratio(busyCycles[k], units[k] * cycles);
    }
    return { runs: this.runs, cycles, instructions: this.instructions / n, macs: events.cells, busyCycles, utilization, events, energyPj: energyOf(t, events, cycles) };
  }
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : 0;
}

export function unitCounts(p: Program): Record<UnitKind, number> {
  const n = p.tiles.length;
  return { crossbar: p.crossbars.length, vector: n, loadStore: n, network: n };
}

export interface ReportInputs {
  program: Program;
  machine: Machine;
  batch: number;
  steps: number;
  init: SectionAccumulator;
  stepFirst: SectionAccumulator;
  /** Prologue rounds 1..D-1 of a program with step delays; absent or empty: none. */
  prologue?: SectionAccumulator;
  stepSteady: SectionAccumulator;
  /** Drain rounds of a program with step delays (docs/ISA.md "Step delays"); absent: none. */
  drain?: SectionAccumulator;
  final: SectionAccumulator;
  /** The noise that ran; null or absent: none. */
  noise?: NoiseSetup | null;
}

function noiseReport(t: Target, noise: NoiseSetup | null): { report: NoiseReport; notes: string[] } {
  if (noise === null) {
    const configured = activeParts(noiseFromTarget(t.noise));
    const notes =
      configured.length > 0
        ? [`device noise (${configured.join(", ")}) is configured in target ${t.name} but was not simulated: results are noise-free (imssa-run --noise simulates it)`]
        : [];
    return { report: { simulated: false, parts: [], seed: null, readSeed: null, model: null }, notes };
  }
  const parts = activeParts(noise.model);
  const seeds = noise.readSeed === noise.seed ? `seed ${noise.seed}` : `chip seed ${noise.seed}, read seed ${noise.readSeed}`;
  return {
    report: { simulated: true, parts, seed: noise.seed, readSeed: noise.readSeed, model: structuredClone(noise.model) },
    notes: [`device noise simulated (${seeds}): ${describeNoise(noise.model).join("; ")}`],
  };
}

export function buildReport(x: ReportInputs): RunReport {
  const t = x.machine.target;
  const p = x.program;
  const units = unitCounts(p);
  const all = new SectionAccumulator();
  for (const acc of [x.init, x.stepFirst, ...(x.prologue ? [x.prologue] : []), x.stepSteady, ...(x.drain ? [x.drain] : []), x.final]) {
    all.runs += acc.runs;
    all.cycles += acc.cycles;
    all.instructions += acc.instructions;
    for (const k of UNIT_KINDS) all.busy[k] += acc.busy[k];
    addCounts(all.counts, acc.counts);
  }
  const totalCycles = all.cycles;
  const sequenceCycles = totalCycles / x.batch;
  const stepFirst = x.stepFirst.stats(t, units);
  const stepSteady = x.stepSteady.runs > 0 ? x.stepSteady.stats(t, units) : null;
  const perStep = stepSteady ?? stepFirst;
  const utilization = zeroBusy();
  for (const k of UNIT_KINDS) utilization[k] = ratio(all.busy[k], units[k] * totalCycles);
  const perSequenceCounts = zeroCounts();
  addCounts(perSequenceCounts, all.counts, 1 / x.batch);
  const totalSeconds = totalCycles / t.clockHz;
  const noise = noiseReport(t, x.noise ?? null);

  const perCrossbar = p.crossbars.map((img, i) => ({
    crossbar: img.id,
    tile: img.tile,
    saturations: x.machine.saturationsPerCrossbar[i]!,
    conversions: x.machine.conversionsPerCrossbar[i]!,
  }));
  const perSymbol = p.symbols
    .map((symbol, i) => ({ symbol, saturations: x.machine.saturationsPerSymbol[i]!, conversions: x.machine.conversionsPerSymbol[i]! }))
    .filter((e) => e.conversions > 0);

  return {
    model: p.modelName,
    target: t.name,
    clockHz: t.clockHz,
    batch: x.batch,
    steps: x.steps,
    tiles: p.tiles.length,
    units,
    sections: {
      init: x.init.stats(t, units),
      stepFirst,
      ...(x.prologue && x.prologue.runs > 0 ? { prologue: x.prologue.stats(t, units) } : {}),
      stepSteady,
      ...(x.drain && x.drain.runs > 0 ? { drain: x.drain.stats(t, units) } : {}),
      final: x.final.stats(t, units),
    },
    sequenceCycles,
    totalCycles,
    latency: { stepSeconds: perStep.cycles / t.clockHz, sequenceSeconds: sequenceCycles / t.clockHz, totalSeconds },
    throughput: {
      stepsPerSecond: ratio(t.clockHz, perStep.cycles),
      sequencesPerSecond: ratio(t.clockHz, sequenceCycles),
      macsPerSecond: ratio(all.counts.cells, totalSeconds),
    },
    utilization,
    energyPj: {
      perStep: perStep.energyPj,
      perSequence: energyOf(t, perSequenceCounts, sequenceCycles),
      total: energyOf(t, all.counts, totalCycles),
    },
    saturation: {
      saturations: perCrossbar.reduce((s, e) => s + e.saturations, 0),
      conversions: perCrossbar.reduce((s, e) => s + e.conversions, 0),
      perCrossbar,
      perSymbol,
    },
    noise: noise.report,
    notes: noise.notes,
  };
}

// ---- text rendering ----

function si(v: number, unit: string): string {
  if (v === 0 || !Number.isFinite(v)) return `${v} ${unit}`;
  const prefixes: [number, string][] = [
    [1e12, "T"],
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
    [1, ""],
    [1e-3, "m"],
    [1e-6, "µ"],
    [1e-9, "n"],
    [1e-12, "p"],
  ];
  const a = Math.abs(v);
  const [scale, prefix] = prefixes.find(([s]) => a >= s) ?? prefixes[prefixes.length - 1]!;
  return `${(v / scale).toPrecision(4)} ${prefix}${unit}`;
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
const pj = (v: number): string => si(v * 1e-12, "J");

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd()).join("\n");
}

const UNIT_LABEL: Record<UnitKind, string> = { crossbar: "crossbars", vector: "vector units", loadStore: "load/store ports", network: "network ports" };

const avg = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1));

export function formatReport(r: RunReport): string {
  const s = r.sections;
  const cols: [string, SectionStats | null][] = [
    ["init", s.init],
    ["step (first)", s.stepFirst],
    ["prologue", s.prologue ?? null],
    ["step (steady)", s.stepSteady],
    ["drain", s.drain ?? null],
    ["final", s.final],
  ];
  const present = cols.filter((c): c is [string, SectionStats] => c[1] !== null);
  const out: string[] = [];
  out.push(`model ${r.model} on target ${r.target} at ${si(r.clockHz, "Hz")}: batch ${r.batch}, ${r.steps} steps, ${r.tiles} tiles, ${r.units.crossbar} crossbars`);
  out.push("");
  out.push(
    table([
      ["section", ...present.map((c) => c[0])],
      // Averages over runs (e.g. the steady steps, or the prologue rounds of a program with step delays) to one decimal.
      ["cycles", ...present.map((c) => avg(c[1].cycles))],
      ["instructions", ...present.map((c) => avg(c[1].instructions))],
      ["MACs", ...present.map((c) => avg(c[1].macs))],
      ...UNIT_KINDS.map((k) => [`util ${UNIT_LABEL[k]}`, ...present.map((c) => pct(c[1].utilization[k]))]),
    ]),
  );
  out.push("");
  out.push(`cycles per sequence ${r.sequenceCycles}, total ${r.totalCycles}`);
  out.push(`latency: ${si(r.latency.stepSeconds, "s")} per step, ${si(r.latency.sequenceSeconds, "s")} per sequence, ${si(r.latency.totalSeconds, "s")} total`);
  out.push(`throughput: ${si(r.throughput.stepsPerSecond, "steps/s")}, ${si(r.throughput.sequencesPerSecond, "sequences/s")}, ${si(r.throughput.macsPerSecond, "MAC/s")}`);
  out.push(`utilization over the run: ${UNIT_KINDS.map((k) => `${UNIT_LABEL[k]} ${pct(r.utilization[k])}`).join(", ")}`);
  out.push("");
  const e = r.energyPj;
  const parts: [string, keyof typeof e.perStep][] = [
    ["crossbar cells", "cells"],
    ["DAC", "dac"],
    ["ADC", "adc"],
    ["vector unit", "vector"],
    ["local memory", "localMemory"],
    ["global memory", "globalMemory"],
    ["interconnect", "interconnect"],
    ["static", "static"],
    ["total", "total"],
  ];
  out.push(table([["energy", "per step", "per sequence", "total"], ...parts.map(([label, k]) => [label, pj(e.perStep[k]), pj(e.perSequence[k]), pj(e.total[k])])]));
  out.push("");
  const sat = r.saturation;
  out.push(`ADC saturations: ${sat.saturations} of ${sat.conversions} conversions (${pct(ratio(sat.saturations, sat.conversions))})`);
  if (sat.perSymbol.length > 0)
    out.push(table([["layer", "saturations", "conversions", "rate"], ...sat.perSymbol.map((x) => [x.symbol || "(unnamed)", String(x.saturations), String(x.conversions), pct(ratio(x.saturations, x.conversions))])]));
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join("\n") + "\n";
}
