// Cross-tile transfers: a send on the source tile paired with a recv on the destination.
// The ISA matches a message by (sending tile, receiving tile, tag) and allows each triple
// once per section, so tags count up per ordered tile pair and section.

import { assert, fail } from "../common/errors.js";
import { lengthChunks } from "./emit-runs.js";
import { MAX_LEN } from "./isa.js";
import { at, type InstrStreams, type Ref } from "./streams.js";

export class Transfers {
  /** Per section and ordered tile pair: the next free tag. */
  private readonly nextTag = new Map<string, number>();

  constructor(private readonly streams: InstrStreams) {}

  /** Copies `len` words from `src` on tile `from` to `dst` on tile `to` (in the current section). */
  send(from: number, src: Ref, to: number, dst: Ref, len: number): void {
    assert(from !== to, "transfer to the same tile");
    for (const [o, n] of lengthChunks(len)) {
      const tag = this.takeTag(from, to);
      this.streams.emit(from, { op: "send", peer: to, src: 0, len: n, tag }, { src: at(src, o) });
      this.streams.emit(to, { op: "recv", peer: from, dst: 0, len: n, tag }, { dst: at(dst, o) });
    }
  }

  private takeTag(from: number, to: number): number {
    const section = this.streams.section;
    const key = `${section}:${from}>${to}`;
    const tag = this.nextTag.get(key) ?? 0;
    if (tag > MAX_LEN) fail("resource", `more than ${MAX_LEN + 1} transfers from tile ${from} to tile ${to} in section ${section}`);
    this.nextTag.set(key, tag + 1);
    return tag;
  }
}
