// Runs every compiled benchmark (build/bench/bench/*.bench.js) one after another, so their
// timings do not compete for the machine's two cores.
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";

const dir = new URL("../build/bench/bench/", import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith(".bench.js")).sort();
let failed = 0;
for (const f of files) {
  console.log(`\n## ${f.replace(/\.bench\.js$/, "")}\n`);
  const r = spawnSync(process.execPath, [new URL(f, dir).pathname, ...process.argv.slice(2)], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
