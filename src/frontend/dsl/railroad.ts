// Syntax diagrams of the DSL, drawn by chevrotain from the parser itself, so the picture can
// never drift from the grammar that runs. The page is self-contained: chevrotain's diagram
// scripts are inlined instead of loaded from a CDN, so it opens offline.
//   node dist/frontend/dsl/railroad.js grammar/railroad.html      (npm run gen:railroad)

import "../../common/polyfill.js";
import { createSyntaxDiagramsCode } from "chevrotain";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { writeFileAtomic } from "../../common/files.js";
import { parser } from "./parser.js";

/** chevrotain's `diagrams/` folder (scripts and stylesheet the generated page refers to). */
function diagramsDir(): string {
  // The package's entry is lib/src/api.js; diagrams/ sits at the package root.
  const entry = createRequire(import.meta.url).resolve("chevrotain");
  return join(dirname(entry), "..", "..", "diagrams");
}

export function railroadHtml(): string {
  const base = "chevrotain-diagrams/";
  let html = createSyntaxDiagramsCode(parser.getSerializedGastProductions(), { resourceBase: base, css: `${base}diagrams.css` });
  const dir = diagramsDir();
  html = html.replace(new RegExp(`<script src='${base}([^']+)'></script>`, "g"), (_m, rel: string) => {
    const code = readFileSync(join(dir, rel), "utf8");
    return `<script>\n// inlined from chevrotain/diagrams/${rel}\n${code.replace(/<\/script/gi, "<\\/script")}\n</script>`;
  });
  html = html.replace(`<link rel='stylesheet' href='${base}diagrams.css'>`, `<style>\n${readFileSync(join(dir, "diagrams.css"), "utf8")}\n</style>`);
  if (html.includes(base)) throw new Error("internal error: railroadHtml left an external chevrotain-diagrams reference");
  return html;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const out = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "grammar", "railroad.html");
  writeFileAtomic(out, railroadHtml());
  console.log(`wrote ${out}`);
}
