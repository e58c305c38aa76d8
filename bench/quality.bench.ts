// Program quality: for each benchmark model on each shipped target, crossbars used against
// the compiler's lower bound (src/passes/tile.ts matrixLowerBound: per matrix, without and
// with crossbars shared between matrices) and cycles per steady-state step on the timing
// model (src/cost/explain.ts measuredStepCycles: the periodic steady state, timing never
// depends on the data), against the interval lower bound of src/cost/bound.ts (max of the
// recurrence loops, the busiest unit and the in-order issue loop of a tile; docs/SCHEDULE.md),
// with its parts shown separately, and against the machine bound max(recurrence, busiest
// unit) alone; for the channel-group mapping and the software-pipelined one.
//
//   npm run bench
//   node build/bench/bench/quality.bench.js --quick

import { UserError } from "../src/common/errors.js";
import { stepBounds } from "../src/cost/bound.js";
import { compileOnnxFile } from "../src/frontend/onnx/index.js";
import { measuredStepCycles } from "../src/cost/explain.js";
import { mappingOptions, type MappingName } from "../src/cost/mapping-choice.js";
import type { Model } from "../src/ir/types.js";
import { compile, loadModel } from "../src/pipeline.js";
import { summarize } from "../src/summary.js";
import { loadTarget } from "../src/target/load.js";
import { fmt, QUICK, table } from "./common.js";
import { syntheticModel } from "./models.js";

const MAPPINGS: MappingName[] = ["channel groups", "pipelined"];
const TARGETS = ["xbar64", "xbar128", "xbar256", "ideal"];

function models(): { name: string; model: () => Model }[] {
  const list = [
    { name: "tiny.s4d", model: () => loadModel("examples/tiny.s4d") },
    { name: "digits.s4d", model: () => loadModel("examples/digits.s4d") },
    { name: "digits64_op13.onnx", model: () => compileOnnxFile("test/fixtures/onnx/digits64_op13.onnx") },
  ];
  if (!QUICK) list.push({ name: "synthetic H=128 N=64 L=2", model: () => syntheticModel({ name: "s100k", H: 128, N: 64, layers: 2, dIn: 1, dOut: 10 }) });
  return list;
}

function main(): void {
  const rows: string[][] = [];
  for (const m of models()) {
    const model = m.model();
    for (const name of TARGETS)
      for (const mapping of MAPPINGS) {
      const target = loadTarget(name);
      let compiled;
      try {
        compiled = compile(model, target, mappingOptions(mapping));
      } catch (e) {
        if (e instanceof UserError && e.kind === "resource") {
          rows.push([m.name, name, mapping, "does not fit", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]);
          continue;
        }
        throw e;
      }
      const s = summarize(compiled, target);
      const steady = { cycles: measuredStepCycles(compiled, target).steady };
      const b = stepBounds(compiled.program, target);
      const machine = Math.max(b.recurrence, b.resource);
      rows.push([
        m.name,
        name,
        mapping,
        String(s.crossbarsUsed),
        String(s.crossbarsLowerBound),
        fmt(s.crossbarsUsed / s.crossbarsLowerBound, 3),
        String(s.crossbarsSharedLowerBound),
        fmt(s.crossbarsUsed / s.crossbarsSharedLowerBound, 3),
        fmt(steady.cycles, 1),
        String(b.criticalPath),
        String(b.lowerBound),
        String(Math.max(b.recurrence, b.resource)),
        String(b.issueLoop),
        String(b.intervalBound),
        fmt(steady.cycles / b.intervalBound, 3),
        fmt(steady.cycles / machine, 3),
      ]);
    }
  }
  process.stdout.write(
    [
      `program quality: crossbars used / lower bound (per matrix; and when matrices may share crossbars), cycles per steady-state step (timing model, steps overlapping) / interval bound = max(recurrence loop, busiest unit, in-order issue loop), and / machine bound = max(recurrence loop, busiest unit); the barrier step bound max(critical path, busiest unit) for reference (src/cost/bound.ts, docs/SCHEDULE.md)`,
      "",
      table(["model", "target", "mapping", "xbars used", "bound", "used/bound", "shared bound", "used/shared", "cycles/step", "critical path", "barrier bound", "max(rec, unit)", "issue loop", "interval bound", "cycles/bound", "cycles/machine bound"], rows),
      "",
    ].join("\n"),
  );
}

main();
