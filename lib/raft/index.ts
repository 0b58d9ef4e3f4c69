export { RaftCore, COMMIT_NOTICE_TICKS, type CoreOptions, type CoreStatus, type PlantedBugs } from './core.js';
export { RaftLog } from './log.js';
export { seededRng, randInt, type Rng } from './prng.js';
export * from './types.js';
export { messageProblem } from './validate.js';
