// The swept parameter of imssa-sweep: --param <key>=<start>:<stop>:<step> (stop included)
// or --param <key>=<v1>,<v2>,... with a noise key of src/noise/parse.ts.

import { UserError } from "../common/errors.js";
import { parseFiniteNumber, resolveNoiseKey, setNoiseParam } from "../noise/parse.js";
import { noiseOff } from "../noise/spec.js";

/** More points than any plot can show; guards against a step typo (0.0001 for 0.01). */
export const MAX_POINTS = 1000;

export interface ParamGrid {
  /** Canonical noise key ("programming.scale"). */
  key: string;
  values: number[];
}

/** start + i*step, rounded to 12 significant digits so 0.1 steps print as 0.3, not 0.30000000000000004. */
function gridValues(start: number, stop: number, step: number, flag: string): number[] {
  if (step === 0) throw new UserError("usage", `${flag}: the step must not be 0`);
  if ((stop - start) * step < 0) throw new UserError("usage", `${flag}: a step of ${step} never gets from ${start} to ${stop}`);
  // The tiny slack keeps the stop value when (stop - start) / step is an integer up to rounding.
  const n = Math.floor((stop - start) / step + 1e-9) + 1;
  if (n > MAX_POINTS) throw new UserError("usage", `${flag}: ${n} values, more than ${MAX_POINTS}; use a larger step`);
  return Array.from({ length: n }, (_, i) => Number((start + i * step).toPrecision(12)));
}

export function parseParamGrid(text: string, flag = "--param"): ParamGrid {
  const eq = text.indexOf("=");
  if (eq < 0) throw new UserError("usage", `${flag}: expected <name>=<start>:<stop>:<step> or <name>=<v1>,<v2>,..., got "${text}"`);
  const k = resolveNoiseKey(text.slice(0, eq).trim(), flag);
  if (k.boolean) throw new UserError("usage", `${flag}: ${k.name} is a switch (true/false); sweep a numeric parameter and set it with --noise`);
  const spec = text.slice(eq + 1).trim();
  let values: number[];
  if (spec.includes(":")) {
    const parts = spec.split(":");
    if (parts.length !== 3) throw new UserError("usage", `${flag}: expected <start>:<stop>:<step>, got "${spec}"`);
    const [start, stop, step] = parts.map((p) => parseFiniteNumber(p, `${flag} ${k.name}`)) as [number, number, number];
    values = gridValues(start, stop, step, flag);
  } else {
    values = spec.split(",").map((p) => parseFiniteNumber(p, `${flag} ${k.name}`));
    if (values.length > MAX_POINTS) throw new UserError("usage", `${flag}: ${values.length} values, more than ${MAX_POINTS}`);
  }
  // Range-check every value the way --noise would.
  const probe = noiseOff();
  for (const v of values) setNoiseParam(probe, k.name, String(v), flag);
  return { key: k.name, values };
}
