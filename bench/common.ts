// Shared helpers of the benchmarks (not a benchmark itself: scripts/run-benches.mjs runs
// only *.bench.js): flags, wall-clock timing and markdown tables.

/** True when `--name` is on the command line. */
export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** `--name=value` as a string, or undefined. */
export function flagValue(name: string): string | undefined {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? undefined : arg.slice(name.length + 3);
}

/** `--name=N` as a positive integer, else `fallback`. */
export function intFlag(name: string, fallback: number): number {
  const s = flagValue(name);
  const v = s === undefined ? fallback : Number(s);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${s}`);
  return v;
}

/** `--quick`: smaller sizes and fewer repetitions, for a smoke run. */
export const QUICK = hasFlag("quick");

/** Seconds since an hrtime mark. */
export function since(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Process CPU seconds (all threads) since a process.cpuUsage() mark. */
export function cpuSince(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

/** Runs fn and returns its wall time in seconds with its result. */
export function timed<T>(fn: () => T): { seconds: number; value: T } {
  const t0 = process.hrtime.bigint();
  const value = fn();
  return { seconds: since(t0), value };
}

/** A markdown table; cells are right-aligned except the first column. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), sep, ...rows.map(line)].join("\n");
}

/** x with `digits` significant-ish decimals for tables. */
export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return String(x);
  return x.toFixed(digits);
}

/** "1.23 M" style numbers. */
export function si(x: number, digits = 2): string {
  const a = Math.abs(x);
  if (a >= 1e9) return `${(x / 1e9).toFixed(digits)} G`;
  if (a >= 1e6) return `${(x / 1e6).toFixed(digits)} M`;
  if (a >= 1e3) return `${(x / 1e3).toFixed(digits)} k`;
  return x.toFixed(digits);
}

/** "ok" / "BELOW" against a target ratio (higher is better). */
export function verdict(ratio: number, target: number): string {
  return ratio >= target ? `ok (>= ${target})` : `BELOW (< ${target})`;
}

/** The note every table carries: timings on a shared 2-core machine are noisy. */
export function machineNote(): string {
  return "(wall = elapsed time; cpu = CPU time of the whole process, all threads. On a machine shared with other jobs wall time includes waiting for a core, so the cpu ratios are the robust ones; both sides of every ratio run in the same process, one after the other)";
}
