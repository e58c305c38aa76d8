// A hardware target description: the micro-architecture the backend compiles for and the
// interpreter simulates. Mirrors targets/target.schema.json (the JSON files are validated
// against it before they become a Target). All cycle counts are in target clock cycles,
// energies in picojoules.

/** How crossbar MVMs compute. */
export type Numerics =
  /** Float weights and activations: no DAC/ADC/level quantization (checks compiler structure). */
  | { kind: "float" }
  /** Integer weight levels on differential device pairs, DAC on inputs, ADC on outputs. */
  | {
      kind: "quantized";
      /** Conductance levels per device (>= 2). A differential pair gives signed levels -(levels-1)..(levels-1). */
      deviceLevels: number;
      /** DAC resolution, signed: codes -(2^(bits-1)-1) .. 2^(bits-1)-1. */
      dacBits: number;
      /** ADC resolution, signed, same convention. */
      adcBits: number;
    };

export interface CrossbarSpec {
  rows: number; // inputs
  cols: number; // outputs
  numerics: Numerics;
  /** Conductance range of one device in microsiemens (documentation and noise model). */
  gMinUs: number;
  gMaxUs: number;
  /** Bit-serial: one input bit per `dacCyclesPerBit` cycles; parallel: all bits at once in `dacCyclesPerBit` cycles. */
  inputMode: "bit-serial" | "parallel";
  dacCyclesPerBit: number;
  /** Analog integration time of one MVM. */
  integrationCycles: number;
  /** ADCs per crossbar; columns share them round-robin. */
  adcsPerCrossbar: number;
  adcCyclesPerConversion: number;
}

export interface TileSpec {
  /** Number of tiles (cores); "unlimited" for the ideal target. */
  count: number | "unlimited";
  crossbarsPerTile: number;
  /** Tile-local scratchpad size in 32-bit words. */
  memoryWords: number;
}

/** Vector unit latencies: cycles per group of `lanes` elements. */
export interface VectorSpec {
  lanes: number;
  precision: "float32" | "float64";
  latency: {
    add: number; // add, sub, copy, affine
    mul: number;
    relu: number;
    gelu: number;
    sigmoid: number;
    tanh: number;
    /** One pass of a reduction (mean / variance) per lane group. */
    reduce: number;
  };
}

export interface MemorySpec {
  /** Global (chip) memory <-> tile transfer: fixed latency plus words per cycle. */
  globalLatencyCycles: number;
  globalWordsPerCycle: number;
  /** Tile-local scratchpad accesses by the crossbar input/output path. */
  localWordsPerCycle: number;
}

export interface InterconnectSpec {
  latencyCycles: number;
  wordsPerCycle: number;
}

export interface EnergySpec {
  /** Per activated crossbar cell per MVM (row x column actually driven). */
  cellPj: number;
  dacConversionPj: number;
  adcConversionPj: number;
  /** Per element per vector-unit operation. */
  vectorOpPj: number;
  /** Per 32-bit word moved. */
  localWordPj: number;
  globalWordPj: number;
  interconnectWordPj: number;
  /** Static power of the chip in milliwatts (charged per cycle at the clock). */
  staticMw: number;
}

/** Device non-idealities; every field optional, absent = off. Used from the noise issue on. */
export interface NoiseSpec {
  /** Programming noise: sigma of conductance, relative to gMax, as c0 + c1*(g/gMax) + c2*(g/gMax)^2. */
  programming?: { c0: number; c1: number; c2: number };
  /** Read noise per MVM, relative to gMax. */
  read?: { sigma: number };
  /** Conductance drift g(t) = g0 (t/t0)^-nu. */
  drift?: { nu: number; t0Seconds: number; compensate: boolean };
  /** Gaussian output noise, relative to the ADC full scale. */
  output?: { sigma: number };
  faults?: { stuckAtGMin: number; stuckAtGMax: number };
}

export interface Target {
  name: string;
  description: string;
  clockHz: number;
  crossbar: CrossbarSpec;
  tiles: TileSpec;
  vector: VectorSpec;
  memory: MemorySpec;
  interconnect: InterconnectSpec;
  energy: EnergySpec;
  noise: NoiseSpec;
  /** Where it was loaded from and a hash of its canonical JSON (recorded in programs). */
  source: { file: string; sha256: string };
}

/** Signed integer weight levels available per cell: L in q ∈ [-L, L]; null for float numerics. */
export function maxWeightLevel(t: Target): number | null {
  const n = t.crossbar.numerics;
  return n.kind === "quantized" ? n.deviceLevels - 1 : null;
}

export function totalCrossbars(t: Target): number {
  return t.tiles.count === "unlimited" ? Number.POSITIVE_INFINITY : t.tiles.count * t.tiles.crossbarsPerTile;
}
