// The float64 reference: recurrent step-form evaluator (ground truth for every IR level) and
// the independent S4D convolution form used to check it.

export { ReferenceEvaluator, evaluateBatch, evaluateSequence, evaluateSequenceWith } from "./evaluate.js";
export type { BatchResult, EvaluateOptions, SequenceResult } from "./evaluate.js";
export { convolveS4D, evaluateConvolutionForm, s4dKernel } from "./convolution.js";
