// Issue #5's classification criterion on a quantization-aware-trained fixture: the ONNX Scan
// classifier scan_cls_qat_op17 (the scan_cls architecture, fine-tuned with python/imssa_qat
// against the xbar64 numerics by exporters/pytorch/train_digits_qat.py) compiled for xbar64,
// noise off, against the argmax of ONNX Runtime's float outputs on held-out digits. To keep
// the test fast (the interpreter under ts-jest is much slower than from dist/) it runs the
// first 100 of the fixture's 200 sequences; the IR float check runs all 200.
//
// One weight slice (the default) is below the issue's >= 0.99: this fixture reaches 0.955
// (191/200) on all 200 and 0.970 on the first 100; the float-trained scan_cls_op17 0.935 /
// 0.950 (first 100) (`node scripts/measure-argmax.mjs --fixtures scan_cls_qat_op17,scan_cls_op17 [--limit 100]`).
// The threshold below is the measured value minus one sequence, so a regression of two
// sequences fails. What limits it (31 weight levels and 8-bit DAC/ADC together on a model
// with H = 8): docs/ONNX.md "QAT classifier fixture". The criterion is met with four
// weight slices (0.995 on all 200 for both fixtures): test/slice-weights.test.ts.
//
// Ranges are calibrated on the 64 training-split sequences the training calibrated on
// (digits_train64_rows.input.npy), never on the measured ones. The program is deterministic,
// so the agreement is an exact number; the fixture was trained against the residual
// recurrence form (the compiler's default), which the test names explicitly.

import { describe, expect, test } from "@jest/globals";
import { compile, loadModel, sequencesFromBatch } from "../src/pipeline.js";
import { readFloatNpy } from "../src/common/npy.js";
import { runProgram } from "../src/interp/run.js";
import { loadTarget } from "../src/target/load.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { argmaxAgreement, compareArrays } from "../src/verify/metrics.js";

const FIX = "test/fixtures/onnx/";
const model = loadModel(`${FIX}scan_cls_qat_op17.onnx`);
const x = readFloatNpy(`${FIX}scan_cls_op17.input.npy`);
const ort = readFloatNpy(`${FIX}scan_cls_qat_op17.output.npy`);
const labels = readFloatNpy(`${FIX}digits_test200.labels.npy`);
const calNpy = readFloatNpy(`${FIX}digits_train64_rows.input.npy`);
const calibration = sequencesFromBatch(model, calNpy.data, calNpy.shape, "digits_train64_rows.input.npy");
const CLASSES = 10;
const N = 100;
const ONE = 1 / N;
const xN = { shape: [N, x.shape[1]!, x.shape[2]!] as [number, number, number], data: x.data.subarray(0, N * x.shape[1]! * x.shape[2]!) };

function argmaxes(out: ArrayLike<number>): number[] {
  const rows: number[] = [];
  for (let r = 0; r < out.length / CLASSES; r++) {
    let best = 0;
    for (let j = 1; j < CLASSES; j++) if (out[r * CLASSES + j]! > out[r * CLASSES + best]!) best = j;
    rows.push(best);
  }
  return rows;
}

const chipOut = new Map<string, ArrayLike<number>>();
function chip(target: string): ArrayLike<number> {
  const known = chipOut.get(target);
  if (known) return known;
  const { program } = compile(model, loadTarget(target), { calibration, recurrence: "residual" });
  const out = runProgram(program, xN.data, xN.shape).final!;
  chipOut.set(target, out);
  return out;
}

describe("scan_cls_qat_op17: QAT classifier, chip argmax vs ONNX Runtime float argmax on held-out digits", () => {
  test("the data is what the measurement assumes", () => {
    expect(x.shape).toEqual([200, 64, 2]);
    expect(ort.shape).toEqual([200, CLASSES]);
    expect(calNpy.shape).toEqual([64, 64, 2]);
    // the calibration set is not the measured set
    expect(Array.from(calNpy.data.subarray(0, 128))).not.toEqual(Array.from(x.data.subarray(0, 128)));
  });

  test("the front end reproduces ONNX Runtime: IR float evaluation within 1e-4 relative, every argmax kept", () => {
    const seqs = sequencesFromBatch(model, x.data, x.shape, "scan_cls_op17.input.npy");
    const ir = Float64Array.from(seqs.flatMap((s) => [...Object.values(evaluateSequence(model, s).final)[0]!]));
    expect(ir.length).toBe(ort.data.length);
    expect(compareArrays(ir, ort.data).relativeMaxError).toBeLessThanOrEqual(1e-4);
    expect(argmaxAgreement(ir, ort.data, CLASSES)).toBe(1);
  });

  test("the reference classifies (its argmax is meaningful): >= 0.9 of the true digits", () => {
    const ref = argmaxes(ort.data);
    const hits = ref.filter((c, i) => c === labels.data[i]).length;
    expect(hits / ref.length).toBeGreaterThanOrEqual(0.9);
  });

  test("xbar64, noise off: the chip keeps ONNX Runtime's argmax on at least the measured 0.970 of the first 100 (below the issue's 0.99)", () => {
    expect(argmaxAgreement(chip("xbar64"), ort.data.subarray(0, N * CLASSES), CLASSES)).toBeGreaterThanOrEqual(0.97 - ONE);
  });
});
