// Tile-local memory allocation. The emitter names memory by buffers; this module gives each
// buffer an address. Pinned buffers (constants, states, values that must survive into a
// later section) get fixed addresses first and are never shared. Every other buffer lives
// from its first to its last use in the tile's instruction stream (sections concatenated in
// run order) and may reuse the words of buffers whose life ended strictly before (a
// producer never writes over an operand of the same instruction).

export interface Buffer {
  readonly id: number;
  readonly tile: number;
  /** Words; may grow until allocation (e.g. a shared zero block). */
  len: number;
  pinned: boolean;
  /** Instruction positions of the first and last use on its tile; Infinity / -1 while unused. */
  first: number;
  last: number;
  /** Assigned by allocateTile. */
  addr: number;
}

interface FreeBlock {
  addr: number;
  len: number;
}

function takeFirstFit(free: FreeBlock[], len: number): number | null {
  for (let i = 0; i < free.length; i++) {
    const b = free[i]!;
    if (b.len < len) continue;
    const addr = b.addr;
    if (b.len === len) free.splice(i, 1);
    else free[i] = { addr: b.addr + len, len: b.len - len };
    return addr;
  }
  return null;
}

function release(free: FreeBlock[], addr: number, len: number): void {
  let i = free.findIndex((f) => f.addr > addr);
  if (i < 0) i = free.length;
  free.splice(i, 0, { addr, len });
  // Merge with neighbours so a large buffer can reuse what several small ones freed.
  const next = free[i + 1];
  if (next && addr + len === next.addr) free.splice(i, 2, { addr, len: len + next.len });
  const prev = free[i - 1];
  const cur = free[i]!;
  if (prev && prev.addr + prev.len === cur.addr) free.splice(i - 1, 2, { addr: prev.addr, len: prev.len + cur.len });
}

/**
 * Assigns addresses to the buffers of one tile (in place) and returns the words used
 * (highest address + 1). Unused, unpinned buffers get no memory.
 */
export function allocateTile(buffers: readonly Buffer[]): number {
  let top = 0;
  for (const b of buffers) {
    if (!b.pinned) continue;
    b.addr = top;
    top += b.len;
  }
  const temps = buffers.filter((b) => !b.pinned && b.last >= 0).sort((a, b) => a.first - b.first || a.id - b.id);
  const free: FreeBlock[] = [];
  // Live buffers ordered by end of life, so expiring them is a prefix scan.
  const live: Buffer[] = [];
  for (const b of temps) {
    while (live.length > 0 && live[0]!.last < b.first) {
      const done = live.shift()!;
      release(free, done.addr, done.len);
    }
    let addr = takeFirstFit(free, b.len);
    if (addr === null) {
      // Grow the arena; a free block at the very top can be extended instead of wasted.
      const tail = free.length > 0 ? free[free.length - 1]! : null;
      if (tail && tail.addr + tail.len === top) {
        free.pop();
        addr = tail.addr;
        top = tail.addr + b.len;
      } else {
        addr = top;
        top += b.len;
      }
    }
    b.addr = addr;
    let i = 0;
    while (i < live.length && live[i]!.last <= b.last) i++;
    live.splice(i, 0, b);
  }
  return top;
}
