// Syntax tree of a .s4d file: what the user wrote, with positions, before any meaning is
// attached. Layer kinds and options are still names here; the checker resolves them.

/** 1-based line and column of a token's first character. */
export interface Pos {
  line: number;
  column: number;
}

export interface Name {
  text: string;
  pos: Pos;
}

export type Value =
  | { kind: "number"; value: number; text: string; pos: Pos }
  | { kind: "string"; value: string; pos: Pos }
  | { kind: "ident"; name: string; pos: Pos };

export type NumberValue = Extract<Value, { kind: "number" }>;
export type StringValue = Extract<Value, { kind: "string" }>;

/** `value` (positional) or `key = value`. */
export interface Arg {
  key?: Name;
  value: Value;
  pos: Pos;
}

/** `@name` or `@name(args)` in front of a statement. */
export interface Annotation {
  name: Name;
  args: Arg[];
  pos: Pos;
}

/** `[name :] kind [(args)] ;` */
export interface LayerStmt {
  kind: "layer";
  annotations: Annotation[];
  name?: Name;
  op: Name;
  args: Arg[];
  pos: Pos;
}

/** `residual [prenorm|postnorm [(args)]] { ... }` */
export interface ResidualStmt {
  kind: "residual";
  annotations: Annotation[];
  norm?: { mode: "prenorm" | "postnorm"; args: Arg[]; pos: Pos };
  body: Statement[];
  pos: Pos;
}

/** `repeat n { ... }` */
export interface RepeatStmt {
  kind: "repeat";
  annotations: Annotation[];
  count: NumberValue;
  body: Statement[];
  pos: Pos;
}

export type Statement = LayerStmt | ResidualStmt | RepeatStmt;

export interface InputDecl {
  name: Name;
  size: NumberValue;
  pos: Pos;
}

export interface OutputDecl {
  name: Name;
  pos: Pos;
}

export type ParamsDecl = { kind: "init"; seed?: NumberValue; pos: Pos } | { kind: "file"; path: StringValue; pos: Pos };

export interface ModelAst {
  name: Name;
  inputs: InputDecl[];
  outputs: OutputDecl[];
  params: ParamsDecl[];
  /** Layer statements in source order. */
  body: Statement[];
  pos: Pos;
}
