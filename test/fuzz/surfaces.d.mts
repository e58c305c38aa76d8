// Types of surfaces.mjs (plain JavaScript so scripts/fuzz.mjs can load it without a build).

import type { Arbitrary } from "fast-check";

export type Outcome =
  | { outcome: "ok" }
  | { outcome: "user"; kind: string; message: string }
  | { outcome: "uncaught"; error: unknown };

/** The library entry points a surface calls (from src/ in jest, from dist/ in npm run fuzz). */
export interface FuzzLib {
  isUserError(e: unknown): boolean;
  parseNpy(bytes: Uint8Array, file: string): { data: ArrayLike<number | bigint> } & object;
  toFloat64(data: never): Float64Array;
  decodeProgram(bytes: Uint8Array, file: string): any;
  encodeProgram(p: any): Uint8Array;
  checkProgram(p: any, file: string): unknown;
  runProgram(p: any, input: Float32Array, shape: [number, number, number], opts?: { file?: string }): unknown;
  crc32(bytes: Uint8Array): number;
  sha256Hex(text: string): string;
  freshProgramBytes(): Uint8Array;
  targetFromJson(text: string, file: string): any;
  compile(model: any, target: any): unknown;
  tinyModel(): any;
  compileDslSource(text: string, file: string, opts?: { readParams?: (path: string) => Map<string, any> }): unknown;
  parseModelJson(text: string, file: string): unknown;
  onnxProto: any;
  compileOnnxBytes(bytes: Uint8Array, file: string): unknown;
  decodeSafetensors(bytes: Uint8Array, file: string): { tensors: Map<string, any> };
}

export interface Surface {
  name: string;
  /** Not part of the default run (npm run fuzz, the jest corpus test); select it by name. */
  optIn?: boolean;
  arbitrary: Arbitrary<any>;
  run(input: any): void;
}

export function classify(fn: () => void, isUserError: (e: unknown) => boolean): Outcome;
export function mutateBytes(bytes: Uint8Array, mutations: unknown[]): Uint8Array;
export function mutateJson(value: unknown, mutations: unknown[]): string;
export function makeSurfaces(opts: { root: string; scratch: string; lib: FuzzLib }): Surface[];
export function encodeCase(input: unknown): { ext: "bin" | "json"; data: Uint8Array | string };
export function decodeCase(file: string, contents: Uint8Array): unknown;
export function loadCorpus(root: string, name: string): { file: string; input: unknown }[];
