import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { compileDslFile, compileDslSource } from "../src/frontend/dsl/index.js";
import { allTokens } from "../src/frontend/dsl/lexer.js";
import { parser } from "../src/frontend/dsl/parser.js";
import { railroadHtml } from "../src/frontend/dsl/railroad.js";

describe("grammar documents", () => {
  test("grammar/railroad.html is generated from the current parser (npm run gen:railroad)", () => {
    const html = railroadHtml();
    expect(html).toContain("window.serializedGrammar");
    // Self-contained: no external script or stylesheet.
    expect(html).not.toMatch(/<script src=|<link rel='stylesheet'/);
    expect(readFileSync("grammar/railroad.html", "utf8")).toBe(html);
  });

  test("grammar/s4d.ebnf has a production for every parser rule and every keyword", () => {
    const ebnf = readFileSync("grammar/s4d.ebnf", "utf8");
    const productions = new Set([...ebnf.matchAll(/^(\w+)\s*::=/gm)].map((m) => m[1]));
    for (const rule of Object.keys(parser.getGAstProductions())) {
      expect(productions).toContain(rule[0]!.toUpperCase() + rule.slice(1));
    }
    for (const t of allTokens) {
      if (typeof t.LABEL === "string" && /^'[a-z]+'$/.test(t.LABEL)) expect(ebnf).toContain(t.LABEL);
    }
  });

  test("the example in grammar/README.md is examples/digits.s4d", () => {
    const readme = readFileSync("grammar/README.md", "utf8");
    const block = /```s4d\n([\s\S]*?)```/.exec(readme)![1]!;
    const fromReadme = compileDslSource(block, "README.md");
    const fromFile = compileDslFile("examples/digits.s4d");
    expect({ ...fromReadme, meta: {} }).toEqual({ ...fromFile, meta: {} });
  });
});
