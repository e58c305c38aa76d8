// Public API of the interpreter.
export { checkProgram, verifyProgram } from "./verify.js";
export { runProgram, type RunOptions, type RunResult } from "./run.js";
export { formatReport, type RunReport, type SectionStats, type SaturationEntry } from "./report.js";
export { traceFile, type TraceEvent, type TraceFile } from "./trace.js";
export { occupancy, mvmPhases, vectorCyclesPerGroup, type UnitKind } from "./timing.js";
export { energyOf, countsOf, type EnergyBreakdown, type EventCounts } from "./energy.js";
export { erf, erfc, gelu, sigmoid } from "./math.js";
