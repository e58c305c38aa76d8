// Test aid: a plain float64 executor of Program semantics (src/backend/program.ts), with no
// timing and no DAC/ADC rounding: a quantized crossbar computes sum_i x_i / inRange_i *
// levels_ij * colScale_j, a float one sum_i x_i * values_ij. It checks every memory access
// and crossbar ownership and fails on deadlock or unconsumed messages, so it also catches
// emitter bugs the real interpreter might tolerate. Not the product interpreter (src/interp).

import { gelu } from "../../src/common/erf.js";
import type { Instr } from "../../src/backend/isa.js";
import type { CrossbarImage, Program, SectionName } from "../../src/backend/program.js";

export interface ExecResult {
  step: Record<string, Float64Array[]>;
  final: Record<string, Float64Array>;
  /** Instructions executed, per section (summed over steps). */
  executed: Record<SectionName, number>;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

function crossbarWeight(x: CrossbarImage): (i: number, j: number) => number {
  if (x.weights.kind === "float") {
    const v = x.weights.values;
    return (i, j) => v[i * x.cols + j]!;
  }
  const q = x.weights.levels;
  return (i, j) => (q[i * x.cols + j]! / x.inRange[i]!) * x.colScale[j]!;
}

export function execProgram(p: Program, inputs: Record<string, Float64Array[]>): ExecResult {
  const T = Object.values(inputs)[0]?.length ?? 0;
  if (T < 1) throw new Error("execProgram: no steps");
  const mems = p.tiles.map((t) => {
    const m = new Float64Array(t.memoryWords);
    for (const c of t.constants) {
      if (c.addr + c.data.length > t.memoryWords) throw new Error(`constant at ${c.addr} overflows tile memory`);
      m.set(c.data, c.addr);
    }
    return m;
  });
  const global = new Float64Array(p.io.globalWords);
  const xbars = new Map(p.crossbars.map((x) => [x.id, { image: x, w: crossbarWeight(x) }]));
  const executed: Record<SectionName, number> = { init: 0, step: 0, final: 0 };

  const span = (tile: number, addr: number, len: number): Float64Array => {
    const m = mems[tile]!;
    if (addr < 0 || addr + len > m.length) throw new Error(`tile ${tile}: access [${addr}, ${addr + len}) outside ${m.length} words`);
    return m.subarray(addr, addr + len);
  };
  const map = (tile: number, dst: number, a: number, len: number, f: (x: number, i: number) => number): void => {
    const src = span(tile, a, len).slice();
    const out = span(tile, dst, len);
    for (let i = 0; i < len; i++) out[i] = f(src[i]!, i);
  };

  // Step delays (docs/ISA.md "Step delays"): instruction i of a tile's step section runs in
  // round r when d_i <= r < T + d_i; `round` is null for init and final.
  const runSection = (name: SectionName, round: number | null = null): void => {
    const runs = (t: Program["tiles"][number], i: number): boolean => {
      if (round === null) return true;
      const d = t.sections.step.delays?.[i] ?? 0;
      return d <= round && round < T + d;
    };
    const messages = new Map<string, Float64Array[]>();
    const pcs = p.tiles.map(() => 0);
    const exec = (tile: number, ins: Instr): boolean => {
      switch (ins.op) {
        case "mvm": {
          const xb = xbars.get(ins.xbar);
          if (!xb || xb.image.tile !== tile) throw new Error(`tile ${tile}: mvm on crossbar ${ins.xbar} of another tile`);
          if (ins.rowStart + ins.rows > xb.image.rows || ins.colStart + ins.cols > xb.image.cols) throw new Error(`mvm outside crossbar ${ins.xbar}`);
          const x = span(tile, ins.src, ins.rows).slice();
          const y = span(tile, ins.dst, ins.cols);
          for (let c = 0; c < ins.cols; c++) {
            let s = 0;
            for (let r = 0; r < ins.rows; r++) s += x[r]! * xb.w(ins.rowStart + r, ins.colStart + c);
            y[c] = ins.acc ? y[c]! + s : s;
          }
          return true;
        }
        case "vadd":
        case "vsub":
        case "vmul": {
          const b = span(tile, ins.b, ins.len).slice();
          const f = ins.op === "vadd" ? (x: number, i: number) => x + b[i]! : ins.op === "vsub" ? (x: number, i: number) => x - b[i]! : (x: number, i: number) => x * b[i]!;
          map(tile, ins.dst, ins.a, ins.len, f);
          return true;
        }
        case "vcopy":
          map(tile, ins.dst, ins.a, ins.len, (x) => x);
          return true;
        case "vrelu":
          map(tile, ins.dst, ins.a, ins.len, (x) => Math.max(0, x));
          return true;
        case "vgelu":
          map(tile, ins.dst, ins.a, ins.len, gelu);
          return true;
        case "vsigmoid":
          map(tile, ins.dst, ins.a, ins.len, sigmoid);
          return true;
        case "vtanh":
          map(tile, ins.dst, ins.a, ins.len, Math.tanh);
          return true;
        case "vscale":
          map(tile, ins.dst, ins.a, ins.len, (x) => x * ins.imm);
          return true;
        case "vdivsteps":
          map(tile, ins.dst, ins.a, ins.len, (x) => x / T);
          return true;
        case "vaffine": {
          const c = span(tile, ins.c, 2 * ins.len).slice();
          map(tile, ins.dst, ins.a, ins.len, (x, i) => x * c[i]! + c[ins.len + i]!);
          return true;
        }
        case "vglu": {
          const a = span(tile, ins.a, 2 * ins.len).slice();
          const out = span(tile, ins.dst, ins.len);
          for (let i = 0; i < ins.len; i++) out[i] = a[i]! * sigmoid(a[ins.len + i]!);
          return true;
        }
        case "vnorm": {
          const a = span(tile, ins.a, ins.len).slice();
          const mean = a.reduce((s, v) => s + v, 0) / ins.len;
          const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / ins.len;
          const inv = 1 / Math.sqrt(variance + ins.imm);
          const out = span(tile, ins.dst, ins.len);
          for (let i = 0; i < ins.len; i++) out[i] = (a[i]! - mean) * inv;
          return true;
        }
        case "load":
          if (ins.global + ins.len > global.length) throw new Error("load outside global memory");
          span(tile, ins.dst, ins.len).set(global.subarray(ins.global, ins.global + ins.len));
          return true;
        case "store":
          if (ins.global + ins.len > global.length) throw new Error("store outside global memory");
          global.set(span(tile, ins.src, ins.len), ins.global);
          return true;
        case "send": {
          const key = `${tile}>${ins.peer}:${ins.tag}`;
          messages.set(key, [...(messages.get(key) ?? []), span(tile, ins.src, ins.len).slice()]);
          return true;
        }
        case "recv": {
          const key = `${ins.peer}>${tile}:${ins.tag}`;
          const queue = messages.get(key);
          if (!queue || queue.length === 0) return false;
          const msg = queue.shift()!;
          if (msg.length !== ins.len) throw new Error(`recv ${key}: message has ${msg.length} words, expected ${ins.len}`);
          span(tile, ins.dst, ins.len).set(msg);
          if (queue.length === 0) messages.delete(key);
          return true;
        }
        case "ext":
          throw new Error(`tile ${tile}: ext instructions need their target plugin; this executor runs plugin-free programs only`);
      }
    };
    for (;;) {
      let progress = false;
      let done = true;
      p.tiles.forEach((t, tile) => {
        const code = t.sections[name].code;
        for (;;) {
          while (pcs[tile]! < code.length && !runs(t, pcs[tile]!)) pcs[tile]!++;
          if (pcs[tile]! >= code.length || !exec(tile, code[pcs[tile]!]!)) break;
          pcs[tile]!++;
          executed[name]++;
          progress = true;
        }
        if (pcs[tile]! < code.length) done = false;
      });
      if (done) break;
      if (!progress) throw new Error(`deadlock in section ${name}: pcs ${pcs.join(",")}`);
    }
    if (messages.size > 0) throw new Error(`section ${name} ended with unreceived messages: ${[...messages.keys()].join(", ")}`);
  };

  const step: Record<string, Float64Array[]> = Object.fromEntries(p.io.stepOutputs.map((o) => [o.name, []]));
  runSection("init");
  const D = Math.max(0, ...p.tiles.flatMap((t) => t.sections.step.delays ?? []));
  // The delay of each step output: that of the instructions storing into it.
  const outDelay = (io: (typeof p.io.stepOutputs)[number]): number => {
    for (const t of p.tiles)
      for (const [i, ins] of t.sections.step.code.entries()) if (ins.op === "store" && ins.global < io.addr + io.size && io.addr < ins.global + ins.len) return t.sections.step.delays?.[i] ?? 0;
    return 0;
  };
  for (let r = 0; r < T + D; r++) {
    for (const io of p.io.inputs) {
      if (r >= T) break;
      const v = inputs[io.name]?.[r];
      if (!v || v.length !== io.size) throw new Error(`input ${io.name} step ${r} missing or wrong size`);
      global.set(v, io.addr);
    }
    runSection("step", r);
    for (const io of p.io.stepOutputs) {
      const t = r - outDelay(io);
      if (t >= 0 && t < T) step[io.name]![t] = global.slice(io.addr, io.addr + io.size);
    }
  }
  runSection("final");
  const final = Object.fromEntries(p.io.finalOutputs.map((o) => [o.name, global.slice(o.addr, o.addr + o.size)]));
  return { step, final, executed };
}
