#!/usr/bin/env node
// imssa-disasm: a compiled program (.xbin) -> readable assembly.

import { runMain } from "./main.js";
import { Command } from "commander";
import { formatAsm } from "../backend/asm.js";
import { readProgramFile } from "../backend/container.js";
import { writeFileAtomic } from "../common/files.js";

interface Options {
  output?: string;
  debug?: boolean;
}

function main(argv: string[]): void {
  const cmd = new Command("imssa-disasm")
    .description("Print a compiled imssa program (.xbin) as assembly: header, crossbars, and every tile's instructions with debug symbols.")
    .argument("<program>", "compiled program (.xbin)")
    .option("-o, --output <file>", "write the listing to this file instead of stdout")
    .option("--debug", "show stack traces for internal errors")
    .showHelpAfterError();
  cmd.parse(argv);
  const opts = cmd.opts<Options>();
  const text = formatAsm(readProgramFile(cmd.args[0]!));
  if (opts.output === undefined || opts.output === "-") process.stdout.write(text);
  else writeFileAtomic(opts.output, text);
}

await runMain("imssa-disasm", main);
