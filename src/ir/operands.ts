// Which values an IR op reads: the one place passes and the scheduler ask it, so a new op
// kind with operands is added here once.

import type { Op } from "./types.js";

/** Operand value names an op reads (values, not states: a state_read reads none). */
export function operandsOf(op: Op): string[] {
  switch (op.op) {
    case "matmul":
    case "concat":
      return op.xs;
    case "add":
    case "mul":
      return [op.a, op.b];
    case "state_read":
      return [];
    default:
      return "x" in op ? [op.x] : [];
  }
}
