import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { UserError } from "../src/common/errors.js";
import { parseDsl } from "../src/frontend/dsl/index.js";

function syntaxErrors(src: string): { line: number; column: number; message: string }[] {
  try {
    parseDsl(src, "m.s4d");
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    const err = e as UserError;
    expect(err.kind).toBe("syntax");
    return err.diagnostics.map((d) => ({ line: d.location!.line!, column: d.location!.column!, message: d.message }));
  }
  throw new Error("expected a syntax error");
}

describe("DSL parser", () => {
  test("builds an AST with positions, names, arguments and annotations", () => {
    const ast = parseDsl(
      [
        "model m {",
        "  input u[3];",
        "  output out;",
        '  params from "w.safetensors";',
        "  enc: linear(4, bias = false);",
        "  @levels(7) @ternary residual prenorm(eps = 1e-6) {",
        '    s4_layers.0.x: s4d(N = 8, init = inv);',
        '    "odd name": gelu;',
        "  }",
        "  repeat 2 { relu(); }",
        "}",
      ].join("\n"),
      "m.s4d",
    );
    expect(ast.name).toEqual({ text: "m", pos: { line: 1, column: 7 } });
    expect(ast.inputs).toHaveLength(1);
    expect(ast.inputs[0]!.name.text).toBe("u");
    expect(ast.inputs[0]!.size.value).toBe(3);
    expect(ast.outputs[0]!.name.text).toBe("out");
    expect(ast.params).toEqual([{ kind: "file", path: { kind: "string", value: "w.safetensors", pos: { line: 4, column: 15 } }, pos: { line: 4, column: 3 } }]);
    expect(ast.body).toHaveLength(3);

    const enc = ast.body[0]!;
    expect(enc.kind).toBe("layer");
    if (enc.kind !== "layer") return;
    expect(enc.name).toEqual({ text: "enc", pos: { line: 5, column: 3 } });
    expect(enc.op.text).toBe("linear");
    expect(enc.args.map((a) => [a.key?.text, a.value])).toEqual([
      [undefined, { kind: "number", value: 4, text: "4", pos: { line: 5, column: 15 } }],
      ["bias", { kind: "ident", name: "false", pos: { line: 5, column: 25 } }],
    ]);

    const res = ast.body[1]!;
    if (res.kind !== "residual") throw new Error("expected residual");
    expect(res.annotations.map((a) => a.name.text)).toEqual(["levels", "ternary"]);
    expect(res.norm?.mode).toBe("prenorm");
    expect(res.norm?.args[0]!.value).toMatchObject({ kind: "number", value: 1e-6 });
    const [s4, gelu] = res.body;
    if (s4?.kind !== "layer" || gelu?.kind !== "layer") throw new Error("expected layers");
    // The dotted name keeps its numeric segment; `init` is a contextual keyword usable as an option.
    expect(s4.name?.text).toBe("s4_layers.0.x");
    expect(s4.args.map((a) => a.key?.text)).toEqual(["N", "init"]);
    expect(gelu.name?.text).toBe("odd name");

    const rep = ast.body[2]!;
    if (rep.kind !== "repeat") throw new Error("expected repeat");
    expect(rep.count.value).toBe(2);
    expect(rep.body).toHaveLength(1);
  });

  test("params init with and without seed; comments are ignored", () => {
    const a = parseDsl("model a { /* block\ncomment */ input u[1]; params init; // trailing\n linear(1); }", "a.s4d");
    expect(a.params).toEqual([{ kind: "init", pos: { line: 2, column: 24 } }]);
    const b = parseDsl("model b { input u[1]; params init seed 42; linear(1); }", "b.s4d");
    expect(b.params[0]).toMatchObject({ kind: "init", seed: { value: 42 } });
  });

  test("reports several syntax errors in one file with positions, what was found and what was expected", () => {
    const src = readFileSync("test/fixtures/dsl/syntax-errors.s4d", "utf8");
    expect(syntaxErrors(src)).toEqual([
      { line: 4, column: 3, message: "expected ';' after ']' but found 'params'" },
      { line: 6, column: 13, message: "expected a value (number, string or name) but found ')'" },
      { line: 7, column: 19, message: "expected ';' after 'gelu' but found '}'" },
    ]);
  });

  test("error messages name the file", () => {
    try {
      parseDsl("model m { input u[1] }", "dir/model.s4d");
      throw new Error("no error");
    } catch (e) {
      expect((e as Error).message).toBe("dir/model.s4d:1:22: expected ';' after ']' but found '}'");
    }
  });

  test("a missing closing brace is reported at the end of the file", () => {
    expect(syntaxErrors("model m {\n  input u[1];\n  linear(1);\n")).toEqual([{ line: 3, column: 13, message: "expected '}' after ';' but found end of file" }]);
  });

  test("a statement that starts with the wrong token lists the alternatives", () => {
    const errs = syntaxErrors("model m {\n  input u[1];\n  = linear(1);\n}");
    expect(errs[0]).toEqual({
      line: 3,
      column: 3,
      message: "expected 'input', 'output', 'params', a layer, 'residual', 'repeat', an '@' annotation or '}' but found '='",
    });
    expect(syntaxErrors("model m {\n  input u[1];\n  residual { linear(1); 7 }\n}")[0]).toEqual({
      line: 3,
      column: 25,
      message: "expected a layer, 'residual', 'repeat', an '@' annotation or '}' but found '7'",
    });
  });

  test("lexical errors are reported alongside syntax errors, sorted by position", () => {
    const errs = syntaxErrors('model m {\n  input u[1];\n  linear(1) $;\n  params from "unterminated;\n}');
    expect(errs.map((e) => [e.line, e.column])).toEqual(
      [...errs].sort((a, b) => a.line - b.line || a.column - b.column).map((e) => [e.line, e.column]),
    );
    expect(errs).toContainEqual({ line: 3, column: 13, message: 'unexpected character "$"' });
    expect(errs).toContainEqual({ line: 4, column: 15, message: "unterminated string: expected a closing '\"' on the same line" });
  });

  test("keywords cannot be layer names but contextual keywords can", () => {
    expect(syntaxErrors("model m { input u[1]; params init; repeat: linear(1); }")[0]).toEqual({
      line: 1,
      column: 42,
      message: "expected a number after 'repeat' but found ':'",
    });
    const ast = parseDsl("model m { input u[1]; params init; seed: linear(1); }", "m.s4d");
    const l = ast.body[0]!;
    expect(l.kind === "layer" && l.name?.text).toBe("seed");
  });

  test("only one model per file", () => {
    const errs = syntaxErrors("model a { input u[1]; params init; linear(1); }\nmodel b { }");
    expect(errs).toEqual([{ line: 2, column: 1, message: "expected end of file after the model's closing '}' but found 'model' (one model per file)" }]);
  });
});
