import { describe, expect, test } from "@jest/globals";
import type { MatMulOp, Model, Op, S4DOp } from "../src/ir/types.js";
import { checkModel } from "../src/ir/validate.js";
import { lower } from "../src/passes/lower.js";
import { spectralRadius2, stabilizeS4DModes } from "../src/passes/quant-s4d.js";
import { quantize } from "../src/passes/quantize.js";
import { quantizeMatrix } from "../src/passes/quant-weights.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { loadTarget } from "../src/target/load.js";
import { digitsSizeModel, makeRng, randomModel, singleS4DModel } from "./helpers/random-models.js";

const xbar = loadTarget("xbar64");
const L = 15; // xbar64: 16-level devices on differential pairs

// Jest runs tests in a vm context where global Math lookups in hot loops are slow.
const { abs, max, sqrt, round, cos, sin, log, hypot } = Math;

// ---- helpers ---------------------------------------------------------------------------

/**
 * Schur-Cohn (Jury) test for z^2 - tr z + det: both roots strictly inside the unit circle
 * iff |det| < 1 and |tr| < 1 + det. Independent of spectralRadius2, so it checks it.
 */
function stable(w: ArrayLike<number>, at = 0): boolean {
  const det = w[at]! * w[at + 3]! - w[at + 1]! * w[at + 2]!;
  const tr = w[at]! + w[at + 3]!;
  return abs(det) < 1 && abs(tr) < 1 + det;
}

function s4dMatmuls(m: Model): Array<{ op: MatMulOp; stateLen: number }> {
  const out: Array<{ op: MatMulOp; stateLen: number }> = [];
  for (const op of m.sections.step) {
    if (op.op !== "matmul" || op.origin !== "s4d") continue;
    const read = m.sections.step.find((o) => o.out === op.xs[0] && o.op === "state_read") as Extract<Op, { op: "state_read" }>;
    out.push({ op, stateLen: m.state.find((s) => s.name === read.state)!.size });
  }
  return out;
}

/** Per mode the 2x2 state block [re->re, re->im, im->re, im->im] (W[in][out]); 4 entries per mode. */
function modeBlocks(w: MatMulOp["weight"], stateLen: number): Float64Array {
  const out = new Float64Array(2 * stateLen);
  for (const b of w.blocks) {
    for (let r = 0; r < b.rows; r++) {
      for (let c = 0; c < b.cols; c++) {
        const row = b.row + r;
        const col = b.col + c;
        if (row >= stateLen || col >= stateLen) continue;
        const v = b.data[r * b.cols + c]!;
        if (row >> 1 !== col >> 1) {
          if (v !== 0) throw new Error(`mode coupling at ${row},${col}`);
          continue;
        }
        out[(row >> 1) * 4 + (row & 1) * 2 + (col & 1)] = v;
      }
    }
  }
  return out;
}

/** Column scale of entry e of mode k: entries 0, 2 are in column 2k, entries 1, 3 in 2k+1. */
const scaleOf = (colScale: ArrayLike<number>, k: number, e: number): number => colScale[2 * k + (e & 1)]!;

function levelsOf(blocks: Float64Array, colScale: ArrayLike<number>, k: number): number[] {
  return [0, 1, 2, 3].map((e) => round(blocks[4 * k + e]! / scaleOf(colScale, k, e)));
}

/** All integer offsets with |d|_1 === n, in a fixed order. */
function offsets(n: number): number[][] {
  const out: number[][] = [];
  const rec = (prefix: number[], left: number): void => {
    if (prefix.length === 3) {
      out.push([...prefix, left]);
      if (left !== 0) out.push([...prefix, -left]);
      return;
    }
    for (let a = -left; a <= left; a++) rec([...prefix, a], left - abs(a));
  };
  rec([], n);
  return out;
}

// ---- spectral radius -------------------------------------------------------------------

describe("spectralRadius2", () => {
  test("known matrices, scaling, and agreement with the Jury test", () => {
    for (const [r, th] of [
      [0.99, 0.3],
      [1.2, 2.5],
      [0.5, 0],
      [0.9, Math.PI],
    ] as const) {
      expect(spectralRadius2(r * cos(th), r * sin(th), -r * sin(th), r * cos(th))).toBeCloseTo(r, 14);
    }
    expect(spectralRadius2(0.5, 0, 0, -0.9)).toBeCloseTo(0.9, 15);
    expect(spectralRadius2(0.9, 1, 0, 0.9)).toBeCloseTo(0.9, 7); // Jordan block: repeated eigenvalue
    expect(spectralRadius2(0, 1, -1, 0)).toBe(1);
    const rng = makeRng(1);
    let stableCount = 0;
    for (let i = 0; i < 2000; i++) {
      const w = [0, 0, 0, 0].map(() => rng.normal() * 0.7);
      const r = spectralRadius2(w[0]!, w[1]!, w[2]!, w[3]!);
      const c = rng.uniform(-3, 3);
      expect(spectralRadius2(c * w[0]!, c * w[1]!, c * w[2]!, c * w[3]!)).toBeCloseTo(abs(c) * r, 10);
      if (abs(r - 1) > 1e-9) expect(r < 1).toBe(stable(w));
      if (r < 1) stableCount++;
    }
    expect(stableCount).toBeGreaterThan(200);
    expect(stableCount).toBeLessThan(1800);
  });
});

// ---- the repair on a constructed op ----------------------------------------------------

/**
 * One S4D op whose modes sweep the rotation angle dt * Im A at |dA| = exp(-dt/2) close to 1,
 * so nearest rounding of Im dA (level spacing |dA|/15 when Re dA dominates the column)
 * lands above |dA| = 1 for a good share of them.
 */
function sweepOp(): S4DOp {
  const H = 3;
  const M = 24;
  const dts = [0.01, 0.03, 0.003];
  const AImag: number[] = [];
  for (let h = 0; h < H; h++) for (let m = 0; m < M; m++) AImag.push((0.02 + (0.6 * m) / M) / dts[h]!);
  return {
    op: "s4d",
    out: "y",
    layer: "sweep",
    x: "u",
    state: "sweep.state",
    channels: H,
    modes: M,
    discretization: "zoh",
    timescale: { kind: "dt", value: { shape: [H], data: dts } },
    logAReal: { shape: [H, M], data: new Array<number>(H * M).fill(log(0.5)) },
    AImag: { shape: [H, M], data: AImag },
    C: { re: { shape: [H, M], data: new Array<number>(H * M).fill(0.5) }, im: { shape: [H, M], data: new Array<number>(H * M).fill(-0.25) } },
    D: { shape: [H], data: [0.1, -0.2, 0.3] },
  };
}

describe("S4D stability under weight quantization", () => {
  test("modes that nearest rounding makes unstable are repaired with the fewest level steps", () => {
    const lowered = lower(singleS4DModel(sweepOp()));
    const [{ op: floatOp, stateLen }] = s4dMatmuls(lowered) as [{ op: MatMulOp; stateLen: number }];
    const naive = quantizeMatrix(floatOp.weight, L);
    const quantized = quantize(lowered, xbar, null);
    checkModel(quantized, "sweep quantized");
    const op = s4dMatmuls(quantized)[0]!.op;
    // Column scales are the ones of plain per-column rounding.
    expect(op.quant!.colScale).toEqual(Array.from(naive.colScale));
    const fl = modeBlocks(floatOp.weight, stateLen);
    const nv = modeBlocks(naive.weight, stateLen);
    const qz = modeBlocks(op.weight, stateLen);
    const scale = op.quant!.colScale;
    let repaired = 0;
    for (let k = 0; k < stateLen / 2; k++) {
      expect(stable(fl, 4 * k)).toBe(true);
      expect(stable(qz, 4 * k)).toBe(true);
      const q0 = levelsOf(nv, scale, k);
      const q1 = levelsOf(qz, scale, k);
      // Dequantized weights are exact multiples of the unchanged column scales.
      for (let e = 0; e < 4; e++) expect(qz[4 * k + e]).toBe(q1[e]! * scaleOf(scale, k, e));
      if (stable(nv, 4 * k)) {
        expect(q1).toEqual(q0); // stable modes are not touched
        continue;
      }
      repaired++;
      const steps = q1.reduce((s, q, e) => s + abs(q - q0[e]!), 0);
      expect(steps).toBeGreaterThanOrEqual(1);
      // Only steps toward zero, so levels stay in [-L, L].
      q1.forEach((q, e) => {
        expect(abs(q)).toBeLessThanOrEqual(abs(q0[e]!));
        expect(q * q0[e]!).toBeGreaterThanOrEqual(0);
      });
      // Fewest steps, in any direction: no change of fewer steps is stable.
      for (let n = 0; n < steps; n++) {
        for (const d of offsets(n)) {
          const q = q0.map((v, e) => v + d[e]!);
          if (q.some((v) => abs(v) > L)) continue;
          expect(stable(q.map((v, e) => v * scaleOf(scale, k, e)))).toBe(false);
        }
      }
      // Among stable changes of that many steps toward zero, the one closest to the float block.
      const err = (q: number[]): number => q.reduce((s, v, e) => s + (v * scaleOf(scale, k, e) - fl[4 * k + e]!) ** 2, 0);
      for (const d of offsets(steps)) {
        const q = q0.map((v, e) => v + d[e]!);
        const towardZero = q.every((v, e) => abs(v) <= abs(q0[e]!) && v * q0[e]! >= 0);
        if (!towardZero || !stable(q.map((v, e) => v * scaleOf(scale, k, e)))) continue;
        expect(err(q1)).toBeLessThanOrEqual(err(q));
      }
    }
    // The sweep was built to need repairs; a sweep that needs none tests nothing.
    expect(repaired).toBeGreaterThanOrEqual(5);
    // Everything outside the state blocks (B row, C column, D) is plain rounding.
    op.weight.blocks.forEach((b, i) => {
      for (let r = 0; r < b.rows; r++) {
        for (let c = 0; c < b.cols; c++) {
          if (b.row + r < stateLen && b.col + c < stateLen) continue;
          expect(b.data[r * b.cols + c]).toBe(naive.weight.blocks[i]!.data[r * b.cols + c]);
        }
      }
    });
  });

  test("stabilizeS4DModes reports what it changed", () => {
    const lowered = lower(singleS4DModel(sweepOp()));
    const [{ op, stateLen }] = s4dMatmuls(lowered) as [{ op: MatMulOp; stateLen: number }];
    const q = quantizeMatrix(op.weight, L);
    const nv = modeBlocks(q.weight, stateLen);
    const report = stabilizeS4DModes(op.weight, q.weight, q.colScale, stateLen, L);
    expect(report.modes).toBe(stateLen / 2);
    expect(report.unstableInFloat).toBe(0);
    const unstable = Array.from({ length: stateLen / 2 }, (_, k) => k).filter((k) => !stable(nv, 4 * k));
    expect(report.repairs.map((r) => r.mode)).toEqual(unstable);
    const after = modeBlocks(q.weight, stateLen);
    for (const r of report.repairs) {
      expect(r.roundedRadius).toBeGreaterThanOrEqual(1);
      expect(r.floatRadius).toBeLessThan(1);
      expect(r.radius).toBeLessThan(1);
      expect(r.roundedLevels).toEqual(levelsOf(nv, q.colScale, r.mode));
      expect(r.levels).toEqual(levelsOf(after, q.colScale, r.mode));
      expect(r.steps).toBe(r.levels.reduce((s, v, e) => s + abs(v - r.roundedLevels[e]!), 0));
    }
  });

  test("a mode already unstable in float is left as rounded", () => {
    const lowered = lower(singleS4DModel(sweepOp()));
    const mm = s4dMatmuls(lowered)[0]!.op;
    // Mode 0 of channel 0 becomes a growing rotation (radius 1.02): the model's own behaviour.
    const blk = mm.weight.blocks.find((b) => b.row === 0 && b.col === 0 && b.rows === 2)!;
    const [c, s] = [1.02 * cos(0.4), 1.02 * sin(0.4)];
    blk.data = [c, s, -s, c];
    const naive = modeBlocks(quantizeMatrix(mm.weight, L).weight, 2);
    const q = modeBlocks(s4dMatmuls(quantize(lowered, xbar, null))[0]!.op.weight, 2);
    expect(Array.from(q.subarray(0, 4))).toEqual(Array.from(naive.subarray(0, 4)));
    expect(stable(q, 0)).toBe(false);
  });

  test("random S4D networks on xbar64: every mode stable in float stays stable", () => {
    let modes = 0;
    let naiveUnstable = 0;
    for (let seed = 0; seed < 24; seed++) {
      const rng = makeRng(100 + seed);
      const model = randomModel(rng, { modes: rng.int(4, 16), hidden: rng.int(2, 8) });
      // Some layers ask for fewer levels (ternary, 7-level): coarse grids are the hardest case.
      const levels = [undefined, undefined, 3, 7][seed % 4];
      if (levels !== undefined) for (const op of model.sections.step) if (op.op === "s4d") op.quant = { levels };
      const lowered = lower(model);
      const quantized = quantize(lowered, xbar, null);
      checkModel(quantized, `random ${seed}`);
      const floatOps = s4dMatmuls(lowered);
      s4dMatmuls(quantized).forEach(({ op, stateLen }, i) => {
        const Lq = op.quant!.maxLevel;
        expect(Lq).toBe(levels === undefined ? L : (levels - 1) / 2);
        const fl = modeBlocks(floatOps[i]!.op.weight, stateLen);
        const nv = modeBlocks(quantizeMatrix(floatOps[i]!.op.weight, Lq).weight, stateLen);
        const qz = modeBlocks(op.weight, stateLen);
        const scale = op.quant!.colScale;
        for (let k = 0; k < stateLen / 2; k++) {
          modes++;
          expect(stable(fl, 4 * k)).toBe(true); // ZOH and bilinear of Re A < 0 are stable
          expect(stable(qz, 4 * k)).toBe(true);
          levelsOf(qz, scale, k).forEach((v) => expect(abs(v)).toBeLessThanOrEqual(Lq));
          if (!stable(nv, 4 * k)) {
            naiveUnstable++;
            continue;
          }
          // Untouched modes: nearest rounding moves the radius by at most the rounding's
          // Frobenius norm (Bauer-Fike on the normal float block), as the pass assumes.
          expect(Array.from(qz.subarray(4 * k, 4 * k + 4))).toEqual(Array.from(nv.subarray(4 * k, 4 * k + 4)));
          const rf = spectralRadius2(fl[4 * k]!, fl[4 * k + 1]!, fl[4 * k + 2]!, fl[4 * k + 3]!);
          const rq = spectralRadius2(qz[4 * k]!, qz[4 * k + 1]!, qz[4 * k + 2]!, qz[4 * k + 3]!);
          const s0 = scale[2 * k]!;
          const s1 = scale[2 * k + 1]!;
          expect(abs(rq - rf)).toBeLessThanOrEqual(sqrt((s0 * s0 + s1 * s1) / 2) + 1e-12);
        }
      });
    }
    process.stdout.write(`random S4D networks: ${naiveUnstable} of ${modes} modes unstable after nearest rounding, all repaired\n`);
    expect(naiveUnstable).toBeGreaterThan(0);
  });

  test("weights already on the level grid come back bit-exact (re-quantizing quantized S4D weights)", () => {
    const rng = makeRng(7);
    const model = randomModel(rng, { modes: 12, hidden: 6, layers: 2 });
    const q1 = quantize(lower(model), xbar, null);
    // The quantized weights as a lowered model: every entry is a level times its column scale.
    const strip = (op: Op): Op => {
      if (op.op !== "matmul") return op;
      const { quant: _q, ...rest } = op;
      return rest;
    };
    const again: Model = { ...q1, level: "lowered", sections: { step: q1.sections.step.map(strip), final: q1.sections.final.map(strip) } };
    const q2 = quantize(again, xbar, null);
    expect(s4dMatmuls(q1)).toHaveLength(2);
    const weights = (m: Model): unknown[] => [...m.sections.step, ...m.sections.final].flatMap((op) => (op.op === "matmul" ? [op.weight, op.quant!.colScale] : []));
    expect(weights(q2)).toEqual(weights(q1));
  });
});

// ---- long sequences --------------------------------------------------------------------


interface StateBounds {
  /** Per S4D matmul, per mode: the bound on |x_t| (state 2-norm) for t < T. */
  perMode: Float64Array[];
  /** Per S4D matmul, the largest spectral radius of its mode blocks. */
  rMax: number[];
}

/**
 * Per mode: |x_t| <= sum_{j<t} ||A^j|| |b| U <= K |b| U / (1 - r), where A is the mode block
 * as a map on the state (W^T), b its input row, U a bound on |u|, r the spectral radius and
 * K = max_{j<T} ||A^j|| / r^j the transient growth of a non-normal block (1 for the float
 * rotation blocks). Needs r < 1, which is asserted.
 */
function stateBounds(m: Model, T: number, uBound: number[]): StateBounds {
  const perMode: Float64Array[] = [];
  const rMax: number[] = [];
  s4dMatmuls(m).forEach(({ op, stateLen }, layer) => {
    const w = modeBlocks(op.weight, stateLen);
    const bRow = new Float64Array(stateLen);
    for (const b of op.weight.blocks) {
      if (b.row < stateLen) continue; // u rows: one per channel, its B entries in the state columns
      for (let c = 0; c < b.cols; c++) if (b.col + c < stateLen) bRow[b.col + c] = b.data[c]!;
    }
    const bounds = new Float64Array(stateLen / 2);
    let worst = 0;
    for (let k = 0; k < stateLen / 2; k++) {
      const [a, c, b, d] = [w[4 * k]!, w[4 * k + 1]!, w[4 * k + 2]!, w[4 * k + 3]!]; // A = W^T = [[a, b], [c, d]]
      const r = spectralRadius2(a, b, c, d);
      expect(r).toBeLessThan(1);
      worst = max(worst, r);
      let [p, q, s, t] = [1, 0, 0, 1]; // A^j
      let K = 1;
      for (let j = 1; j < T; j++) {
        [p, q, s, t] = [a * p + b * s, a * q + b * t, c * p + d * s, c * q + d * t];
        const rj = r ** j;
        // ||.||_2 <= ||.||_F keeps the bound rigorous.
        if (rj > 1e-200) K = max(K, sqrt(p * p + q * q + s * s + t * t) / rj);
      }
      bounds[k] = (K * hypot(bRow[2 * k]!, bRow[2 * k + 1]!) * uBound[layer]!) / (1 - r);
    }
    perMode.push(bounds);
    rMax.push(worst);
  });
  return { perMode, rMax };
}

/** Largest |u| per S4D matmul and largest state norm per mode over one evaluated sequence. */
function observeStates(m: Model, inputs: Record<string, Float64Array[]>): { uMax: number[]; xMax: Float64Array[]; finite: boolean } {
  const ops = s4dMatmuls(m);
  const uMax = ops.map(() => 0);
  const xMax = ops.map(({ stateLen }) => new Float64Array(stateLen / 2));
  let finite = true;
  evaluateSequence(m, inputs, {
    onStep: (_t, values) => {
      ops.forEach(({ op, stateLen }, i) => {
        for (const v of values.get(op.xs[1]!)!) uMax[i] = max(uMax[i]!, abs(v));
        const y = values.get(op.out)!; // [x_t; y_t]
        const xm = xMax[i]!;
        for (let k = 0; k < stateLen / 2; k++) {
          const n = hypot(y[2 * k]!, y[2 * k + 1]!);
          if (!Number.isFinite(n)) finite = false;
          if (n > xm[k]!) xm[k] = n;
        }
      });
    },
  });
  return { uMax, xMax, finite };
}

function withinBounds(obs: { xMax: Float64Array[] }, b: StateBounds): boolean {
  return obs.xMax.every((xs, i) => xs.every((x, k) => x <= b.perMode[i]![k]!));
}

describe("long sequences (sequential digits: 784 steps)", () => {
  const T = 784;

  test("nearest rounding alone lets unstable modes grow past the bound; repaired weights stay within it", () => {
    // B = 10 so that dB survives rounding on the dA-dominated column scale and drives every mode.
    const op = sweepOp();
    op.B = { re: { shape: [op.channels, op.modes], data: new Array<number>(op.channels * op.modes).fill(10) }, im: { shape: [op.channels, op.modes], data: new Array<number>(op.channels * op.modes).fill(0) } };
    const lowered = lower(singleS4DModel(op));
    const quantized = quantize(lowered, xbar, null);
    const inputs = { u: Array.from({ length: T }, (_, t) => Float64Array.from({ length: op.channels }, (_, h) => cos(0.05 * t * (h + 1)))) };
    const bounds = stateBounds(quantized, T, [1]);
    const good = observeStates(quantized, inputs);
    expect(good.finite).toBe(true);
    expect(withinBounds(good, bounds)).toBe(true);
    const naive: Model = structuredClone(quantized);
    s4dMatmuls(naive)[0]!.op.weight = quantizeMatrix(s4dMatmuls(lowered)[0]!.op.weight, L).weight;
    const bad = observeStates(naive, inputs);
    expect(withinBounds(bad, bounds)).toBe(false);
    const growth = max(...bad.xMax[0]!.map((x, k) => (bounds.perMode[0]![k]! > 0 ? x / bounds.perMode[0]![k]! : 0)));
    process.stdout.write(`sweep, ${T} steps: nearest rounding exceeds the repaired model's state bound by up to ${growth.toFixed(1)}x\n`);
  });

  test("the quantized digits-size model keeps its S4D state bounded", () => {
    const model = digitsSizeModel(1);
    const lowered = lower(model);
    const quantized = quantize(lowered, xbar, null);
    expect(s4dMatmuls(quantized)).toHaveLength(2);

    // How many modes needed a repair (the quantize pass does the same on the same matrices).
    let total = 0;
    let repaired = 0;
    const stepHist = new Map<number, number>();
    for (const { op, stateLen } of s4dMatmuls(lowered)) {
      const q = quantizeMatrix(op.weight, L);
      const rep = stabilizeS4DModes(op.weight, q.weight, q.colScale, stateLen, L);
      total += rep.modes;
      repaired += rep.repairs.length;
      for (const r of rep.repairs) stepHist.set(r.steps, (stepHist.get(r.steps) ?? 0) + 1);
    }
    process.stdout.write(
      `digits (xbar64): ${repaired} of ${total} S4D modes (${((100 * repaired) / total).toFixed(1)}%) repaired; steps: ` +
        `${[...stepHist].sort((a, b) => a[0] - b[0]).map(([k, n]) => `${k}:${n}`).join(" ")}\n`,
    );
    expect(repaired).toBeGreaterThan(0);

    // Input pixels in [0, 1]. The S4D inputs are then bounded by construction: layer 0 reads
    // the encoder, |W x + b| <= |W| + |b|; layer 1 reads a LayerNorm output, whose normalized
    // entries are at most sqrt(H - 1) in magnitude, so |gamma| sqrt(H - 1) + |beta|.
    const rng = makeRng(5);
    const inputs = { input: Array.from({ length: T }, () => Float64Array.of(rng.next())) };
    const enc = model.sections.step[0] as Extract<Op, { op: "linear" }>;
    const norm0 = model.sections.step.find((o) => o.op === "layernorm") as Extract<Op, { op: "layernorm" }>;
    const H = 64;
    const uBound = [
      max(...enc.weight.data.map((w, h) => abs(w) + abs(enc.bias!.data[h]!))),
      max(...norm0.gamma.data.map(abs)) * sqrt(H - 1) + max(...norm0.beta.data.map(abs)),
    ];
    const bounds = stateBounds(quantized, T, uBound);
    const obs = observeStates(quantized, inputs);
    expect(obs.finite).toBe(true);
    obs.uMax.forEach((u, i) => expect(u).toBeLessThanOrEqual(uBound[i]!));
    expect(withinBounds(obs, bounds)).toBe(true);
    process.stdout.write(
      `digits (xbar64), ${T} steps: max radius ${bounds.rMax.map((r) => r.toFixed(6)).join(", ")}; ` +
        `max |x_mode| ${obs.xMax.map((xs) => max(...xs).toFixed(3)).join(", ")} (largest per-mode bound ${bounds.perMode.map((b) => max(...b).toFixed(1)).join(", ")})\n`,
    );
  });
});
