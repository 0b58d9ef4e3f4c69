/** The number of shards the key space is split into (the lab's NShards). */
export const NSHARDS = 10;

/**
 * One numbered configuration of the sharded service: which replica group
 * (GID) owns each shard, and the server names of every group. GID 0 is no
 * group ("unassigned"). Configurations never change once made; every one
 * handed out is a copy.
 */
export interface ShardConfig {
  num: number;
  /** Shard index -> owning GID (0: none). Always NSHARDS long. */
  shards: number[];
  /** GID -> the group's server names, in the order they were joined with. Iterates in ascending GID order. */
  groups: Map<number, string[]>;
}

/** How a configuration travels (log results, query answers, snapshots): [num, shards, [[gid, servers], ...] by ascending gid]. */
export type ConfigWire = [number, number[], [number, string[]][]];

export function emptyConfig(): ShardConfig {
  return { num: 0, shards: new Array<number>(NSHARDS).fill(0), groups: new Map() };
}

/** The shard a key belongs to: its first UTF-8 byte modulo NSHARDS ("" is shard 0), the lab's key2shard. */
export function key2shard(key: string): number {
  if (key.length === 0) return 0;
  const c = key.charCodeAt(0);
  // A UTF-16 unit below 0x80 is its own UTF-8 byte; anything else starts with a lead byte.
  if (c < 0x80) return c % NSHARDS;
  return Buffer.from(key.slice(0, 2), 'utf8')[0]! % NSHARDS;
}

export function configToWire(c: ShardConfig): ConfigWire {
  const groups = [...c.groups.keys()].sort((a, b) => a - b).map((g): [number, string[]] => [g, c.groups.get(g)!.slice()]);
  return [c.num, c.shards.slice(), groups];
}

/** A configuration from its wire form, or undefined when the value is not one. */
export function configFromWire(raw: unknown): ShardConfig | undefined {
  if (!Array.isArray(raw) || raw.length !== 3) return undefined;
  const [num, shards, groups] = raw as unknown[];
  if (!Number.isSafeInteger(num) || (num as number) < 0) return undefined;
  if (!Array.isArray(shards) || shards.length !== NSHARDS || !shards.every((g) => Number.isSafeInteger(g) && g >= 0)) return undefined;
  if (!Array.isArray(groups)) return undefined;
  const map = new Map<number, string[]>();
  for (const row of groups) {
    if (!Array.isArray(row) || row.length !== 2) return undefined;
    const [gid, servers] = row as unknown[];
    if (!Number.isSafeInteger(gid) || (gid as number) <= 0 || map.has(gid as number)) return undefined;
    if (!Array.isArray(servers) || !servers.every((s) => typeof s === 'string')) return undefined;
    map.set(gid as number, (servers as string[]).slice());
  }
  return { num: num as number, shards: (shards as number[]).slice(), groups: map };
}

/** A deep copy: no array or list shared with the original. */
export function copyConfig(c: ShardConfig): ShardConfig {
  return configFromWire(configToWire(c))!;
}
