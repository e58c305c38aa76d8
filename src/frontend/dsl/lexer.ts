// Tokens of the model DSL (grammar/s4d.ebnf). Layer kinds and option names are plain
// identifiers resolved by the checker, so a typo there gets a "did you mean" instead of a
// parse error. Structural words are reserved keywords; `init`, `seed` and `from` are
// contextual (they stay usable as option names, e.g. `s4d(init = inv)`).

import { createToken, Lexer, type ILexerErrorMessageProvider, type IToken, type TokenType } from "chevrotain";
import type { Diagnostic } from "../../common/errors.js";

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED, line_breaks: true });
export const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\n\r]*/, group: Lexer.SKIPPED });
export const BlockComment = createToken({ name: "BlockComment", pattern: /\/\*[\s\S]*?\*\//, group: Lexer.SKIPPED, line_breaks: true });

export const Identifier = createToken({ name: "Identifier", pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: "a name" });

function keyword(word: string): TokenType {
  return createToken({ name: word[0]!.toUpperCase() + word.slice(1), pattern: new RegExp(word), longer_alt: Identifier, label: `'${word}'` });
}
function softKeyword(word: string): TokenType {
  return createToken({
    name: word[0]!.toUpperCase() + word.slice(1),
    pattern: new RegExp(word),
    longer_alt: Identifier,
    categories: [Identifier],
    label: `'${word}'`,
  });
}

export const Model = keyword("model");
export const Input = keyword("input");
export const Output = keyword("output");
export const Params = keyword("params");
export const Residual = keyword("residual");
export const Repeat = keyword("repeat");
export const Prenorm = keyword("prenorm");
export const Postnorm = keyword("postnorm");
export const Init = softKeyword("init");
export const Seed = softKeyword("seed");
export const From = softKeyword("from");

// No sign and no leading or trailing dot: `s4_layers.0.kernel` must lex as name, dot, 0, dot, name.
export const NumberLiteral = createToken({ name: "NumberLiteral", pattern: /\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/, label: "a number" });
export const StringLiteral = createToken({ name: "StringLiteral", pattern: /"(?:[^"\\\r\n]|\\.)*"/, label: "a string" });

export const LBrace = createToken({ name: "LBrace", pattern: /\{/, label: "'{'" });
export const RBrace = createToken({ name: "RBrace", pattern: /\}/, label: "'}'" });
export const LParen = createToken({ name: "LParen", pattern: /\(/, label: "'('" });
export const RParen = createToken({ name: "RParen", pattern: /\)/, label: "')'" });
export const LBracket = createToken({ name: "LBracket", pattern: /\[/, label: "'['" });
export const RBracket = createToken({ name: "RBracket", pattern: /\]/, label: "']'" });
export const Semicolon = createToken({ name: "Semicolon", pattern: /;/, label: "';'" });
export const Colon = createToken({ name: "Colon", pattern: /:/, label: "':'" });
export const Comma = createToken({ name: "Comma", pattern: /,/, label: "','" });
export const Equals = createToken({ name: "Equals", pattern: /=/, label: "'='" });
export const Dot = createToken({ name: "Dot", pattern: /\./, label: "'.'" });
export const At = createToken({ name: "At", pattern: /@/, label: "'@'" });

/** Lexer order: comments before anything starting with '/', keywords before Identifier. */
export const allTokens: TokenType[] = [
  WhiteSpace,
  LineComment,
  BlockComment,
  Model,
  Input,
  Output,
  Params,
  Residual,
  Repeat,
  Prenorm,
  Postnorm,
  Init,
  Seed,
  From,
  Identifier,
  NumberLiteral,
  StringLiteral,
  LBrace,
  RBrace,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Semicolon,
  Colon,
  Comma,
  Equals,
  Dot,
  At,
];

const lexerMessages: ILexerErrorMessageProvider = {
  buildUnexpectedCharactersMessage(fullText, startOffset) {
    const ch = fullText[startOffset] ?? "";
    if (ch === '"') return "unterminated string: expected a closing '\"' on the same line";
    if (fullText.startsWith("/*", startOffset)) return "unterminated block comment: expected '*/'";
    return `unexpected character ${JSON.stringify(ch)}`;
  },
  buildUnableToPopLexerModeMessage(token) {
    return `internal lexer error at '${token.image}'`;
  },
};

const lexer = new Lexer(allTokens, { positionTracking: "full", ensureOptimizations: false, errorMessageProvider: lexerMessages });

export interface LexResult {
  tokens: IToken[];
  diagnostics: Diagnostic[];
}

/** Tokenises `source`; bad characters are reported and skipped so parsing can go on. */
export function lex(source: string, file: string): LexResult {
  const result = lexer.tokenize(source);
  const diagnostics = result.errors.map(
    (e): Diagnostic => ({ message: e.message, location: { file, line: e.line ?? 1, column: e.column ?? 1 } }),
  );
  return { tokens: result.tokens, diagnostics };
}
