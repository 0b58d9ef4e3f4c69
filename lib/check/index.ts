export type { CheckResult, Model, Operation } from './history.js';
export { KvOp, kvModel, type KvInput, type KvOpCode, type KvOperation, type KvOutput } from './kv-model.js';
export { searchLinearization, type SearchOutcome } from './search.js';
export { LinearizabilityChecker, checkKvHistory, type CheckOptions, type CheckReport } from './checker.js';
