// The backend: a lowered/quantized model + crossbar plan -> Program (emit), the .xbin
// container (container), and readable views of programs (asm).

export { emitProgram, type EmitOptions } from "./emit.js";
export { decodeProgram, encodeProgram, readProgramFile, writeProgramFile, TRAILER_BYTES, TRAILER_MAGIC } from "./container.js";
export { formatAsm, formatOperands, summarizeProgram, OPCODE_ORDER, type ProgramSummary } from "./asm.js";
export { crc32 } from "./checksum.js";
