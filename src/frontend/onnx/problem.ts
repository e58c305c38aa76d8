// Errors of the ONNX front end. Op semantics run deep inside the graph walk and do not know
// the file or which node they serve, so they throw a NodeProblem; the walker (evaluate.ts)
// turns it into a UserError located at the node. Everything the user can cause ends as a
// UserError (exit 1, no stack); anything else is our bug.

import { UserError, type UserErrorKind } from "../../common/errors.js";

/** A node as messages name it: its position in its graph, name, op type, enclosing Scan bodies. */
export interface NodeRef {
  /** e.g. `node 12 "/layers.0/MatMul" (MatMul)`, nested: `node 3 "Scan_0" (Scan) > body node 5 ...`. */
  path: string;
  name: string;
  opType: string;
}

export function nodeRef(index: number, name: string, opType: string, parent?: NodeRef): NodeRef {
  const self = `${parent ? "body " : ""}node ${index}${name ? ` "${name}"` : ""} (${opType})`;
  return { path: parent ? `${parent.path} > ${self}` : self, name, opType };
}

/** Short form for messages that mention another node: `"Tanh_3" (Tanh)`. */
export function describeNode(n: NodeRef): string {
  return n.name ? `"${n.name}" (${n.opType})` : `a ${n.opType} node (${n.path})`;
}

/** Thrown by op semantics; located by the graph walker. */
export class NodeProblem extends Error {
  constructor(
    readonly kind: UserErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "NodeProblem";
  }
}

/** Invalid input to an op (shapes, attributes): the model is malformed. */
export function invalid(message: string): never {
  throw new NodeProblem("semantic", message);
}

/** Valid ONNX that this front end or the IR cannot express. */
export function unsupported(message: string): never {
  throw new NodeProblem("unsupported", message);
}

export function atNode(e: NodeProblem, file: string, node: NodeRef): UserError {
  return new UserError(e.kind, e.message, { file, path: node.path });
}

export const fmtShape = (s: readonly number[]): string => `[${s.join(", ")}]`;
