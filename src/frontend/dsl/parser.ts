// The grammar of the model DSL as a chevrotain CstParser. grammar/s4d.ebnf is the same
// grammar written for humans and grammar/railroad.html is drawn from this class, so change
// all three together. Error recovery is on: after a syntax error the parser re-syncs at the
// next statement and keeps going, so one run reports every error in the file.

import "../../common/polyfill.js";
import { CstParser, EOF, type CstNode, type IParserErrorMessageProvider, type IToken, type TokenType } from "chevrotain";
import type { Diagnostic } from "../../common/errors.js";
import * as T from "./lexer.js";

function label(t: TokenType): string {
  return t.LABEL ?? t.name;
}

function describe(tok: IToken | undefined): string {
  if (tok === undefined || tok.tokenType === EOF) return "end of file";
  return `'${tok.image}'`;
}

function expectedList(labels: string[]): string {
  const unique = [...new Set(labels)];
  if (unique.length === 1) return unique[0]!;
  return `one of ${unique.slice(0, -1).join(", ")} or ${unique.at(-1)}`;
}

// What may appear where a body can also end; a missing statement start shows up as a
// mismatch on the closing brace, and "expected '}'" alone would mislead.
const BODY_ITEMS: Record<string, string> = {
  model: "'input', 'output', 'params', a layer, 'residual', 'repeat', an '@' annotation or '}'",
  block: "a layer, 'residual', 'repeat', an '@' annotation or '}'",
};

// Messages read "expected X but found Y" so the user sees both sides.
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, previous, ruleName }) {
    if (expected === T.RBrace && BODY_ITEMS[ruleName] !== undefined && actual.tokenType !== EOF) return `expected ${BODY_ITEMS[ruleName]} but found ${describe(actual)}`;
    // After recovery chevrotain may hand us the offending token as `previous` too; skip that.
    const hasPrevious = previous !== undefined && previous.tokenType !== EOF && previous.image !== "" && (actual.tokenType === EOF || previous.startOffset < actual.startOffset);
    return `expected ${label(expected)}${hasPrevious ? ` after '${previous.image}'` : ""} but found ${describe(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `expected end of file after the model's closing '}' but found ${describe(firstRedundant)} (one model per file)`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, customUserDescription }) {
    const what = customUserDescription ?? expectedList(expectedPathsPerAlt.flatMap((alt) => alt.map((path) => label(path[0]!))));
    return `expected ${what} but found ${describe(actual[0])}`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, customUserDescription }) {
    const what = customUserDescription ?? expectedList(expectedIterationPaths.map((path) => label(path[0]!)));
    return `expected at least one ${what} but found ${describe(actual[0])}`;
  },
};

export class S4dParser extends CstParser {
  constructor() {
    super(T.allTokens, { recoveryEnabled: true, nodeLocationTracking: "full", errorMessageProvider: messages });
    this.performSelfAnalysis();
  }

  file = this.RULE("file", () => {
    this.SUBRULE(this.model);
  });

  model = this.RULE("model", () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.item));
    this.CONSUME(T.RBrace);
  });

  item = this.RULE("item", () => {
    this.OR({
      DEF: [
        { ALT: () => this.SUBRULE(this.inputDecl) },
        { ALT: () => this.SUBRULE(this.outputDecl) },
        { ALT: () => this.SUBRULE(this.paramsDecl) },
        { ALT: () => this.SUBRULE(this.statement) },
      ],
      ERR_MSG: "'input', 'output', 'params', a layer, 'residual', 'repeat', an '@' annotation or '}'",
    });
  });

  inputDecl = this.RULE("inputDecl", () => {
    this.CONSUME(T.Input);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.LBracket);
    this.CONSUME(T.NumberLiteral);
    this.CONSUME(T.RBracket);
    this.CONSUME(T.Semicolon);
  });

  outputDecl = this.RULE("outputDecl", () => {
    this.CONSUME(T.Output);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Semicolon);
  });

  paramsDecl = this.RULE("paramsDecl", () => {
    this.CONSUME(T.Params);
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Init);
          this.OPTION(() => {
            this.CONSUME(T.Seed);
            this.CONSUME(T.NumberLiteral);
          });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.From);
          this.CONSUME(T.StringLiteral);
        },
      },
    ]);
    this.CONSUME(T.Semicolon);
  });

  statement = this.RULE("statement", () => {
    this.MANY(() => this.SUBRULE(this.annotation));
    this.OR({
      DEF: [
        { ALT: () => this.SUBRULE(this.residual) },
        { ALT: () => this.SUBRULE(this.repeat) },
        { ALT: () => this.SUBRULE(this.layer) },
      ],
      ERR_MSG: "a layer, 'residual' or 'repeat'",
    });
  });

  annotation = this.RULE("annotation", () => {
    this.CONSUME(T.At);
    this.CONSUME(T.Identifier);
    this.OPTION(() => this.SUBRULE(this.argList));
  });

  residual = this.RULE("residual", () => {
    this.CONSUME(T.Residual);
    this.OPTION(() => {
      this.OR([{ ALT: () => this.CONSUME(T.Prenorm) }, { ALT: () => this.CONSUME(T.Postnorm) }]);
      this.OPTION2(() => this.SUBRULE(this.argList));
    });
    this.SUBRULE(this.block);
  });

  repeat = this.RULE("repeat", () => {
    this.CONSUME(T.Repeat);
    this.CONSUME(T.NumberLiteral);
    this.SUBRULE(this.block);
  });

  block = this.RULE("block", () => {
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.statement));
    this.CONSUME(T.RBrace);
  });

  layer = this.RULE("layer", () => {
    this.OPTION(() => {
      this.SUBRULE(this.layerName);
      this.CONSUME(T.Colon);
    });
    this.CONSUME(T.Identifier);
    this.OPTION2(() => this.SUBRULE(this.argList));
    this.CONSUME(T.Semicolon);
  });

  layerName = this.RULE("layerName", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.StringLiteral) },
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.MANY(() => {
            this.CONSUME(T.Dot);
            this.OR2([{ ALT: () => this.CONSUME2(T.Identifier) }, { ALT: () => this.CONSUME(T.NumberLiteral) }]);
          });
        },
      },
    ]);
  });

  argList = this.RULE("argList", () => {
    this.CONSUME(T.LParen);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.arg) });
    this.CONSUME(T.RParen);
  });

  arg = this.RULE("arg", () => {
    this.OPTION(() => {
      this.CONSUME(T.Identifier);
      this.CONSUME(T.Equals);
    });
    this.SUBRULE(this.value);
  });

  value = this.RULE("value", () => {
    this.OR({
      DEF: [{ ALT: () => this.CONSUME(T.NumberLiteral) }, { ALT: () => this.CONSUME(T.StringLiteral) }, { ALT: () => this.CONSUME(T.Identifier) }],
      ERR_MSG: "a value (number, string or name)",
    });
  });
}

/** One shared instance: building the parser (grammar analysis) is the expensive part. */
export const parser = new S4dParser();

export interface ParseResult {
  cst: CstNode;
  diagnostics: Diagnostic[];
}

/** Parses a token stream. The CST is only meaningful when `diagnostics` is empty. */
export function parseTokens(tokens: IToken[], file: string): ParseResult {
  parser.input = tokens;
  const cst = parser.file();
  const last = tokens.at(-1);
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const e of parser.errors) {
    // The EOF token has no position: point just past the last real token instead.
    const atEnd = e.token.tokenType === EOF || !Number.isFinite(e.token.startLine);
    const line = atEnd ? (last?.endLine ?? 1) : e.token.startLine!;
    const column = atEnd ? (last ? last.endColumn! + 1 : 1) : e.token.startColumn!;
    const key = `${line}:${column}:${e.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    diagnostics.push({ message: e.message, location: { file, line, column } });
  }
  return { cst, diagnostics };
}
