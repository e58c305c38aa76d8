// The library entry points the fuzz surfaces (surfaces.mjs) call, from src/ for jest.
// scripts/fuzz.mjs builds the same object from dist/.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { crc32 } from "../../src/backend/checksum.js";
import { decodeProgram, encodeProgram } from "../../src/backend/container.js";
import { isUserError } from "../../src/common/errors.js";
import { sha256Hex } from "../../src/common/json.js";
import { parseNpy, toFloat64 } from "../../src/common/npy.js";
import { compileDslSource } from "../../src/frontend/dsl/index.js";
import { compileOnnxBytes } from "../../src/frontend/onnx/index.js";
import { decodeSafetensors } from "../../src/frontend/safetensors.js";
import { runProgram } from "../../src/interp/run.js";
import { checkProgram } from "../../src/interp/verify.js";
import { parseModelJson } from "../../src/ir/json.js";
import { compile } from "../../src/pipeline.js";
import { loadTarget, targetFromJson } from "../../src/target/load.js";
import type { FuzzLib } from "./surfaces.mjs";

export const ROOT = process.cwd();

/** A freshly compiled .xbin of test/fuzz/small.s4d for the 8x8 test target (a few KB: exhaustive bit flips stay fast). */
export function freshProgramBytes(): Uint8Array {
  const file = join(ROOT, "test/fuzz/small.s4d");
  const model = compileDslSource(readFileSync(file, "utf8"), file);
  return encodeProgram(compile(model, loadTarget(join(ROOT, "test/fuzz/xbar8.json")), { sourceName: file }).program);
}

export const lib: FuzzLib = {
  isUserError,
  parseNpy,
  toFloat64,
  decodeProgram,
  encodeProgram,
  checkProgram,
  runProgram,
  crc32,
  sha256Hex,
  freshProgramBytes,
  targetFromJson,
  compile: (model, target) => compile(model, target, { sourceName: "fuzz" }),
  tinyModel: () => compileDslSource(readFileSync(join(ROOT, "examples/tiny.s4d"), "utf8"), join(ROOT, "examples/tiny.s4d")),
  compileDslSource,
  parseModelJson,
  onnxProto: onnxProto.onnx,
  compileOnnxBytes,
  decodeSafetensors,
};
