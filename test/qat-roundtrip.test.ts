// The QAT round trip (docs/QAT.md): a model fine-tuned with python/imssa_qat, exported and
// compiled, gives interpreter outputs equal to the PyTorch fake-quantized model's outputs.
// Everything comes from committed fixtures (test/fixtures/qat, scripts/gen-qat-fixtures.sh):
// no Python here.

import { describe, expect, test } from "@jest/globals";
import { readFloatNpy } from "../src/common/npy.js";
import { runProgram } from "../src/interp/run.js";
import { compile, COMPILER_VERSION, loadModel, readCalibration, type CompileResult } from "../src/pipeline.js";
import { buildQatConfig, checkQatConfig, readQatConfig, type QatConfig } from "../src/qat/index.js";
import { loadTarget } from "../src/target/load.js";

const DIR = "test/fixtures/qat";
const target = loadTarget("xbar64");

let compiled: { result: CompileResult; config: QatConfig } | undefined;
function compileFixture(): { result: CompileResult; config: QatConfig } {
  if (!compiled) {
    const model = loadModel(`${DIR}/model.s4d`);
    const calibration = readCalibration(model, `${DIR}/calib.npy`);
    // The committed fixture is the direct recurrence form (python/imssa_qat/make_fixtures.py
    // compiles it with --recurrence direct); named here so a change of the default keeps it valid.
    const result = compile(model, target, { calibration, sourceName: `${DIR}/model.s4d`, recurrence: "direct" });
    const config = buildQatConfig(result, target, { source: `${DIR}/model.s4d`, calibrationFile: `${DIR}/calib.npy`, compilerVersion: COMPILER_VERSION });
    compiled = { result, config };
  }
  return compiled;
}

describe("QAT round trip on the committed fine-tuned model", () => {
  test("the committed configurations are valid", () => {
    for (const f of ["qat.json", "train.qat.json"]) {
      const c = readQatConfig(`${DIR}/${f}`);
      expect(checkQatConfig(c, f)).toEqual([]);
      expect(c.target.name).toBe("xbar64");
      expect(c.calibration.source).toBe("inputs");
    }
  });

  test("compiling the exported model with the same calibration reproduces the training-side configuration", () => {
    const { config } = compileFixture();
    const committed = readQatConfig(`${DIR}/qat.json`);
    // The numbers the PyTorch model used: scales, ranges, levels, repairs, pieces and their image values.
    expect(config.matmuls).toEqual(committed.matmuls);
    expect(config.graph).toEqual(committed.graph);
    expect(config.numerics).toEqual(committed.numerics);
    expect(config.calibration).toEqual(committed.calibration);
    // The fixture exercises partial sums: S4D channels of 65 x 65 on 64 x 64 crossbars.
    const s4d = config.matmuls.filter((m) => m.origin === "s4d");
    expect(s4d.length).toBe(2);
    for (const m of s4d) {
      expect(m.pieces.some((p) => p.partial.some(Boolean))).toBe(true);
      expect(new Set(m.pieces.map((p) => p.tile)).size).toBeGreaterThan(1);
    }
  });

  test("the interpreter's outputs equal the fake-quantized PyTorch outputs (noise off)", () => {
    const { result } = compileFixture();
    const x = readFloatNpy(`${DIR}/inputs.npy`);
    const expected = readFloatNpy(`${DIR}/expected.npy`);
    const shape = x.shape as [number, number, number];
    const run = runProgram(result.program, x.data, shape);
    expect(run.finalShape).toEqual(expected.shape);
    const y = run.final!;
    let maxAbs = 0;
    let maxRef = 0;
    for (let i = 0; i < y.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(y[i]! - expected.data[i]!));
      maxRef = Math.max(maxRef, Math.abs(expected.data[i]!));
    }
    expect(maxRef).toBeGreaterThan(0);
    expect(maxAbs / maxRef).toBeLessThanOrEqual(1e-4);
    // What the package promises in exact mode: the same float32 numbers.
    expect(maxAbs).toBe(0);
  });

  test("the training configuration belongs to the same program structure", () => {
    const train = readQatConfig(`${DIR}/train.qat.json`);
    const deploy = readQatConfig(`${DIR}/qat.json`);
    // Same ops; only trained numbers (LayerNorm scale/shift here, weights in the matmuls) differ.
    const ops = (c: QatConfig) => [...c.graph.step, ...c.graph.final].map(({ scale: _s, shift: _t, ...op }) => op);
    expect(ops(train)).toEqual(ops(deploy));
    expect(train.matmuls.map((m) => [m.name, m.layer, m.rows, m.cols, m.maxLevel])).toEqual(deploy.matmuls.map((m) => [m.name, m.layer, m.rows, m.cols, m.maxLevel]));
  });
});
