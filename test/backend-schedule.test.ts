import { describe, expect, test } from "@jest/globals";
import { allocateTile, type Buffer } from "../src/backend/allocate.js";
import { formatFloat32 } from "../src/backend/asm.js";
import { assignCrossbarTiles, orderSection, placeOps, piecesByMatmul } from "../src/backend/schedule.js";
import type { CrossbarPlan, Piece } from "../src/ir/plan.js";
import type { Model, Op } from "../src/ir/types.js";
import { loadTarget } from "../src/target/load.js";
import type { Target } from "../src/target/types.js";
import { makeRng } from "./helpers/random-models.js";

function buffer(id: number, len: number, first: number, last: number, pinned = false): Buffer {
  return { id, tile: 0, len, pinned, first, last, addr: -1 };
}

describe("allocateTile", () => {
  test("pinned buffers come first and never share words", () => {
    const bufs = [buffer(0, 4, 0, 1, true), buffer(1, 3, 0, 0), buffer(2, 2, 5, 9, true)];
    const top = allocateTile(bufs);
    expect(bufs.map((b) => b.addr)).toEqual([0, 6, 4]);
    expect(top).toBe(9);
  });

  test("a buffer reuses words only after the previous owner's last use", () => {
    const a = buffer(0, 8, 0, 3);
    const b = buffer(1, 8, 3, 6); // starts where a ends: must not overlap (same instruction)
    const c = buffer(2, 8, 7, 9); // a and b are dead: reuses a's words
    const top = allocateTile([a, b, c]);
    expect(b.addr).not.toBe(a.addr);
    expect(c.addr).toBe(a.addr);
    expect(top).toBe(16);
  });

  test("freed neighbours merge so a larger buffer fits", () => {
    const a = buffer(0, 4, 0, 1);
    const b = buffer(1, 4, 0, 1);
    const keep = buffer(2, 4, 0, 10);
    const big = buffer(3, 8, 2, 3);
    allocateTile([a, b, keep, big]);
    expect(big.addr).toBe(0);
  });

  test("random intervals: live buffers never overlap", () => {
    const rng = makeRng(42);
    for (let round = 0; round < 50; round++) {
      const bufs: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        const first = rng.int(0, 60);
        bufs.push(buffer(i, rng.int(1, 12), first, first + rng.int(0, 15), rng.next() < 0.1));
      }
      const top = allocateTile(bufs);
      for (const x of bufs) {
        expect(x.addr + x.len).toBeLessThanOrEqual(top);
        for (const y of bufs) {
          if (x === y) continue;
          const timeOverlap = x.pinned || y.pinned || (x.first <= y.last && y.first <= x.last);
          const spaceOverlap = x.addr < y.addr + y.len && y.addr < x.addr + x.len;
          expect(timeOverlap && spaceOverlap).toBe(false);
        }
      }
      // Reuse happens: the arena is smaller than the sum of all buffers.
      expect(top).toBeLessThan(bufs.reduce((n, b) => n + b.len, 0));
    }
  });
});

const piece = (op: string, rowStart = 0, colStart = 0): Piece => ({ op, section: "step", rowStart, colStart, inRows: [0], outCols: [0] });

function twoMatmulModel(): Model {
  const w = { rows: 1, cols: 1, blocks: [{ row: 0, col: 0, rows: 1, cols: 1, data: [1] }] };
  const step: Op[] = [
    { op: "state_read", out: "old", state: "s" },
    { op: "matmul", out: "a", xs: ["u"], origin: "dense", weight: w },
    { op: "matmul", out: "b", xs: ["a"], origin: "dense", weight: w },
    { op: "add", out: "c", a: "b", b: "old" },
    { op: "state_write", out: "w", state: "s", x: "c" },
    { op: "relu", out: "d", x: "old" },
    { op: "matmul", out: "e", xs: ["d"], origin: "dense", weight: w },
  ];
  return { irVersion: 1, name: "two", level: "lowered", inputs: [{ name: "u", size: 1 }], outputs: [{ name: "y", value: "d", section: "step" }], state: [{ name: "s", size: 1 }], sections: { step, final: [] } };
}

function withTiles(count: number | "unlimited", perTile: number): Target {
  const t = structuredClone(loadTarget("ideal"));
  t.tiles.count = count;
  t.tiles.crossbarsPerTile = perTile;
  return t;
}

describe("scheduling", () => {
  test("state writes move to the end of their section, other ops keep their order", () => {
    const ops = twoMatmulModel().sections.step;
    expect(orderSection(ops).map((o) => o.out)).toEqual(["old", "a", "b", "c", "d", "e", "w"]);
  });

  test("a matmul's crossbars stay on one tile when they fit", () => {
    const plan: CrossbarPlan = {
      rows: 64,
      cols: 64,
      lowerBound: 0,
      perMatrix: [],
      crossbars: [0, 1, 2].map((id) => ({ id, pieces: [piece("a")] })).concat([3, 4, 5].map((id) => ({ id, pieces: [piece("b")] }))),
    };
    const tiles = assignCrossbarTiles(plan, twoMatmulModel(), withTiles("unlimited", 4));
    expect([...tiles.entries()]).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 1],
      [4, 1],
      [5, 1],
    ]);
    // With only two tiles of 3 crossbars each nothing is skipped; with 2 tiles of 4 the
    // second group still fits a fresh tile.
    expect([...assignCrossbarTiles(plan, twoMatmulModel(), withTiles(2, 3)).values()]).toEqual([0, 0, 0, 1, 1, 1]);
    expect([...assignCrossbarTiles(plan, twoMatmulModel(), withTiles(2, 4)).values()]).toEqual([0, 0, 0, 1, 1, 1]);
    expect(() => assignCrossbarTiles(plan, twoMatmulModel(), withTiles(1, 4))).toThrow(/needs 6 crossbars but target 'ideal' has 4/);
  });

  test("a group larger than a tile, or a skip the tile count cannot afford, packs densely", () => {
    const crossbars = (op: string, ids: number[]) => ids.map((id) => ({ id, pieces: [piece(op)] }));
    const big: CrossbarPlan = { rows: 64, cols: 64, lowerBound: 0, perMatrix: [], crossbars: [...crossbars("a", [0, 1, 2]), ...crossbars("b", [3, 4, 5, 6, 7])] };
    expect([...assignCrossbarTiles(big, twoMatmulModel(), withTiles(2, 4)).values()]).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const three: CrossbarPlan = { rows: 64, cols: 64, lowerBound: 0, perMatrix: [], crossbars: [...crossbars("a", [0, 1, 2]), ...crossbars("b", [3, 4]), ...crossbars("e", [5, 6, 7])] };
    expect([...assignCrossbarTiles(three, twoMatmulModel(), withTiles(2, 4)).values()]).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect([...assignCrossbarTiles(three, twoMatmulModel(), withTiles(3, 4)).values()]).toEqual([0, 0, 0, 1, 1, 2, 2, 2]);
  });

  test("ops follow their matmul's tile; the state lives where its next value is computed", () => {
    const model = twoMatmulModel();
    const plan: CrossbarPlan = { rows: 64, cols: 64, lowerBound: 0, perMatrix: [], crossbars: [{ id: 0, pieces: [piece("a")] }, { id: 1, pieces: [piece("b")] }] };
    const tiles = assignCrossbarTiles(plan, model, withTiles("unlimited", 1));
    const placement = placeOps(model, piecesByMatmul(plan, tiles));
    expect(placement.opTile.get("step:a")).toBe(0);
    expect(placement.opTile.get("step:b")).toBe(1);
    expect(placement.opTile.get("step:c")).toBe(1);
    expect(placement.stateTile.get("s")).toBe(1);
    expect(placement.opTile.get("step:old")).toBe(1);
    expect(placement.opTile.get("step:d")).toBe(1);
  });
});

describe("formatFloat32", () => {
  test("prints the shortest decimal that reads back as the same float32", () => {
    expect(formatFloat32(Math.fround(1e-5))).toBe("0.00001");
    expect(formatFloat32(Math.fround(0.1))).toBe("0.1");
    expect(formatFloat32(0.5)).toBe("0.5");
    expect(formatFloat32(Math.fround(1 / 3))).toBe("0.33333334");
    expect(Math.fround(Number(formatFloat32(Math.fround(Math.PI))))).toBe(Math.fround(Math.PI));
  });
});
