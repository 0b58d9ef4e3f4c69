import { kvHashedModel, kvModel, replay, type KvOperation } from './kv-model.js';
import { searchLinearization, type SearchLimits, type SearchOutcome } from './search.js';

/**
 * One key, fast first. Values are searched as fingerprints, so a step
 * costs the same however long the values grow; equal values always have
 * equal fingerprints, so the fingerprints can only let through a step the
 * real values would refuse, never refuse one they allow.
 *  1. Seen configurations kept as hashes (no copy per step): an 'ok' is
 *     confirmed by replaying the order found on the real values.
 *  2. Otherwise, seen configurations kept whole: nothing is skipped
 *     wrongly, so an 'illegal' here is exact; an 'ok' is confirmed by replay.
 *  3. Should a fingerprint ever have let a wrong step through (an 'ok'
 *     whose order does not replay), the search on the real values decides.
 */
export function checkKey(ops: KvOperation[], shouldStop: () => boolean, limits: SearchLimits = {}): SearchOutcome {
  const confirmed = (order: number[]) => replay(kvModel, order.map((i) => ops[i]!));
  let order: number[] = [];
  const fast = searchLinearization(kvHashedModel, ops, shouldStop, order, 'hashed', limits);
  if (fast === 'stopped' || (fast === 'ok' && confirmed(order))) return fast;
  // A hashed search that ran out of memory is not retried exactly (which needs more).
  if (fast === 'memory') return fast;
  order = [];
  const exactSets = searchLinearization(kvHashedModel, ops, shouldStop, order, 'exact', limits);
  if (exactSets !== 'ok' || confirmed(order)) return exactSets;
  return searchLinearization(kvModel, ops, shouldStop, undefined, 'exact', limits);
}
