// Issue #5's classification criterion, measured: the chip (interpreter) running the compiled
// ONNX Scan classifier must keep the argmax of ONNX Runtime's float outputs on held-out digits.
// Ranges are calibrated on training-split sequences (digits_train64_rows.input.npy), never on
// the 200 test sequences measured (scan_cls_op17.input.npy, ORT/PyTorch outputs in
// scan_cls_op17.output.npy). The programs are deterministic (no noise), so the agreement is an
// exact number; the thresholds are the values measured with scripts/measure-argmax.mjs when the
// per-mode state scaling landed (docs/QUANTIZATION.md "State scaling") minus one sequence, so a
// regression of two sequences fails. To keep the test fast it runs the first 50 of the 200
// sequences (`node scripts/measure-argmax.mjs --fixtures scan_cls_op17 --limit 50`).
//
// Measured, first 50 / all 200 sequences (direct recurrence form, the compiler's default until
// session 3; the tests name the form they measure):
// xbar64 0.700 / 0.665 (0.080 / 0.170 without state scaling); xbar128 0.940 / 0.925; ideal
// 1.000. Residual recurrence form (`--recurrence residual`, src/passes/residual.ts: dA - I on
// the crossbar, the previous state added digitally): xbar64 0.980 / 0.935 (0.940 on the first
// 50 without state scaling); xbar128 0.980 / 0.975. The target of 0.99 on all 200
// sequences on xbar64 is not reached by post-training quantization of this float-trained
// model on one weight grid: with 32 device levels instead of 16 the residual form gives
// 0.985, so the weight levels are the limit (docs/QUANTIZATION.md "Residual recurrence
// form"). Weight slicing lifts them: four slices keep 0.995 of the 200
// (test/slice-weights.test.ts, docs/QUANTIZATION.md "Weight slicing").

import { describe, expect, test } from "@jest/globals";
import { compile, loadModel, sequencesFromBatch } from "../src/pipeline.js";
import type { RecurrenceForm } from "../src/passes/residual.js";
import { readFloatNpy } from "../src/common/npy.js";
import { runProgram } from "../src/interp/run.js";
import { loadTarget } from "../src/target/load.js";
import { evaluateSequence } from "../src/reference/evaluate.js";
import { argmaxAgreement } from "../src/verify/metrics.js";

const FIX = "test/fixtures/onnx/";
const model = loadModel(`${FIX}scan_cls_op17.onnx`);
const N = 50;
const all = readFloatNpy(`${FIX}scan_cls_op17.input.npy`);
const x = { shape: [N, all.shape[1]!, all.shape[2]!] as [number, number, number], data: all.data.subarray(0, N * all.shape[1]! * all.shape[2]!) };
const ort = readFloatNpy(`${FIX}scan_cls_op17.output.npy`).data.subarray(0, N * 10);
const calNpy = readFloatNpy(`${FIX}digits_train64_rows.input.npy`);
const calibration = sequencesFromBatch(model, calNpy.data, calNpy.shape, "digits_train64_rows.input.npy");
const ONE = 1 / N;

const measured = new Map<string, number>();
function chipAgreement(target: string, stateScaling = true, recurrence: RecurrenceForm = "direct"): number {
  const key = `${target} ${stateScaling} ${recurrence}`;
  const known = measured.get(key);
  if (known !== undefined) return known;
  const { program } = compile(model, loadTarget(target), { calibration, stateScaling, recurrence });
  const out = runProgram(program, x.data, x.shape).final;
  const agreement = argmaxAgreement(out!, ort, 10);
  measured.set(key, agreement);
  return agreement;
}

describe("scan_cls_op17: chip argmax vs ONNX Runtime float argmax on 50 held-out digits", () => {
  test("the data is what the measurement assumes", () => {
    expect(all.shape).toEqual([200, 64, 2]);
    expect(ort.length).toBe(N * 10);
    // the calibration set is not the measured set
    expect(calNpy.shape).toEqual([64, 64, 2]);
    expect(Array.from(calNpy.data.subarray(0, 128))).not.toEqual(Array.from(x.data.subarray(0, 128)));
  });

  test("the IR's float evaluation keeps every argmax (the reference is sound)", () => {
    const seqs = sequencesFromBatch(model, x.data, x.shape, "input");
    const ir = Float64Array.from(seqs.flatMap((s) => [...Object.values(evaluateSequence(model, s).final)[0]!]));
    expect(argmaxAgreement(ir, ort, 10)).toBe(1);
  });

  test("xbar64: at least the measured 0.700 with state scaling, far above 0.080 without", () => {
    const on = chipAgreement("xbar64");
    const off = chipAgreement("xbar64", false);
    expect(on).toBeGreaterThanOrEqual(0.7 - ONE);
    expect(off).toBeLessThan(0.25);
    expect(on - off).toBeGreaterThan(0.4);
  });

  test("xbar64, residual recurrence form: at least the measured 0.980, far above the direct form's 0.700", () => {
    const residual = chipAgreement("xbar64", true, "residual");
    const direct = chipAgreement("xbar64", true, "direct");
    expect(residual).toBeGreaterThanOrEqual(0.98 - ONE);
    expect(direct).toBeLessThan(0.8);
    expect(residual - direct).toBeGreaterThan(0.2);
  });

  test("xbar128: at least the measured 0.940 (direct) and 0.980 (residual)", () => {
    expect(chipAgreement("xbar128")).toBeGreaterThanOrEqual(0.94 - ONE);
    expect(chipAgreement("xbar128", true, "residual")).toBeGreaterThanOrEqual(0.98 - ONE);
  });
});
