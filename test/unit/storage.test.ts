import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import t from 'tap';
import { EntryType, type Entry, type Ready } from '../../lib/raft/types.js';
import { encodeConfig } from '../../lib/raft/config.js';
import { RUN_MAX_BYTES, RUN_MAX_ENTRIES } from '../../storage/log-runs.js';
import { SCHEMA_VERSION, SNAPSHOT_PIECE_BYTES, SqliteStorage, StorageError } from '../../storage/sqlite.js';
import { writeOldPeerFile } from '../fixtures/old-schema-file.js';
import { randInt, seededRng } from '../../lib/raft/prng.js';
import { intSize, logEntryStateSize } from '../../storage/size.js';

const dir = mkdtempSync(join(tmpdir(), 'actor-raft-storage-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `peer-${n++}.sqlite`);

const enc = new TextEncoder();
const ent = (index: number, term: number): Entry => ({ index, term, data: enc.encode(`cmd ${index}/${term}`) });
const ready = (r: Partial<Ready> & { lastIndex: number }): Ready => ({ entries: [], messages: [], earlyCount: 0, committed: [], readStates: [], ...r });
const shape = (es: Entry[]) => es.map((e) => [e.index, e.term, new TextDecoder().decode(e.data)]);

t.test('state survives close and reopen', async (t) => {
  const file = fresh();
  const a = new SqliteStorage(file, { peer: 1 });
  t.same(a.load(), { hardState: { term: 0, vote: -1 }, snapshot: undefined, entries: [] }, 'a new file starts empty');
  a.save(ready({ hardState: { term: 3, vote: 2 }, entries: [ent(1, 1), ent(2, 3)], lastIndex: 2 }));
  a.close();
  const b = new SqliteStorage(file, { peer: 1 });
  const st = b.load();
  t.same(st.hardState, { term: 3, vote: 2 }, 'term and vote');
  t.same(shape(st.entries), shape([ent(1, 1), ent(2, 3)]), 'entries with their terms and bytes');
  b.close();
});

t.test('empty entries and an empty snapshot pass their checksums when read back', async (t) => {
  const file = fresh();
  const a = new SqliteStorage(file, { peer: 0 });
  // A new leader's no-op entry has no bytes; SQLite hands an empty blob back as a Buffer with no memory.
  a.save(ready({ hardState: { term: 2, vote: 0 }, entries: [ent(1, 1), { index: 2, term: 2, data: new Uint8Array(0) }], lastIndex: 2 }));
  a.save(ready({ snapshot: { index: 1, term: 1, data: new Uint8Array(0) }, lastIndex: 2 }));
  a.close();
  const b = new SqliteStorage(file, { peer: 0 });
  const st = b.load();
  b.close();
  t.same([st.snapshot?.index, st.snapshot?.data.length, st.entries.map((e) => [e.index, e.data.length])], [1, 0, [[2, 0]]], 'they load');
});

t.test('a conflicting suffix is overwritten and nothing past lastIndex remains', async (t) => {
  const s = new SqliteStorage(fresh(), { peer: 0 });
  s.save(ready({ entries: [1, 2, 3, 4, 5].map((i) => ent(i, 1)), lastIndex: 5 }));
  s.save(ready({ entries: [ent(4, 2), ent(5, 2)], lastIndex: 5 }));
  t.same(shape(s.load().entries), shape([ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 2), ent(5, 2)]), 'entries from 4 replaced');
  s.save(ready({ entries: [ent(4, 3)], lastIndex: 4 }));
  t.same(shape(s.load().entries), shape([ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 3)]), 'a shorter replacement drops the tail');
  s.close();
});

t.test('an open peer file is its storage\'s alone unless opened with shareReads', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0 });
  s.save(ready({ hardState: { term: 1, vote: 0 }, entries: [ent(1, 1), ent(2, 1)], lastIndex: 2 }));
  t.ok(existsSync(`${file}-wal`), 'the write-ahead log is there');
  t.notOk(existsSync(`${file}-shm`), 'no shared wal-index: exclusive locking keeps it in the connection');
  const started = performance.now();
  t.throws(() => SqliteStorage.inspect(file), { name: 'StorageError', code: 'locked' }, 'another connection cannot read it (after its busy timeout)');
  t.ok(performance.now() - started < 10_000, 'and says so within the busy timeout');
  s.save(ready({ entries: [ent(3, 1)], lastIndex: 3 }));
  t.same(s.load().entries.map((e) => e.index), [1, 2, 3], 'the refused reader left the storage working');
  s.close();
  t.same(SqliteStorage.inspectLog(file).map((e) => e.index), [1, 2, 3], 'closed, the file reads back');

  const shared = new SqliteStorage(file, { peer: 0, shareReads: true });
  shared.save(ready({ entries: [ent(4, 1)], lastIndex: 4 }));
  t.same(SqliteStorage.inspectLog(file).map((e) => e.index), [1, 2, 3, 4], 'with shareReads, a reader sees its commits while it is open');
  shared.close();
  const again = new SqliteStorage(file, { peer: 0 });
  t.same(again.load().entries.map((e) => e.index), [1, 2, 3, 4], 'and either mode opens what the other wrote');
  again.close();
});

t.test('a snapshot trims the log it covers, and a conflicting one clears it', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0, shareReads: true });
  s.save(ready({ hardState: { term: 1, vote: 0 }, entries: Array.from({ length: 10 }, (_, k) => ent(k + 1, 1)), lastIndex: 10 }));
  const before = s.raftStateSize();
  s.save(ready({ snapshot: { index: 6, term: 1, data: enc.encode('state@6') }, lastIndex: 10 }));
  const st = s.load();
  t.same(st.entries.map((e) => e.index), [7, 8, 9, 10], 'entries 1..6 deleted with the snapshot');
  t.same([st.snapshot?.index, st.snapshot?.term, new TextDecoder().decode(st.snapshot?.data)], [6, 1, 'state@6'], 'snapshot stored');
  t.ok(s.raftStateSize() < before, `raft state shrank (${before} -> ${s.raftStateSize()})`);
  t.equal(SqliteStorage.inspect(file).raftStateSize, s.raftStateSize(), 'inspect() of the file reports the same size');
  s.save(ready({ snapshot: { index: 12, term: 2, data: enc.encode('state@12') }, lastIndex: 12 }));
  t.same(s.load().entries, [], 'a snapshot beyond the log leaves no entry');
  t.equal(SqliteStorage.inspect(file).snapshot?.index, 12, 'inspect() reads the snapshot');
  s.close();
});

function refused(t: Tap, file: string, peer: number, code: string, what: string): void {
  const bytes = readFileSync(file);
  let err: unknown;
  try {
    new SqliteStorage(file, { peer }).close();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof StorageError, `${what}: refused with a StorageError`);
  t.equal((err as StorageError).code, code, `${what}: code ${code}`);
  t.match((err as Error).message, file, `${what}: the message names the file`);
  t.same(readFileSync(file), bytes, `${what}: the file is left untouched`);
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('files that must not be used are refused, never reset', async (t) => {
  const garbage = fresh();
  writeFileSync(garbage, Buffer.from('this is not a database, just some bytes'.repeat(200)));
  refused(t, garbage, 0, 'corrupt', 'random bytes');

  const damaged = fresh();
  new SqliteStorage(damaged, { peer: 0 }).close();
  const bytes = readFileSync(damaged);
  bytes.fill(0x5a, 0, 100); // clobber the SQLite header
  writeFileSync(damaged, bytes);
  refused(t, damaged, 0, 'corrupt', 'a damaged header');

  const future = fresh();
  new SqliteStorage(future, { peer: 0 }).close();
  const raw = new Database(future);
  raw.pragma('user_version = 99');
  raw.close();
  refused(t, future, 0, 'unknown-version', 'schema version 99');

  const other = fresh();
  const raw2 = new Database(other);
  raw2.exec('CREATE TABLE t (x)');
  raw2.close();
  refused(t, other, 0, 'not-raft', 'some other SQLite database');

  const theirs = fresh();
  new SqliteStorage(theirs, { peer: 2 }).close();
  refused(t, theirs, 1, 'wrong-peer', "peer 2's file opened as peer 1");
});

t.test('the fsync option is accepted and state is still written', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0, fsync: false });
  s.save(ready({ hardState: { term: 7, vote: 1 }, lastIndex: 0 }));
  s.close();
  t.same(new SqliteStorage(file, { peer: 0 }).load().hardState, { term: 7, vote: 1 });
});

const rowsOf = (file: string): [number, number][] => {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT first, last FROM log_runs ORDER BY first').raw().all() as [number, number][];
  } finally {
    db.close();
  }
};

t.test('the log is kept in runs, a row per Ready; a cut inside a run keeps its head', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0, shareReads: true });
  s.save(ready({ hardState: { term: 1, vote: 0 }, entries: Array.from({ length: 10 }, (_, k) => ent(k + 1, 1)), lastIndex: 10 }));
  s.save(ready({ entries: [ent(11, 1), ent(12, 1)], lastIndex: 12 }));
  t.same(rowsOf(file), [[1, 10], [11, 12]], 'one row per Ready');
  s.save(ready({ entries: [ent(5, 2), ent(6, 2)], lastIndex: 6 }));
  t.same(rowsOf(file), [[1, 4], [5, 6]], 'entries from 5 replaced: the first run cut to 1..4, the second gone');
  s.save(ready({ lastIndex: 2 }));
  t.same(rowsOf(file), [[1, 2]], 'a shorter log with no new entries cuts the run');
  s.close();
  const again = new SqliteStorage(file, { peer: 0 });
  t.same(shape(again.load().entries), shape([ent(1, 1), ent(2, 1)]), 'and reads back as written');
  again.save(ready({ entries: [ent(3, 3)], lastIndex: 3 }));
  again.close();
  t.same(shape(SqliteStorage.inspectLog(file)), shape([ent(1, 1), ent(2, 1), ent(3, 3)]), 'a run after a cut one follows it');
});

t.test('a large Ready is split into runs within their caps', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0, shareReads: true });
  const many = Array.from({ length: RUN_MAX_ENTRIES + 5 }, (_, k) => ent(k + 1, 1));
  const big: Entry = { index: many.length + 2, term: 1, data: new Uint8Array(RUN_MAX_BYTES + 100).fill(9) };
  const all = [...many, ent(many.length + 1, 1), big, ent(many.length + 3, 1)];
  s.save(ready({ entries: all, lastIndex: all.length }));
  const rows = rowsOf(file);
  t.same(rows.map(([a, b]) => b - a + 1), [RUN_MAX_ENTRIES, 6, 1, 1], `rows ${JSON.stringify(rows)}: at most ${RUN_MAX_ENTRIES} entries, an entry past ${RUN_MAX_BYTES} bytes alone`);
  s.close();
  const back = SqliteStorage.inspectLog(file);
  t.equal(back.length, all.length, 'every entry reads back');
  t.same(back[big.index - 1]!.data.length, big.data.length, 'the large one whole');
  t.same(shape(back.slice(0, 20)), shape(all.slice(0, 20)), 'in order');
});

t.test('a snapshot inside a run: the run stays, its entries through the snapshot are not the log', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0, shareReads: true });
  s.save(ready({ hardState: { term: 1, vote: 0 }, entries: Array.from({ length: 10 }, (_, k) => ent(k + 1, 1)), lastIndex: 10 }));
  s.save(ready({ entries: [ent(11, 1)], lastIndex: 11 }));
  const fresh4 = new SqliteStorage(fresh(), { peer: 0 });
  fresh4.save(ready({ hardState: { term: 1, vote: 0 }, entries: [7, 8, 9, 10, 11].map((i) => ent(i, 1)), snapshot: { index: 6, term: 1, data: enc.encode('state@6') }, lastIndex: 11 }));
  s.save(ready({ snapshot: { index: 6, term: 1, data: enc.encode('state@6') }, lastIndex: 11 }));
  t.same(rowsOf(file), [[1, 10], [11, 11]], 'the run 1..10 is kept whole');
  t.same(s.load().entries.map((e) => e.index), [7, 8, 9, 10, 11], 'the log is 7..11');
  t.equal(s.raftStateSize(), fresh4.raftStateSize(), 'and its size counts 7..11 only, as a file holding just them');
  fresh4.close();
  s.save(ready({ snapshot: { index: 10, term: 1, data: enc.encode('state@10') }, lastIndex: 11 }));
  t.same(rowsOf(file), [[11, 11]], 'a snapshot that covers the whole run deletes it');
  s.close();
  t.same(new SqliteStorage(file, { peer: 0 }).load().entries.map((e) => e.index), [11], 'reopened: 11');
});

t.test('a version 3 file (a row per entry) is upgraded to runs on take-over, every entry and size kept', async (t) => {
  const file = fresh();
  const entries = [ent(1, 1), ent(2, 1), { index: 3, term: 2, data: encodeConfig({ voters: [0, 1], learners: [] }), type: EntryType.Config }, ent(4, 2)];
  writeOldPeerFile(file, 3, 0, { term: 2, vote: 1 }, entries);
  const size = SqliteStorage.inspect(file).raftStateSize;
  t.same(SqliteStorage.inspectLog(file).map((e) => [e.index, e.type ?? 0]), [[1, 0], [2, 0], [3, EntryType.Config], [4, 0]], 'readable as it is');
  const s = new SqliteStorage(file, { peer: 0 });
  const st = s.load();
  t.same(st.hardState, { term: 2, vote: 1 }, 'the hard state');
  t.same(st.entries.map((e) => [e.index, e.term, e.type ?? 0, Buffer.from(e.data).toString('hex')]), entries.map((e) => [e.index, e.term, e.type ?? 0, Buffer.from(e.data).toString('hex')]), 'the entries');
  t.equal(s.raftStateSize(), size, 'the same Raft state size');
  s.save(ready({ entries: [ent(5, 2)], lastIndex: 5 }));
  s.close();
  const db = new Database(file, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, `version ${SCHEMA_VERSION} now`);
  t.same(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").raw().all().flat(), ['hard_state', 'log_runs', 'meta', 'snapshot', 'snapshot_chunks'], 'the row-per-entry table is gone, the table of snapshot pieces is there');
  db.close();
  t.same(rowsOf(file), [[1, 4], [5, 5]], 'its rows folded into one run');

  const bad = fresh();
  writeOldPeerFile(bad, 3, 0, { term: 1, vote: 0 }, [ent(1, 1), { index: 2, term: 1, data: enc.encode('PAYLOAD-0002-the-command-bytes') }]);
  const bytes = readFileSync(bad);
  const at = bytes.indexOf(Buffer.from('PAYLOAD-0002'));
  bytes[at + 3]! ^= 0x01;
  writeFileSync(bad, bytes);
  refused(t, bad, 0, 'corrupt', 'a version 3 file with a changed entry (not upgraded)');
});

t.test('a run whose lengths or bounds no longer add up is refused', async (t) => {
  const make = () => {
    const file = fresh();
    const s = new SqliteStorage(file, { peer: 0 });
    s.save(ready({ hardState: { term: 1, vote: 0 }, entries: [1, 2, 3].map((i) => ent(i, 1)), lastIndex: 3 }));
    s.save(ready({ entries: [4, 5].map((i) => ent(i, 1)), lastIndex: 5 }));
    s.save(ready({ entries: [6].map((i) => ent(i, 1)), lastIndex: 6 }));
    s.close();
    return file;
  };
  const edit = (file: string, sql: string, ...args: unknown[]) => {
    const db = new Database(file);
    db.prepare(sql).run(...args);
    db.close();
  };
  const longer = make();
  edit(longer, 'UPDATE log_runs SET last = 4 WHERE first = 1');
  refused(t, longer, 0, 'corrupt', 'a run that claims one entry more than it holds');
  const gap = make();
  edit(gap, 'DELETE FROM log_runs WHERE first = 4');
  refused(t, gap, 0, 'corrupt', 'a run missing from the middle');
  const length = make();
  const db = new Database(length, { readonly: true });
  const body = Buffer.from((db.prepare('SELECT body FROM log_runs WHERE first = 1').raw().get() as [Buffer])[0]);
  db.close();
  body[16]! ^= 0x01; // the low byte of entry 1's length
  edit(length, 'UPDATE log_runs SET body = ? WHERE first = 1', body);
  refused(t, length, 0, 'corrupt', "a bit flipped in an entry's length");
});

/**
 * Random Readies (appends that overwrite a suffix, cuts, snapshots inside
 * and beyond the log, large entries that split runs, reopens) against a
 * plain model of what the log must then be: after every step the stored
 * log, its Raft state size, and what a reopened file loads equal the model.
 */
t.test('random appends, cuts, snapshots and reopens leave exactly the log a plain model has', async (t) => {
  for (const seed of [1, 2, 3]) {
    const rng = seededRng(seed);
    const file = fresh();
    let s = new SqliteStorage(file, { peer: 0 });
    s.save(ready({ hardState: { term: 1, vote: 0 }, lastIndex: 0 }));
    let snap = { index: 0, term: 0 };
    let log: Entry[] = []; // the model: entries snap.index+1 .. in order
    const last = () => (log.length ? log[log.length - 1]!.index : snap.index);
    let term = 1;
    let mismatch = '';
    for (let step = 0; step < 250 && !mismatch; step++) {
      const roll = rng();
      if (roll < 0.55) {
        const first = Math.max(snap.index + 1, last() + 1 - randInt(rng, 0, 3));
        if (rng() < 0.2) term++;
        const es: Entry[] = Array.from({ length: randInt(rng, 1, 200) }, (_, k) => ({
          index: first + k,
          term,
          data: rng() < 0.01 ? new Uint8Array(600_000).fill(k & 0xff) : enc.encode(`e${first + k}/${term}/${seed}`),
        }));
        s.save(ready({ entries: es, lastIndex: es[es.length - 1]!.index }));
        log = [...log.filter((e) => e.index < first), ...es];
      } else if (roll < 0.7) {
        const to = randInt(rng, snap.index, last());
        s.save(ready({ lastIndex: to }));
        log = log.filter((e) => e.index <= to);
      } else if (roll < 0.9 && last() > snap.index) {
        const at = randInt(rng, snap.index + 1, last());
        const st = { index: at, term: log.find((e) => e.index === at)!.term, data: enc.encode(`snap@${at}`) };
        s.save(ready({ snapshot: st, lastIndex: last() }));
        snap = { index: st.index, term: st.term };
        log = log.filter((e) => e.index > at);
      } else if (roll < 0.95) {
        const at = last() + randInt(rng, 1, 5);
        s.save(ready({ snapshot: { index: at, term, data: enc.encode(`snap@${at}`) }, lastIndex: at }));
        snap = { index: at, term };
        log = [];
      } else {
        s.close();
        s = new SqliteStorage(file, { peer: 0 });
      }
      const got = s.load();
      const want = log.map((e) => `${e.index}/${e.term}/${e.data.length}/${e.data[0]}`).join(' ');
      const have = got.entries.map((e) => `${e.index}/${e.term}/${e.data.length}/${e.data[0]}`).join(' ');
      if (have !== want) mismatch = `seed ${seed} step ${step}: stored ${have.slice(0, 200)} but the model has ${want.slice(0, 200)}`;
      else if ((got.snapshot?.index ?? 0) !== snap.index) mismatch = `seed ${seed} step ${step}: snapshot ${got.snapshot?.index} not ${snap.index}`;
      else {
        const size = 1 + intSize(1) + intSize(0) + intSize(snap.index) + intSize(snap.term) + log.reduce((n, e) => n + logEntryStateSize(e.term, e.data.length), 0);
        if (s.raftStateSize() !== size) mismatch = `seed ${seed} step ${step}: raft state size ${s.raftStateSize()}, the model's ${size}`;
      }
    }
    s.close();
    t.equal(mismatch, '', `seed ${seed}: every step matches the model`);
    const reopened = new SqliteStorage(file, { peer: 0 });
    t.same(reopened.load().entries.map((e) => [e.index, e.term]), log.map((e) => [e.index, e.term]), `seed ${seed}: and the reopened file loads it`);
    reopened.close();
  }
});

t.test('a reader of a running peer file sees one commit: the snapshot and the runs it ends inside agree', async (t) => {
  // The harness reads running peers' files (inspect, inspectLog). The
  // snapshot index and the runs are two statements; were they two read
  // transactions, a snapshot committed between them would make the reader
  // count a run's covered entries against the older snapshot, or find the
  // log starting before the snapshot's next index and call the file corrupt.
  const file = fresh();
  const w = new Worker(new URL('../fixtures/storage-run-snapshotter.js', import.meta.url), { workerData: { file } });
  t.teardown(() => w.terminate());
  await new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
  });
  const until = performance.now() + 1500;
  let reads = 0;
  let moved = 0;
  let lastSnap = -1;
  const problems: string[] = [];
  while (performance.now() < until && problems.length < 5) {
    try {
      const log = SqliteStorage.inspectLog(file);
      if (log.length !== 0 && log.length !== 5) problems.push(`inspectLog read ${log.length} entries (${log[0]!.index}..${log[log.length - 1]!.index})`);
      const st = SqliteStorage.inspect(file);
      const snap = st.snapshot?.index ?? 0;
      // Every commit keeps the 5 entries after the snapshot (none before the first snapshot).
      const kept = snap === 0 ? 0 : 5;
      const base = 1 + intSize(1) + intSize(0) + intSize(snap) + intSize(snap === 0 ? 0 : 1);
      let entries = 0;
      for (let k = 1; k <= kept; k++) entries += logEntryStateSize(1, enc.encode(`entry ${snap + k}`).length);
      if (st.raftStateSize !== base + entries) problems.push(`inspect: raft state ${st.raftStateSize} bytes with the snapshot at ${snap}, a commit holds ${base + entries}`);
      if (snap !== lastSnap) moved++;
      lastSnap = snap;
      reads++;
    } catch (e) {
      problems.push(`a read failed: ${(e as Error).message}`);
    }
    // The writer's checkpoints wait for readers; let it get on between reads.
    await new Promise((r) => setTimeout(r, 1));
  }
  t.ok(moved > 20, `the writer committed snapshots while the reader read (${moved} different snapshots seen in ${reads} reads)`);
  t.same(problems, [], `every read saw one committed state (${reads} reads)`);
});

/** `n` bytes from a seeded generator: a snapshot whose every piece differs. */
function bytesOf(n: number, seed: number): Uint8Array {
  const rng = seededRng(seed);
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = Math.floor(rng() * 256);
  return out;
}

/** The generations of snapshot pieces in a closed file, and how many pieces each has. */
function piecesOf(file: string): [number, number][] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT gen, COUNT(*) FROM snapshot_chunks GROUP BY gen ORDER BY gen').raw().all() as [number, number][];
  } finally {
    db.close();
  }
}

const CONFIG = { voters: [0, 1, 2], learners: [] };

t.test('a large snapshot is written in pieces ahead of its record; until the record the file holds the snapshot before', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0, shareReads: true });
  s.save(ready({ hardState: { term: 1, vote: 0 }, entries: [1, 2, 3, 4].map((i) => ent(i, 1)), lastIndex: 4 }));
  const small = enc.encode('state@1');
  t.equal(s.stageSnapshot({ index: 1, term: 1, data: small, config: CONFIG }), undefined, 'a snapshot of one piece or less goes with its Ready');
  s.save(ready({ snapshot: { index: 1, term: 1, data: small, config: CONFIG }, lastIndex: 4 }));

  const big = bytesOf(3 * SNAPSHOT_PIECE_BYTES + 1000, 7);
  const snap = { index: 3, term: 1, data: big, config: CONFIG };
  const stager = s.stageSnapshot(snap);
  t.ok(stager, 'a larger one is staged');
  let steps = 0;
  for (let done = false; !done; ) {
    done = stager!.step();
    steps++;
    t.same(new TextDecoder().decode(SqliteStorage.inspect(file).snapshot!.data), 'state@1', `after step ${steps} a reader still finds the snapshot before`);
  }
  t.equal(steps, 4, 'one step per piece: 3 whole pieces and the rest');
  t.equal(stager!.step(), true, 'a finished stager has nothing left to do');
  s.save(ready({ snapshot: snap, lastIndex: 4 }));
  const seen = SqliteStorage.inspect(file).snapshot!;
  t.equal(seen.index, 3, 'the record makes it the snapshot');
  t.ok(Buffer.from(seen.data).equals(Buffer.from(big)), 'with every byte');
  s.close();
  const db = new Database(file, { readonly: true });
  const row = db.prepare('SELECT length(data) AS n, gen FROM snapshot WHERE id = 1').get() as { n: number; gen: number };
  db.close();
  t.equal(row.n, 0, 'the record holds no bytes of its own');
  t.same(piecesOf(file), [[row.gen, 4]], 'they are its generation of 4 pieces');
  const again = new SqliteStorage(file, { peer: 0 });
  const st = again.load();
  t.ok(Buffer.from(st.snapshot!.data).equals(Buffer.from(big)), 'reopened: the same bytes, checksum verified');
  t.same(st.snapshot!.config, CONFIG, 'and its configuration');
  t.same(st.entries.map((e) => e.index), [4], 'the log after it');
  again.close();
});

t.test('pieces no snapshot uses go as later snapshots are staged; a staging given up or overtaken is never recorded', async (t) => {
  const file = fresh();
  let s = new SqliteStorage(file, { peer: 0 });
  s.save(ready({ hardState: { term: 1, vote: 0 }, entries: [1, 2, 3, 4, 5, 6].map((i) => ent(i, 1)), lastIndex: 6 }));
  const stageAll = (index: number, data: Uint8Array) => {
    const st = s.stageSnapshot({ index, term: 1, data, config: CONFIG })!;
    while (!st.step());
    return st;
  };
  const a = bytesOf(2 * SNAPSHOT_PIECE_BYTES + 10, 1);
  stageAll(2, a);
  s.save(ready({ snapshot: { index: 2, term: 1, data: a, config: CONFIG }, lastIndex: 6 }));

  // Given up after two pieces (the peer installed a leader's snapshot meanwhile).
  const b = s.stageSnapshot({ index: 3, term: 1, data: bytesOf(3 * SNAPSHOT_PIECE_BYTES, 2), config: CONFIG })!;
  b.step();
  b.step();
  b.cancel();
  t.equal(b.step(), true, 'a cancelled stager writes nothing more');
  // Staged in full, but the Ready carries other bytes for its index: those are recorded, in the row.
  const c = bytesOf(2 * SNAPSHOT_PIECE_BYTES + 5, 3);
  stageAll(3, c);
  const installed = bytesOf(2 * SNAPSHOT_PIECE_BYTES + 5, 4);
  s.save(ready({ snapshot: { index: 3, term: 1, data: installed, config: CONFIG }, lastIndex: 6 }));
  s.close();
  const stale = piecesOf(file);
  t.same(stale.map(([, n]) => n), [3, 3], `the first snapshot's pieces and the overtaken staging's are on disk (the given-up one's 2 went while that was written): ${JSON.stringify(stale)}`);
  const db = new Database(file, { readonly: true });
  t.equal((db.prepare('SELECT gen FROM snapshot WHERE id = 1').get() as { gen: number | null }).gen, null, 'the recorded snapshot is in its row, none of them');
  db.close();
  s = new SqliteStorage(file, { peer: 0 });
  t.ok(Buffer.from(s.load().snapshot!.data).equals(Buffer.from(installed)), 'reopened: the bytes the Ready carried');

  const d = bytesOf(3 * SNAPSHOT_PIECE_BYTES, 5);
  stageAll(5, d);
  s.save(ready({ snapshot: { index: 5, term: 1, data: d, config: CONFIG }, lastIndex: 6 }));
  s.close();
  const left = piecesOf(file);
  t.equal(left.length, 1, `the 6 stale pieces went while 3 new ones were written (2 a step): ${JSON.stringify(left)}`);
  t.equal(left[0]![1], 3, "what is left is the recorded snapshot's pieces");
  s = new SqliteStorage(file, { peer: 0 });
  t.ok(Buffer.from(s.load().snapshot!.data).equals(Buffer.from(d)), 'which read back whole');
  s.close();
});

t.test('a snapshot piece changed or removed is refused as corrupt', async (t) => {
  const make = () => {
    const file = fresh();
    const s = new SqliteStorage(file, { peer: 0 });
    s.save(ready({ hardState: { term: 1, vote: 0 }, entries: [ent(1, 1), ent(2, 1)], lastIndex: 2 }));
    const data = bytesOf(2 * SNAPSHOT_PIECE_BYTES + 100, 9);
    const st = s.stageSnapshot({ index: 1, term: 1, data, config: CONFIG })!;
    while (!st.step());
    s.save(ready({ snapshot: { index: 1, term: 1, data, config: CONFIG }, lastIndex: 2 }));
    s.close();
    return file;
  };
  const changed = make();
  let db = new Database(changed);
  db.prepare('UPDATE snapshot_chunks SET data = ? WHERE seq = 1').run(Buffer.from(bytesOf(SNAPSHOT_PIECE_BYTES, 10)));
  db.close();
  refused(t, changed, 0, 'corrupt', 'a changed piece');
  const gone = make();
  db = new Database(gone);
  db.prepare('DELETE FROM snapshot_chunks WHERE seq = 1').run();
  db.close();
  refused(t, gone, 0, 'corrupt', 'a removed piece');
  t.throws(() => new SqliteStorage(gone, { peer: 0 }), /lacks its piece 1/, 'the message says which piece');
});

t.test('a version 4 file is upgraded on take-over: its snapshot stays in its row, and the next large one is written in pieces', async (t) => {
  const file = fresh();
  const state = enc.encode('state@2');
  writeOldPeerFile(file, 4, 0, { term: 3, vote: 2 }, [], { index: 2, term: 1, data: state, config: CONFIG });
  t.same(new TextDecoder().decode(SqliteStorage.inspect(file).snapshot!.data), 'state@2', 'readable as it is');
  const s = new SqliteStorage(file, { peer: 0 });
  const st = s.load();
  t.same(st.hardState, { term: 3, vote: 2 });
  t.same(new TextDecoder().decode(st.snapshot!.data), 'state@2', 'its snapshot');
  t.same(st.snapshot!.config, CONFIG);
  s.save(ready({ entries: [3, 4].map((i) => ent(i, 3)), lastIndex: 4 }));
  const big = bytesOf(SNAPSHOT_PIECE_BYTES + 1, 11);
  const stager = s.stageSnapshot({ index: 3, term: 3, data: big, config: CONFIG })!;
  while (!stager.step());
  s.save(ready({ snapshot: { index: 3, term: 3, data: big, config: CONFIG }, lastIndex: 4 }));
  s.close();
  const db = new Database(file, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, `version ${SCHEMA_VERSION} now`);
  db.close();
  const again = new SqliteStorage(file, { peer: 0 });
  t.ok(Buffer.from(again.load().snapshot!.data).equals(Buffer.from(big)), 'the staged snapshot reads back');
  again.close();
});
