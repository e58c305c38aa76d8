// Argmax agreement between the chip (interpreter) and the float reference for the trained
// classification fixtures on 200 held-out digits, per target (after `npm run build`):
//   node scripts/measure-argmax.mjs
// Calibration uses the first 32 sequences.
import "../dist/common/polyfill.js";
import { loadModel, compile, sequencesFromBatch } from "../dist/pipeline.js";
import { readFloatNpy } from "../dist/common/npy.js";
import { runProgram } from "../dist/interp/run.js";
import { loadTarget } from "../dist/target/load.js";
import { evaluateSequence } from "../dist/reference/evaluate.js";
import { argmaxAgreement } from "../dist/verify/metrics.js";
const D = new URL("../test/fixtures/onnx/", import.meta.url).pathname;
for (const [f, inp] of [["scan_cls_op17.onnx", "scan_cls_op17.input.npy"], ["digits64_scan_op13.onnx", "digits_test200.input.npy"]]) {
  const model = loadModel(D + f);
  const x = readFloatNpy(D + inp);
  const seqs = sequencesFromBatch(model, x.data, x.shape, inp);
  const ref = Float64Array.from(seqs.flatMap((s) => [...Object.values(evaluateSequence(model, s).final)[0]]));
  for (const t of ["ideal", "xbar64", "xbar128", "xbar256"]) {
    const cal = seqs.slice(0, 32);
    const { program } = compile(model, loadTarget(t), { calibration: cal });
    const out = runProgram(program, x.data, x.shape).final;
    console.log(f, t, "argmax agreement", argmaxAgreement(out, ref, 10).toFixed(3));
  }
}
