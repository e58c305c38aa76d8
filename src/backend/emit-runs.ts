// Splitting index ranges, the two ways the emitter needs: into chunks an instruction's
// 16-bit `len` field can hold, and into maximal runs that one instruction can cover.

import { MAX_LEN } from "./isa.js";

/** [0, len) in chunks of at most MAX_LEN elements: vector ops longer than a len field are split. */
export function lengthChunks(len: number): [offset: number, n: number][] {
  const out: [number, number][] = [];
  for (let o = 0; o < len; o += MAX_LEN) out.push([o, Math.min(MAX_LEN, len - o)]);
  return out;
}

/**
 * [0, length) split into maximal runs: element k (k > 0) joins the run that starts at
 * `start` while `continues(k, start)` holds, otherwise it starts the next run.
 */
export function maximalRuns(length: number, continues: (k: number, start: number) => boolean): [start: number, length: number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (let k = 1; k <= length; k++) {
    if (k < length && continues(k, start)) continue;
    out.push([start, k - start]);
    start = k;
  }
  return out;
}

/** Maximal runs of consecutive values in an ascending list: [index, first value, length]. */
export function consecutiveRuns(sorted: readonly number[]): [index: number, first: number, length: number][] {
  return maximalRuns(sorted.length, (k) => sorted[k] === sorted[k - 1]! + 1).map(([k, n]) => [k, sorted[k]!, n]);
}

/** Maximal runs of equal flags: [start, length, flag]. */
export function flagRuns(flags: Uint8Array): [start: number, length: number, flag: boolean][] {
  return maximalRuns(flags.length, (k, start) => flags[k] === flags[start]).map(([start, n]) => [start, n, flags[start] === 1]);
}
