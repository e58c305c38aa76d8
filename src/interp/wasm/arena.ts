// The WebAssembly MVM kernel (src/interp/wasm/mvm.wat) and the memory it works in. The kernel
// reads and writes tile memory directly, so the machine's tile memories are float32 views
// into one WebAssembly.Memory that also holds every crossbar's ranges, levels and nonzero
// cells. The memory is sized once for the program and never grows (growing would detach the
// views).
//
// Used for the noise-free quantized crossbars of float32-datapath targets, the common case
// of imssa-run and the ORT comparison (docs/PERF.md: 2.4x on the MVMs of the ONNX digits
// step). Everything else (float numerics, device noise, float64 datapaths, a Node without
// WebAssembly SIMD, IMSSA_WASM=0 in the environment) keeps the JavaScript kernels, which give
// the same bits.

import type { CrossbarImage, Program } from "../../backend/program.js";
import type { Numerics } from "../../target/types.js";
import { type CrossbarModel, type MvmWindow, makeCrossbar, sparseCols } from "../crossbar.js";
import type { Memory } from "../memory.js";
import { instantiate, KernelLayout, kernelModule, type MvmFn } from "./kernel.js";

/** Larger programs keep the JavaScript kernels (the arena's offsets are 32-bit). */
const MAX_ARENA_BYTES = 2 ** 31;

/** Byte offsets of one crossbar's data in the arena. */
interface CrossbarLayout {
  image: CrossbarImage;
  levels: Int16Array;
  inRange: number;
  colScale: number;
  outRange: number;
  levelsAt: number;
  /** 0: stored dense. */
  colPtr: number;
  cellRow: number;
  cellVal: number;
  cells: ReturnType<typeof sparseCols>;
}

/** Where everything lives in the arena. */
interface ArenaLayout {
  tileAt: number[];
  crossbars: CrossbarLayout[];
  /** Float64 scratch for the DAC codes and the column sums of one MVM. */
  codes: number;
  sums: number;
  layout: KernelLayout;
}

function arenaLayout(tileWords: readonly number[], images: readonly CrossbarImage[]): ArenaLayout {
  // KernelLayout never hands out offset 0, so a colPtr of 0 can mean "no sparse cells".
  const layout = new KernelLayout();
  const tileAt = tileWords.map((w) => layout.take(4 * w));
  let maxRows = 1;
  let maxCols = 1;
  const crossbars = images.map((image): CrossbarLayout => {
    const levels = (image.weights as { levels: Int16Array }).levels;
    const { rows, cols } = image;
    maxRows = Math.max(maxRows, rows);
    maxCols = Math.max(maxCols, cols);
    const cells = sparseCols(levels, rows, cols);
    return {
      image,
      levels,
      inRange: layout.take(4 * rows),
      colScale: layout.take(4 * cols),
      outRange: layout.take(4 * cols),
      levelsAt: layout.take(2 * rows * cols),
      colPtr: cells ? layout.take(4 * (cols + 1)) : 0,
      cellRow: cells ? layout.take(4 * cells.row.length) : 0,
      cellVal: cells ? layout.take(8 * cells.val.length) : 0,
      cells,
    };
  });
  const codes = layout.take(8 * maxRows);
  const sums = layout.take(8 * maxCols);
  return { tileAt, crossbars, codes, sums, layout };
}

export class KernelArena {
  /** Float32 local memory of each tile, in tile order. */
  readonly tiles: Float32Array[];
  private readonly layouts = new Map<number, CrossbarLayout>();
  private readonly buffer: ArrayBuffer;
  private readonly mvm: MvmFn;
  private readonly codes: number;
  private readonly sums: number;

  /**
   * The arena for a program's tile memories and crossbars, or null when the kernel does not
   * apply (see the top of this file).
   */
  static forProgram(program: Program, numerics: Numerics, datapath: "float32" | "float64"): KernelArena | null {
    if (datapath !== "float32") return null;
    return KernelArena.build(
      program.tiles.map((t) => t.memoryWords),
      program.crossbars,
      numerics,
    );
  }

  /** The arena for tiles of these sizes and these crossbar images (quantized numerics only), or null. */
  static build(tileWords: readonly number[], images: readonly CrossbarImage[], numerics: Numerics): KernelArena | null {
    if (numerics.kind !== "quantized") return null;
    const module = kernelModule();
    if (module === null || images.some((img) => img.weights.kind !== "levels")) return null;
    const layout = arenaLayout(tileWords, images);
    if (layout.layout.bytes > MAX_ARENA_BYTES) return null;
    return new KernelArena(module, tileWords, layout, numerics);
  }

  private constructor(
    module: WebAssembly.Module,
    tileWords: readonly number[],
    layout: ArenaLayout,
    private readonly numerics: Extract<Numerics, { kind: "quantized" }>,
  ) {
    const { exports, buffer } = instantiate(module, layout.layout);
    this.mvm = exports.mvm as MvmFn;
    this.buffer = buffer;
    this.codes = layout.codes;
    this.sums = layout.sums;
    const buf = this.buffer;
    this.tiles = layout.tileAt.map((at, i) => new Float32Array(buf, at, tileWords[i]!));
    for (const l of layout.crossbars) {
      const img = l.image;
      new Float32Array(buf, l.inRange, img.rows).set(img.inRange);
      new Float32Array(buf, l.colScale, img.cols).set(img.colScale);
      new Float32Array(buf, l.outRange, img.cols).set(img.outRange);
      new Int16Array(buf, l.levelsAt, img.rows * img.cols).set(l.levels);
      if (l.cells) {
        new Int32Array(buf, l.colPtr, img.cols + 1).set(l.cells.colPtr);
        new Int32Array(buf, l.cellRow, l.cells.row.length).set(l.cells.row);
        new Float64Array(buf, l.cellVal, l.cells.val.length).set(l.cells.val);
      }
      this.layouts.set(img.id, l);
    }
  }

  /** The kernel-backed model of one of the arena's crossbars. */
  crossbar(image: CrossbarImage): CrossbarModel {
    const l = this.layouts.get(image.id);
    if (l === undefined || l.image !== image) throw new Error(`internal error: crossbar ${image.id} is not in the kernel arena`);
    return new WasmCrossbar(image, this.buffer, this.mvm, l, this.numerics, this.codes, this.sums);
  }
}

class WasmCrossbar implements CrossbarModel {
  private readonly D: number;
  private readonly Q: number;
  /** The JavaScript kernel, for memories outside the arena (built on first use). */
  private fallback: CrossbarModel | null = null;

  constructor(
    readonly image: CrossbarImage,
    private readonly buffer: ArrayBuffer,
    private readonly fn: MvmFn,
    private readonly l: CrossbarLayout,
    private readonly numerics: Extract<Numerics, { kind: "quantized" }>,
    private readonly codes: number,
    private readonly sums: number,
  ) {
    this.D = 2 ** (numerics.dacBits - 1) - 1;
    this.Q = 2 ** (numerics.adcBits - 1) - 1;
  }

  mvm(mem: Memory, w: MvmWindow, round: (x: number) => number): number {
    // Out-of-range windows (the verifier rejects them) would reach other data here, where the
    // typed-array kernel reads undefined: they take that kernel.
    const img = this.image;
    if (
      mem.buffer !== this.buffer ||
      w.src + w.rows > mem.length ||
      w.dst + w.cols > mem.length ||
      w.rowStart + w.rows > img.rows ||
      w.colStart + w.cols > img.cols
    )
      return (this.fallback ??= makeCrossbar(img, this.numerics)).mvm(mem, w, round);
    const l = this.l;
    const base = mem.byteOffset;
    return this.fn(
      l.inRange,
      l.colScale,
      l.outRange,
      l.levelsAt,
      l.colPtr,
      l.cellRow,
      l.cellVal,
      img.cols,
      this.D,
      this.Q,
      base + 4 * w.src,
      base + 4 * w.dst,
      w.rowStart,
      w.rows,
      w.colStart,
      w.cols,
      w.acc ? 1 : 0,
      this.codes,
      this.sums,
    );
  }
}
