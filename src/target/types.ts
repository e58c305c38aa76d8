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
      /** Device pairs per weight the compiler uses by default (src/passes/slice-weights.ts); absent: 1. */
      weightSlices?: number;
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

/**
 * Device and periphery non-idealities (docs/NOISE.md); every block optional, absent = off.
 * The interpreter simulates them when a run asks for noise (imssa-run --noise); a block
 * whose parameters have no effect (all zero) is off as well.
 */
export interface NoiseSpec {
  /**
   * Programming noise: a programmed conductance is g_T + N(0, sigma) (clipped at 0 uS) with
   * sigma = scale * gMax * max(0, c0 + c1*(g_T/gMax) + c2*(g_T/gMax)^2) (c0..c2 relative to gMax).
   */
  programming?: { c0: number; c1: number; c2: number; /** Multiplies sigma (default 1). */ scale?: number };
  /**
   * Read noise, drawn anew on every MVM: Gaussian with sigma = sigma * gMax (white), plus,
   * when flickerQs > 0, the 1/f term g * min(flickerQs / (g_P/gMax)^0.65, 0.2) *
   * sqrt(ln((t + tRead) / (2 tRead))) at the inference time t (drift.tSeconds).
   */
  read?: { sigma: number; flickerQs?: number; tReadSeconds?: number };
  /**
   * Conductance drift g(t) = g_P (t/t0)^-nu for t > t0, with a per-device exponent
   * nu ~ N(nu, nuSigma) clipped at 0; tSeconds is the inference time (default 3600 s).
   * `compensate`: global drift compensation, one digital output scale per crossbar.
   */
  drift?: { nu: number; t0Seconds: number; compensate: boolean; nuSigma?: number; tSeconds?: number };
  /** Gaussian output noise per MVM and column, sigma relative to the ADC full scale. */
  output?: { sigma: number };
  /** Fractions of devices stuck at gMin / gMax (each device independently). */
  faults?: { stuckAtGMin: number; stuckAtGMax: number };
  /** IR drop: resistance of one wire segment between neighbouring cells (word and bit lines), in ohms. */
  irDrop?: { wireOhms: number };
  /**
   * DAC non-idealities: a static offset per row (sigma relative to full scale) and a
   * compressive (nonlinearity > 0) or expansive (< 0) transfer curve that keeps 0 and full scale.
   */
  dac?: { offsetSigma: number; nonlinearity: number };
  /** ADC non-idealities: static offset per column (relative to full scale) and transfer curve, as for the DAC. */
  adc?: { offsetSigma: number; nonlinearity: number };
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
  /**
   * Path of a plugin module (JavaScript ESM) relative to the target file, or absolute: extra
   * instructions and lowering hooks (src/target/plugin.ts, docs/TARGETS.md). Absent for
   * plain JSON targets.
   */
  plugin?: string;
  /** Where it was loaded from and a hash of its canonical JSON (recorded in programs). */
  source: { file: string; sha256: string };
}

/** Signed integer weight levels available per cell: L in q ∈ [-L, L]; null for float numerics. */
export function maxWeightLevel(t: Target): number | null {
  const n = t.crossbar.numerics;
  return n.kind === "quantized" ? n.deviceLevels - 1 : null;
}

/** Device pairs per weight the target's compiler uses unless told otherwise (numerics.weightSlices). */
export function defaultWeightSlices(t: Target): number {
  const n = t.crossbar.numerics;
  return n.kind === "quantized" ? (n.weightSlices ?? 1) : 1;
}

export function totalCrossbars(t: Target): number {
  return t.tiles.count === "unlimited" ? Number.POSITIVE_INFINITY : t.tiles.count * t.tiles.crossbarsPerTile;
}
