// Emission of the matmuls a target plugin takes over (src/target/plugin-split.ts): instead of
// crossbar MVMs, the plugin's `lowerS4dState` hook emits its own `ext` instructions through
// the small ExtEmitter API. Operands are opaque buffer windows (ExtOperandRef); every
// instruction the hook emits is checked here against the plugin's declared accesses (each
// read field and the destination must be a window at least as long as declared), and the
// hook must write every word of the layer's new state. Any violation, or an exception in the
// hook, is a UserError naming the plugin module and the hook.

import type { MatMulOp } from "../ir/types.js";
import type { ExtEmitOperands, ExtEmitter, ExtOperandRef, ExtReadField, LoadedPlugin, S4DRecurrence } from "../target/plugin.js";
import { ExtRuntime } from "../target/plugin-runtime.js";
import type { Target } from "../target/types.js";
import type { MemValue, SectionValues } from "./emit-values.js";
import type { ExtInstr } from "./isa.js";
import { valueKey, type IrSection } from "./schedule.js";
import type { Ref } from "./streams.js";

/** What the emitter needs to hand matmuls to a plugin. */
export interface PluginEmit {
  loaded: LoadedPlugin;
  target: Target;
  /** The matmuls the plugin computes, by valueKey, with their S4D recurrences. */
  taken: ReadonlyMap<string, S4DRecurrence>;
}

const HOOK = "lowerS4dState";

/** A window of `words` words at `ref`; the class is private, so a plugin cannot forge one. */
class Operand implements ExtOperandRef {
  constructor(
    readonly ref: Ref,
    readonly words: number,
  ) {}
  at(offset: number, n?: number): ExtOperandRef {
    const len = n ?? this.words - offset;
    if (!(Number.isInteger(offset) && Number.isInteger(len) && offset >= 0 && len >= 0 && offset + len <= this.words))
      throw new Error(`at(${offset}, ${n ?? ""}): window [${offset}, ${offset + len}) is outside the ${this.words}-word operand`);
    return new Operand({ buf: this.ref.buf, off: this.ref.off + offset }, len);
  }
}

const operandOf = (v: MemValue): Operand => new Operand({ buf: v.buf, off: v.off }, v.len);

/** Instructions for matmul `op` when the plugin computes it; null when it is a crossbar matmul. */
export function lowerPluginMatmul(values: SectionValues, section: IrSection, op: MatMulOp, tile: number, pe: PluginEmit): MemValue | null {
  const rec = pe.taken.get(valueKey(section, op.out));
  if (rec === undefined) return null;
  const { loaded } = pe;
  const lower = loaded.plugin.lowerS4dState;
  if (lower === undefined) throw new Error(`internal error: matmul '${op.out}' was split for plugin ${loaded.plugin.name}, which has no ${HOOK}`);
  const streams = values.streams;
  const state = values.operand(op.xs[0]!, tile);
  const input = values.operand(op.xs[1]!, tile);
  const out = values.fresh(tile, op.weight.cols);
  const written = new Uint8Array(out.len);
  const runtime = new ExtRuntime(loaded, pe.target);
  const fail = (message: string): never => {
    throw loaded.error(`${HOOK} (layer ${rec.layer})`, message);
  };

  const emitter: ExtEmitter = {
    constant(data: ArrayLike<number>): ExtOperandRef {
      const n = typeof data === "object" && data !== null && typeof data.length === "number" ? data.length : 0;
      const words = Float32Array.from({ length: n }, (_, i) => data[i]!);
      if (words.length === 0 || words.some((x) => !Number.isFinite(x))) fail("constant() needs a non-empty array of numbers that are finite in float32");
      return operandOf({ kind: "mem", buf: streams.constant(tile, words).buf, off: 0, len: words.length });
    },
    scratch(words: number): ExtOperandRef {
      if (!(Number.isInteger(words) && words >= 1 && words <= 0xffff)) fail(`scratch(${words}): need a word count 1-65535`);
      return new Operand(streams.scratch(tile, words), words);
    },
    emit(mnemonic: string, ops: ExtEmitOperands): void {
      const spec = loaded.byMnemonic.get(mnemonic) ?? fail(`emit("${mnemonic}"): the plugin declares no such instruction (it declares ${[...loaded.byMnemonic.keys()].join(", ") || "none"})`);
      const ins: ExtInstr = { op: "ext", ext: spec.id, len: ops.len ?? 0, dst: 0, a: 0, b: 0, c: 0, word: ops.word ?? 0 };
      if (!(Number.isInteger(ins.len) && ins.len >= 0 && ins.len <= 0xffff)) fail(`emit("${mnemonic}"): len ${ops.len} is not an integer 0-65535`);
      if (!(Number.isInteger(ins.word) && ins.word >= 0 && ins.word <= 0xffffffff)) fail(`emit("${mnemonic}"): word ${ops.word} is not an integer 0-2^32-1`);
      const refs: Record<string, Ref> = {};
      const windows: Partial<Record<"dst" | ExtReadField, Operand>> = {};
      for (const f of ["dst", "a", "b", "c"] as const) {
        const v = ops[f];
        if (v === undefined) continue;
        if (!(v instanceof Operand)) fail(`emit("${mnemonic}"): operand ${f} must be an operand from the hook's layer or emitter`);
        windows[f] = v as Operand;
        refs[f] = (v as Operand).ref;
      }
      // Accesses depend on len and word only (addresses are not known yet; the verifier
      // checks the final ones): each declared access must lie inside the window given.
      const access = runtime.access(spec, ins);
      for (const r of [...access.reads, ...(access.write ? [access.write] : [])]) {
        const w = windows[r.field as "dst" | ExtReadField];
        if (w === undefined) fail(`emit("${mnemonic}"): the instruction accesses ${r.len} words at ${r.field} but no ${r.field} operand was given`);
        else if (r.len > w.words) fail(`emit("${mnemonic}"): the instruction accesses ${r.len} words at ${r.field} but the ${r.field} operand has ${w.words}`);
      }
      if (access.write) {
        const w = windows.dst!;
        if (w.ref.buf === out.buf) written.fill(1, w.ref.off - out.off, w.ref.off - out.off + access.write.len);
      }
      streams.emit(tile, ins, refs);
    },
  };

  const layer = {
    layer: rec.layer,
    channels: rec.channels,
    modes: rec.modes,
    dA: { re: rec.dA.re.slice(), im: rec.dA.im.slice() },
    dB: { re: rec.dB.re.slice(), im: rec.dB.im.slice() },
    bias: rec.bias ? { re: rec.bias.re.slice(), im: rec.bias.im.slice() } : null,
    state: operandOf(state),
    input: operandOf(input),
    output: operandOf(out),
  };
  loaded.call(`${HOOK} (layer ${rec.layer})`, () => lower.call(loaded.plugin, layer, emitter));
  const missing = written.indexOf(0);
  if (missing >= 0) fail(`the hook's instructions must write all ${out.len} words of layer.output (x_k); word ${missing} is never written`);
  return out;
}
