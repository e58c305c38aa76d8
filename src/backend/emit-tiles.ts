// The last step of emission: per tile, give the buffers addresses (allocate.ts), collect the
// constant segments written at every sequence start, and patch the addresses into the
// recorded instructions, checking that every field fits its encoding.

import { fail } from "../common/errors.js";
import type { Target } from "../target/types.js";
import { allocateTile } from "./allocate.js";
import { fieldRangeError, MAX_LOCAL_ADDRESS, type Instr } from "./isa.js";
import { SECTION_NAMES, type Section, type SectionName, type TileProgram } from "./program.js";
import type { InstrStreams, PendingInstr } from "./streams.js";

export function assembleTiles(streams: InstrStreams, target: Target): TileProgram[] {
  const memoryLimit = Math.min(target.tiles.memoryWords, MAX_LOCAL_ADDRESS + 1);
  const maxTiles = target.tiles.count === "unlimited" ? Number.POSITIVE_INFINITY : target.tiles.count;
  if (streams.tileCount() > maxTiles) fail("resource", `the program needs ${streams.tileCount()} tiles but target '${target.name}' has ${maxTiles}`);
  const tiles: TileProgram[] = [];
  for (let t = 0; t < streams.tileCount(); t++) {
    const used = allocateTile(streams.buffers[t]!);
    if (used > memoryLimit)
      fail("resource", `tile ${t} needs ${used} words of local memory but target '${target.name}' has ${memoryLimit}; use a target with more memory or more tiles`);
    const constants = constantSegments(streams, t);
    const sections = {} as Record<SectionName, Section>;
    for (const name of SECTION_NAMES) sections[name] = patchSection(streams, t, name);
    tiles.push({ memoryWords: used, constants, sections });
  }
  return tiles;
}

/** The tile's constant buffers with their data, and its zero block as zeros. */
function constantSegments(streams: InstrStreams, tile: number): TileProgram["constants"] {
  const constants: TileProgram["constants"] = [];
  for (const b of streams.buffers[tile]!) {
    const data = streams.constantData.get(b) ?? (streams.isZeroBlock(b) ? new Float32Array(b.len) : null);
    if (data && data.length > 0) constants.push({ addr: b.addr, data });
  }
  return constants;
}

/** One section of one tile with buffer offsets replaced by addresses. */
function patchSection(streams: InstrStreams, tile: number, name: SectionName): Section {
  const code: Instr[] = [];
  const symbols: number[] = [];
  const pending = streams.code[tile]![name];
  for (const p of pending) {
    const ins = patched(p);
    const err = fieldRangeError(ins);
    if (err) fail("resource", `tile ${tile} ${name} section (${streams.symbols.names[p.symbol]}): ${err}`);
    code.push(ins);
    symbols.push(p.symbol);
  }
  // Step delays only where some instruction has one (software-pipeline.ts).
  return pending.some((p) => (p.delay ?? 0) !== 0) ? { code, symbols, delays: pending.map((p) => p.delay ?? 0) } : { code, symbols };
}

function patched(p: PendingInstr): Instr {
  const ins = { ...p.ins } as Instr;
  for (const [field, ref] of p.patches) (ins as unknown as Record<string, number>)[field] = ref.buf.addr + ref.off;
  return ins;
}
