// Every single-bit flip of a .xbin is rejected before execution: exhaustively, over every bit
// of the shipped sample and of a freshly compiled small program. The container's CRC-32
// trailer covers the payload (a CRC detects every 1-bit error) and the trailer's own fields
// (length, CRC, magic) are checked against the payload, so no flip may decode at all.

import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeProgram } from "../src/backend/container.js";
import { isUserError } from "../src/common/errors.js";
import { freshProgramBytes, ROOT } from "./fuzz/lib.js";

/** Bits whose flip decodes without a UserError (should be none), and the messages seen. */
function survivingFlips(bytes: Uint8Array): { survivors: number[]; messages: Set<string> } {
  const survivors: number[] = [];
  const messages = new Set<string>();
  const copy = Uint8Array.from(bytes);
  for (let bit = 0; bit < copy.length * 8; bit++) {
    const at = bit >> 3;
    copy[at]! ^= 1 << (bit & 7);
    try {
      decodeProgram(copy, "flip.xbin");
      survivors.push(bit);
    } catch (e) {
      if (!isUserError(e)) throw e;
      messages.add(e.message.replace(/\d+|0x[0-9a-f]+/g, "#"));
    }
    copy[at]! ^= 1 << (bit & 7);
  }
  return { survivors, messages };
}

describe.each([
  ["test/fixtures/xbin/sample-v1.xbin", () => readFileSync(join(ROOT, "test/fixtures/xbin/sample-v1.xbin"))],
  ["a freshly compiled test/fuzz/small.s4d", freshProgramBytes],
] as const)("%s", (_name, load) => {
  const bytes = new Uint8Array(load());

  test("decodes unmodified", () => {
    expect(decodeProgram(bytes, "ok.xbin").tiles.length).toBeGreaterThan(0);
  });

  test("every single-bit flip is rejected with a format error", () => {
    const { survivors, messages } = survivingFlips(bytes);
    expect(survivors).toEqual([]);
    // Flips in the payload are caught by the checksum, flips in the trailer by its own checks.
    expect([...messages].some((m) => m.includes("checksum mismatch"))).toBe(true);
    expect([...messages].some((m) => m.includes("trailer"))).toBe(true);
  });
});
