// JSON text handling shared by the IR and target readers:
//   - parseJson: JSON.parse with "file:line:col: invalid JSON: ..." errors,
//   - locateDiagnostics: turns the JSON pointers of schema/semantic diagnostics into line:col,
//   - canonicalJson / sha256Hex: the byte-exact form that target hashes cover,
//   - formatJson: readable pretty printing that keeps numeric arrays on one line,
//   - schema validation with ajv, reporting one plain-words Diagnostic per problem.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { assert, UserError, type Diagnostic } from "./errors.js";

// ---------------------------------------------------------------------------------------
// Positions

export interface TextPosition {
  line: number;
  column: number;
}

/** 1-based line and column of a UTF-16 offset (a tab counts as one column, like most editors' "col"). */
export function positionAt(text: string, offset: number): TextPosition {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/** Escapes one JSON pointer segment (RFC 6901). */
export function pointerSegment(key: string | number): string {
  return String(key).replace(/~/g, "~0").replace(/\//g, "~1");
}

// ---------------------------------------------------------------------------------------
// A small validating scanner. JSON.parse does the real work; this only runs when we need
// positions (a syntax error, or diagnostics to place), so it favours clear messages.

class JsonSyntaxError {
  constructor(
    readonly offset: number,
    readonly message: string,
  ) {}
}

const MAX_DEPTH = 512;

class Scanner {
  pos = 0;

  constructor(
    private readonly text: string,
    /** Pointers whose value offsets we want, and every prefix of them (to know where to descend). */
    private readonly wanted?: { targets: Set<string>; prefixes: Set<string>; found: Map<string, number> },
  ) {}

  private fail(message: string, at = this.pos): never {
    throw new JsonSyntaxError(at, message);
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return "the end of the file";
    const cp = this.text.codePointAt(this.pos)!;
    const ch = String.fromCodePoint(cp);
    return cp < 0x20 ? `character U+${cp.toString(16).padStart(4, "0")}` : `'${ch}'`;
  }

  private skipWs(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else if (c === 0x2f /* / */ && (t[this.pos + 1] === "/" || t[this.pos + 1] === "*")) this.fail("comments are not allowed in JSON");
      else return;
    }
  }

  document(): void {
    this.skipWs();
    if (this.pos >= this.text.length) this.fail("the file is empty");
    this.value("", 0);
    this.skipWs();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.describeHere()} after the end of the JSON value`);
  }

  private child(ptr: string | null, key: string | number): string | null {
    if (ptr === null || !this.wanted) return null;
    const p = `${ptr}/${pointerSegment(key)}`;
    return this.wanted.prefixes.has(p) ? p : null;
  }

  private value(ptr: string | null, depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH} levels`);
    if (ptr !== null && this.wanted?.targets.has(ptr)) this.wanted.found.set(ptr, this.pos);
    const t = this.text;
    const c = t[this.pos];
    if (c === "{") this.object(ptr, depth);
    else if (c === "[") this.array(ptr, depth);
    else if (c === '"') this.string();
    else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) this.number();
    else if (c === "'") this.fail("strings must use double quotes");
    else if (c !== undefined && /[A-Za-z_$]/.test(c)) {
      const word = /^[A-Za-z0-9_$]+/.exec(t.slice(this.pos, this.pos + 40))![0];
      if (word !== "true" && word !== "false" && word !== "null") {
        this.fail(`unexpected word '${word}' (JSON values are objects, arrays, "strings", numbers, true, false and null)`);
      }
      this.pos += word.length;
    } else this.fail(`expected a value but found ${this.describeHere()}`);
  }

  private object(ptr: string | null, depth: number): void {
    this.pos++; // {
    this.skipWs();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') {
        if (this.text[this.pos] === "'") this.fail("property names must use double quotes");
        this.fail(`expected a property name in double quotes but found ${this.describeHere()}`);
      }
      const keyStart = this.pos;
      this.string();
      const rawKey = this.text.slice(keyStart, this.pos);
      const key = ptr === null ? "" : (JSON.parse(rawKey) as string);
      this.skipWs();
      if (this.text[this.pos] !== ":") this.fail(`expected ':' after property name ${rawKey} but found ${this.describeHere()}`);
      this.pos++;
      this.skipWs();
      this.value(this.child(ptr, key), depth + 1);
      this.skipWs();
      const c = this.text[this.pos];
      if (c === "}") {
        this.pos++;
        return;
      }
      if (c !== ",") {
        const hint = c === '"' ? " (missing ',' between properties?)" : "";
        this.fail(`expected ',' or '}' after a property value but found ${this.describeHere()}${hint}`);
      }
      const comma = this.pos;
      this.pos++;
      this.skipWs();
      if (this.text[this.pos] === "}") this.fail("trailing comma before '}'", comma);
    }
  }

  private array(ptr: string | null, depth: number): void {
    this.pos++; // [
    this.skipWs();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return;
    }
    for (let index = 0; ; index++) {
      this.value(this.child(ptr, index), depth + 1);
      this.skipWs();
      const c = this.text[this.pos];
      if (c === "]") {
        this.pos++;
        return;
      }
      if (c !== ",") this.fail(`expected ',' or ']' after an array element but found ${this.describeHere()}`);
      const comma = this.pos;
      this.pos++;
      this.skipWs();
      if (this.text[this.pos] === "]") this.fail("trailing comma before ']'", comma);
    }
  }

  private string(): void {
    const t = this.text;
    const start = this.pos;
    this.pos++; // opening quote
    for (;;) {
      if (this.pos >= t.length) this.fail("unterminated string", start);
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        this.pos++;
        return;
      }
      if (c === 0x0a || c === 0x0d) this.fail("line break inside a string (unterminated string?)");
      if (c < 0x20) this.fail("unescaped control character in a string");
      if (c === 0x5c) {
        const e = t[this.pos + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(this.pos + 2, this.pos + 6))) this.fail("invalid \\u escape: expected 4 hex digits");
          this.pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) this.pos += 2;
        else this.fail(`invalid escape '\\${e ?? ""}' in a string`);
      } else this.pos++;
    }
  }

  private number(): void {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos, this.pos + 400));
    const next = m ? this.text[this.pos + m[0].length] : undefined;
    if (!m || (next !== undefined && /[0-9.eE+\-xXa-zA-Z_]/.test(next))) {
      const raw = /^[-+0-9.eExXa-zA-Z_]+/.exec(this.text.slice(this.pos, this.pos + 40))?.[0] ?? this.text[this.pos];
      this.fail(`invalid number '${raw}'`);
    }
    this.pos += m[0].length;
  }
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Parses JSON text; syntax errors become a UserError "file:line:col: invalid JSON: ...". */
export function parseJson(text: string, file: string): unknown {
  const body = stripBom(text);
  try {
    return JSON.parse(body);
  } catch (e) {
    try {
      new Scanner(body).document();
    } catch (s) {
      if (!(s instanceof JsonSyntaxError)) throw s;
      const { line, column } = positionAt(body, s.offset);
      throw new UserError("syntax", `invalid JSON: ${s.message}`, { file, line, column });
    }
    // The scanner accepted what JSON.parse rejected: fall back to the engine's message.
    throw new UserError("syntax", `invalid JSON: ${(e as Error).message}`, { file });
  }
}

/** Line/column of the value at each JSON pointer in `text` (pointers that do not exist are left out). */
export function locatePointers(text: string, pointers: Iterable<string>): Map<string, TextPosition> {
  const body = stripBom(text);
  const targets = new Set(pointers);
  const prefixes = new Set<string>([""]);
  for (const p of targets) {
    for (let i = p.indexOf("/", 1); i !== -1; i = p.indexOf("/", i + 1)) prefixes.add(p.slice(0, i));
    prefixes.add(p);
  }
  const found = new Map<string, number>();
  try {
    new Scanner(body, { targets, prefixes, found }).document();
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    // Invalid text: keep whatever was found before the error.
  }
  // One pass over the text for all positions, in offset order.
  const byOffset = [...found].sort((a, b) => a[1] - b[1]);
  const out = new Map<string, TextPosition>();
  let line = 1;
  let lineStart = 0;
  let scanned = 0;
  for (const [ptr, offset] of byOffset) {
    for (let i = body.indexOf("\n", scanned); i !== -1 && i < offset; i = body.indexOf("\n", i + 1)) {
      line++;
      lineStart = i + 1;
    }
    scanned = Math.max(scanned, lineStart);
    out.set(ptr, { line, column: offset - lineStart + 1 });
  }
  return out;
}

/** Adds line/column (from `text`, the file the diagnostics refer to) to diagnostics that carry a JSON path. */
export function locateDiagnostics(diagnostics: Diagnostic[], text: string): Diagnostic[] {
  const paths = new Set<string>();
  for (const d of diagnostics) if (d.location?.path !== undefined && d.location.line === undefined) paths.add(d.location.path);
  if (paths.size === 0) return diagnostics;
  const pos = locatePointers(text, paths);
  return diagnostics.map((d) => {
    const loc = d.location;
    if (!loc || loc.path === undefined || loc.line !== undefined) return d;
    const p = pos.get(loc.path);
    return p ? { ...d, location: { ...loc, line: p.line, column: p.column } } : d;
  });
}

/** Re-throws a UserError with line/column added to its diagnostics; other errors pass unchanged. */
export function rethrowLocated(e: unknown, text: string): never {
  if (e instanceof UserError && e.diagnostics.some((d) => d.location?.path !== undefined && d.location.line === undefined)) {
    throw new UserError(e.kind, locateDiagnostics(e.diagnostics, text));
  }
  throw e;
}

// ---------------------------------------------------------------------------------------
// Canonical form and hashing

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, numbers in
 * JavaScript's shortest round-trip form, undefined members dropped. Equal data gives equal
 * bytes regardless of the key order or layout of the file it came from.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    assert(Number.isFinite(value), `canonicalJson: non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  assert(typeof value === "object", `canonicalJson: cannot encode ${typeof value}`);
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------------------
// Pretty printing

export interface FormatOptions {
  /** Orders an object's keys; default: insertion order. */
  orderKeys?: (keys: string[]) => string[];
  /** Objects whose members are all primitives stay on one line up to this width (0 = never). */
  inlineObjectWidth?: number;
}

function isPrimitive(v: unknown): boolean {
  return v === null || typeof v !== "object";
}

/**
 * 2-space indented JSON where arrays of primitives (tensor data, shapes, name lists) stay on
 * one line, so a large tensor costs one line instead of thousands.
 */
export function formatJson(value: unknown, options: FormatOptions = {}): string {
  const order = options.orderKeys ?? ((k: string[]) => k);
  const inlineWidth = options.inlineObjectWidth ?? 0;
  const prim = (v: unknown): string => {
    if (typeof v === "number") assert(Number.isFinite(v), `formatJson: non-finite number ${v}`);
    return JSON.stringify(v);
  };
  const fmt = (v: unknown, indent: string): string => {
    if (isPrimitive(v)) return prim(v);
    const inner = indent + "  ";
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      if (v.every(isPrimitive)) return `[${v.map(prim).join(", ")}]`;
      return `[\n${v.map((x) => inner + fmt(x, inner)).join(",\n")}\n${indent}]`;
    }
    const obj = v as Record<string, unknown>;
    const keys = order(Object.keys(obj).filter((k) => obj[k] !== undefined));
    if (keys.length === 0) return "{}";
    if (inlineWidth > 0 && keys.every((k) => isPrimitive(obj[k]))) {
      const line = `{ ${keys.map((k) => `${JSON.stringify(k)}: ${prim(obj[k])}`).join(", ")} }`;
      if (line.length + indent.length <= inlineWidth) return line;
    }
    return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${fmt(obj[k], inner)}`).join(",\n")}\n${indent}}`;
  };
  return fmt(value, "") + "\n";
}

// ---------------------------------------------------------------------------------------
// JSON Schema validation

/** Diagnostics beyond this count are summarised in one line (a bad tensor can produce millions). */
export const MAX_DIAGNOSTICS = 50;

export interface SchemaValidator {
  /** Problems with `data` as diagnostics located at {file, JSON pointer}; empty when valid. */
  check(data: unknown, file: string): Diagnostic[];
  /** The schema document (for tests and tooling). */
  readonly schema: Record<string, unknown>;
}

/** Loads and compiles a schema file shipped with the package (a bad schema is our bug, not the user's). */
export function loadSchema(url: URL): SchemaValidator {
  const schema = JSON.parse(readFileSync(fileURLToPath(url), "utf8")) as Record<string, unknown>;
  // verbose: errors carry the failing schema and data, which the plain-words messages need.
  const ajv = new Ajv({ allErrors: true, discriminator: true, verbose: true, strict: true, allowUnionTypes: true });
  const validate: ValidateFunction = ajv.compile(schema);
  return {
    schema,
    check(data, file) {
      if (validate(data)) return [];
      return schemaDiagnostics(validate.errors ?? [], file, schema);
    },
  };
}

/** Converts ajv errors into one diagnostic per distinct problem, in document order. */
export function schemaDiagnostics(errors: ErrorObject[], file: string, root: Record<string, unknown>): Diagnostic[] {
  // A failed anyOf/oneOf also reports every branch's own failure; keep only the summary.
  const unions = errors.filter((e) => e.keyword === "anyOf" || e.keyword === "oneOf").map((e) => e.schemaPath + "/");
  const kept = errors.filter((e) => !unions.some((u) => e.schemaPath.startsWith(u)));
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const e of kept) {
    const { path, message } = describeError(e, root);
    const id = `${path}\u0000${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ message, location: { file, path } });
  }
  if (out.length > MAX_DIAGNOSTICS) {
    const more = out.length - MAX_DIAGNOSTICS;
    out.length = MAX_DIAGNOSTICS;
    out.push({ message: `... and ${more} more problem${more === 1 ? "" : "s"}`, location: { file } });
  }
  return out;
}

const TYPE_WORDS: Record<string, string> = {
  integer: "an integer",
  number: "a number",
  string: "a string",
  object: "an object",
  array: "an array",
  boolean: "true or false",
  null: "null",
};

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number") return `${v}`;
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 30 ? v.slice(0, 30) + "..." : v)}`;
  if (typeof v === "object") return "an object";
  return String(v);
}

function resolveLocalRef(root: Record<string, unknown>, schema: unknown): Record<string, unknown> | undefined {
  if (typeof schema !== "object" || schema === null) return undefined;
  const ref = (schema as { $ref?: unknown }).$ref;
  if (typeof ref !== "string") return schema as Record<string, unknown>;
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  for (const seg of ref.slice(2).split("/")) {
    const key = seg.replace(/~1/g, "/").replace(/~0/g, "~");
    node = typeof node === "object" && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  }
  return typeof node === "object" && node !== null ? (node as Record<string, unknown>) : undefined;
}

/** A short phrase for what a (sub)schema accepts, used to explain failed unions. */
function summarizeSchema(root: Record<string, unknown>, s: unknown): string {
  const sch = resolveLocalRef(root, s);
  if (!sch) return "a value";
  if ("const" in sch) return JSON.stringify(sch.const);
  if (Array.isArray(sch.enum)) return sch.enum.map((v) => JSON.stringify(v)).join(" or ");
  const type = typeof sch.type === "string" ? sch.type : undefined;
  let phrase = type ? (TYPE_WORDS[type] ?? type) : "a value";
  const min = typeof sch.minimum === "number" ? sch.minimum : undefined;
  const max = typeof sch.maximum === "number" ? sch.maximum : undefined;
  if (min !== undefined && max !== undefined) phrase += ` from ${min} to ${max}`;
  else if (min !== undefined) phrase += ` >= ${min}`;
  else if (max !== undefined) phrase += ` <= ${max}`;
  return phrase;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps (the usual typos). */
function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const rows: number[][] = Array.from({ length: x.length + 1 }, (_, i) => Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[x.length]![y.length]!;
}

function suggestion(word: string, candidates: string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? ` (did you mean "${best}"?)` : "";
}

function describeError(e: ErrorObject, root: Record<string, unknown>): { path: string; message: string } {
  const path = e.instancePath;
  const p = e.params as Record<string, unknown>;
  const found = "data" in e ? `, found ${describeValue(e.data)}` : "";
  switch (e.keyword) {
    case "required":
      return { path, message: `missing required property "${String(p.missingProperty)}"` };
    case "additionalProperties": {
      const prop = String(p.additionalProperty);
      const props = e.parentSchema?.properties as Record<string, unknown> | undefined;
      return { path: `${path}/${pointerSegment(prop)}`, message: `unknown property "${prop}"${suggestion(prop, Object.keys(props ?? {}))}` };
    }
    case "type":
      return { path, message: `must be ${String(p.type).split(",").map((t) => TYPE_WORDS[t] ?? t).join(" or ")}${found}` };
    case "enum":
      return { path, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}${found}` };
    case "const":
      return { path, message: `must be ${JSON.stringify(p.allowedValue)}${found}` };
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return { path, message: `must be ${String(p.comparison)} ${String(p.limit)}${found}` };
    case "anyOf":
    case "oneOf": {
      const branches = Array.isArray(e.schema) ? e.schema : [];
      return { path, message: `must be ${branches.map((b) => summarizeSchema(root, b)).join(" or ")}${found}` };
    }
    case "discriminator": {
      const tag = String(p.tag);
      if (p.error === "tag") {
        const has = typeof e.data === "object" && e.data !== null && tag in e.data;
        return has ? { path: `${path}/${pointerSegment(tag)}`, message: `"${tag}" must be a string` } : { path, message: `missing required property "${tag}"` };
      }
      const values = (Array.isArray(e.parentSchema?.oneOf) ? e.parentSchema.oneOf : []).flatMap((b: unknown) => {
        const prop = (resolveLocalRef(root, b)?.properties as Record<string, Record<string, unknown>> | undefined)?.[tag];
        return prop === undefined ? [] : "const" in prop ? [prop.const] : Array.isArray(prop.enum) ? prop.enum : [];
      });
      const value = String(p.tagValue);
      return {
        path: `${path}/${pointerSegment(tag)}`,
        message: `unknown ${tag} "${value}"${suggestion(value, values.map(String))}; expected one of ${values.join(", ")}`,
      };
    }
    default:
      return { path, message: e.message ?? `fails schema keyword "${e.keyword}"` };
  }
}
