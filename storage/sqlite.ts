import Database from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Entry, InitialState, Ready, Snapshot } from '../lib/raft/types.js';
import { intSize, logEntryStateSize } from './size.js';
import type { Storage } from './storage.js';

let addonPath: string | null | undefined;

/**
 * Where better-sqlite3's native addon is, found once per thread. Left to
 * itself, better-sqlite3 looks for it with the `bindings` package, which
 * probes a dozen candidate paths on every worker start. Where the addon is
 * not at the usual place, better-sqlite3 is left to search.
 */
function nativeBinding(): { nativeBinding?: string } {
  if (addonPath === undefined) {
    try {
      addonPath = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      addonPath = null;
    }
  }
  return addonPath ? { nativeBinding: addonPath } : {};
}

/** The schema this code writes and reads (PRAGMA user_version). */
export const SCHEMA_VERSION = 1;

export type StorageErrorCode = 'corrupt' | 'not-raft' | 'unknown-version' | 'wrong-peer';

/** A database file that must not be used; it is never reset or repaired. */
export class StorageError extends Error {
  override name = 'StorageError';
  constructor(readonly code: StorageErrorCode, readonly file: string, message: string) {
    super(`${file}: ${message}`);
  }
}

export interface SqliteOptions {
  /** Which peer the file belongs to; a file recorded for another peer is refused. */
  peer: number;
  /**
   * true (default): every write is synced to disk before save() returns
   * (synchronous=FULL), so an acknowledged vote or entry survives power loss.
   * false: no fsync (synchronous=OFF); survives a process crash, not an OS
   * crash or power loss. Faster; never the default.
   */
  fsync?: boolean;
}

const SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
  CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote INTEGER NOT NULL);
  CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, data BLOB NOT NULL);
  CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, data BLOB NOT NULL);
`;

/** Open an existing file and check that it is a healthy database of this schema. */
function openChecked(file: string, readonly: boolean): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly, fileMustExist: true, ...nativeBinding() });
  } catch (e) {
    throw new StorageError('corrupt', file, `cannot be opened as a database: ${(e as Error).message}`);
  }
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new StorageError('corrupt', file, `failed its integrity check: ${String(check)}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version === 0) throw new StorageError('not-raft', file, 'is a SQLite database but not a Raft peer store (schema version 0)');
    if (version !== SCHEMA_VERSION) {
      throw new StorageError('unknown-version', file, `has schema version ${version}; this code reads version ${SCHEMA_VERSION}`);
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof StorageError) throw e;
    throw new StorageError('corrupt', file, `is not a readable database: ${(e as Error).message}`);
  }
}

function readPeer(db: Database.Database): number | undefined {
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'peer'`).get() as { value: number } | undefined;
  return row?.value;
}

function readSnapshotRow(db: Database.Database): Snapshot | undefined {
  const row = db.prepare('SELECT idx, term, data FROM snapshot WHERE id = 1').get() as
    | { idx: number; term: number; data: Buffer }
    | undefined;
  return row ? { index: row.idx, term: row.term, data: new Uint8Array(row.data) } : undefined;
}

/** msgpack size of term, vote, snapshot metadata and the retained log entries (not the snapshot's data). */
function raftStateSize(db: Database.Database): number {
  const hs = db.prepare('SELECT term, vote FROM hard_state WHERE id = 1').get() as { term: number; vote: number } | undefined;
  const snap = db.prepare('SELECT idx, term FROM snapshot WHERE id = 1').get() as { idx: number; term: number } | undefined;
  let size = 1 + intSize(hs?.term ?? 0) + (hs && hs.vote >= 0 ? intSize(hs.vote) : 1) + intSize(snap?.idx ?? 0) + intSize(snap?.term ?? 0);
  const rows = db.prepare('SELECT term, length(data) AS n FROM log').raw().iterate() as IterableIterator<[number, number]>;
  for (const [term, n] of rows) size += logEntryStateSize(term, n);
  return size;
}

/**
 * One peer's durable state in one SQLite file (WAL mode): currentTerm and
 * votedFor, the log, and the latest snapshot with its index and term. Each
 * Ready is written in one transaction. A file that is corrupt, of another
 * schema version, or recorded for another peer is refused, never reset.
 */
export class SqliteStorage implements Storage {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly writeReady: (rd: Ready) => void;
  /** No stored entry lies above this index (the last Ready's lastIndex, or the highest on open). */
  private storedLast: number;

  constructor(file: string, opts: SqliteOptions) {
    if (!Number.isSafeInteger(opts.peer) || opts.peer < 0) throw new TypeError(`peer must be a non-negative integer, got ${String(opts.peer)}`);
    this.file = file;
    const fresh = !existsSync(file) || statSync(file).size === 0;
    if (fresh) {
      this.db = new Database(file, nativeBinding());
      this.db.pragma('journal_mode = WAL');
      this.db.transaction(() => {
        this.db.exec(SCHEMA);
        this.db.prepare(`INSERT INTO meta (key, value) VALUES ('peer', ?)`).run(opts.peer);
        this.db.prepare('INSERT INTO hard_state (id, term, vote) VALUES (1, 0, -1)').run();
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    } else {
      this.db = openChecked(file, false);
      const owner = readPeer(this.db);
      if (owner !== opts.peer) {
        this.db.close();
        throw new StorageError('wrong-peer', file, `belongs to peer ${String(owner)}, not peer ${opts.peer}`);
      }
      this.db.pragma('journal_mode = WAL');
    }
    this.db.pragma(`synchronous = ${opts.fsync === false ? 'OFF' : 'FULL'}`);
    const db = this.db;
    this.stmts = {
      hard: db.prepare('UPDATE hard_state SET term = ?, vote = ? WHERE id = 1'),
      snap: db.prepare('INSERT OR REPLACE INTO snapshot (id, idx, term, data) VALUES (1, ?, ?, ?)'),
      dropUpTo: db.prepare('DELETE FROM log WHERE idx <= ?'),
      dropFrom: db.prepare('DELETE FROM log WHERE idx >= ?'),
      dropAfter: db.prepare('DELETE FROM log WHERE idx > ?'),
      insert: db.prepare('INSERT INTO log (idx, term, data) VALUES (?, ?, ?)'),
    };
    const s = this.stmts;
    this.storedLast = (db.prepare('SELECT MAX(idx) AS m FROM log').get() as { m: number | null }).m ?? 0;
    this.writeReady = db.transaction((rd: Ready) => {
      if (rd.hardState) s.hard.run(rd.hardState.term, rd.hardState.vote);
      if (rd.snapshot) {
        s.snap.run(rd.snapshot.index, rd.snapshot.term, rd.snapshot.data);
        s.dropUpTo.run(rd.snapshot.index);
      }
      if (rd.entries.length > 0) {
        s.dropFrom.run(rd.entries[0]!.index);
        for (const e of rd.entries) s.insert.run(e.index, e.term, e.data);
      }
      s.dropAfter.run(rd.lastIndex);
    });
  }

  load(): InitialState {
    const hs = this.db.prepare('SELECT term, vote FROM hard_state WHERE id = 1').get() as { term: number; vote: number };
    const snapshot = readSnapshotRow(this.db);
    const rows = this.db.prepare('SELECT idx, term, data FROM log ORDER BY idx').raw().all() as [number, number, Buffer][];
    const entries: Entry[] = rows.map(([index, term, data]) => ({ index, term, data: new Uint8Array(data) }));
    return { hardState: { term: hs.term, vote: hs.vote }, snapshot, entries };
  }

  /** Write one Ready atomically; returns once it is durable (with fsync on). */
  save(rd: Ready): void {
    // A Ready with nothing to write and no truncation needs no transaction.
    if (!rd.hardState && !rd.snapshot && rd.entries.length === 0 && this.storedLast <= rd.lastIndex) return;
    this.writeReady(rd);
    this.storedLast = rd.lastIndex;
  }

  raftStateSize(): number {
    return raftStateSize(this.db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The stored log rows of a peer file, read without taking the file over. */
  static inspectLog(file: string): Entry[] {
    const db = openChecked(file, true);
    try {
      const rows = db.prepare('SELECT idx, term, data FROM log ORDER BY idx').raw().all() as [number, number, Buffer][];
      return rows.map(([index, term, data]) => ({ index, term, data: new Uint8Array(data) }));
    } finally {
      db.close();
    }
  }

  /** Read a peer file without taking it over (the harness reads crashed peers' files). */
  static inspect(file: string): { peer: number | undefined; snapshot: Snapshot | undefined; raftStateSize: number } {
    const db = openChecked(file, true);
    try {
      return { peer: readPeer(db), snapshot: readSnapshotRow(db), raftStateSize: raftStateSize(db) };
    } finally {
      db.close();
    }
  }
}
