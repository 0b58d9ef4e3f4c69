import { NSHARDS } from './config.js';

/**
 * Assign the shards to the groups `gids` evenly (group sizes differ by at
 * most one), moving as few shards as possible from the current assignment
 * `shards`. Pure and deterministic: the same arguments give the same answer
 * on every replica whatever order the groups were joined in, because only
 * sorted GIDs and shard indexes decide anything.
 *
 * The groups that already hold the most shards (ties: lower GID) get the
 * extra shard when NSHARDS does not divide evenly, so no group gives up a
 * shard it could keep; shards of departed groups (or GID 0) and each
 * group's excess (its highest-numbered shards) are freed and handed out in
 * shard order to the groups below their target.
 */
export function rebalance(shards: readonly number[], gids: readonly number[]): number[] {
  if (shards.length !== NSHARDS) throw new RangeError(`rebalance: expected ${NSHARDS} shards, got ${shards.length}`);
  const sorted = [...new Set(gids)].sort((a, b) => a - b);
  if (sorted.length !== gids.length) throw new RangeError('rebalance: GIDs repeat');
  if (sorted.some((g) => !Number.isSafeInteger(g) || g <= 0)) throw new RangeError('rebalance: GIDs must be positive integers');
  if (sorted.length === 0) return new Array<number>(NSHARDS).fill(0);

  const owned = new Map<number, number[]>(sorted.map((g) => [g, []]));
  const free: number[] = [];
  for (let s = 0; s < NSHARDS; s++) {
    const list = owned.get(shards[s]!);
    if (list) list.push(s);
    else free.push(s);
  }
  const order = sorted.slice().sort((a, b) => owned.get(b)!.length - owned.get(a)!.length || a - b);
  const base = Math.floor(NSHARDS / sorted.length);
  const extra = NSHARDS % sorted.length;
  const target = new Map<number, number>(order.map((g, i) => [g, base + (i < extra ? 1 : 0)]));

  for (const g of order) {
    const list = owned.get(g)!;
    while (list.length > target.get(g)!) free.push(list.pop()!);
  }
  free.sort((a, b) => a - b);
  const out = shards.slice();
  let next = 0;
  for (const g of order) {
    const list = owned.get(g)!;
    while (list.length < target.get(g)!) {
      const s = free[next++]!;
      list.push(s);
      out[s] = g;
    }
  }
  if (next !== free.length) throw new Error(`rebalance: ${free.length - next} shards left unassigned`);
  return out;
}
