import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, linkSync, openSync, readdirSync, rmSync, statSync, accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { EntryType, type Entry, type InitialState, type Ready, type Snapshot } from '../lib/raft/types.js';
import { decodeConfig, encodeConfig } from '../lib/raft/config.js';
import { checksumExtend, entryChecksum, hardStateChecksum, snapshotChecksum, snapshotChecksumBegin, snapshotChecksumEnd } from './checksum.js';
import { decodeRun, encodeRunBody, prefixBytes, runBounds, runEntries, walkRun, type RunEntry } from './log-runs.js';
import { StorageError, storageFailure } from './errors.js';
import { PeerFileLock } from './file-lock.js';
import { intSize, logEntryStateSize } from './size.js';
import type { SnapshotStager, Storage } from './storage.js';

export { StorageError, type StorageErrorCode } from './errors.js';

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

/**
 * The schema this code writes and reads (PRAGMA user_version). Version 1
 * had no checksums; version 2 had no Config entries (log.kind) nor a
 * snapshot's configuration (snapshot.config); versions 2 and 3 kept a row
 * per log entry (table log), versions 4 and 5 keep a row per run of entries
 * (table log_runs, storage/log-runs.ts). Version 5 may keep a large
 * snapshot's bytes in pieces (table snapshot_chunks, a generation of
 * pieces per snapshot, named by snapshot.gen), written ahead of the
 * commit that records the snapshot (stageSnapshot). A version 2, 3 or 4
 * file is read as it is and upgraded when a peer takes it over, in one
 * transaction; every stored checksum is carried over unchanged.
 */
export const SCHEMA_VERSION = 5;
/** Versions this code reads and upgrades on take-over. */
const UPGRADABLE_VERSIONS = [2, 3, 4];

/** The steps of creating a peer file, in order (a fault test kills the process at each). */
export type CreateStep = 'temp-opened' | 'temp-written' | 'temp-closed' | 'temp-synced' | 'linked' | 'dir-synced' | 'temp-removed';

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
  /**
   * false (default): the file is SQLite's alone for as long as this storage
   * has it open (locking_mode EXCLUSIVE, set before the file's write-ahead
   * log is first touched): no other connection can read it, and a commit
   * takes no file locks (six fcntl calls fewer per commit; its wal-index is
   * in this connection's memory, so no -shm file is made or used).
   * true: SQLite's normal locking, so other connections may read the file
   * while it is open (SqliteStorage.inspect; the lab harness reads running
   * peers' files this way).
   */
  shareReads?: boolean;
  /** Called after each step of creating a new file (fault tests only). */
  onCreateStep?(step: CreateStep): void;
}

const SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
  CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote INTEGER NOT NULL, crc INTEGER NOT NULL);
  CREATE TABLE log_runs (first INTEGER PRIMARY KEY, last INTEGER NOT NULL, body BLOB NOT NULL);
  CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL, config BLOB, gen INTEGER);
  CREATE TABLE snapshot_chunks (gen INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (gen, seq));
`;

const UPGRADE_2_TO_3 = `
  ALTER TABLE log ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE snapshot ADD COLUMN config BLOB;
  PRAGMA user_version = 3;
`;

const UPGRADE_4_TO_5 = `
  ALTER TABLE snapshot ADD COLUMN gen INTEGER;
  CREATE TABLE snapshot_chunks (gen INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (gen, seq));
`;

/**
 * Bring a version 2, 3 or 4 file to version 5 (in the caller's
 * transaction): the two columns of version 3; the log's rows folded into
 * runs of consecutive entries (version 4), each entry's stored checksum
 * carried over as it is (the file was verified just before); the table of
 * snapshot pieces (version 5; the snapshot stays in its row).
 */
function upgrade(db: Database.Database): void {
  const from = schemaVersion(db);
  if (from === 2) db.exec(UPGRADE_2_TO_3);
  if (from <= 3) foldLogIntoRuns(db);
  db.exec(`${UPGRADE_4_TO_5} PRAGMA user_version = ${SCHEMA_VERSION};`);
}

function foldLogIntoRuns(db: Database.Database): void {
  db.exec('CREATE TABLE log_runs (first INTEGER PRIMARY KEY, last INTEGER NOT NULL, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO log_runs (first, last, body) VALUES (?, ?, ?)');
  const rows = db.prepare('SELECT idx, term, data, crc, kind FROM log ORDER BY idx').raw().all() as [number, number, Buffer, number, number][];
  let start = 0;
  for (let k = 1; k <= rows.length; k++) {
    if (k < rows.length && rows[k]![0] === rows[k - 1]![0] + 1) continue;
    const group = rows.slice(start, k);
    const entries: RunEntry[] = group.map(([, term, data, crc, kind]) => ({ term, kind, data, crc }));
    for (const [from, to] of runBounds(entries)) insert.run(group[from]![0], group[to - 1]![0], encodeRunBody(entries, from, to));
    start = k;
  }
  db.exec('DROP TABLE log');
}

function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * meta 'session' tells, as the main file holds it, whether the main file is
 * complete. The peer writes 'open' just before each checkpoint it runs and
 * 'closed' just after it (SQLite's automatic checkpoints are off), so a main
 * file that holds 'open' got it from one of those checkpoints, and whatever
 * was written after it lives only in the write-ahead log. A main file holds
 * 'closed' only once a checkpoint copied the whole log, which SQLite does
 * when the last connection closes, before it deletes the log. So 'open'
 * with no log beside it means the log of a crashed session was lost.
 */
const SESSION_OPEN = 'open';
const SESSION_CLOSED = 'closed';

const CHECKPOINT_SQL = `
  UPDATE meta SET value = '${SESSION_OPEN}' WHERE key = 'session';
  PRAGMA wal_checkpoint(FULL);
  UPDATE meta SET value = '${SESSION_CLOSED}' WHERE key = 'session';
`;

/** A snapshot larger than this is written in pieces of this size, one per step (stageSnapshot). */
export const SNAPSHOT_PIECE_BYTES = 256 * 1024;
/** Pieces no snapshot uses that one step of a staging removes. */
const STALE_PIECES_PER_STEP = 2;
const EMPTY = new Uint8Array(0);

/** A snapshot being written in pieces, generation `gen`; `crc` runs over what is written, and is whole once `done`. */
interface Staging {
  index: number;
  term: number;
  data: Uint8Array;
  config: Uint8Array | undefined;
  gen: number;
  written: number;
  crc: number;
  done: boolean;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

/** Run a checkpoint once the log has grown about this many pages (SQLite's own default is 1000). */
const CHECKPOINT_PAGES = 1000;
const PAGE_BYTES = 4096;

function sizeOf(file: string): number | undefined {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function removeQuietly(file: string): void {
  rmSync(file, { force: true });
}

const CREATING = '.creating-';

/**
 * Create a peer file atomically: build it fully under a temporary name
 * (schema, owner, initial hard state, closed session; its log checkpointed
 * into it on close), sync it, then link it into place, which fails rather
 * than replaces if the name exists. A crash at any step leaves either no
 * file (the next open starts over) or a complete one.
 */
function createPeerFile(file: string, peer: number, onStep: (s: CreateStep) => void): void {
  const temp = `${file}${CREATING}${process.pid}-${threadId}`;
  for (const f of [temp, `${temp}-wal`, `${temp}-shm`]) removeQuietly(f);
  const db = new Database(temp, nativeBinding());
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    onStep('temp-opened');
    db.transaction(() => {
      db.exec(SCHEMA);
      db.prepare(`INSERT INTO meta (key, value) VALUES ('peer', ?)`).run(peer);
      db.prepare(`INSERT INTO meta (key, value) VALUES ('session', ?)`).run(SESSION_CLOSED);
      db.prepare('INSERT INTO hard_state (id, term, vote, crc) VALUES (1, 0, -1, ?)').run(hardStateChecksum(0, -1));
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
    onStep('temp-written');
  } finally {
    db.close();
  }
  onStep('temp-closed');
  fsyncPath(temp);
  onStep('temp-synced');
  linkSync(temp, file);
  onStep('linked');
  fsyncPath(dirname(file));
  onStep('dir-synced');
  removeQuietly(temp);
  onStep('temp-removed');
}

/** Remove what interrupted creations of this file left (the caller holds the file's lock, so none is in progress). */
function removeLeftovers(file: string): void {
  const dir = dirname(file);
  const prefix = basename(file) + CREATING;
  for (const name of readdirSync(dir)) if (name.startsWith(prefix)) removeQuietly(join(dir, name));
}

function readPeer(db: Database.Database): number | undefined {
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'peer'`).get() as { value: number } | undefined;
  return row?.value;
}

function readSession(db: Database.Database): unknown {
  return (db.prepare(`SELECT value FROM meta WHERE key = 'session'`).get() as { value: unknown } | undefined)?.value;
}

/** The stored snapshot, its checksum verified. */
function readSnapshotRow(db: Database.Database, file: string): Snapshot | undefined {
  const version = schemaVersion(db);
  const columns = `idx, term, data, crc${version >= 3 ? ', config' : ', NULL AS config'}${version >= 5 ? ', gen' : ', NULL AS gen'}`;
  const row = db.prepare(`SELECT ${columns} FROM snapshot WHERE id = 1`).get() as
    | { idx: number; term: number; data: Buffer; crc: number; config: Buffer | null; gen: number | null }
    | undefined;
  if (!row) return undefined;
  const config = row.config ?? undefined;
  const data = row.gen === null ? new Uint8Array(row.data) : readSnapshotChunks(db, file, row.idx, row.gen);
  if (snapshotChecksum(row.idx, row.term, data, config) !== row.crc) {
    throw new StorageError('corrupt', file, `the snapshot through index ${row.idx} fails its checksum (stored bytes changed)`, { index: row.idx });
  }
  const snap: Snapshot = { index: row.idx, term: row.term, data };
  if (config) {
    try {
      snap.config = decodeConfig(config);
    } catch (e) {
      throw new StorageError('corrupt', file, `the snapshot through index ${row.idx} holds ${(e as Error).message}`, { index: row.idx });
    }
  }
  return snap;
}

/** A snapshot's bytes kept in pieces (generation `gen`), joined; the caller verifies its checksum. */
function readSnapshotChunks(db: Database.Database, file: string, index: number, gen: number): Uint8Array {
  const rows = db.prepare('SELECT seq, data FROM snapshot_chunks WHERE gen = ? ORDER BY seq').raw().all(gen) as [number, Buffer][];
  let size = 0;
  for (let k = 0; k < rows.length; k++) {
    if (rows[k]![0] !== k) throw new StorageError('corrupt', file, `the snapshot through index ${index} lacks its piece ${k} (stored rows removed)`, { index });
    size += rows[k]![1].length;
  }
  if (rows.length === 0) throw new StorageError('corrupt', file, `the snapshot through index ${index} has none of its pieces (stored rows removed)`, { index });
  const data = new Uint8Array(size);
  let at = 0;
  for (const [, piece] of rows) {
    data.set(piece, at);
    at += piece.length;
  }
  return data;
}

/** The stored log after the snapshot, every entry's checksum verified. */
function readLog(db: Database.Database, file: string): Entry[] {
  const version = schemaVersion(db);
  if (version >= 4) return readLogRuns(db, file);
  const v3 = version >= 3;
  const rows = db.prepare(`SELECT idx, term, data, crc, ${v3 ? 'kind' : '0'} FROM log ORDER BY idx`).raw().all() as [number, number, Buffer, number, number][];
  const out: Entry[] = new Array(rows.length);
  for (let k = 0; k < rows.length; k++) {
    const [index, term, data, crc, kind] = rows[k]!;
    if (kind !== EntryType.Command && kind !== EntryType.Config) throw new StorageError('corrupt', file, `log entry ${index} has an unknown kind ${kind}`, { index });
    if (entryChecksum(index, term, data, kind) !== crc) {
      throw new StorageError('corrupt', file, `log entry ${index} fails its checksum (stored bytes changed)`, { index });
    }
    if (kind === EntryType.Config) {
      try {
        decodeConfig(data);
      } catch (e) {
        throw new StorageError('corrupt', file, `log entry ${index} holds ${(e as Error).message}`, { index });
      }
      out[k] = { index, term, data: new Uint8Array(data), type: EntryType.Config };
    } else {
      out[k] = { index, term, data: new Uint8Array(data) };
    }
  }
  return out;
}

/** The snapshot's index (0 without one): entries at or below it in a run that straddles it are not part of the log. */
function snapshotIndex(db: Database.Database): number {
  const row = db.prepare('SELECT idx FROM snapshot WHERE id = 1').raw().get() as [number] | undefined;
  return row ? row[0] : 0;
}

function readLogRuns(db: Database.Database, file: string): Entry[] {
  const after = snapshotIndex(db);
  const out: Entry[] = [];
  const rows = db.prepare('SELECT first, last, body FROM log_runs ORDER BY first').raw().iterate() as IterableIterator<[number, number, Buffer]>;
  let previous: number | undefined;
  for (const [first, last, body] of rows) {
    if (last < first || (previous !== undefined && first !== previous + 1)) {
      throw new StorageError('corrupt', file, `the log run ${first}..${last} does not follow the run before it${previous === undefined ? '' : ` (through ${previous})`}`, { index: first });
    }
    previous = last;
    decodeRun(file, first, last, body, after, out);
  }
  if (out.length > 0 && out[0]!.index !== after + 1) {
    throw new StorageError('corrupt', file, `the log starts at entry ${out[0]!.index}, not just after the snapshot (${after})`, { index: out[0]!.index });
  }
  return out;
}

function readHardState(db: Database.Database, file: string): { term: number; vote: number } {
  const hs = db.prepare('SELECT term, vote, crc FROM hard_state WHERE id = 1').get() as { term: number; vote: number; crc: number } | undefined;
  if (!hs) throw new StorageError('corrupt', file, 'has no hard state row');
  if (hardStateChecksum(hs.term, hs.vote) !== hs.crc) {
    throw new StorageError('corrupt', file, 'the hard state (current term and vote) fails its checksum (stored bytes changed)');
  }
  return { term: hs.term, vote: hs.vote };
}

/** Open an existing file read-only and check that it is a healthy database of this schema. */
function openChecked(file: string): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, ...nativeBinding() });
  } catch (e) {
    const err = storageFailure(e, file, 'opening');
    if (err.code === 'io' || err.code === 'corrupt') throw new StorageError('corrupt', file, `cannot be opened as a database: ${(e as Error).message}`, { cause: err.systemCode });
    throw err;
  }
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new StorageError('corrupt', file, `failed its integrity check: ${String(check)}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version === 0) throw new StorageError('not-raft', file, 'is a SQLite database but not a Raft peer store (schema version 0)');
    if (version === 1) {
      throw new StorageError('unknown-version', file, `has schema version 1 (written before stored values carried checksums); this code reads version ${SCHEMA_VERSION}`);
    }
    if (version !== SCHEMA_VERSION && !UPGRADABLE_VERSIONS.includes(version)) {
      throw new StorageError('unknown-version', file, `has schema version ${version}; this code reads version ${SCHEMA_VERSION}`);
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof StorageError) throw e;
    const err = storageFailure(e, file, 'reading');
    if (err.code === 'io') throw new StorageError('corrupt', file, `is not a readable database: ${(e as Error).message}`, { cause: err.systemCode });
    throw err;
  }
}

/** msgpack size of term, vote, snapshot metadata and the retained log entries (not the snapshot's data). */
function raftStateSize(db: Database.Database, file: string): number {
  const hs = db.prepare('SELECT term, vote FROM hard_state WHERE id = 1').get() as { term: number; vote: number } | undefined;
  const snap = db.prepare('SELECT idx, term FROM snapshot WHERE id = 1').get() as { idx: number; term: number } | undefined;
  let size = 1 + intSize(hs?.term ?? 0) + (hs && hs.vote >= 0 ? intSize(hs.vote) : 1) + intSize(snap?.idx ?? 0) + intSize(snap?.term ?? 0);
  if (schemaVersion(db) < 4) {
    const rows = db.prepare('SELECT term, length(data) AS n FROM log').raw().iterate() as IterableIterator<[number, number]>;
    for (const [term, n] of rows) size += logEntryStateSize(term, n);
    return size;
  }
  const after = snap?.idx ?? 0;
  const runs = db.prepare('SELECT first, last, body FROM log_runs WHERE last > ?').raw().iterate(after) as IterableIterator<[number, number, Buffer]>;
  for (const [first, last, body] of runs) {
    walkRun(file, first, last, body, (index, term, _kind, start, end) => {
      if (index > after) size += logEntryStateSize(term, end - start);
    });
  }
  return size;
}

/**
 * Check an existing peer file without changing it: structure, schema,
 * owner, that its last session either closed or left its write-ahead log,
 * and every stored value's checksum. Returns what the peer starts from.
 */
function verify(file: string, peer: number): InitialState {
  const walSize = sizeOf(`${file}-wal`);
  const hadShm = existsSync(`${file}-shm`);
  const db = openChecked(file);
  try {
    const owner = readPeer(db);
    if (owner !== peer) throw new StorageError('wrong-peer', file, `belongs to peer ${String(owner)}, not peer ${peer}`);
    const session = readSession(db);
    if (session !== SESSION_OPEN && session !== SESSION_CLOSED) throw new StorageError('corrupt', file, `has no valid session record (${String(session)})`);
    if (session === SESSION_OPEN && !walSize) {
      throw new StorageError(
        'wal-missing',
        file,
        `was left by a session that did not close, but its write-ahead log ${basename(file)}-wal is gone: ` +
          'votes and entries this peer acknowledged since its last checkpoint would be lost. Put the log back; ' +
          'do not start this peer from the file as it is',
      );
    }
    return { hardState: readHardState(db, file), snapshot: readSnapshotRow(db, file), entries: readLog(db, file) };
  } catch (e) {
    if (e instanceof StorageError) throw e;
    throw storageFailure(e, file, 'reading');
  } finally {
    db.close();
    // A read-only connection leaves an empty log and an index file where there were none: take them away again.
    if (walSize === undefined && sizeOf(`${file}-wal`) === 0) removeQuietly(`${file}-wal`);
    if (!hadShm && walSize === undefined) removeQuietly(`${file}-shm`);
  }
}

/**
 * One peer's durable state in one SQLite file (WAL mode): currentTerm and
 * votedFor, the log, and the latest snapshot with its index and term, each
 * row with a checksum verified on every read. Each Ready is written in one
 * transaction. A file that is corrupt, incomplete, of another schema
 * version, recorded for another peer, or held by another open peer is
 * refused with a StorageError, never reset.
 */
export class SqliteStorage implements Storage {
  readonly file: string;
  private readonly lock: PeerFileLock;
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly writeReady: (rd: Ready) => void;
  /** One piece of a staged snapshot, with a few stale pieces removed, in one transaction. */
  private readonly writePiece: (gen: number, seq: number, piece: Uint8Array) => void;
  private initial: InitialState | undefined;
  /** No stored entry lies above this index (the last Ready's lastIndex, or the highest on open). */
  private storedLast: number;
  /** Pages written to the write-ahead log since the last checkpoint (an estimate). */
  private walPages = 0;
  /** The generation of pieces the recorded snapshot's bytes are in (null: in its row, or no snapshot). */
  private liveGen: number | null;
  /** The snapshot whose bytes are being written in pieces, if one is. */
  private staging: Staging | undefined;
  /** What the last Ready's snapshot record named (set inside its transaction, taken as liveGen once it commits). */
  private recordedGen: number | null = null;

  constructor(file: string, opts: SqliteOptions) {
    if (typeof file !== 'string' || file === '') throw new TypeError(`file must be a path, got ${String(file)}`);
    if (!Number.isSafeInteger(opts.peer) || opts.peer < 0) throw new TypeError(`peer must be a non-negative integer, got ${String(opts.peer)}`);
    this.file = file;
    const dir = dirname(file);
    let dirStat;
    try {
      dirStat = statSync(dir);
    } catch (e) {
      throw storageFailure(e, file, `finding its directory ${dir}`);
    }
    if (!dirStat.isDirectory()) throw new StorageError('io', file, `${dir} is not a directory`);
    try {
      accessSync(dir, constants.W_OK);
    } catch (e) {
      throw storageFailure(e, file, `checking that its directory ${dir} is writable`);
    }
    this.lock = new PeerFileLock(file, nativeBinding());
    try {
      this.db = this.takeOver(file, opts);
    } catch (e) {
      this.lock.release();
      throw storageFailure(e, file, 'opening');
    }
    const db = this.db;
    this.stmts = {
      hard: db.prepare('UPDATE hard_state SET term = ?, vote = ?, crc = ? WHERE id = 1'),
      snap: db.prepare('INSERT OR REPLACE INTO snapshot (id, idx, term, data, crc, config, gen) VALUES (1, ?, ?, ?, ?, ?, ?)'),
      liveGen: db.prepare('SELECT gen FROM snapshot WHERE id = 1').raw(),
      topGen: db.prepare('SELECT MAX(gen) FROM snapshot_chunks').raw(),
      insertChunk: db.prepare('INSERT INTO snapshot_chunks (gen, seq, data) VALUES (?, ?, ?)'),
      // Pieces of neither the recorded snapshot nor the one being written: left by a staging given up, or by the snapshot before.
      dropStale: db.prepare('DELETE FROM snapshot_chunks WHERE rowid IN (SELECT rowid FROM snapshot_chunks WHERE gen IS NOT ? AND gen IS NOT ? LIMIT ?)'),
      insertRun: db.prepare('INSERT INTO log_runs (first, last, body) VALUES (?, ?, ?)'),
      runsThrough: db.prepare('DELETE FROM log_runs WHERE last <= ?'),
      runsFrom: db.prepare('DELETE FROM log_runs WHERE first >= ?'),
      runBefore: db.prepare('SELECT first, last, body FROM log_runs WHERE first < ? ORDER BY first DESC LIMIT 1').raw(),
      cutRun: db.prepare('UPDATE log_runs SET last = ?, body = ? WHERE first = ?'),
    };
    const s = this.stmts;
    /** Forget every stored entry from `index` on: whole runs go, a run that straddles it keeps its entries before it. */
    const cutFrom = (index: number): void => {
      s.runsFrom.run(index);
      const row = s.runBefore.get(index) as [number, number, Buffer] | undefined;
      if (!row || row[1] < index) return;
      const [first, last, body] = row;
      s.cutRun.run(index - 1, body.subarray(0, prefixBytes(file, first, last, body, index - first)), first);
    };
    const entries = this.initial!.entries;
    this.storedLast = entries.length > 0 ? entries[entries.length - 1]!.index : 0;
    this.liveGen = ((s.liveGen.get() as [number | null] | undefined) ?? [null])[0];
    this.writePiece = db.transaction((gen: number, seq: number, piece: Uint8Array) => {
      s.dropStale.run(this.liveGen, gen, STALE_PIECES_PER_STEP);
      s.insertChunk.run(gen, seq, piece);
    });
    this.writeReady = db.transaction((rd: Ready) => {
      if (rd.hardState) s.hard.run(rd.hardState.term, rd.hardState.vote, hardStateChecksum(rd.hardState.term, rd.hardState.vote));
      if (rd.snapshot) {
        const sn = rd.snapshot;
        const config = sn.config ? encodeConfig(sn.config) : undefined;
        const st = this.staging;
        if (st?.done && st.index === sn.index && st.term === sn.term && st.data === sn.data && sameBytes(st.config, config)) {
          // Its bytes are written already, in pieces: only the record that makes them the snapshot.
          s.snap.run(sn.index, sn.term, EMPTY, st.crc, config ?? null, st.gen);
          this.recordedGen = st.gen;
        } else {
          s.snap.run(sn.index, sn.term, sn.data, snapshotChecksum(sn.index, sn.term, sn.data, config), config ?? null, null);
          this.recordedGen = null;
        }
        // A run that straddles the snapshot stays whole; readers skip its entries at or below the snapshot.
        s.runsThrough.run(sn.index);
      }
      // The highest index a stored row may have (storedLast is an upper bound).
      let highest = this.storedLast;
      const n = rd.entries.length;
      if (n > 0) {
        const first = rd.entries[0]!.index;
        // Entries from `first` on are replaced; a cut that can find nothing is skipped (it costs as much as the insert).
        if (first <= highest) cutFrom(first);
        const entries = runEntries(rd.entries);
        for (const [from, to] of runBounds(rd.entries)) s.insertRun.run(rd.entries[from]!.index, rd.entries[to - 1]!.index, encodeRunBody(entries, from, to));
        highest = Math.min(highest, first - 1);
        highest = Math.max(highest, rd.entries[n - 1]!.index);
      }
      if (highest > rd.lastIndex) cutFrom(rd.lastIndex + 1);
    });
  }

  /** With the lock held: create the file if there is none, verify it, and open it for writing. */
  private takeOver(file: string, opts: SqliteOptions): Database.Database {
    removeLeftovers(file);
    const size = sizeOf(file);
    if (size === undefined) {
      if (sizeOf(`${file}-wal`)) {
        throw new StorageError('wal-orphaned', file, `does not exist, but its write-ahead log ${basename(file)}-wal does: the database beside it was removed`);
      }
      createPeerFile(file, opts.peer, opts.onCreateStep ?? (() => {}));
    } else if (size === 0) {
      throw new StorageError(
        'not-raft',
        file,
        'is empty (0 bytes): not a Raft peer store. A peer file is created complete, so an empty one was truncated or made by something else',
      );
    }
    try {
      accessSync(file, constants.R_OK | constants.W_OK);
    } catch (e) {
      throw storageFailure(e, file, 'checking that it is readable and writable');
    }
    this.initial = verify(file, opts.peer);
    const db = new Database(file, { fileMustExist: true, ...nativeBinding() });
    try {
      // Before anything reads the file: the first access in WAL mode decides whether a shared wal-index is used.
      if (!opts.shareReads) db.pragma('locking_mode = EXCLUSIVE');
      if (schemaVersion(db) !== SCHEMA_VERSION) db.transaction(() => upgrade(db))();
      db.pragma(`synchronous = ${opts.fsync === false ? 'OFF' : 'FULL'}`);
      db.pragma('wal_autocheckpoint = 0');
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new StorageError('io', file, `cannot be put in WAL mode (journal mode ${String(mode)})`);
      this.checkpoint(db);
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /**
   * Copy the log into the main file, bracketed by the session marks (see
   * SESSION_OPEN), in one native call: a worker being terminated stops only
   * between JavaScript statements, and one stopped between the marks would
   * leave 'open' as the log's last word, which the close that follows (it
   * checkpoints and deletes the log) would make the main file's, refusing
   * a file that lost nothing. FULL waits (up to the busy timeout) for other
   * readers (the lab harness reading the file) so that the copy is whole.
   */
  private checkpoint(db: Database.Database): void {
    db.exec(CHECKPOINT_SQL);
    this.walPages = 0;
  }

  /** The stored state, every value's checksum verified (on open it was verified already; that copy is handed over once). */
  load(): InitialState {
    const initial = this.initial;
    this.initial = undefined;
    if (initial) return initial;
    try {
      return { hardState: readHardState(this.db, this.file), snapshot: readSnapshotRow(this.db, this.file), entries: readLog(this.db, this.file) };
    } catch (e) {
      throw storageFailure(e, this.file, 'reading');
    }
  }

  /** Write one Ready atomically; returns once it is durable (with fsync on). */
  save(rd: Ready): void {
    this.initial = undefined;
    // A Ready with nothing to write and no truncation needs no transaction.
    if (!rd.hardState && !rd.snapshot && rd.entries.length === 0 && this.storedLast <= rd.lastIndex) return;
    try {
      this.writeReady(rd);
      this.storedLast = rd.lastIndex;
      let bytes = 0;
      if (rd.snapshot) {
        // Whichever snapshot was recorded, a staging is over: used, or given up for this one.
        this.liveGen = this.recordedGen;
        this.staging = undefined;
        if (this.liveGen === null) bytes += rd.snapshot.data.length;
      }
      for (const e of rd.entries) bytes += e.data.length + 24;
      this.wrote(bytes);
    } catch (e) {
      throw storageFailure(e, this.file, 'writing');
    }
  }

  /** A transaction wrote about `bytes`: count its pages, and checkpoint once the write-ahead log has grown enough. */
  private wrote(bytes: number): void {
    this.walPages += 2 + Math.ceil(bytes / PAGE_BYTES);
    if (this.walPages >= CHECKPOINT_PAGES) this.checkpoint(this.db);
  }

  /**
   * A snapshot larger than one piece (SNAPSHOT_PIECE_BYTES) is written a
   * piece per step, each in a transaction of its own, before the Ready that
   * records it: written whole inside that Ready, a 50 MB snapshot held each
   * peer for about a second here (three peers writing at once), long enough
   * for its followers to start an election. Until the record is written the
   * pieces are not the snapshot, so a crash between steps loses nothing:
   * the file still holds the snapshot before. Each step also removes a few
   * pieces no snapshot uses any more.
   */
  stageSnapshot(snap: Snapshot): SnapshotStager | undefined {
    if (snap.data.length <= SNAPSHOT_PIECE_BYTES) return undefined;
    const config = snap.config ? encodeConfig(snap.config) : undefined;
    let top: number | null;
    try {
      top = (this.stmts.topGen.get() as [number | null])[0];
    } catch (e) {
      throw storageFailure(e, this.file, 'reading');
    }
    const st: Staging = {
      index: snap.index,
      term: snap.term,
      data: snap.data,
      config,
      gen: Math.max(top ?? 0, this.liveGen ?? 0) + 1,
      written: 0,
      crc: snapshotChecksumBegin(snap.index, snap.term, config !== undefined),
      done: false,
    };
    this.staging = st;
    return {
      step: () => this.stageStep(st),
      cancel: () => {
        if (this.staging === st) this.staging = undefined;
      },
    };
  }

  /** One piece of `st` (and a few stale pieces removed); true once all are written. A staging given up has nothing left to do. */
  private stageStep(st: Staging): boolean {
    if (this.staging !== st || st.done) return true;
    const end = Math.min(st.data.length, st.written + SNAPSHOT_PIECE_BYTES);
    const piece = st.data.subarray(st.written, end);
    try {
      this.writePiece(st.gen, Math.floor(st.written / SNAPSHOT_PIECE_BYTES), piece);
      st.crc = checksumExtend(st.crc, piece);
      st.written = end;
      this.wrote(piece.length);
    } catch (e) {
      throw storageFailure(e, this.file, 'writing');
    }
    if (st.written < st.data.length) return false;
    st.crc = snapshotChecksumEnd(st.crc, st.config);
    st.done = true;
    return true;
  }

  raftStateSize(): number {
    return raftStateSize(this.db, this.file);
  }

  close(): void {
    try {
      if (this.db.open) this.db.close();
    } finally {
      this.lock.release();
    }
  }

  /** The stored log rows of a peer file, read (and verified) without taking the file over. */
  static inspectLog(file: string): Entry[] {
    const db = openChecked(file);
    try {
      // One read transaction: the snapshot index and the runs it cuts must come from the same commit of a running peer.
      return db.transaction(() => readLog(db, file))();
    } finally {
      db.close();
    }
  }

  /**
   * Read a peer file without taking it over (the harness reads running and
   * crashed peers' files). A running peer's file reads only if that peer
   * opened it with shareReads; otherwise this throws StorageError 'locked'
   * after SQLite's busy timeout (5 s). The same holds for inspectLog.
   */
  static inspect(file: string): { peer: number | undefined; snapshot: Snapshot | undefined; raftStateSize: number } {
    const db = openChecked(file);
    try {
      // One read transaction, as above: a running peer may commit a snapshot between two statements,
      // and a run it ends inside would then be counted against the older snapshot's index.
      return db.transaction(() => ({ peer: readPeer(db), snapshot: readSnapshotRow(db, file), raftStateSize: raftStateSize(db, file) }))();
    } finally {
      db.close();
    }
  }
}
