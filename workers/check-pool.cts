// The linearizability checker's piscina entry, as CommonJS. piscina loads
// its task file with require() first; on Node 20.19+ that is require(esm)
// for an ES module, and a pool thread once died there of a V8 fatal error
// ("v8::Module::IsGraphAsync must be used on an instantiated module"),
// taking the whole test process with it. A CommonJS file is required
// plainly, and it loads the ES module check worker by import() only.
import type { CheckTask } from './check.js';
import type { SearchOutcome } from '../lib/check/search.js';

let worker: Promise<{ default: (task: CheckTask) => SearchOutcome[] }> | undefined;

async function check(task: CheckTask): Promise<SearchOutcome[]> {
  worker ??= import('./check.js');
  return (await worker).default(task);
}

export = check;
