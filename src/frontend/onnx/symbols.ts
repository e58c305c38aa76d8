// What symbolic evaluation records. A *source* is a vector whose elements are symbols:
// the per-step input, the previous value of an ONNX state, the output of a nonlinear op,
// the output of a matmul that may later be inlined (virtual), a pooled mean, ... Each source
// owns a contiguous range of symbol ids, so a form's sorted ids group by source.
//
// A *request* is a vector of affine elements (constant + form) that must exist as an IR
// value: the input of a nonlinear op, a next state, a model output, the per-step value a
// mean pool accumulates. Planning (plan.ts) rewrites requests; emission (emit.ts) turns
// them into IR ops.

import type { LinForm } from "./forms.js";
import type { NodeRef } from "./problem.js";

export type Section = "step" | "final";

export interface Request {
  readonly id: number;
  readonly section: Section;
  c: Float64Array;
  f: LinForm[];
  /** Preferred IR value name (made unique at emission). */
  label: string;
  /** ONNX node name, becomes the IR ops' `layer`. */
  layer?: string;
}

export type NonlinearKind = "gelu" | "sigmoid" | "tanh" | "relu" | "normalize" | "mul";

export interface NonlinearOp {
  kind: NonlinearKind;
  /** One request (two for mul), each the length of the output. */
  inputs: Request[];
  eps?: number;
}

/** Functions whose IR form depends on how they are used (GELU, LayerNorm patterns). */
export type PendingFn = "erf" | "square" | "sqrt" | "rsqrt" | "recip";

interface Base {
  readonly id: number;
  /** First symbol id; the source owns [base, base + size). */
  readonly base: number;
  readonly size: number;
  readonly section: Section;
  /** Preferred IR value name. */
  readonly label: string;
  /** The ONNX node that created the source (for messages and IR `layer`). */
  readonly node?: NodeRef;
}

export type Source =
  | (Base & { kind: "input"; irName: string })
  | (Base & { kind: "state"; inName: string; outName: string; shape: readonly number[]; next?: Request })
  /** The value of an ONNX state after the last step (Scan's final state outputs). */
  | (Base & { kind: "finalstate"; of: number })
  | (Base & { kind: "nonlinear"; op: NonlinearOp })
  | (Base & { kind: "pending"; fn: PendingFn; argC: Float64Array; argF: LinForm[] })
  | (Base & { kind: "virtual"; def: Request; levels?: number; forceCut: boolean; cut?: boolean })
  | (Base & { kind: "pooled"; of: Request; mode: "mean" | "sum" })
  /** An IR state read: `final` reads the value after the last step. */
  | (Base & { kind: "irstate"; state: string; final: boolean });

export type SourceKind = Source["kind"];
type Payload<K extends SourceKind> = Omit<Extract<Source, { kind: K }>, keyof Base | "kind">;

export interface OutputSpec {
  name: string;
  section: Section;
  req: Request;
}

export class Symbols {
  readonly sources: Source[] = [];
  readonly requests: Request[] = [];
  readonly outputs: OutputSpec[] = [];
  private next = 0;

  add<K extends SourceKind>(kind: K, size: number, section: Section, label: string, node: NodeRef | undefined, payload: Payload<K>): Extract<Source, { kind: K }> {
    const s = { id: this.sources.length, base: this.next, size, section, label, ...(node ? { node } : {}), kind, ...payload } as unknown as Extract<Source, { kind: K }>;
    this.sources.push(s);
    this.next += size;
    return s;
  }

  request(section: Section, c: Float64Array, f: LinForm[], label: string, layer?: string): Request {
    const r: Request = { id: this.requests.length, section, c, f, label, ...(layer ? { layer } : {}) };
    this.requests.push(r);
    return r;
  }

  /** The source owning symbol `id` (sources are created with increasing bases). */
  owner(id: number): Source {
    const list = this.sources;
    let lo = 0;
    let hi = list.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (list[mid]!.base <= id) lo = mid;
      else hi = mid - 1;
    }
    return list[lo]!;
  }

  /** Distinct sources referenced by a request (or any list of forms), in id order. */
  sourcesOf(r: { readonly f: readonly LinForm[] }): Source[] {
    const seen = new Set<number>();
    const out: Source[] = [];
    for (const f of r.f) {
      let last = -1;
      for (const id of f.ids) {
        // ids are sorted, so one owner lookup per run of a source's symbols
        if (last >= 0 && id < this.sources[last]!.base + this.sources[last]!.size) continue;
        const s = this.owner(id);
        last = s.id;
        if (!seen.has(s.id)) {
          seen.add(s.id);
          out.push(s);
        }
      }
    }
    return out.sort((a, b) => a.id - b.id);
  }
}
