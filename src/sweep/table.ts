// The result of a sweep: per parameter value the mean ± standard deviation of the metric
// over the seeds, plus every single run, as CSV, JSON or an aligned text table.

export interface SweepRow {
  value: number;
  /** Number of seeds (runs) behind the statistics. */
  runs: number;
  mean: number;
  /** Sample standard deviation over the seeds (n - 1 in the denominator; 0 for one seed). */
  std: number;
  min: number;
  max: number;
}

export interface SweepTable {
  model: string;
  target: string;
  /** Canonical noise key swept. */
  param: string;
  /** "accuracy" or "relative output error". */
  metric: string;
  /** The base noise model, one line per active part. */
  noise: string[];
  seeds: number[];
  rows: SweepRow[];
  /** Every run: value, seed, metric. */
  runs: { value: number; seed: number; metric: number }[];
}

export function summarize(values: readonly number[], metricsPerValue: readonly (readonly number[])[]): SweepRow[] {
  return values.map((value, i) => {
    const xs = metricsPerValue[i]!;
    const n = xs.length;
    const mean = xs.reduce((a, x) => a + x, 0) / n;
    const std = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : 0;
    return { value, runs: n, mean, std, min: Math.min(...xs), max: Math.max(...xs) };
  });
}

/** Shortest text that reads back as the same double. */
const num = (v: number): string => String(v);

export function tableCsv(t: SweepTable): string {
  const lines = ["param,value,metric,runs,mean,std,min,max"];
  for (const r of t.rows) lines.push([t.param, num(r.value), t.metric, r.runs, num(r.mean), num(r.std), num(r.min), num(r.max)].join(","));
  return `${lines.join("\n")}\n`;
}

export function tableJson(t: SweepTable): string {
  return `${JSON.stringify(t, null, 2)}\n`;
}

export function tableText(t: SweepTable): string {
  const rows = [[t.param, `${t.metric} (mean ± std)`, "min", "max", "runs"], ...t.rows.map((r) => [num(r.value), `${r.mean.toFixed(4)} ± ${r.std.toFixed(4)}`, r.min.toFixed(4), r.max.toFixed(4), String(r.runs)])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return `${rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")).join("\n")}\n`;
}
