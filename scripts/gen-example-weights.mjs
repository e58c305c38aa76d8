#!/usr/bin/env node
// Writes examples/trend.safetensors, the hand-set checkpoint of examples/trend.s4d.
// Run after `npm run build` (it uses the compiled safetensors writer):
//   node scripts/gen-example-weights.mjs
//
// The weights are derived, not trained: with ZOH, dt = 1, a single real mode A = -1/tau and
// C = 1/(2 tau), an S4D channel computes the exponential moving average
//   y_k = a y_{k-1} + (1 - a) u_k,   a = exp(-1/tau)
// (the state's steady state is tau * u, and y = 2 Re(C x)). Two channels with tau = 4 and
// tau = 32 and a decoder computing fast - slow make a trend detector.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let writeSafetensors;
try {
  ({ writeSafetensors } = await import(join(root, "dist/frontend/safetensors.js")));
} catch (e) {
  console.error(`cannot load dist/frontend/safetensors.js (${e.message}); run \`npm run build\` first`);
  process.exit(1);
}

const taus = [4, 32];
const H = taus.length;
const f32 = (shape, data) => ({ dtype: "F32", shape, data });

const tensors = {
  "encoder.weight": f32([H, 1], taus.map(() => 1)),
  "encoder.bias": f32([H], taus.map(() => 0)),
  "s4_layers.0.kernel.log_dt": f32([H], taus.map(() => 0)), // dt = 1 step
  "s4_layers.0.kernel.log_A_real": f32([H, 1], taus.map((t) => Math.log(1 / t))), // A = -1/tau
  "s4_layers.0.kernel.A_imag": f32([H, 1], taus.map(() => 0)),
  "s4_layers.0.kernel.C": f32([H, 1, 2], taus.flatMap((t) => [1 / (2 * t), 0])), // view_as_real
  "s4_layers.0.D": f32([H], taus.map(() => 0)),
  "decoder.weight": f32([1, H], [1, -1]),
  "decoder.bias": f32([1], [0]),
};

const out = join(root, "examples/trend.safetensors");
writeSafetensors(out, tensors, { format: "pt", description: `EMA trend detector, tau = ${taus.join(", ")}` });
console.log(`wrote ${out}`);
