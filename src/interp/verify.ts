// Program verifier: like a bytecode verifier, it checks everything the interpreter relies on
// before a single instruction runs, so execution never indexes out of bounds and every
// error names the tile, section and instruction at fault.

import { createHash } from "node:crypto";
import { fieldRangeError, MAX_LOCAL_ADDRESS, type Instr } from "../backend/isa.js";
import { FORMAT_VERSION, MAX_UNROLL, PLUGIN_FORMAT_VERSION, SECTION_NAMES, type CrossbarImage, type Program, type SectionName } from "../backend/program.js";
import { isUserError, UserError, type Diagnostic } from "../common/errors.js";
import { checkLimit } from "../common/limits.js";
import { targetFromJson } from "../target/load.js";
import { pluginMismatch, type LoadedPlugin } from "../target/plugin.js";
import { ExtRuntime } from "../target/plugin-runtime.js";
import type { Target } from "../target/types.js";
import { accessOf } from "./access.js";
import { delayAt, storeDelays } from "../backend/delays.js";

/** Enough to be useful without flooding the terminal when a whole stream is wrong. */
const MAX_DIAGNOSTICS = 20;

class Problems {
  readonly list: Diagnostic[] = [];
  constructor(private readonly file: string) {}
  add(message: string): void {
    if (this.list.length < MAX_DIAGNOSTICS) this.list.push({ message, location: { file: this.file } });
  }
  at(tile: number, section: SectionName, index: number, ins: Instr, problem: string): void {
    this.add(`tile ${tile}, section ${section}, instruction ${index} (${ins.op}): ${problem}`);
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw new UserError("verify", this.list);
  }
}

const isCount = (v: number): boolean => Number.isInteger(v) && v >= 0;

function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * Verifies `p` and returns its embedded target; throws UserError kind "verify" listing the
 * problems. A program that records a target plugin needs exactly that plugin (`plugin`, found
 * by src/target/plugin.ts pluginForProgram): without it, or with another one, it is refused.
 */
export function checkProgram(p: Program, file: string, plugin: LoadedPlugin | null = null): Target {
  const pr = new Problems(file);
  const target = checkTarget(p, file, pr);
  const ext = checkPlugin(p, file, plugin, target);
  // The interpreter allocates global memory up front: a resource limit, checked first.
  if (isCount(p.io.globalWords)) checkLimit("maxGlobalWords", p.io.globalWords, "the program's global memory size in words", { file });
  checkLayout(p, target, pr);
  pr.throwIfAny(); // instruction checks index crossbars, tiles and memories validated above
  checkInstructions(p, target, ext, pr);
  checkDelays(p, pr);
  pr.throwIfAny(); // message pairing reads the delays
  for (const s of SECTION_NAMES) {
    checkMessages(p, s, pr);
    checkGlobalRaces(p, s, pr);
  }
  pr.throwIfAny();
  return target;
}

export function verifyProgram(p: Program, file: string, plugin: LoadedPlugin | null = null): void {
  checkProgram(p, file, plugin);
}

/** The plugin's runtime when the program needs one and `plugin` is exactly it; UserErrors otherwise. */
function checkPlugin(p: Program, file: string, plugin: LoadedPlugin | null, target: Target): ExtRuntime | null {
  const want = p.plugin;
  if (want === undefined) return null;
  if (plugin === null)
    throw new UserError(
      "usage",
      `the program was compiled for target "${p.target.name}" with target plugin "${want.name}" version ${want.version} (sha256 ${want.sha256}, recorded as ${want.file}) and cannot run without it (imssa-run loads it from the recorded path, or takes --plugin FILE or --target TARGET.json)`,
      { file },
    );
  const mismatch = pluginMismatch(want, plugin);
  if (mismatch !== null) throw new UserError("verify", mismatch, { file });
  for (const ins of want.instructions) {
    const spec = plugin.byId.get(ins.id);
    if (spec === undefined || spec.mnemonic !== ins.mnemonic)
      throw new UserError("verify", `the program's plugin instruction ${ins.id} "${ins.mnemonic}" is not declared by ${plugin.path} (it declares ${spec ? `"${spec.mnemonic}"` : "no instruction"} with id ${ins.id})`, { file });
  }
  return new ExtRuntime(plugin, target);
}

function checkTarget(p: Program, file: string, pr: Problems): Target {
  if (!(Number.isInteger(p.formatVersion) && p.formatVersion >= 1 && p.formatVersion <= FORMAT_VERSION))
    pr.add(`format version ${p.formatVersion} is not supported (expected 1 to ${FORMAT_VERSION})`);
  if (p.plugin !== undefined && p.formatVersion < PLUGIN_FORMAT_VERSION)
    pr.add(`format version ${p.formatVersion} cannot record a target plugin (format ${PLUGIN_FORMAT_VERSION} or newer can)`);
  const digest = sha256Hex(p.target.json);
  if (digest !== p.target.sha256.toLowerCase())
    pr.add(`embedded target "${p.target.name}" does not match its sha256 (recorded ${p.target.sha256}, computed ${digest})`);
  let target: Target;
  try {
    target = targetFromJson(p.target.json, `${file} (embedded target)`);
  } catch (e) {
    if (!isUserError(e)) throw e;
    for (const d of e.diagnostics) pr.add(`embedded target is invalid: ${d.message}${d.location?.path ? ` (at ${d.location.path})` : ""}`);
    pr.throwIfAny();
    throw e;
  }
  if (target.name !== p.target.name) pr.add(`target name "${p.target.name}" differs from the embedded target's name "${target.name}"`);
  pr.throwIfAny();
  return target;
}

function checkLayout(p: Program, t: Target, pr: Problems): void {
  const nTiles = p.tiles.length;
  if (nTiles === 0) pr.add("program has no tiles");
  if (t.tiles.count !== "unlimited" && nTiles > t.tiles.count) pr.add(`program uses ${nTiles} tiles, target ${t.name} has ${t.tiles.count}`);
  const memLimit = Math.min(t.tiles.memoryWords, MAX_LOCAL_ADDRESS + 1);
  if (!isCount(p.io.globalWords) || p.io.globalWords > 2 ** 32) pr.add(`global memory size ${p.io.globalWords} is not a word count below 2^32`);

  // Unrolled programs (src/passes/unroll.ts): input and step-output buffers hold k time steps each.
  const k = p.unroll ?? 1;
  if (!(Number.isInteger(k) && k >= 1 && k <= MAX_UNROLL)) pr.add(`unroll factor ${k} is not an integer from 1 to ${MAX_UNROLL}`);
  else
    for (const b of [...p.io.inputs, ...p.io.stepOutputs])
      if (b.size % k !== 0) pr.add(`buffer "${b.name}" has ${b.size} words, not a multiple of the unroll factor ${k} (one slice per time step)`);
  const buffers = [
    ["input", p.io.inputs],
    ["step output", p.io.stepOutputs],
    ["final output", p.io.finalOutputs],
  ] as const;
  for (const [kind, list] of buffers)
    for (const b of list) {
      if (!isCount(b.size) || !isCount(b.addr) || b.addr + b.size > p.io.globalWords)
        pr.add(`${kind} "${b.name}" [${b.addr}, ${b.addr + b.size}) lies outside global memory (${p.io.globalWords} words)`);
    }

  p.tiles.forEach((tile, ti) => {
    if (!isCount(tile.memoryWords) || tile.memoryWords > memLimit)
      pr.add(`tile ${ti}: memoryWords ${tile.memoryWords} exceeds the target's ${memLimit} words per tile`);
    tile.constants.forEach((c, ci) => {
      if (!isCount(c.addr) || c.addr + c.data.length > tile.memoryWords)
        pr.add(`tile ${ti}: constant block ${ci} [${c.addr}, ${c.addr + c.data.length}) lies outside the tile's ${tile.memoryWords} memory words`);
    });
    for (const s of SECTION_NAMES) {
      const sec = tile.sections[s];
      if (sec.symbols.length !== sec.code.length)
        pr.add(`tile ${ti}, section ${s}: ${sec.symbols.length} debug symbols for ${sec.code.length} instructions`);
      sec.symbols.forEach((sym, i) => {
        if (!Number.isInteger(sym) || sym < 0 || sym >= p.symbols.length)
          pr.add(`tile ${ti}, section ${s}, instruction ${i}: debug symbol ${sym} is not in the symbol table (${p.symbols.length} entries)`);
      });
    }
  });

  const seen = new Set<number>();
  const perTile = new Map<number, number>();
  for (const x of p.crossbars) {
    if (seen.has(x.id)) pr.add(`crossbar ${x.id}: duplicate crossbar id`);
    seen.add(x.id);
    if (!Number.isInteger(x.tile) || x.tile < 0 || x.tile >= nTiles) pr.add(`crossbar ${x.id}: tile ${x.tile} does not exist (program has ${nTiles} tiles)`);
    else perTile.set(x.tile, (perTile.get(x.tile) ?? 0) + 1);
    checkCrossbarImage(x, t, pr);
  }
  for (const [tile, n] of perTile)
    if (n > t.tiles.crossbarsPerTile) pr.add(`tile ${tile}: ${n} crossbars, target ${t.name} has ${t.tiles.crossbarsPerTile} per tile`);
}

function checkCrossbarImage(x: CrossbarImage, t: Target, pr: Problems): void {
  const where = `crossbar ${x.id}`;
  if (!Number.isInteger(x.rows) || x.rows < 1 || x.rows > t.crossbar.rows || !Number.isInteger(x.cols) || x.cols < 1 || x.cols > t.crossbar.cols) {
    pr.add(`${where}: size ${x.rows}x${x.cols} does not fit the target's ${t.crossbar.rows}x${t.crossbar.cols} crossbars`);
    return;
  }
  const cells = x.rows * x.cols;
  const lengths: [string, number, number][] = [
    ["inRange", x.inRange.length, x.rows],
    ["colScale", x.colScale.length, x.cols],
    ["outRange", x.outRange.length, x.cols],
    [x.weights.kind === "levels" ? "levels" : "values", x.weights.kind === "levels" ? x.weights.levels.length : x.weights.values.length, cells],
  ];
  for (const [name, got, want] of lengths) if (got !== want) pr.add(`${where}: ${name} has ${got} entries, expected ${want}`);
  const n = t.crossbar.numerics;
  if (n.kind === "quantized") {
    if (x.weights.kind !== "levels") return pr.add(`${where}: float weights on quantized target ${t.name} (expected integer levels)`);
    const L = n.deviceLevels - 1;
    const lv = x.weights.levels;
    for (let i = 0; i < lv.length; i++)
      if (lv[i]! > L || lv[i]! < -L) return pr.add(`${where}: level ${lv[i]} at row ${Math.floor(i / x.cols)}, column ${i % x.cols} is outside [-${L}, ${L}]`);
    const positive = (name: string, a: Float32Array): void => {
      const i = a.findIndex((v) => !(v > 0 && Number.isFinite(v)));
      if (i >= 0) pr.add(`${where}: ${name}[${i}] = ${a[i]} must be positive and finite`);
    };
    positive("inRange", x.inRange);
    positive("outRange", x.outRange);
    const i = x.colScale.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) pr.add(`${where}: colScale[${i}] = ${x.colScale[i]} is not finite`);
  } else {
    if (x.weights.kind !== "float") return pr.add(`${where}: integer levels on float target ${t.name} (expected float values)`);
    const i = x.weights.values.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) pr.add(`${where}: weight ${i} = ${x.weights.values[i]} is not finite`);
  }
}

function checkInstructions(p: Program, t: Target, ext: ExtRuntime | null, pr: Problems): void {
  const xbars = new Map(p.crossbars.map((x) => [x.id, x]));
  p.tiles.forEach((tile, ti) => {
    for (const s of SECTION_NAMES)
      tile.sections[s].code.forEach((ins, i) => {
        const problem = instructionProblem(p, t, xbars, ext, ti, s, ins);
        if (problem !== null) pr.at(ti, s, i, ins, problem);
      });
  });
}

function instructionProblem(p: Program, t: Target, xbars: Map<number, CrossbarImage>, ext: ExtRuntime | null, ti: number, s: SectionName, ins: Instr): string | null {
  const fieldError = fieldRangeError(ins);
  if (fieldError !== null) return fieldError.replace(`${ins.op}: `, "");
  const memoryWords = p.tiles[ti]!.memoryWords;
  switch (ins.op) {
    case "mvm": {
      const x = xbars.get(ins.xbar);
      if (x === undefined) return `crossbar ${ins.xbar} does not exist`;
      if (x.tile !== ti) return `crossbar ${ins.xbar} belongs to tile ${x.tile}`;
      if (ins.rows < 1 || ins.cols < 1) return `empty window ${ins.rows}x${ins.cols}`;
      if (ins.rowStart + ins.rows > x.rows) return `rows [${ins.rowStart}, ${ins.rowStart + ins.rows}) exceed crossbar ${x.id}'s ${x.rows} rows`;
      if (ins.colStart + ins.cols > x.cols) return `columns [${ins.colStart}, ${ins.colStart + ins.cols}) exceed crossbar ${x.id}'s ${x.cols} columns`;
      break;
    }
    case "send":
    case "recv":
      if (ins.peer >= p.tiles.length) return `peer tile ${ins.peer} does not exist (program has ${p.tiles.length} tiles)`;
      if (ins.peer === ti) return `${ins.op === "send" ? "sends to" : "receives from"} its own tile`;
      if (ins.len < 1) return "len must be at least 1";
      break;
    case "vdivsteps":
      if (s !== "final") return "vdivsteps is only allowed in the final section (T is known only after the last step)";
      if (ins.len < 1) return "len must be at least 1";
      break;
    case "vscale":
    case "vnorm":
      if (!Number.isFinite(ins.imm)) return `immediate ${ins.imm} is not finite`;
      if (ins.op === "vnorm" && ins.imm < 0) return `epsilon ${ins.imm} is negative`;
      if (ins.len < 1) return "len must be at least 1";
      break;
    case "ext": {
      if (ext === null) return "ext instruction, but the program records no target plugin to run it";
      const spec = ext.spec(ins);
      if (spec === null)
        return `plugin "${ext.loaded.plugin.name}" declares no instruction with id ${ins.ext} (it declares ${[...ext.loaded.byId.keys()].sort((x, y) => x - y).join(", ") || "none"})`;
      if (!p.plugin!.instructions.some((i) => i.id === ins.ext)) return `instruction id ${ins.ext} (${spec.mnemonic}) is missing from the program's plugin record`;
      // Bounds of the plugin's declared accesses, checked like the ISA's own below.
      const a = ext.access(spec, ins);
      for (const r of [...a.reads, ...(a.write ? [a.write] : [])])
        if (r.addr + r.len > memoryWords) return `${spec.mnemonic}: ${r.field} range [${r.addr}, ${r.addr + r.len}) exceeds the tile's ${memoryWords} memory words`;
      return null;
    }
    default:
      if (ins.len < 1) return "len must be at least 1";
  }
  const a = accessOf(ins);
  for (const r of [...a.reads, ...(a.write ? [a.write] : [])])
    if (r.addr + r.len > memoryWords) return `${r.field} range [${r.addr}, ${r.addr + r.len}) exceeds the tile's ${memoryWords} memory words`;
  if (a.global && a.global.addr + a.global.len > p.io.globalWords)
    return `global range [${a.global.addr}, ${a.global.addr + a.global.len}) exceeds global memory (${p.io.globalWords} words)`;
  return null;
}

/** Step delays (docs/ISA.md "Step delays"): where they may be, and what must share one. */
function checkDelays(p: Program, pr: Problems): void {
  p.tiles.forEach((tile, ti) => {
    for (const s of SECTION_NAMES) {
      const sec = tile.sections[s];
      if (sec.delays === undefined) continue;
      if (sec.delays.length !== sec.code.length) pr.add(`tile ${ti}, section ${s}: ${sec.delays.length} step delays for ${sec.code.length} instructions`);
      sec.delays.forEach((d, i) => {
        if (!(Number.isInteger(d) && d >= 0 && d <= 255)) pr.add(`tile ${ti}, section ${s}, instruction ${i}: step delay ${d} is not an integer from 0 to 255`);
        else if (d !== 0 && s !== "step") pr.add(`tile ${ti}, section ${s}, instruction ${i}: step delay ${d} outside the step section (only step instructions run in rounds)`);
      });
    }
    const step = tile.sections.step;
    step.code.forEach((ins, i) => {
      if (ins.op !== "load" || delayAt(step, i) === 0) return;
      const input = p.io.inputs.find((b) => ins.global < b.addr + b.size && b.addr < ins.global + ins.len);
      if (input) pr.at(ti, "step", i, ins, `loads input "${input.name}" with step delay ${delayAt(step, i)}; the host writes step r's input before round r, so input loads must have delay 0`);
    });
  });
  for (const b of p.io.stepOutputs) {
    const ds = storeDelays(p, b);
    if (ds.length > 1) pr.add(`step output "${b.name}" is stored with step delays ${ds.join(" and ")}; the host reads it after one round per step, so all its stores need one delay`);
  }
}

interface MessageEnd {
  tile: number;
  index: number;
  len: number;
}

/** Every send has exactly one recv with the same length in the same section, and vice versa. */
function checkMessages(p: Program, s: SectionName, pr: Problems): void {
  const sends = new Map<string, MessageEnd>();
  const recvs = new Map<string, MessageEnd>();
  p.tiles.forEach((tile, ti) =>
    tile.sections[s].code.forEach((ins, i) => {
      if (ins.op !== "send" && ins.op !== "recv") return;
      const key = ins.op === "send" ? `${ti}>${ins.peer}#${ins.tag}` : `${ins.peer}>${ti}#${ins.tag}`;
      const map = ins.op === "send" ? sends : recvs;
      const first = map.get(key);
      if (first) return pr.at(ti, s, i, ins, `duplicate ${ins.op} ${ins.op === "send" ? "to" : "from"} tile ${ins.peer} with tag ${ins.tag} (first at instruction ${first.index})`);
      map.set(key, { tile: ti, index: i, len: ins.len });
    }),
  );
  for (const [key, snd] of sends) {
    const rcv = recvs.get(key);
    const ins = p.tiles[snd.tile]!.sections[s].code[snd.index]!;
    if (ins.op !== "send") continue;
    if (!rcv) pr.at(snd.tile, s, snd.index, ins, `no matching recv from tile ${snd.tile} with tag ${ins.tag} on tile ${ins.peer} in section ${s}`);
    else if (rcv.len !== snd.len) {
      const r = p.tiles[rcv.tile]!.sections[s].code[rcv.index]!;
      pr.at(rcv.tile, s, rcv.index, r, `receives ${rcv.len} words but the matching send (tile ${snd.tile}, instruction ${snd.index}) sends ${snd.len}`);
    } else {
      // A message never crosses a round boundary (docs/ISA.md "Step delays").
      const ds = delayAt(p.tiles[snd.tile]!.sections[s], snd.index);
      const dr = delayAt(p.tiles[rcv.tile]!.sections[s], rcv.index);
      const r = p.tiles[rcv.tile]!.sections[s].code[rcv.index]!;
      if (ds !== dr) pr.at(rcv.tile, s, rcv.index, r, `has step delay ${dr} but the matching send (tile ${snd.tile}, instruction ${snd.index}) has ${ds}; a send and its recv need the same delay`);
    }
  }
  for (const [key, rcv] of recvs) {
    if (sends.has(key)) continue;
    const ins = p.tiles[rcv.tile]!.sections[s].code[rcv.index]!;
    if (ins.op === "recv") pr.at(rcv.tile, s, rcv.index, ins, `no matching send to tile ${rcv.tile} with tag ${ins.tag} on tile ${ins.peer} in section ${s}`);
  }
}

/**
 * Tiles share global memory but synchronise only through send/recv, so a global range that
 * one tile stores and another tile loads or stores within one section is a race whose
 * outcome would depend on timing. (Within a tile the single load/store port orders accesses.)
 */
function checkGlobalRaces(p: Program, s: SectionName, pr: Problems): void {
  const stores: { tile: number; index: number; lo: number; hi: number }[] = [];
  p.tiles.forEach((tile, ti) =>
    tile.sections[s].code.forEach((ins, i) => {
      if (ins.op === "store" && ins.len > 0) stores.push({ tile: ti, index: i, lo: ins.global, hi: ins.global + ins.len });
    }),
  );
  if (stores.length === 0) return;
  p.tiles.forEach((tile, ti) =>
    tile.sections[s].code.forEach((ins, i) => {
      if (ins.op !== "load" && ins.op !== "store") return;
      const lo = ins.global;
      const hi = ins.global + ins.len;
      const other = stores.find((st) => st.tile !== ti && !(ins.op === "store" && st.tile > ti) && st.lo < hi && lo < st.hi);
      if (other)
        pr.at(ti, s, i, ins, `global words [${lo}, ${hi}) are also stored by tile ${other.tile} (instruction ${other.index}) in section ${s}; tiles must exchange data with send/recv`);
    }),
  );
}
