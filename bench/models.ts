// Benchmark models: synthetic S4D networks in the shape of examples/digits.s4d (linear
// encoder, residual post-norm S4D blocks with GELU and a GLU output linear, linear decoder),
// scaled by width H, state size N and depth, with the DSL's seeded initialization. A target
// derived from xbar256 with enough tiles for the largest of them.

import { compileDslSource } from "../src/frontend/dsl/index.js";
import type { Model } from "../src/ir/types.js";
import { loadTarget, targetFromJson, targetToJson } from "../src/target/load.js";
import type { Target } from "../src/target/types.js";

export interface SyntheticSpec {
  name: string;
  H: number;
  N: number;
  layers: number;
  dIn: number;
  dOut: number;
}

/**
 * Nonzero weights of the lowered model, estimated from the shapes: per layer the S4D step
 * matrix (2x2 rotation per complex mode pair, B and C entries: about 3 H N nonzeros plus the
 * skip) and the 2H x H output linear; plus encoder and decoder. The benches report the exact
 * count the tiler saw; this only picks sizes.
 */
export function estimatedWeights(s: SyntheticSpec): number {
  return s.layers * (3 * s.H * s.N + 2 * s.H * s.H) + s.dIn * s.H + s.H * s.dOut;
}

export function syntheticSource(s: SyntheticSpec): string {
  return [
    `model ${s.name} {`,
    `  input u[${s.dIn}];`,
    "  output y;",
    "  params init seed 0;",
    `  linear(${s.H});`,
    `  repeat ${s.layers} {`,
    "    residual postnorm(eps = 1e-5) {",
    `      s4d(N = ${s.N}, discretization = zoh, dt_min = 0.001, dt_max = 0.1, init = lin);`,
    "      gelu;",
    `      linear(${2 * s.H});`,
    "      glu;",
    "    }",
    "  }",
    `  linear(${s.dOut});`,
    "}",
    "",
  ].join("\n");
}

export function syntheticModel(s: SyntheticSpec): Model {
  return compileDslSource(syntheticSource(s), `<bench ${s.name}>`);
}

/**
 * A shipped target with `tiles` tiles (same crossbars, numerics, timing and energy): room
 * for models no shipped target holds (xbar256 with 1024 tiles holds ten million weights).
 */
export function bigTarget(tiles: number, from = "xbar256"): Target {
  const base = JSON.parse(targetToJson(loadTarget(from))) as Record<string, unknown> & { tiles: Record<string, unknown> };
  base.name = `${from}x${tiles}`;
  base.description = `bench-local: ${from} with ${tiles} tiles`;
  base.tiles = { ...base.tiles, count: tiles };
  return targetFromJson(JSON.stringify(base), `<bench target ${base.name}>`);
}
