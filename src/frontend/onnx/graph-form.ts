// Phase 2: what the graph's inputs and outputs mean.
//   step graph      one time step; recurrent state as input/output pairs (X_in/X_out,
//                   past_X/present_X, X/XN, X/X_next, or explicit pairs); the other input
//                   is u_t, the other outputs are per-step outputs
//   sequence graph  a Scan over time; the input is the whole sequence (its time axis is the
//                   axis the Scan reads, traced back through Transpose/Unsqueeze/...), the
//                   outputs are whole sequences (per-step outputs) or values computed after
//                   pooling over time (final outputs)
// Batch dimensions are 1 or symbolic (taken as 1): the IR processes one sequence at a time.

import { UserError } from "../../common/errors.js";
import { checkElements } from "../../common/limits.js";
import type { Dim, OnnxGraph, OnnxModel, OnnxNode, ValueInfo } from "./decode.js";
import { checkDeclared, evaluateGraph } from "./evaluate.js";
import { EMPTY, single, type LinForm } from "./forms.js";
import { affine, type AffineTensor, type Operand } from "./operand.js";
import { Symbols, type Request } from "./symbols.js";
import { intValues, normAxes, sizeOf } from "./tensor.js";

export interface LiftOptions {
  /** Explicit [input, output] state pairs, in addition to the naming conventions. */
  state?: Array<[string, string]>;
}

export interface LiftResult {
  sym: Symbols;
  form: "step" | "sequence";
}

const inputList = (g: OnnxGraph): string => g.inputs.map((i) => `"${i.name}"`).join(", ") || "none";
const outputList = (g: OnnxGraph): string => g.outputs.map((o) => `"${o.name}"`).join(", ") || "none";

/** Concrete shape of a declared value; symbolic (batch) dims become 1. */
function concreteShape(info: ValueInfo, file: string, what: string, skip?: number): number[] {
  if (!info.dims) throw new UserError("unsupported", `${what} "${info.name}" has no declared shape; the front end needs the rank and feature sizes`, { file });
  const shape = info.dims.filter((_, i) => i !== skip).map((d: Dim) => (typeof d === "number" ? d : 1));
  // Symbols are allocated per element of this declared shape: check it before that.
  checkElements(shape, `${what} "${info.name}"`, { file });
  return shape;
}

function symbolTensor(sym: Symbols, base: number, shape: readonly number[]): AffineTensor {
  const n = sizeOf(shape);
  const f = new Array<LinForm>(n);
  for (let i = 0; i < n; i++) f[i] = single(base + i);
  return affine(shape, "step", new Float64Array(n), f);
}

function requestOf(sym: Symbols, x: Operand, label: string, file: string, what: string): Request {
  if (x.kind === "const") {
    throw new UserError("unsupported", `${what} "${label}" is a constant: it depends neither on the input nor on the state`, { file });
  }
  const t = x.kind === "seq" ? x.inner : x;
  if (t.kind === "const") throw new UserError("unsupported", `${what} "${label}" is constant at every step`, { file });
  return sym.request(t.section, t.c, t.f, label);
}

// ---- step graphs ------------------------------------------------------------------------

/** State pairs: explicit ones, then the naming conventions for the remaining inputs. */
export function pairStates(g: OnnxGraph, file: string, explicit: ReadonlyArray<[string, string]> = []): Array<[string, string]> {
  const ins = new Set(g.inputs.map((i) => i.name));
  const outs = new Set(g.outputs.map((o) => o.name));
  const pairs: Array<[string, string]> = [];
  const usedIn = new Set<string>();
  const usedOut = new Set<string>();
  for (const [i, o] of explicit) {
    if (!ins.has(i)) throw new UserError("usage", `--state ${i}:${o}: "${i}" is not a graph input (inputs: ${inputList(g)})`, { file });
    if (!outs.has(o)) throw new UserError("usage", `--state ${i}:${o}: "${o}" is not a graph output (outputs: ${outputList(g)})`, { file });
    if (usedIn.has(i) || usedOut.has(o)) throw new UserError("usage", `--state ${i}:${o}: "${usedIn.has(i) ? i : o}" is already paired`, { file });
    pairs.push([i, o]);
    usedIn.add(i);
    usedOut.add(o);
  }
  for (const { name } of g.inputs) {
    if (usedIn.has(name)) continue;
    const candidates = [
      name.endsWith("_in") ? `${name.slice(0, -3)}_out` : undefined,
      name.startsWith("past_") ? `present_${name.slice(5)}` : undefined,
      `${name}N`,
      `${name}_next`,
    ].filter((c): c is string => c !== undefined && outs.has(c) && !usedOut.has(c));
    if (candidates.length === 1) {
      pairs.push([name, candidates[0]!]);
      usedIn.add(name);
      usedOut.add(candidates[0]!);
    }
  }
  return pairs;
}

function liftStep(model: OnnxModel, file: string, opts: LiftOptions): Symbols {
  const g = model.graph;
  const pairs = pairStates(g, file, opts.state);
  const stateIn = new Map(pairs.map(([i, o]) => [i, o]));
  const stateOut = new Set(pairs.map(([, o]) => o));
  const us = g.inputs.filter((i) => !stateIn.has(i.name));
  if (us.length === 0) {
    throw new UserError("unsupported", `the graph has no per-step input: every input (${inputList(g)}) is paired with an output as recurrent state`, { file });
  }
  if (us.length > 1) {
    throw new UserError(
      "unsupported",
      `the graph has ${us.length} inputs that are not recurrent state (${us.map((u) => `"${u.name}"`).join(", ")}); exactly one per-step input is supported. ` +
        `State inputs pair with outputs by name (X_in/X_out, past_X/present_X, X/XN, X/X_next) or explicitly with --state IN:OUT`,
      { file },
    );
  }
  const sym = new Symbols();
  const values = new Map<string, Operand>();
  const u = us[0]!;
  const uShape = concreteShape(u, file, "input");
  const usrc = sym.add("input", sizeOf(uShape), "step", u.name, undefined, { irName: u.name });
  values.set(u.name, symbolTensor(sym, usrc.base, uShape));
  const states = pairs.map(([i, o]) => {
    const info = g.inputs.find((x) => x.name === i)!;
    const shape = concreteShape(info, file, "state input");
    const s = sym.add("state", sizeOf(shape), "step", i, undefined, { inName: i, outName: o, shape });
    values.set(i, symbolTensor(sym, s.base, shape));
    return s;
  });
  const wc = { file, opset: model.opset, sym };
  const outs = evaluateGraph(wc, g, values);
  const readoutMean = model.metadata.get("imssa.readout") === "mean";
  g.outputs.forEach((info, k) => {
    const y = outs[k]!;
    const mismatch = checkDeclared(info, y, "output");
    if (mismatch) throw new UserError("semantic", mismatch, { file, path: `graph output ${k}` });
    if (stateOut.has(info.name)) return;
    const req = requestOf(sym, y, info.name, file, "output");
    sym.outputs.push({ name: info.name, section: "step", req });
    if (readoutMean) {
      // The exporter's pooled models: the model output is the time mean of the per-step output.
      const pooled = sym.add("pooled", req.f.length, "final", `${info.name}.mean`, undefined, { of: req, mode: "mean" });
      const f = Array.from({ length: req.f.length }, (_, j) => single(pooled.base + j));
      sym.outputs.push({ name: `${info.name}_mean`, section: "final", req: sym.request("final", new Float64Array(f.length), f, `${info.name}_mean`) });
    }
  });
  for (const s of states) {
    const k = g.outputs.findIndex((o) => o.name === s.outName);
    const y = outs[k]!;
    const shape = y.kind === "seq" ? [] : y.shape;
    if (y.kind === "seq" || sizeOf(shape) !== s.size || shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i])) {
      throw new UserError("semantic", `state output "${s.outName}" has shape [${shape.join(", ")}], but its state input "${s.inName}" has shape [${s.shape.join(", ")}]`, {
        file,
        path: `graph output ${k}`,
      });
    }
    s.next = y.kind === "const" ? sym.request("step", new Float64Array(y.data), new Array<LinForm>(s.size).fill(EMPTY), s.outName) : sym.request("step", y.c, y.f, s.outName);
  }
  return sym;
}

// ---- sequence graphs --------------------------------------------------------------------

/** Constant integer list held by an initializer or a Constant node. */
function constInts(g: OnnxGraph, name: string, producer: Map<string, OnnxNode>): number[] | undefined {
  const init = g.initializers.get(name);
  if (init) return intValues(init, name);
  const p = producer.get(name);
  const v = p?.opType === "Constant" ? p.attrs.get("value") : undefined;
  return v?.kind === "tensor" ? intValues(v.value, name) : undefined;
}

/**
 * The time axis of each sequence input: the axis a Scan scans, followed back to the graph
 * input through ops that only move axes.
 */
function timeAxes(model: OnnxModel, file: string): Map<string, number> {
  const g = model.graph;
  const producer = new Map<string, OnnxNode>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const result = new Map<string, number>();
  for (const scanNode of g.nodes.filter((n) => n.opType === "Scan")) {
    const m = scanNode.attrs.get("num_scan_inputs");
    const M = m?.kind === "int" ? m.value : 0;
    // A count the node cannot have (the file may say 2^32 - 1) would loop for ages below;
    // the Scan op itself reports it with the node's place.
    if (!(M >= 1 && M <= scanNode.inputs.length)) continue;
    const N = scanNode.inputs.length - M;
    const axesAttr = scanNode.attrs.get("scan_input_axes");
    const axes = axesAttr?.kind === "ints" ? axesAttr.value : [];
    for (let j = 0; j < M; j++) {
      const chain: OnnxNode[] = [];
      let name = scanNode.inputs[N + j]!;
      let p = producer.get(name);
      while (p && ["Transpose", "Identity", "Cast", "Unsqueeze", "Squeeze"].includes(p.opType)) {
        chain.unshift(p);
        name = p.inputs[0]!;
        p = producer.get(name);
      }
      const info = g.inputs.find((i) => i.name === name);
      if (!info || p) continue; // not a graph input: the Scan op reports it
      if (!info.dims) throw new UserError("unsupported", `sequence input "${info.name}" has no declared shape`, { file });
      const rank0 = info.dims.length;
      const follow = (a: number): number | undefined => {
        let axis = a;
        let rank = rank0;
        for (const n of chain) {
          if (n.opType === "Transpose") {
            const perm = n.attrs.get("perm");
            const pv = perm?.kind === "ints" ? perm.value : Array.from({ length: rank }, (_, i) => rank - 1 - i);
            axis = pv.indexOf(axis);
          } else if (n.opType === "Unsqueeze" || n.opType === "Squeeze") {
            const attr = n.attrs.get("axes");
            const list = model.opset >= 13 ? (n.inputs[1] ? constInts(g, n.inputs[1], producer) : undefined) : attr?.kind === "ints" ? attr.value : undefined;
            if (!list) return undefined;
            if (n.opType === "Unsqueeze") {
              const out = rank + list.length;
              const ins = normAxes(list, out);
              let seen = -1;
              let moved = -1;
              for (let k = 0; k < out && moved < 0; k++) if (!ins.includes(k) && ++seen === axis) moved = k;
              axis = moved;
              rank = out;
            } else {
              const sq = normAxes(list, rank);
              if (sq.includes(axis)) return undefined;
              axis -= sq.filter((k) => k < axis).length;
              rank -= sq.length;
            }
          }
        }
        const want = axes[j] ?? 0;
        return (want < 0 ? want + rank : want) === axis ? a : undefined;
      };
      const found = Array.from({ length: rank0 }, (_, a) => a).filter((a) => follow(a) !== undefined);
      if (found.length !== 1) {
        throw new UserError("unsupported", `cannot tell which axis of sequence input "${info.name}" is time (the axis Scan node "${scanNode.name}" scans)`, { file });
      }
      const prev = result.get(info.name);
      if (prev !== undefined && prev !== found[0]) {
        throw new UserError("unsupported", `sequence input "${info.name}" is scanned along different axes (${prev} and ${found[0]}) by different Scan nodes`, { file });
      }
      result.set(info.name, found[0]!);
    }
  }
  return result;
}

function liftSequence(model: OnnxModel, file: string): Symbols {
  const g = model.graph;
  const axes = timeAxes(model, file);
  const sym = new Symbols();
  const values = new Map<string, Operand>();
  if (g.inputs.length !== 1) {
    throw new UserError("unsupported", `a Scan graph must have exactly one input (the input sequence); this one has ${g.inputs.length} (${inputList(g)})`, { file });
  }
  for (const info of g.inputs) {
    const axis = axes.get(info.name);
    if (axis === undefined) {
      throw new UserError("unsupported", `graph input "${info.name}" is not scanned by a Scan node; a Scan graph's input must be the sequence a Scan iterates over`, { file });
    }
    const shape = concreteShape(info, file, "input", axis);
    const src = sym.add("input", sizeOf(shape), "step", info.name, undefined, { irName: info.name });
    values.set(info.name, { kind: "seq", axis, inner: symbolTensor(sym, src.base, shape) });
  }
  const outs = evaluateGraph({ file, opset: model.opset, sym }, g, values);
  g.outputs.forEach((info, k) => {
    const y = outs[k]!;
    const section = y.kind === "seq" ? "step" : "final";
    sym.outputs.push({ name: info.name, section, req: requestOf(sym, y, info.name, file, "output") });
  });
  return sym;
}

export function liftGraph(model: OnnxModel, file: string, opts: LiftOptions = {}): LiftResult {
  const hasScan = model.graph.nodes.some((n) => n.opType === "Scan");
  if (hasScan && opts.state && opts.state.length > 0) {
    throw new UserError("usage", `--state applies to step graphs; this graph is a sequence graph (it has a Scan node), whose states the Scan declares`, { file });
  }
  return hasScan ? { sym: liftSequence(model, file), form: "sequence" } : { sym: liftStep(model, file, opts), form: "step" };
}
