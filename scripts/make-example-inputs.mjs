// Writes the example input sequences under examples/ (run after `npm run build`).
// Deterministic: a fixed-seed generator, so the committed .npy files can be regenerated
// bit-identically with `node scripts/make-example-inputs.mjs`.
import { writeNpy } from "../dist/common/npy.js";
import { Rng } from "../dist/common/rng.js";

// Sequential-digits-like inputs: 64 pixel intensities in [0, 1] read one per step, with the
// blocky structure of 8x8 images (a random stroke pattern per sequence).
function digitsLike(B, seed) {
  const rng = new Rng(seed);
  const rand = () => rng.uniform();
  const data = new Float32Array(B * 64);
  for (let b = 0; b < B; b++) {
    const cx = 2 + rand() * 4, cy = 2 + rand() * 4, r = 1.5 + rand() * 2;
    for (let p = 0; p < 64; p++) {
      const x = p % 8, y = Math.floor(p / 8);
      const d = Math.abs(Math.hypot(x - cx, y - cy) - r);
      data[b * 64 + p] = Math.max(0, 1 - d) * (0.75 + 0.25 * rand());
    }
  }
  return data;
}

function smoothNoise(B, T, d, seed) {
  const rng = new Rng(seed);
  const rand = () => rng.uniform();
  const data = new Float32Array(B * T * d);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < d; i++) {
      let v = 0;
      for (let t = 0; t < T; t++) {
        v = 0.9 * v + 0.3 * (rand() * 2 - 1);
        data[(b * T + t) * d + i] = v;
      }
    }
  return data;
}

writeNpy(new URL("../examples/digits-input.npy", import.meta.url).pathname, [8, 64, 1], digitsLike(8, 1));
writeNpy(new URL("../examples/tiny-input.npy", import.meta.url).pathname, [2, 32, 1], smoothNoise(2, 32, 1, 2));
console.log("wrote examples/digits-input.npy [8, 64, 1] and examples/tiny-input.npy [2, 32, 1]");
