import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Entry, Ready } from '../../lib/raft/types.js';
import { SqliteStorage, StorageError } from '../../storage/sqlite.js';

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

t.test('a snapshot trims the log it covers, and a conflicting one clears it', async (t) => {
  const file = fresh();
  const s = new SqliteStorage(file, { peer: 0 });
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
