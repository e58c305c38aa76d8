// Argmax agreement between the chip (interpreter) and the float reference for the trained
// classification fixtures on held-out digits (test split), per target (after `npm run build`):
//   node scripts/measure-argmax.mjs [--targets xbar64,ideal] [--limit N] [--fixtures scan_cls_op17,...] [--no-state-scaling]
//                                   [--recurrence direct|residual|direct,residual] [--unroll 1,2,4] [--weight-slices k]
// Ranges are calibrated on 64 training-split sequences (digits_train64*.input.npy), never on
// the sequences measured. The float reference is the fixture's ONNX Runtime/PyTorch output
// where one is committed for these inputs, checked against the IR's float evaluation.
import "../dist/common/polyfill.js";
import { loadModel, compile, sequencesFromBatch } from "../dist/pipeline.js";
import { readFloatNpy } from "../dist/common/npy.js";
import { runProgram } from "../dist/interp/run.js";
import { loadTarget } from "../dist/target/load.js";
import { evaluateSequence } from "../dist/reference/evaluate.js";
import { argmaxAgreement } from "../dist/verify/metrics.js";

const D = new URL("../test/fixtures/onnx/", import.meta.url).pathname;
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const targets = arg("--targets", "ideal,xbar64,xbar128,xbar256").split(",");
const limit = Number(arg("--limit", "200"));
const stateScaling = !process.argv.includes("--no-state-scaling");
// One or more recurrence forms (src/passes/residual.ts); default: the compiler's default.
const recurrences = arg("--recurrence", "default").split(",").map((r) => (r === "default" ? undefined : r));
// Device pairs per weight (src/passes/slice-weights.ts); default 1.
const weightSlices = Number(arg("--weight-slices", "1"));
// One or more unroll factors (src/passes/unroll.ts); the test sequences' length must be a multiple of each.
const unrolls = arg("--unroll", "1").split(",").map(Number);
const FIXTURES = {
  scan_cls_op17: { onnx: "scan_cls_op17.onnx", input: "scan_cls_op17.input.npy", output: "scan_cls_op17.output.npy", calibration: "digits_train64_rows.input.npy" },
  digits64_scan_op13: { onnx: "digits64_scan_op13.onnx", input: "digits_test200.input.npy", output: "digits64_test200.output.npy", calibration: "digits_train64.input.npy" },
  // quantization-aware trained against xbar64 (exporters/pytorch/train_digits_qat.py); same inputs as scan_cls_op17
  scan_cls_qat_op17: { onnx: "scan_cls_qat_op17.onnx", input: "scan_cls_op17.input.npy", output: "scan_cls_qat_op17.output.npy", calibration: "digits_train64_rows.input.npy" },
};
const names = arg("--fixtures", Object.keys(FIXTURES).join(",")).split(",");

const take = (npy, n) => {
  const [B, ...rest] = npy.shape;
  const m = Math.min(B, n);
  const per = rest.reduce((a, b) => a * b, 1);
  return { shape: [m, ...rest], data: npy.data.subarray(0, m * per) };
};

for (const name of names) {
  const f = FIXTURES[name];
  const model = loadModel(D + f.onnx);
  const x = take(readFloatNpy(D + f.input), limit);
  const seqs = sequencesFromBatch(model, x.data, x.shape, f.input);
  const calNpy = readFloatNpy(D + f.calibration);
  const cal = sequencesFromBatch(model, calNpy.data, calNpy.shape, f.calibration);
  const ortOut = take(readFloatNpy(D + f.output), limit).data;
  const irOut = Float64Array.from(seqs.flatMap((s) => [...Object.values(evaluateSequence(model, s).final)[0]]));
  let maxDiff = 0;
  for (let i = 0; i < irOut.length; i++) maxDiff = Math.max(maxDiff, Math.abs(irOut[i] - ortOut[i]));
  console.log(`${name}: ${x.shape[0]} test sequences, IR float vs ORT max |diff| ${maxDiff.toExponential(2)}, IR-float vs ORT argmax ${argmaxAgreement(irOut, ortOut, 10).toFixed(3)}`);
  for (const t of targets) {
    for (const recurrence of recurrences) {
      for (const unroll of unrolls) {
        const { program } = compile(model, loadTarget(t), { calibration: cal, stateScaling, recurrence, unroll, weightSlices });
        const out = runProgram(program, x.data, x.shape).final;
        console.log(`${name} ${t} state-scaling=${stateScaling ? "on" : "off"} recurrence=${recurrence ?? "default"} unroll=${unroll} weight-slices=${weightSlices} argmax agreement vs ORT ${argmaxAgreement(out, ortOut, 10).toFixed(3)}`);
      }
    }
  }
}
