// Range calibration for the crossbar DACs and ADCs: runs the float reference evaluator over
// calibration sequences and records, per matmul, the largest input magnitude (over all rows:
// one DAC range per matmul) and the largest pre-bias output magnitude per column (the ADC
// reads the analog sum; biases are added digitally afterwards).
//
// Statistic: the absolute maximum, not a percentile. Calibration sets are small (the default
// is 512 steps), where a high percentile is a noisy estimate of the tail, and the test
// contract is that the recorded ranges cover the calibration data; quantize adds a margin.
//
// Without user data the default distribution is DEFAULT_SEQUENCES sequences of
// DEFAULT_STEPS steps with every input element drawn i.i.d. from N(0, 1), seeded with
// DEFAULT_SEED, so a compile is reproducible.

import { UserError, assert } from "../common/errors.js";
import { Rng } from "../common/rng.js";
import { ReferenceEvaluator, evaluateSequenceWith } from "../reference/evaluate.js";
import type { MatMulOp, Model, OutputDecl } from "../ir/types.js";

// Hot loops call these per weight/value; a module-level binding avoids a global `Math`
// lookup per call, which is slow inside vm contexts (jest runs tests in one).
const { abs } = Math;

export const DEFAULT_SEQUENCES = 8;
export const DEFAULT_STEPS = 64;
export const DEFAULT_SEED = 20240607;

export type Section = "step" | "final";

export interface MatmulRanges {
  /** max |x_i| over all rows and all calibration steps. */
  inAbsMax: number;
  /** Per column: max |y_j - bias_j| over all calibration steps. */
  outAbsMax: Float64Array;
}

export interface CalibrationResult {
  source: "inputs" | "default";
  /** Keyed by matmulKey(section, out). */
  ranges: Map<string, MatmulRanges>;
}

export function matmulKey(section: Section, out: string): string {
  return `${section}:${out}`;
}

/** The documented default calibration set: seeded N(0, 1) inputs. */
export function defaultCalibration(model: Model): Record<string, Float64Array[]>[] {
  const seqs: Record<string, Float64Array[]>[] = [];
  for (let s = 0; s < DEFAULT_SEQUENCES; s++) {
    const rng = Rng.forName(DEFAULT_SEED, `calibration/${s}`);
    const rec: Record<string, Float64Array[]> = {};
    for (const inp of model.inputs) {
      rec[inp.name] = Array.from({ length: DEFAULT_STEPS }, () => Float64Array.from({ length: inp.size }, () => rng.normal()));
    }
    seqs.push(rec);
  }
  return seqs;
}

interface Probe {
  op: MatMulOp;
  ranges: MatmulRanges;
  /** For final-section matmuls: output names that expose the operands and the result. */
  xsOutputs: string[];
  outOutput: string;
}

function absMaxInto(v: Float64Array, current: number): number {
  let m = current;
  for (let i = 0; i < v.length; i++) {
    const a = abs(v[i]);
    if (a > m) m = a;
  }
  return m;
}

function observe(p: Probe, xs: Float64Array[], y: Float64Array): void {
  for (const x of xs) p.ranges.inAbsMax = absMaxInto(x, p.ranges.inAbsMax);
  const bias = p.op.bias;
  const out = p.ranges.outAbsMax;
  for (let j = 0; j < y.length; j++) {
    const a = abs(bias ? y[j] - bias[j] : y[j]);
    if (a > out[j]) out[j] = a;
  }
}

/**
 * Abs-max ranges of every matmul's inputs and outputs over the calibration sequences (or the
 * default distribution when `sequences` is null).
 */
export function calibrate(model: Model, sequences: Record<string, Float64Array[]>[] | null): CalibrationResult {
  if (sequences !== null && sequences.length === 0) {
    throw new UserError("usage", "the calibration data holds no sequences", { file: model.name });
  }
  const source = sequences === null ? "default" : "inputs";
  const data = sequences ?? defaultCalibration(model);

  // Final-section values are only visible as outputs, so probe them with extra outputs.
  const taken = new Set(model.outputs.map((o) => o.name));
  const fresh = (base: string): string => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}.${k}`;
    taken.add(n);
    return n;
  };
  const extraOutputs: OutputDecl[] = [];
  const stepProbes: Probe[] = [];
  const finalProbes: Probe[] = [];
  const ranges = new Map<string, MatmulRanges>();
  for (const section of ["step", "final"] as const) {
    for (const op of model.sections[section]) {
      if (op.op !== "matmul") continue;
      const r: MatmulRanges = { inAbsMax: 0, outAbsMax: new Float64Array(op.weight.cols) };
      ranges.set(matmulKey(section, op.out), r);
      const probe: Probe = { op, ranges: r, xsOutputs: [], outOutput: "" };
      if (section === "final") {
        probe.xsOutputs = op.xs.map((x) => {
          const name = fresh(`calibrate.${op.out}.in.${x}`);
          extraOutputs.push({ name, value: x, section: "final" });
          return name;
        });
        probe.outOutput = fresh(`calibrate.${op.out}.out`);
        extraOutputs.push({ name: probe.outOutput, value: op.out, section: "final" });
        finalProbes.push(probe);
      } else {
        stepProbes.push(probe);
      }
    }
  }

  const ev = new ReferenceEvaluator({ ...model, outputs: [...model.outputs, ...extraOutputs] });
  // The evaluator's live buffers, read after every step (a snapshot of every step value per
  // step would copy the whole network's activations).
  const live = (name: string): Float64Array => {
    const v = ev.liveStepValue(name);
    assert(v !== undefined, `calibration probe: no step value "${name}"`);
    return v;
  };
  const stepReads = stepProbes.map((p) => ({ probe: p, xs: p.op.xs.map(live), y: live(p.op.out) }));
  const onStepLive =
    stepReads.length === 0
      ? undefined
      : (): void => {
          for (const r of stepReads) observe(r.probe, r.xs, r.y);
        };
  for (const seq of data) {
    const res = evaluateSequenceWith(ev, seq, onStepLive === undefined ? {} : { onStepLive });
    for (const p of finalProbes) {
      observe(
        p,
        p.xsOutputs.map((n) => res.final[n]!),
        res.final[p.outOutput]!,
      );
    }
  }
  return { source, ranges };
}
