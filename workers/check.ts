import type { KvOperation } from '../lib/check/kv-model.js';
import { checkKey } from '../lib/check/check-key.js';
import type { SearchOutcome } from '../lib/check/search.js';

/** One piscina task: a batch of independent partitions of a KV history. */
export interface CheckTask {
  partitions: KvOperation[][];
  /** Int32 flag: non-zero tells every search to stop. */
  stop: SharedArrayBuffer;
  /** Date.now() after which to stop even if the flag is never raised. */
  deadline: number;
  /** Byte budget of each search's memo. */
  memoBytes: number;
}

/** Searches the task's partitions in turn; an illegal one raises the stop flag for everyone. */
export default function check(task: CheckTask): SearchOutcome[] {
  const flag = new Int32Array(task.stop);
  const shouldStop = () => Atomics.load(flag, 0) !== 0 || Date.now() > task.deadline;
  const out: SearchOutcome[] = [];
  for (const ops of task.partitions) {
    if (shouldStop()) {
      out.push('stopped');
      continue;
    }
    const r = checkKey(ops, shouldStop, { memoBytes: task.memoBytes });
    if (r === 'illegal') Atomics.store(flag, 0, 1);
    out.push(r);
  }
  return out;
}
