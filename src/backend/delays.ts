// Step delays (docs/ISA.md "Step delays"): queries the verifier, the interpreter and the
// listing share, so they read the program's delays one way.

import type { IoBuffer, Program, Section } from "./program.js";

/** The delay of instruction `i` of `section` (0 when the section stores none). */
export const delayAt = (section: Section, i: number): number => section.delays?.[i] ?? 0;

/** D: the largest step delay of the program (0: every instruction runs in the round of its step). */
export function maxDelay(p: Program): number {
  let d = 0;
  for (const t of p.tiles) for (const x of t.sections.step.delays ?? []) if (x > d) d = x;
  return d;
}

/** Rounds of a sequence of `steps` program steps: T + D. */
export const roundsOf = (p: Program, steps: number): number => steps + maxDelay(p);

/**
 * The delays an instruction may have to run in round `r` of `steps` rounds: [lo, hi]. All of
 * them in the steady rounds D .. T-1, fewer in the first D (prologue) and last D (drain).
 */
export function activeDelays(r: number, steps: number, d: number): [lo: number, hi: number] {
  return [Math.max(0, r - steps + 1), Math.min(r, d)];
}

/** Per step-output buffer (Program.io.stepOutputs order): the delay of the stores that write it (0 without stores). */
export function outputDelays(p: Program): number[] {
  return p.io.stepOutputs.map((b) => storeDelays(p, b)[0] ?? 0);
}

/** The distinct delays of the step-section stores overlapping buffer `b`. */
export function storeDelays(p: Program, b: IoBuffer): number[] {
  const seen = new Set<number>();
  for (const t of p.tiles)
    t.sections.step.code.forEach((ins, i) => {
      if (ins.op === "store" && ins.global < b.addr + b.size && b.addr < ins.global + ins.len) seen.add(delayAt(t.sections.step, i));
    });
  return [...seen].sort((a, b) => a - b);
}
