// The residual recurrence form (src/passes/residual.ts) in the fused state layout
// (src/backend/emit-recurrence.ts): the state's add of increment and previous state runs in
// place on every channel-group tile, with no transfer of the state, and computes exactly
// what the plain layout (state gathered to one tile for the add) computes.

import { describe, expect, test } from "@jest/globals";
import { emitProgram } from "../src/backend/emit.js";
import type { Program } from "../src/backend/program.js";
import { runProgram } from "../src/interp/run.js";
import type { Model } from "../src/ir/types.js";
import { compile } from "../src/pipeline.js";
import { loadTarget } from "../src/target/load.js";
import { digitsSizeModel } from "./helpers/random-models.js";

/** The residual adds of a quantized model: add(slice of a residual matmul, state_read) written to the state. */
function stateAdds(m: Model): { out: string; size: number }[] {
  const step = m.sections.step;
  const reads = new Map(step.flatMap((o) => (o.op === "state_read" ? [[o.out, o.state] as const] : [])));
  const increment = (name: string): boolean =>
    step.some((s) => s.op === "slice" && s.out === name && step.some((mm) => mm.op === "matmul" && mm.out === s.x && mm.residual !== undefined));
  return step.flatMap((o) => {
    if (o.op !== "add" || !step.some((w) => w.op === "state_write" && w.x === o.out) || !increment(o.a)) return [];
    const st = reads.get(o.b);
    return st === undefined ? [] : [{ out: o.out, size: m.state.find((s) => s.name === st)!.size }];
  });
}

/** Step instructions (tile, opcode, length) attributed to op `out`. */
function instructionsOf(p: Program, out: string): { tile: number; op: string; len: number }[] {
  const tag = `(${out}: add)`;
  return p.tiles.flatMap((t, tile) =>
    t.sections.step.code.flatMap((ins, k) => (p.symbols[t.sections.step.symbols[k]!]!.endsWith(tag) ? [{ tile, op: ins.op, len: "len" in ins ? Number(ins.len) : 0 }] : [])),
  );
}

describe("residual recurrence in the fused state layout (xbar64)", () => {
  const target = loadTarget("xbar64");
  // Two S4D layers of 8 channels x 16 modes: each recurrence spreads over several tiles.
  const model = digitsSizeModel(5, 8, 16, 2);
  const { quantized, plan, program } = compile(model, target, { recurrence: "residual" });
  const plain = emitProgram(quantized, plan, target, { fuseStates: false });
  const adds = stateAdds(quantized);

  test("the state add is one in-place vadd per run of state slots, on the state's tiles, with no transfer", () => {
    expect(adds).toHaveLength(2);
    for (const { out, size } of adds) {
      const fused = instructionsOf(program, out);
      expect(fused.every((i) => i.op === "vadd")).toBe(true);
      // Every state word is added exactly once, where it lives (more than one tile).
      expect(fused.reduce((n, i) => n + i.len, 0)).toBe(size);
      expect(new Set(fused.map((i) => i.tile)).size).toBeGreaterThan(1);
      // The plain layout gathers the distributed increment for the add: the check above can fail.
      expect(instructionsOf(plain, out).some((i) => i.op === "send" || i.op === "recv")).toBe(true);
    }
  });

  test("outputs are bit-identical to the plain layout's", () => {
    const T = 7;
    const x = Float32Array.from({ length: T }, (_, t) => Math.sin(0.9 * t + 0.2));
    const a = runProgram(program, x, [1, T, 1]);
    const b = runProgram(plain, x, [1, T, 1]);
    expect(a.final ?? a.step).toBeDefined();
    expect(Array.from(a.step ?? [])).toEqual(Array.from(b.step ?? []));
    expect(Array.from(a.final ?? [])).toEqual(Array.from(b.final ?? []));
  });
});
