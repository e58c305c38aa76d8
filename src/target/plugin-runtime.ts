// Running a plugin's `ext` instructions: the verifier asks for their declared memory
// accesses, the interpreter's machine for their cost and effect. Every answer the plugin
// gives is checked here, so the interpreter can rely on it like on the ISA's own tables
// (src/interp/access.ts, timing.ts, energy.ts): accesses are word counts inside the 16-bit
// address space, cycles an integer >= 1, event counts finite and non-negative, and
// `execute` writes exactly the declared words and nothing else (it sees copies only).

import type { ExtInstr } from "../backend/isa.js";
import type { Range } from "../interp/access.js";
import { zeroCounts, type EventCounts } from "../interp/energy.js";
import type { Memory } from "../interp/memory.js";
import type { ExtInstructionSpec, ExtOperands, ExtReadField, LoadedPlugin } from "./plugin.js";
import type { Target } from "./types.js";

const READ_FIELDS: readonly ExtReadField[] = ["a", "b", "c"];
/** Local addresses are 16 bit: no access can span more words. */
const MAX_WORDS = 0x10000;

/** The instruction's fields as the plugin sees them (a fresh object: the plugin may not alter ours). */
export function extOperands(ins: ExtInstr): ExtOperands {
  return { len: ins.len, dst: ins.dst, a: ins.a, b: ins.b, c: ins.c, word: ins.word };
}

export interface ExtAccessRanges {
  reads: Range[];
  write: Range | null;
}

/** Everything data-independent about one ext instruction, from the plugin's declarations. */
export interface ExtPlan extends ExtAccessRanges {
  spec: ExtInstructionSpec;
  cycles: number;
  counts: EventCounts;
}

const isWordCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= MAX_WORDS;

export class ExtRuntime {
  constructor(
    readonly loaded: LoadedPlugin,
    readonly target: Target,
  ) {}

  /** The plugin's spec of instruction id `ins.ext`, or null when it declares none. */
  spec(ins: ExtInstr): ExtInstructionSpec | null {
    return this.loaded.byId.get(ins.ext) ?? null;
  }

  private hook(spec: ExtInstructionSpec, name: string): string {
    return `instructions[${spec.mnemonic}].${name}`;
  }

  /** The declared reads and write as address ranges (checked shapes; bounds are the verifier's job). */
  access(spec: ExtInstructionSpec, ins: ExtInstr): ExtAccessRanges {
    const hook = this.hook(spec, "access");
    const a = this.loaded.call(hook, () => spec.access(extOperands(ins)));
    if (typeof a !== "object" || a === null || typeof a.reads !== "object" || a.reads === null)
      throw this.loaded.error(hook, `must return { reads: { a?, b?, c? }, writes }, returned ${JSON.stringify(a)}`);
    const reads: Range[] = [];
    for (const [field, words] of Object.entries(a.reads)) {
      if (!READ_FIELDS.includes(field as ExtReadField)) throw this.loaded.error(hook, `reads.${field}: only fields a, b and c can be read`);
      if (words === undefined || words === 0) continue;
      if (!isWordCount(words)) throw this.loaded.error(hook, `reads.${field} must be a word count 0-${MAX_WORDS}, returned ${JSON.stringify(words)}`);
      reads.push({ field, addr: ins[field as ExtReadField], len: words });
    }
    if (!isWordCount(a.writes)) throw this.loaded.error(hook, `writes must be a word count 0-${MAX_WORDS}, returned ${JSON.stringify(a.writes)}`);
    return { reads, write: a.writes > 0 ? { field: "dst", addr: ins.dst, len: a.writes } : null };
  }

  /** Access, cycles and event counts of one instruction (the machine plans with these). */
  plan(spec: ExtInstructionSpec, ins: ExtInstr): ExtPlan {
    const access = this.access(spec, ins);
    const cyclesHook = this.hook(spec, "cycles");
    const cycles = this.loaded.call(cyclesHook, () => spec.cycles(extOperands(ins), this.target));
    if (!(typeof cycles === "number" && Number.isInteger(cycles) && cycles >= 1 && cycles <= 1e9))
      throw this.loaded.error(cyclesHook, `must return an integer number of cycles 1-1e9, returned ${JSON.stringify(cycles)}`);
    const eventsHook = this.hook(spec, "events");
    const ev = this.loaded.call(eventsHook, () => spec.events(extOperands(ins), this.target));
    if (typeof ev !== "object" || ev === null) throw this.loaded.error(eventsHook, `must return { vectorElementOps?, localWords? }, returned ${JSON.stringify(ev)}`);
    const counts = zeroCounts();
    for (const [k, v] of Object.entries(ev)) {
      if (k !== "vectorElementOps" && k !== "localWords") throw this.loaded.error(eventsHook, `unknown event "${k}" (expected vectorElementOps, localWords)`);
      if (v === undefined) continue;
      if (!(typeof v === "number" && Number.isFinite(v) && v >= 0)) throw this.loaded.error(eventsHook, `${k} must be a finite number >= 0, returned ${JSON.stringify(v)}`);
      counts[k] = v;
    }
    return { ...access, spec, cycles, counts };
  }

  /**
   * The functional effect on local memory `mem`: the plugin reads copies of its declared
   * reads; its write is applied after it returns (so reads never see it), rounded to the
   * memory's precision by the store.
   */
  execute(p: ExtPlan, ins: ExtInstr, mem: Memory): void {
    const hook = this.hook(p.spec, "execute");
    const want = p.write?.len ?? 0;
    let written: ArrayLike<number> | null = null;
    const io = {
      read: (field: ExtReadField): Float64Array => {
        const r = p.reads.find((x) => x.field === field);
        if (r === undefined) throw new Error(`read("${field}"): the instruction's access declares no read of field ${field}`);
        return Float64Array.from(mem.subarray(r.addr, r.addr + r.len));
      },
      write: (values: ArrayLike<number>): void => {
        if (written !== null) throw new Error("write() called twice: an instruction writes its declared words once");
        if (values === null || typeof values !== "object" || typeof values.length !== "number") throw new Error("write() expects an array of numbers");
        if (values.length !== want) throw new Error(`write() got ${values.length} values, the access declares ${want} written words`);
        for (let i = 0; i < values.length; i++) if (typeof values[i] !== "number") throw new Error(`write(): value ${i} is not a number`);
        written = Float64Array.from(values);
      },
    };
    this.loaded.call(hook, () => p.spec.execute(io, extOperands(ins)));
    if (want > 0 && written === null) throw this.loaded.error(hook, `did not write its ${want} declared words (call io.write once)`);
    if (written !== null && p.write) mem.set(written, p.write.addr);
  }
}
