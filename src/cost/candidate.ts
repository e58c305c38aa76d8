// A cost-model candidate either compiles or is out of the choice: a user-facing compile error
// (e.g. more crossbars than the target has) removes it; anything else is a bug and propagates.

import { isUserError } from "../common/errors.js";
import type { CompileResult } from "../pipeline.js";

export type CandidateCompile = { result: CompileResult } | { error: string };

export function compileCandidate(f: () => CompileResult): CandidateCompile {
  try {
    return { result: f() };
  } catch (e) {
    if (!isUserError(e)) throw e;
    return { error: e.diagnostics.map((d) => d.message).join("; ") };
  }
}
