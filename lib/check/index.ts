export type { CheckResult, Model, Operation } from './history.js';
export { KvOp, kvModel, type KvInput, type KvOpCode, type KvOperation, type KvOutput } from './kv-model.js';
export { searchLinearization, DEFAULT_MEMO_BYTES, type SearchLimits, type SearchOutcome } from './search.js';
export { dropUnobserved } from './unknown-outcomes.js';
export { LinearizabilityChecker, checkKvHistory, type CheckOptions, type CheckerOptions, type CheckReport } from './checker.js';
