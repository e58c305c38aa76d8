// Text for the HTML report: escaping (every string from a program or model file is
// untrusted) and number formatting shared by all sections.

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for element content and quoted attribute values. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * JSON for an inline <script type="application/json">: "<" is escaped so no string in the
 * data (a layer name, say) can close the script element; non-finite numbers become null.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

const SI_PREFIXES: [number, string][] = [
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
  [1, ""],
  [1e-3, "m"],
  [1e-6, "µ"],
  [1e-9, "n"],
  [1e-12, "p"],
  [1e-15, "f"],
];

/** 4 significant digits with an SI prefix: si(3.2e-7, "s") = "320.0 ns". */
export function si(v: number, unit: string): string {
  if (v === 0 || !Number.isFinite(v)) return `${v} ${unit}`;
  const a = Math.abs(v);
  const [scale, prefix] = SI_PREFIXES.find(([s]) => a >= s) ?? SI_PREFIXES[SI_PREFIXES.length - 1]!;
  return `${(v / scale).toPrecision(4)} ${prefix}${unit}`;
}

/** Energies are kept in picojoules throughout the interpreter. */
export const joulesFromPj = (pj: number): string => si(pj * 1e-12, "J");

/** One decimal, like the compile summary prints ratios. */
export const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** Integers with thin-space digit groups; fractional counts (averages) keep up to 2 decimals. */
export function count(n: number): string {
  const rounded = Math.round(n * 100) / 100;
  const [int, frac] = String(rounded).split(".");
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, "\u2009");
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/** Error metrics: exponent form, "inf" / "exact" for the limits. */
export function sci(x: number): string {
  if (x === Number.POSITIVE_INFINITY) return "inf";
  return Number.isFinite(x) ? x.toExponential(3) : String(x);
}
