import { NSHARDS, type ShardConfig } from '../../lib/shard/index.js';

/** How a check reports a failure: the harness's fatal (it throws). */
export type Fatal = (message: string) => never;

/**
 * check(groups, config): exactly these groups, every shard on one of them
 * (when there are any), and no group more than one shard above another.
 * (The original queries through a clerk first; callers do that.)
 */
export function checkGroups(fatal: Fatal, groups: number[], c: ShardConfig): void {
  if (c.groups.size !== groups.length) fatal(`wanted ${groups.length} groups, got ${c.groups.size}`);
  for (const g of groups) if (!c.groups.has(g)) fatal(`missing group ${g}`);
  if (groups.length > 0) {
    for (let s = 0; s < NSHARDS; s++) {
      const g = c.shards[s]!;
      if (!c.groups.has(g)) fatal(`shard ${s} -> invalid group ${g}`);
    }
  }
  const counts = new Map<number, number>();
  for (const g of c.shards) counts.set(g, (counts.get(g) ?? 0) + 1);
  let min = 257;
  let max = 0;
  for (const g of c.groups.keys()) {
    const n = counts.get(g) ?? 0;
    if (n > max) max = n;
    if (n < min) min = n;
  }
  if (max > min + 1) fatal(`max ${max} too much larger than min ${min}`);
}

/** check_same_config(c1, c2): the same number, shards, groups and server lists (order counts). */
export function checkSameConfig(fatal: Fatal, c1: ShardConfig, c2: ShardConfig): void {
  if (c1.num !== c2.num) fatal('Num wrong');
  for (let s = 0; s < NSHARDS; s++) if (c1.shards[s] !== c2.shards[s]) fatal('Shards wrong');
  if (c1.groups.size !== c2.groups.size) fatal('number of Groups is wrong');
  for (const [gid, sa] of c1.groups) {
    const sa1 = c2.groups.get(gid);
    if (!sa1 || sa1.length !== sa.length) fatal('len(Groups) wrong');
    for (let j = 0; j < sa.length; j++) if (sa[j] !== sa1[j]) fatal('Groups wrong');
  }
}
