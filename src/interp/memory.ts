// Local and global memory of the simulated chip. Storage has the vector unit's precision, so
// every store into memory rounds exactly like the hardware datapath (float32 by default).

import type { Program } from "../backend/program.js";
import type { Target } from "../target/types.js";

export type Memory = Float32Array | Float64Array;

export interface Precision {
  /** Rounds one intermediate result to the datapath precision. */
  round: (x: number) => number;
  alloc: (words: number) => Memory;
}

const identity = (x: number): number => x;

export function precisionOf(target: Target): Precision {
  return target.vector.precision === "float64"
    ? { round: identity, alloc: (n) => new Float64Array(n) }
    : { round: Math.fround, alloc: (n) => new Float32Array(n) };
}

/** Per-sequence machine memory: every tile's scratchpad plus the chip's global memory. */
export class MachineMemory {
  readonly tiles: Memory[];
  readonly global: Memory;

  constructor(
    private readonly program: Program,
    precision: Precision,
    /** Tile memories allocated elsewhere (the WebAssembly kernel's arena), in the datapath precision. */
    tiles?: Memory[],
  ) {
    this.tiles = tiles ?? program.tiles.map((t) => precision.alloc(t.memoryWords));
    this.global = precision.alloc(program.io.globalWords);
  }

  /** State reset at the start of every sequence: zeros, then each tile's constants. */
  reset(): void {
    this.global.fill(0);
    this.program.tiles.forEach((tile, i) => {
      const mem = this.tiles[i]!;
      mem.fill(0);
      for (const c of tile.constants) mem.set(c.data, c.addr);
    });
  }
}
