// Runs every fixture of test/fixtures/onnx/fixtures.json with ONNX Runtime (onnxruntime-node,
// a dev dependency of imssa) and compares with the PyTorch reference outputs (.output.npy).
// Python has no onnxruntime on Debian bookworm, so this is how the generator's output is
// checked end to end:   node exporters/pytorch/check_ort.mjs [fixture dir]
//
// Step graphs run one time step per call, states starting at zero and fed back by the
// manifest's pairs; pooled step graphs (readout "mean") are averaged over time. Scan graphs
// run once on the whole [B, T, d_in] input.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";

const here = dirname(fileURLToPath(import.meta.url));
const dir = resolve(process.argv[2] ?? join(here, "..", "..", "test", "fixtures", "onnx"));

function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.toString("latin1", 1, 6) !== "NUMPY") throw new Error(`${path}: not .npy`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + hlen);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) throw new Error(`${path}: want C-order <f4, got ${header}`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const off = start + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { shape, data };
}

async function runFixture(f) {
  const session = await ort.InferenceSession.create(join(dir, f.file));
  const x = readNpy(join(dir, f.data.input));
  const want = readNpy(join(dir, f.data.output));
  const [B, T, D] = x.shape;
  let got;
  if (f.form === "scan") {
    const out = await session.run({ [f.input]: new ort.Tensor("float32", x.data, x.shape) });
    got = out[f.output].data;
  } else {
    let states = f.states.map((s) => {
      const shape = s.shape.map((d) => (d === "batch" ? B : d));
      return new ort.Tensor("float32", new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
    });
    const ys = [];
    for (let t = 0; t < T; t++) {
      const u = new Float32Array(B * D);
      for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) u[b * D + d] = x.data[(b * T + t) * D + d];
      const feeds = { [f.input]: new ort.Tensor("float32", u, [B, D]) };
      f.states.forEach((s, k) => (feeds[s.in] = states[k]));
      const out = await session.run(feeds);
      ys.push(out[f.output]);
      states = f.states.map((s) => out[s.out]);
    }
    const dOut = ys[0].dims[1];
    if (f.data.steps_output) {
      const steps = readNpy(join(dir, f.data.steps_output));
      const stepScale = steps.data.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
      ys.forEach((y, t) => {
        for (let b = 0; b < B; b++) for (let j = 0; j < dOut; j++) {
          const e = Math.abs(y.data[b * dOut + j] - steps.data[(b * T + t) * dOut + j]);
          if (!(e < 1e-5 * stepScale)) throw new Error(`${f.name}: step ${t} output differs from ${f.data.steps_output} by ${e}`);
        }
      });
    }
    if (f.readout === "mean") {
      got = new Float32Array(B * dOut);
      for (const y of ys) for (let i = 0; i < got.length; i++) got[i] += y.data[i] / T;
    } else {
      got = new Float32Array(B * T * dOut);
      ys.forEach((y, t) => {
        for (let b = 0; b < B; b++) for (let j = 0; j < dOut; j++) got[(b * T + t) * dOut + j] = y.data[b * dOut + j];
      });
    }
  }
  if (got.length !== want.data.length) throw new Error(`${f.name}: ${got.length} values, reference has ${want.data.length}`);
  let err = 0;
  let scale = 1;
  for (let i = 0; i < got.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want.data[i]));
    scale = Math.max(scale, Math.abs(want.data[i]));
  }
  return { err, scale };
}

const manifest = JSON.parse(readFileSync(join(dir, "fixtures.json"), "utf8"));
let failed = 0;
for (const f of manifest.fixtures) {
  // float32 rounding: 1e-5 of max(1, max |reference|) (trained classifiers have logits of size 10..50)
  const { err, scale } = await runFixture(f);
  const ok = err < 1e-5 * scale;
  if (!ok) failed++;
  const rel = scale > 1 ? `, relative to max |output| ${(err / scale).toExponential(2)}` : "";
  console.log(`${ok ? "ok  " : "FAIL"} ${f.name.padEnd(22)} max |ORT - PyTorch| = ${err.toExponential(2)}${rel}${f.expect === "reject" ? " (valid ONNX; imssa must reject it)" : ""}`);
}
console.log(`${manifest.fixtures.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
