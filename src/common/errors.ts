// Errors are values with a kind and a location, so the CLI can print one clear paragraph
// for anything the user did wrong (exit 1) and reserve stack traces for our own bugs (exit 2).

/** A place in a user-supplied file. Line and column are 1-based. */
export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
  /** JSON pointer / dotted path inside a structured file (IR, target, npy header ...). */
  path?: string;
}

export type UserErrorKind =
  | "syntax" // DSL or JSON syntax
  | "semantic" // DSL or IR meaning (unknown name, shape mismatch ...)
  | "schema" // JSON schema violation (IR, target)
  | "io" // cannot read / write a file
  | "format" // malformed binary (xbin, npy, safetensors, onnx)
  | "resource" // model does not fit the target, limits exceeded
  | "usage" // bad command-line arguments
  | "verify" // program verifier rejected an instruction / numeric check failed
  | "unsupported"; // valid input we do not handle (yet)

export interface Diagnostic {
  message: string;
  location?: SourceLocation;
}

export function formatLocation(loc: SourceLocation): string {
  let s = loc.file;
  if (loc.line !== undefined) {
    s += `:${loc.line}`;
    if (loc.column !== undefined) s += `:${loc.column}`;
  }
  if (loc.path !== undefined && loc.path !== "") s += ` (at ${loc.path})`;
  return s;
}

export function formatDiagnostic(d: Diagnostic): string {
  return d.location ? `${formatLocation(d.location)}: ${d.message}` : d.message;
}

/**
 * An error caused by the user's input. Carries one or more diagnostics (a parser that
 * recovers reports several at once). The CLI prints them and exits 1.
 */
export class UserError extends Error {
  readonly kind: UserErrorKind;
  readonly diagnostics: Diagnostic[];

  constructor(kind: UserErrorKind, diagnostics: Diagnostic | Diagnostic[] | string, location?: SourceLocation) {
    const list: Diagnostic[] =
      typeof diagnostics === "string" ? [{ message: diagnostics, location }] : Array.isArray(diagnostics) ? diagnostics : [diagnostics];
    super(list.map(formatDiagnostic).join("\n"));
    this.name = "UserError";
    this.kind = kind;
    this.diagnostics = list;
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** Throws a UserError of the given kind; handy in expression position. */
export function fail(kind: UserErrorKind, message: string, location?: SourceLocation): never {
  throw new UserError(kind, message, location);
}

/** An internal invariant; a failure here is our bug, not the user's. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`internal error: ${message}`);
}
