// Turns chevrotain's concrete syntax tree into the typed AST of ast.ts. Only called on a CST
// without syntax errors, so every mandatory child is present.

import type { CstElement, CstNode, IToken } from "chevrotain";
import { assert } from "../../common/errors.js";
import type { Annotation, Arg, InputDecl, LayerStmt, ModelAst, Name, NumberValue, OutputDecl, ParamsDecl, Pos, Statement, StringValue, Value } from "./ast.js";

function isToken(e: CstElement): e is IToken {
  return (e as IToken).image !== undefined;
}

function nodes(n: CstNode, key: string): CstNode[] {
  return (n.children[key] ?? []) as CstNode[];
}

function node(n: CstNode, key: string): CstNode {
  const c = n.children[key]?.[0];
  assert(c !== undefined && !isToken(c), `CST node ${n.name} lacks ${key}`);
  return c;
}

function tokens(n: CstNode, key: string): IToken[] {
  return (n.children[key] ?? []) as IToken[];
}

function token(n: CstNode, key: string): IToken {
  const t = n.children[key]?.[0];
  assert(t !== undefined && isToken(t), `CST node ${n.name} lacks token ${key}`);
  return t;
}

function pos(t: IToken): Pos {
  return { line: t.startLine!, column: t.startColumn! };
}

function nodePos(n: CstNode): Pos {
  return { line: n.location!.startLine!, column: n.location!.startColumn! };
}

function name(t: IToken): Name {
  return { text: t.image, pos: pos(t) };
}

function numberValue(t: IToken): NumberValue {
  return { kind: "number", value: Number(t.image), text: t.image, pos: pos(t) };
}

/** Undoes the escapes the lexer allows inside "...": a backslash takes the next character literally. */
function stringValue(t: IToken): StringValue {
  return { kind: "string", value: t.image.slice(1, -1).replace(/\\(.)/g, "$1"), pos: pos(t) };
}

function value(n: CstNode): Value {
  const num = tokens(n, "NumberLiteral")[0];
  if (num) return numberValue(num);
  const str = tokens(n, "StringLiteral")[0];
  if (str) return stringValue(str);
  const id = token(n, "Identifier");
  return { kind: "ident", name: id.image, pos: pos(id) };
}

function args(parens: CstNode | undefined): Arg[] {
  if (parens === undefined) return [];
  return nodes(parens, "arg").map((a) => {
    const key = tokens(a, "Identifier")[0];
    return { ...(key ? { key: name(key) } : {}), value: value(node(a, "value")), pos: nodePos(a) };
  });
}

function annotation(n: CstNode): Annotation {
  return { name: name(token(n, "Identifier")), args: args(nodes(n, "argList")[0]), pos: pos(token(n, "At")) };
}

function layerName(n: CstNode): Name {
  const str = tokens(n, "StringLiteral")[0];
  if (str) return { text: stringValue(str).value, pos: pos(str) };
  const parts = [...tokens(n, "Identifier"), ...tokens(n, "NumberLiteral")].sort((a, b) => a.startOffset - b.startOffset);
  return { text: parts.map((t) => t.image).join("."), pos: pos(parts[0]!) };
}

function statement(n: CstNode): Statement {
  const annotations = nodes(n, "annotation").map(annotation);
  const res = nodes(n, "residual")[0];
  if (res) {
    const mode = tokens(res, "Prenorm")[0] ?? tokens(res, "Postnorm")[0];
    return {
      kind: "residual",
      annotations,
      ...(mode ? { norm: { mode: mode.image as "prenorm" | "postnorm", args: args(nodes(res, "argList")[0]), pos: pos(mode) } } : {}),
      body: block(node(res, "block")),
      pos: pos(token(res, "Residual")),
    };
  }
  const rep = nodes(n, "repeat")[0];
  if (rep) {
    return { kind: "repeat", annotations, count: numberValue(token(rep, "NumberLiteral")), body: block(node(rep, "block")), pos: pos(token(rep, "Repeat")) };
  }
  const l = node(n, "layer");
  const nm = nodes(l, "layerName")[0];
  const op = name(token(l, "Identifier"));
  const layer: LayerStmt = { kind: "layer", annotations, op, args: args(nodes(l, "argList")[0]), pos: nm ? nodePos(nm) : op.pos };
  if (nm) layer.name = layerName(nm);
  return layer;
}

function block(n: CstNode): Statement[] {
  return nodes(n, "statement").map(statement);
}

export function cstToAst(file: CstNode): ModelAst {
  const m = node(file, "model");
  const inputs: InputDecl[] = [];
  const outputs: OutputDecl[] = [];
  const params: ParamsDecl[] = [];
  const body: Statement[] = [];
  for (const item of nodes(m, "item")) {
    const inp = nodes(item, "inputDecl")[0];
    const out = nodes(item, "outputDecl")[0];
    const par = nodes(item, "paramsDecl")[0];
    if (inp) {
      inputs.push({ name: name(token(inp, "Identifier")), size: numberValue(token(inp, "NumberLiteral")), pos: pos(token(inp, "Input")) });
    } else if (out) {
      outputs.push({ name: name(token(out, "Identifier")), pos: pos(token(out, "Output")) });
    } else if (par) {
      const at = pos(token(par, "Params"));
      const from = tokens(par, "StringLiteral")[0];
      if (from) {
        params.push({ kind: "file", path: stringValue(from), pos: at });
      } else {
        const seed = tokens(par, "NumberLiteral")[0];
        params.push(seed ? { kind: "init", seed: numberValue(seed), pos: at } : { kind: "init", pos: at });
      }
    } else {
      body.push(statement(node(item, "statement")));
    }
  }
  return { name: name(token(m, "Identifier")), inputs, outputs, params, body, pos: pos(token(m, "Model")) };
}
