// Runs every compiled benchmark (build/bench/bench/*.bench.js) one after another, so their
// timings do not compete for the machine's cores, with a header saying what machine ran them
// (cores, load average before the run: a loaded machine stretches wall-clock times) and each
// benchmark's elapsed time. Arguments are passed through (e.g. --quick). docs/PERF.md
// describes the suite and its targets.
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { availableParallelism, cpus, loadavg } from "node:os";

const dir = new URL("../build/bench/bench/", import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith(".bench.js")).sort();
const cpu = cpus()[0]?.model ?? "unknown CPU";
console.log(`# imssa benchmarks\n`);
console.log(`machine: ${availableParallelism()} cores (${cpu}), load average ${loadavg().map((l) => l.toFixed(1)).join(" / ")} (1/5/15 min), node ${process.version}${process.argv.length > 2 ? `, args ${process.argv.slice(2).join(" ")}` : ""}`);
let failed = 0;
for (const f of files) {
  console.log(`\n## ${f.replace(/\.bench\.js$/, "")}\n`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [new URL(f, dir).pathname, ...process.argv.slice(2)], { stdio: "inherit" });
  if (r.status !== 0) failed++;
  console.log(`(${f}: ${((Date.now() - t0) / 1000).toFixed(0)} s${r.status !== 0 ? `, FAILED with exit ${r.status ?? r.signal}` : ""})`);
}
process.exitCode = failed ? 1 : 0;
