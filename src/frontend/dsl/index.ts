// Public entry of the DSL front end: source text -> tokens -> CST -> AST -> checked model ->
// model-level IR. Each phase collects all its errors; the first phase with errors stops the
// pipeline with one UserError listing them (syntax errors from lexer and parser together).

import { dirname, resolve } from "node:path";
import { isUserError, UserError, type SourceLocation } from "../../common/errors.js";
import { readText } from "../../common/files.js";
import type { Model } from "../../ir/types.js";
import { FileParamSource } from "../params/file.js";
import { InitParamSource } from "../params/init.js";
import type { ParamSource } from "../params/source.js";
import { readSafetensors, type SafeTensor } from "../safetensors.js";
import type { ModelAst } from "./ast.js";
import { buildIr } from "./build-ir.js";
import { checkModelAst, type CheckedModel } from "./checker.js";
import { cstToAst } from "./cst-to-ast.js";
import { lex } from "./lexer.js";
import { parseTokens } from "./parser.js";

export type { ModelAst } from "./ast.js";
export type { CheckedModel, Layer } from "./checker.js";

/** Lexes and parses; throws a "syntax" UserError listing every lexical and syntax error. */
export function parseDsl(source: string, file: string): ModelAst {
  const lexed = lex(source, file);
  const parsed = parseTokens(lexed.tokens, file);
  const diagnostics = [...lexed.diagnostics, ...parsed.diagnostics].sort(
    (a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0),
  );
  if (diagnostics.length > 0) throw new UserError("syntax", diagnostics);
  return cstToAst(parsed.cst);
}

/** Parses and checks; throws a "semantic" UserError listing every problem found. */
export function checkDsl(source: string, file: string): CheckedModel {
  const checked = checkModelAst(parseDsl(source, file), file);
  if (checked.model === undefined) throw new UserError("semantic", checked.diagnostics);
  return checked.model;
}

export interface DslOptions {
  /** Reads the tensors of `params from "..."` (resolved path); default: the safetensors file. Tests and fuzzing substitute bytes here. */
  readParams?: (path: string) => Map<string, SafeTensor>;
}

function paramSource(model: CheckedModel, file: string, opts: DslOptions): ParamSource {
  const p = model.params;
  if (p.kind === "init") return new InitParamSource(p.seed);
  // Relative to the .s4d file, so a model and its weights can move together.
  const path = resolve(dirname(file), p.path);
  const where: SourceLocation = { file, line: p.pos.line, column: p.pos.column };
  try {
    return new FileParamSource((opts.readParams ?? readSafetensors)(path), p.path);
  } catch (e) {
    if (isUserError(e) && e.kind === "io") {
      throw new UserError("io", `cannot read params file "${p.path}" (${path}): ${e.diagnostics[0]?.message ?? e.message}`, where);
    }
    throw e;
  }
}

/** Compiles DSL source text; `file` names it in messages and anchors relative params paths. */
export function compileDslSource(source: string, file: string, opts: DslOptions = {}): Model {
  const checked = checkDsl(source, file);
  const params = paramSource(checked, file, opts);
  const extraMeta: Record<string, string | number> =
    checked.params.kind === "init" ? { seed: checked.params.seed } : { paramsFile: checked.params.path };
  const model = buildIr(checked, params, file, extraMeta);
  if (params.diagnostics.length > 0) throw new UserError("semantic", params.diagnostics);
  if (params instanceof FileParamSource) model.meta!.unusedTensors = params.unusedTensors().length;
  return model;
}

export function compileDslFile(file: string): Model {
  return compileDslSource(readText(file), file);
}
