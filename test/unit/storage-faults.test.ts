// Storage fault tests: what a failing disk, a careless operator or a second
// process can do to a peer's file, and that each is refused with the exact
// StorageError, the files left byte for byte as they were found.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { OptionError, RaftGroup, StorageError } from '../../lib/index.js';
import type { Entry, Ready } from '../../lib/raft/types.js';
import { SqliteStorage, type CreateStep } from '../../storage/sqlite.js';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const base = mkdtempSync(join(tmpdir(), 'actor-raft-faults-'));
// The read-only cases run a child as an unprivileged user (root writes anything); it must reach the files.
chmodSync(base, 0o755);
t.teardown(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  const d = join(base, `d${n++}`);
  mkdirSync(d);
  chmodSync(d, 0o777);
  return d;
}
const fresh = () => join(freshDir(), 'peer-0.sqlite');

const enc = new TextEncoder();
const payload = (i: number) => enc.encode(`PAYLOAD-${String(i).padStart(4, '0')}-the-command-bytes`);
const ent = (index: number, term: number): Entry => ({ index, term, data: payload(index) });
const ready = (r: Partial<Ready> & { lastIndex: number }): Ready => ({ entries: [], messages: [], earlyCount: 0, committed: [], readStates: [], ...r });

const childScript = fileURLToPath(new URL('../fixtures/storage-child.js', import.meta.url));
const asRoot = process.getuid?.() === 0;

interface ChildResult {
  signal: NodeJS.Signals | null;
  out?: { ok: boolean; term?: number; entries?: number; error?: { name: string; code?: string; message: string; file?: string } };
}

/** Run the storage child; `unprivileged`: as user nobody when this process is root (file modes then bind it). */
function child(job: Record<string, unknown>, unprivileged = false): ChildResult {
  const r = spawnSync(process.execPath, [childScript, JSON.stringify(job)], {
    encoding: 'utf8',
    timeout: 30_000,
    ...(unprivileged && asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  const line = r.stdout.trim().split('\n').filter(Boolean).at(-1);
  return { signal: r.signal, ...(line ? { out: JSON.parse(line) } : {}) };
}

/** The bytes of a peer file and its log, to compare after a refusal (absent files as null). */
function filesOf(file: string): (Buffer | null)[] {
  return [file, `${file}-wal`].map((f) => (existsSync(f) ? readFileSync(f) : null));
}

function refused(t: Tap, file: string, code: string, what: string, extra: { index?: number; message?: RegExp; peer?: number } = {}): void {
  const before = filesOf(file);
  let err: unknown;
  try {
    new SqliteStorage(file, { peer: extra.peer ?? 0 }).close();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof StorageError, `${what}: refused with a StorageError`);
  const se = err as StorageError;
  t.equal(se.code, code, `${what}: code ${code}`);
  t.equal(se.file, file, `${what}: names the file`);
  t.ok(se.message.startsWith(`${file}: `), `${what}: the message starts with the file`);
  if (extra.index !== undefined) t.equal(se.index, extra.index, `${what}: names index ${extra.index}`);
  if (extra.message) t.match(se.message, extra.message, `${what}: says why`);
  t.same(filesOf(file), before, `${what}: the file and its log are byte for byte as they were`);
}

/** Flip one bit inside the first occurrence of `marker` in the file's bytes. */
function flipBitIn(file: string, marker: string): void {
  const bytes = readFileSync(file);
  const at = bytes.indexOf(Buffer.from(marker));
  if (at < 0) throw new Error(`${marker} not found in ${file}`);
  bytes[at + marker.length - 2]! ^= 0x04;
  writeFileSync(file, bytes);
}

function sqliteSaysOk(file: string): unknown {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('quick_check', { simple: true });
  } finally {
    db.close();
  }
}

function closedWith(file: string, f: (s: SqliteStorage) => void): void {
  const s = new SqliteStorage(file, { peer: 0 });
  f(s);
  s.close();
}

t.test('a flipped bit inside a log entry payload is refused, naming the entry', async (t) => {
  const file = fresh();
  closedWith(file, (s) => s.save(ready({ hardState: { term: 2, vote: 0 }, entries: Array.from({ length: 12 }, (_, k) => ent(k + 1, 2)), lastIndex: 12 })));
  flipBitIn(file, 'PAYLOAD-0007-the-command-bytes');
  t.equal(sqliteSaysOk(file), 'ok', "SQLite's own integrity check does not see it");
  refused(t, file, 'corrupt', 'a bit flip in entry 7', { index: 7, message: /log entry 7 fails its checksum/ });
  t.throws(() => SqliteStorage.inspectLog(file), { name: 'StorageError', code: 'corrupt', index: 7 }, 'reading the log back without taking the file over checks it too');
});

t.test('a changed hard state is refused', async (t) => {
  const file = fresh();
  closedWith(file, (s) => s.save(ready({ hardState: { term: 6, vote: 2 }, lastIndex: 0 })));
  const db = new Database(file);
  db.prepare('UPDATE hard_state SET term = 7').run(); // bit 0 of the term flipped, the checksum left as it was
  db.close();
  t.equal(sqliteSaysOk(file), 'ok', "SQLite's own integrity check does not see it");
  refused(t, file, 'corrupt', 'a bit flip in the term', { message: /hard state \(current term and vote\) fails its checksum/ });
});

t.test('a flipped bit inside a stored snapshot is refused, naming its index', async (t) => {
  const file = fresh();
  closedWith(file, (s) => {
    s.save(ready({ entries: Array.from({ length: 5 }, (_, k) => ent(k + 1, 1)), lastIndex: 5 }));
    s.save(ready({ snapshot: { index: 4, term: 1, data: enc.encode('SNAPSHOT-BYTES-of-the-state-through-4') }, lastIndex: 5 }));
  });
  flipBitIn(file, 'SNAPSHOT-BYTES-of-the-state-through-4');
  t.equal(sqliteSaysOk(file), 'ok', "SQLite's own integrity check does not see it");
  refused(t, file, 'corrupt', 'a bit flip in the snapshot', { index: 4, message: /snapshot through index 4 fails its checksum/ });
  t.throws(() => SqliteStorage.inspect(file), { name: 'StorageError', code: 'corrupt', index: 4 }, 'inspect() checks the snapshot too');
});

t.test('a zero-length file is refused, with or without a log beside it', async (t) => {
  const file = fresh();
  writeFileSync(file, '');
  refused(t, file, 'not-raft', 'an empty file', { message: /is empty \(0 bytes\)/ });
  t.notOk(existsSync(`${file}-wal`), 'no log was created beside it');

  const crashed = fresh();
  const r = child({ op: 'write-then-kill', file: crashed, peer: 0, term: 4 });
  t.equal(r.signal, 'SIGKILL', 'the writer was killed after its write');
  t.ok(readFileSync(`${crashed}-wal`).length > 0, 'its log holds the write');
  truncateSync(crashed, 0);
  refused(t, crashed, 'not-raft', 'an empty main file beside its log', { message: /is empty \(0 bytes\)/ });
});

t.test('a crash-left file whose log was removed is refused; with its log it opens whole', async (t) => {
  const file = fresh();
  t.equal(child({ op: 'write-then-kill', file, peer: 0, term: 5, entries: 4 }).signal, 'SIGKILL', 'the writer was killed after its write');
  // A control copy, log and all, under another name.
  const copy = join(freshDir(), 'peer-0.sqlite');
  copyFileSync(file, copy);
  copyFileSync(`${file}-wal`, `${copy}-wal`);
  rmSync(`${file}-wal`);
  refused(t, file, 'wal-missing', 'the log removed after a crash', { message: /did not close, but its write-ahead log peer-0.sqlite-wal is gone/ });
  const s = new SqliteStorage(copy, { peer: 0 });
  const st = s.load();
  s.close();
  t.same([st.hardState.term, st.hardState.vote, st.entries.length], [5, 0, 4], 'with its log the crashed file has its term, vote and entries');
  t.notOk(existsSync(`${copy}-wal`), 'a clean close folds the log into the file and removes it');
  const again = new SqliteStorage(copy, { peer: 0 });
  t.same(again.load().hardState.term, 5, 'a cleanly closed file opens without its log');
  again.close();

  const orphan = fresh();
  t.equal(child({ op: 'write-then-kill', file: orphan, peer: 0 }).signal, 'SIGKILL', 'another writer killed');
  rmSync(orphan);
  refused(t, orphan, 'wal-orphaned', 'a log whose database was removed', { message: /its write-ahead log peer-0.sqlite-wal does/ });
  t.notOk(existsSync(orphan), 'no new database was made beside the orphaned log');
});

t.test('a kill at any step of creating a file leaves nothing a later start refuses', async (t) => {
  const steps: CreateStep[] = ['temp-opened', 'temp-written', 'temp-closed', 'temp-synced', 'linked', 'dir-synced', 'temp-removed'];
  for (const step of steps) {
    const dir = freshDir();
    const file = join(dir, 'peer-0.sqlite');
    const r = child({ op: 'kill-at', file, peer: 0, step });
    t.equal(r.signal, 'SIGKILL', `${step}: the creating process was killed there`);
    const linked = steps.indexOf(step) >= steps.indexOf('linked');
    t.equal(existsSync(file), linked, `${step}: the file is ${linked ? 'in place, complete' : 'not in place yet'}`);
    const s = new SqliteStorage(file, { peer: 0 });
    t.same(s.load(), { hardState: { term: 0, vote: -1 }, snapshot: undefined, entries: [] }, `${step}: the next start opens it as a new peer`);
    s.save(ready({ hardState: { term: 1, vote: 0 }, lastIndex: 0 }));
    s.close();
    t.same(readdirSync(dir).filter((f) => f.includes('.creating-')), [], `${step}: what the killed creation left is gone`);
  }
});

t.test('a second opener of a peer file is refused while the first holds it', async (t) => {
  const file = fresh();
  const first = new SqliteStorage(file, { peer: 0 });
  first.save(ready({ hardState: { term: 3, vote: 0 }, lastIndex: 0 }));
  refused(t, file, 'locked', 'a second opener in the same thread', { message: /in use by another open peer/ });
  const other = child({ op: 'open', file, peer: 0 });
  t.equal(other.out?.error?.name, 'StorageError', 'another process is refused too');
  t.equal(other.out?.error?.code, 'locked', 'with code locked');
  first.close();
  const second = new SqliteStorage(file, { peer: 0 });
  t.equal(second.load().hardState.term, 3, 'once the first closed, the file opens');
  second.close();
});

t.test('two groups on one data directory: the second is refused at open', async (t) => {
  const dataDir = freshDir();
  const sm = { module: new URL('../fixtures/counter-sm.js', import.meta.url) };
  const a = await RaftGroup.open({ peers: 1, dataDir, stateMachine: sm });
  try {
    const err = await RaftGroup.open({ peers: 1, dataDir, stateMachine: sm }).then(
      async (g) => {
        await g.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    t.ok(err instanceof StorageError, 'the error crossed from the worker as a StorageError (instanceof holds)');
    t.equal((err as StorageError).code, 'locked', 'code locked');
    t.equal((err as StorageError).file, join(dataDir, 'peer-0.sqlite'), 'naming the file');
    t.match(await a.propose({ op: 'add', n: 2 }), { value: 2 }, 'the first group runs on');
  } finally {
    await a.close();
  }
});

t.test('a corrupt file reaches RaftGroup.open as a StorageError with its fields', async (t) => {
  const dataDir = freshDir();
  const file = join(dataDir, 'peer-0.sqlite');
  closedWith(file, (s) => s.save(ready({ hardState: { term: 1, vote: 0 }, entries: [ent(1, 1), ent(2, 1)], lastIndex: 2 })));
  flipBitIn(file, 'PAYLOAD-0002-the-command-bytes');
  const before = filesOf(file);
  const err = await RaftGroup.open({ peers: 1, dataDir, stateMachine: { module: new URL('../fixtures/counter-sm.js', import.meta.url) } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof StorageError, 'instanceof StorageError on the main thread');
  t.match(err, { code: 'corrupt', file, index: 2 }, 'code, file and index kept');
  t.same(filesOf(file), before, 'the file is untouched');
});

t.test('a read-only file and an unwritable directory are refused at open', async (t) => {
  const file = fresh();
  closedWith(file, (s) => s.save(ready({ hardState: { term: 2, vote: 0 }, lastIndex: 0 })));
  chmodSync(file, 0o444);
  const before = filesOf(file);
  const r = child({ op: 'open', file, peer: 0 }, true);
  t.equal(r.out?.error?.name, 'StorageError', 'a read-only file: StorageError');
  t.equal(r.out?.error?.code, 'read-only', 'code read-only');
  t.match(r.out?.error?.message, /cannot be written/, 'says why');
  t.same(filesOf(file), before, 'the file is untouched');

  const dir = freshDir();
  const inDir = join(dir, 'peer-0.sqlite');
  // Others may not write in it (as root the child runs as nobody; otherwise nobody may write).
  chmodSync(dir, asRoot ? 0o755 : 0o555);
  const r2 = child({ op: 'open', file: inDir, peer: 0 }, true);
  t.equal(r2.out?.error?.name, 'StorageError', 'an unwritable directory: StorageError');
  t.equal(r2.out?.error?.code, 'read-only', 'code read-only');
  t.match(r2.out?.error?.message, /its directory .* is writable/, 'naming the directory');
  const g = child({ op: 'group', file: dir, peer: 0 }, true);
  t.equal(g.out?.error?.name, 'StorageError', 'RaftGroup.open on an unwritable dataDir: StorageError at open');
  t.equal(g.out?.error?.code, 'read-only', 'code read-only');
  t.notOk(existsSync(inDir), 'no file was made');
  chmodSync(dir, 0o777);
});

t.test('a data directory that is a file is an OptionError at open', async (t) => {
  const dir = freshDir();
  const notDir = join(dir, 'plain-file');
  writeFileSync(notDir, 'x');
  const sm = { module: new URL('../fixtures/counter-sm.js', import.meta.url) };
  await t.rejects(RaftGroup.open({ peers: 1, dataDir: notDir, stateMachine: sm }), OptionError, 'a file as dataDir');
  await t.rejects(RaftGroup.open({ peers: 1, dataDir: join(notDir, 'below'), stateMachine: sm }), { name: 'RaftOptionError', option: 'dataDir' }, 'a path through a file');
  t.equal(readFileSync(notDir, 'utf8'), 'x', 'the file is untouched');
});
