import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A node's data directory: its Raft store (raft.sqlite) and member.json,
 * which says whose it is (the cluster's id, the member's name and id). A
 * node started on a directory that belongs to another member or another
 * cluster refuses before it opens anything there; a directory that holds
 * something else than a node's files is refused too, so nobody's files are
 * taken over by a mistyped path.
 */
export interface MemberIdentity {
  clusterId: string;
  name: string;
  id: number;
}

export class DataDirError extends Error {
  override name = 'DataDirError';
}

const IDENTITY = 'member.json';
export const STORE_FILE = 'raft.sqlite';
/** What a node keeps in its directory (SQLite's side files included). */
const OURS = new Set([IDENTITY, STORE_FILE, `${STORE_FILE}-wal`, `${STORE_FILE}-shm`, `${STORE_FILE}-journal`, `${STORE_FILE}-lock`]);

/** Check `dir` for `me` without changing anything; returns whether it is new (no member.json yet). */
export function checkDataDir(dir: string, me: MemberIdentity): { fresh: boolean; store: string } {
  const store = join(dir, STORE_FILE);
  if (!existsSync(dir)) return { fresh: true, store };
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    throw new DataDirError(`the data directory ${dir} cannot be read: ${(e as Error).message}`);
  }
  if (!entries.includes(IDENTITY)) {
    const foreign = entries.filter((f) => !f.startsWith('.'));
    if (foreign.length > 0) {
      throw new DataDirError(`the data directory ${dir} is not empty and has no ${IDENTITY}: it is not a node's (it holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''})`);
    }
    return { fresh: true, store };
  }
  let got: Partial<MemberIdentity>;
  try {
    got = JSON.parse(readFileSync(join(dir, IDENTITY), 'utf8')) as Partial<MemberIdentity>;
  } catch (e) {
    throw new DataDirError(`${join(dir, IDENTITY)} cannot be read as JSON: ${(e as Error).message}`);
  }
  if (got.clusterId !== me.clusterId) {
    throw new DataDirError(`the data directory ${dir} belongs to another cluster (${String(got.clusterId)}, not ${me.clusterId}: the initial cluster or its token differ)`);
  }
  if (got.name !== me.name || got.id !== me.id) {
    throw new DataDirError(`the data directory ${dir} belongs to member ${JSON.stringify(got.name)} (id ${String(got.id)}), not ${JSON.stringify(me.name)} (id ${me.id})`);
  }
  const stray = entries.filter((f) => !OURS.has(f) && !f.startsWith('.'));
  if (stray.length > 0) throw new DataDirError(`the data directory ${dir} holds files that are not a node's: ${stray.slice(0, 3).join(', ')}`);
  return { fresh: false, store };
}

/** Record `me` in a fresh directory (made if missing), atomically. */
export function claimDataDir(dir: string, me: MemberIdentity): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${IDENTITY}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(me, null, 2)}\n`);
  renameSync(tmp, join(dir, IDENTITY));
}
