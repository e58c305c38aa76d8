// Crossbar images share program-wide buffers (src/backend/images.ts) and encodeProgram moves
// the payload inside the builder's buffer instead of copying it (src/backend/container.ts):
// both must stay invisible to users of the program and of the bytes.

import { describe, expect, test } from "@jest/globals";
import { decodeProgram, encodeProgram, TRAILER_BYTES } from "../src/backend/container.js";
import { crc32 } from "../src/backend/checksum.js";
import { compileDslSource } from "../src/frontend/dsl/index.js";
import { compile } from "../src/pipeline.js";
import type { Program } from "../src/backend/program.js";
import { loadTarget } from "../src/target/load.js";

describe("crossbar image storage and in-place encoding", () => {
  // Small enough to compile fast, large enough for many crossbars (the S4D matrix alone has
  // 32 x 32 + 32 rows). One compile per target, shared by the tests; the first test writes
  // into its program, which the encoding test does not mind.
  const model = compileDslSource(
    "model storage { input u[1]; output y; params init seed 3; linear(32); s4d(N = 64, discretization = zoh, dt_min = 0.001, dt_max = 0.1, init = lin); gelu; linear(8); }",
    "<images storage test>",
  );
  const programs = new Map<string, Program>();
  const programFor = (name: string): Program => {
    let p = programs.get(name);
    if (!p) programs.set(name, (p = compile(model, loadTarget(name)).program));
    return p;
  };

  for (const targetName of ["xbar64", "ideal"]) {
    test(`${targetName}: every image array is its own region, and writing one leaves the others alone`, () => {
      const program = programFor(targetName);
      const arrays = program.crossbars.flatMap((x) => [x.weights.kind === "levels" ? x.weights.levels : x.weights.values, x.inRange, x.colScale, x.outRange]);
      expect(program.crossbars.length).toBeGreaterThan(1);
      for (const x of program.crossbars) {
        const w = x.weights.kind === "levels" ? x.weights.levels : x.weights.values;
        expect(w.length).toBe(x.rows * x.cols);
        expect([x.inRange.length, x.colScale.length, x.outRange.length]).toEqual([x.rows, x.cols, x.cols]);
      }
      // Byte ranges of views on one buffer must not overlap.
      const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
      for (const a of arrays) byBuffer.set(a.buffer, [...(byBuffer.get(a.buffer) ?? []), [a.byteOffset, a.byteOffset + a.byteLength]]);
      for (const ranges of byBuffer.values()) {
        ranges.sort((p, q) => p[0] - q[0]);
        for (let k = 1; k < ranges.length; k++) expect(ranges[k]![0]).toBeGreaterThanOrEqual(ranges[k - 1]![1]);
      }
      // A write through one image's array shows in no other image.
      const before = arrays.map((a) => Array.from(a));
      const first = program.crossbars[0]!;
      const w0 = first.weights.kind === "levels" ? first.weights.levels : first.weights.values;
      const last = w0.length - 1;
      w0[last] = w0[last] === 3 ? 2 : 3;
      first.outRange[first.cols - 1] = 12345;
      arrays.forEach((a, k) => {
        if (a === w0 || a === first.outRange) return;
        expect(Array.from(a)).toEqual(before[k]);
      });
    });
  }

  test("encoded bytes start 8-byte aligned, end with a valid trailer and decode to the program", () => {
    const program = programFor("xbar64");
    const bytes = encodeProgram(program);
    expect(bytes.byteOffset % 8).toBe(0);
    const n = bytes.length - TRAILER_BYTES;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(view.getUint32(n, true)).toBe(n);
    expect(view.getUint32(n + 4, true)).toBe(crc32(bytes.subarray(0, n)));
    expect(Buffer.from(bytes.subarray(n + 8)).toString("latin1")).toBe("IMSX");
    const back = decodeProgram(bytes, "storage.xbin");
    expect(back.crossbars.map((x) => Array.from(x.weights.kind === "levels" ? x.weights.levels : x.weights.values))).toEqual(
      program.crossbars.map((x) => Array.from(x.weights.kind === "levels" ? x.weights.levels : x.weights.values)),
    );
  });
});
