// The UserError a call throws, for tests of error messages: anything else it throws is
// rethrown, and returning normally fails the test.

import { expect } from "@jest/globals";
import { UserError, type Diagnostic } from "../../src/common/errors.js";

export function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error("expected a UserError");
}

/** The diagnostics of the UserError `fn` throws, which must be of `kind`. */
export function userErrors(fn: () => unknown, kind: UserError["kind"]): Diagnostic[] {
  const e = userError(fn);
  expect(e.kind).toBe(kind);
  return e.diagnostics;
}
