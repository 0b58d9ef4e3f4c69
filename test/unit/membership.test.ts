// Single-server membership changes in the pure core (thesis chapter 4):
// learners that replicate without voting, refusals that leave the
// configuration as it was, a removed leader stepping down only once its
// removal commits, configurations taking effect on append and reverting on
// truncation, carried in snapshots, across the wire and through storage.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { EntryType, MessageType, Role, type AppendRequest, type Entry, type Message, type Ready } from '../../lib/raft/index.js';
import { decodeConfig, encodeConfig } from '../../lib/raft/config.js';
import { decodeFrame, encodeFrame, unpackBatch } from '../../lib/transport/codec.js';
import { messageProblem } from '../../lib/raft/validate.js';
import { SCHEMA_VERSION, SqliteStorage } from '../../storage/sqlite.js';
import { writeOldPeerFile } from '../fixtures/old-schema-file.js';
import { ack, elect, makeCore, ofType, take } from './core-driver.js';

const enc = new TextEncoder();

/** Let the leader's messages reach `peers` and their answers come back, ticking between rounds, until nothing is left to send. */
function settle(l: ReturnType<typeof makeCore>, peers: number[], rounds = 20): void {
  for (let k = 0; k < rounds; k++) {
    const rd = take(l);
    for (const p of peers) ack(l, rd.messages, p);
    l.tick();
  }
  take(l);
}

/** Leader 0 of voters {0,1,2}, everyone caught up, an entry of its term committed. */
function settledLeader() {
  const l = makeCore(0, 3, 1);
  elect(l);
  let rd = take(l);
  ack(l, rd.messages, 1);
  l.propose(enc.encode('x'));
  rd = take(l);
  ack(l, rd.messages, 1);
  ack(l, rd.messages, 2);
  take(l);
  return l;
}

t.test('a learner receives the log but neither its acknowledgements nor its silence decide commits', async (t) => {
  const l = settledLeader();
  const placed = l.proposeConfigChange({ type: 'addLearner', id: 3, context: 'peer-3' });
  t.ok(typeof placed === 'object', 'the change is appended');
  t.same(l.config().learners, [3], 'and in force at once (on append)');
  t.same(l.config().context, { 3: 'peer-3' }, 'with its context');
  let rd = take(l);
  t.ok(ofType(rd.messages, MessageType.Append).some((m) => m.to === 3), 'the learner is sent the log');
  ack(l, rd.messages, 1);
  take(l);
  t.ok(l.configCommitted(), 'the change commits with voters 0 and 1');
  const commit = l.log.commitIndex;
  l.propose(enc.encode('y'));
  settle(l, [3]);
  t.equal(l.log.commitIndex, commit, 'the learner\'s acknowledgements alone commit nothing');
  settle(l, [2, 3]);
  t.equal(l.log.commitIndex, commit + 1, 'a voter\'s do');
  t.ok(l.matchOf(3) >= commit + 1, 'the leader tracks the learner\'s match');
});

t.test('a learner and a server outside the configuration never campaign', async (t) => {
  const learner = makeCore(3, 3, 2, { voters: [] });
  const outsider = makeCore(4, 3, 2, { voters: [0, 1, 2] });
  for (let k = 0; k < 200; k++) {
    learner.tick();
    outsider.tick();
  }
  for (const c of [learner, outsider]) {
    const rd = take(c);
    t.equal(ofType(rd.messages, MessageType.Vote).length, 0, `peer ${c.id} asked for no votes`);
    t.equal(c.status().role, Role.Follower, `peer ${c.id} stays a follower`);
  }
});

t.test('refused changes leave the configuration as it was', async (t) => {
  const l = settledLeader();
  const before = l.config();
  t.equal(l.proposeConfigChange({ type: 'addLearner', id: 1 }), 'already-member', 'adding a voter');
  t.equal(l.proposeConfigChange({ type: 'remove', id: 7 }), 'not-member', 'removing a stranger');
  t.equal(l.proposeConfigChange({ type: 'promote', id: 7 }), 'not-learner', 'promoting a stranger');
  t.equal(l.config(), before, 'unchanged');
  t.ok(typeof l.proposeConfigChange({ type: 'addLearner', id: 3 }) === 'object', 'a first change');
  const during = l.config();
  t.equal(l.proposeConfigChange({ type: 'addLearner', id: 4 }), 'in-progress', 'a second one while the first is uncommitted');
  t.equal(l.config(), during, 'unchanged by the refusal');
  const follower = makeCore(1, 3, 1);
  t.equal(follower.proposeConfigChange({ type: 'addLearner', id: 3 }), 'not-leader', 'a follower refuses');
  const solo = makeCore(0, 1, 1);
  elect(solo);
  take(solo);
  solo.propose(enc.encode('x'));
  take(solo);
  t.equal(solo.proposeConfigChange({ type: 'remove', id: 0 }), 'last-voter', 'removing the last voter');
});

t.test('a leader that removes itself leads until the removal commits, then steps down', async (t) => {
  const l = settledLeader();
  const placed = l.proposeConfigChange({ type: 'remove', id: 0 });
  t.ok(typeof placed === 'object', 'appended');
  t.same(l.config().voters, [1, 2], 'in force at once');
  t.ok(l.isLeader(), 'still leading while it is uncommitted');
  settle(l, [1]);
  t.ok(l.isLeader(), 'one of the two new voters is not a majority of them');
  t.notOk(l.configCommitted(), 'so the removal is not committed');
  settle(l, [1, 2]);
  t.notOk(l.isLeader(), 'with both, the removal commits and the leader steps down');
  t.ok(l.configCommitted(), 'committed');
  for (let k = 0; k < 200; k++) l.tick();
  t.equal(ofType(take(l).messages, MessageType.Vote).length, 0, 'and it never campaigns again');
});

/** A follower (peer 1) sent `entries` after `prev` by leader `from` in `term`. */
function appendTo(f: ReturnType<typeof makeCore>, from: number, term: number, prev: number, prevTerm: number, entries: Entry[], commit: number): boolean {
  const m: AppendRequest = { type: MessageType.Append, from, to: f.id, term, prevLogIndex: prev, prevLogTerm: prevTerm, entries, commit, seq: 1 };
  const ok = f.step(m);
  take(f);
  return ok;
}

t.test('a follower uses the latest configuration in its log, and a truncation takes it back', async (t) => {
  const f = makeCore(1, 3, 3);
  const cfg = { voters: [0, 1, 2], learners: [3] };
  t.ok(appendTo(f, 0, 1, 0, 0, [{ index: 1, term: 1, data: enc.encode('a') }, { index: 2, term: 1, data: encodeConfig(cfg), type: EntryType.Config }], 1), 'the entries are taken');
  t.same(f.config(), cfg, 'in force once appended, committed or not');
  t.notOk(f.configCommitted(), 'not committed yet');
  t.ok(appendTo(f, 2, 2, 1, 1, [{ index: 2, term: 2, data: enc.encode('b') }], 1), 'so is the new leader\'s');
  t.same(f.config(), { voters: [0, 1, 2], learners: [] }, 'the conflicting entry replaced it: the one before is back');
});

t.test('a snapshot carries the configuration at its index, and a core starts from it', async (t) => {
  const l = settledLeader();
  l.proposeConfigChange({ type: 'addLearner', id: 3 });
  const rd = take(l);
  ack(l, rd.messages, 1);
  take(l);
  const cfg = l.config();
  // Apply what committed, then compact through it.
  l.advance({ ...l.ready(), committed: l.log.slice(l.log.appliedIndex + 1, l.log.commitIndex) });
  t.ok(l.compact(l.log.commitIndex, enc.encode('state')), 'compacted past the config entry');
  t.same(l.latestSnapshot().config, cfg, 'the snapshot holds the configuration');
  const restarted = makeCore(0, 3, 1, { initial: { hardState: { term: l.currentTerm(), vote: 0 }, snapshot: l.latestSnapshot(), entries: [] } });
  t.same(restarted.config(), cfg, 'a core started from it has it');
  const joiner = makeCore(3, 3, 4, { voters: [] });
  t.ok(joiner.step({ type: MessageType.Snapshot, from: 0, to: 3, term: l.currentTerm(), snapshot: l.latestSnapshot() }), 'a joining learner installs it');
  t.same(joiner.config(), cfg, 'and learns the configuration from it');
});

t.test('config entries and snapshot configurations cross the wire; malformed ones are refused', async (t) => {
  const cfg = { voters: [0, 2], learners: [5], context: { 5: 'e=127.0.0.1:1' } };
  const entries: Entry[] = [{ index: 4, term: 2, data: enc.encode('cmd') }, { index: 5, term: 2, data: encodeConfig(cfg), type: EntryType.Config }];
  const m: Message = { type: MessageType.Append, from: 0, to: 1, term: 2, prevLogIndex: 3, prevLogTerm: 1, entries, commit: 3, seq: 1 };
  const back = decodeFrame(unpackBatch(encodeFrame({ fromInc: 1, toInc: 1, msg: m }))[0], 3).msg as AppendRequest;
  t.same(back.entries.map((e) => [e.index, e.term, e.type ?? 0]), [[4, 2, 0], [5, 2, EntryType.Config]], 'the entry keeps its type');
  t.same(decodeConfig(back.entries[1]!.data), cfg, 'and its configuration');
  const snap: Message = { type: MessageType.Snapshot, from: 0, to: 1, term: 2, snapshot: { index: 5, term: 2, data: enc.encode('s'), config: cfg } };
  const sback = decodeFrame(unpackBatch(encodeFrame({ fromInc: 1, toInc: 1, msg: snap }))[0], 3).msg;
  t.same((sback as { snapshot: { config: unknown } }).snapshot.config, cfg, 'a snapshot keeps its configuration');
  const bad: Message = { ...m, entries: [{ index: 4, term: 2, data: enc.encode('{"v":[2,1],"l":[]}'), type: EntryType.Config }] } as Message;
  t.match(messageProblem(bad, 2 ** 31), /not sorted/, 'a config entry with an unsorted voter list is refused');
  const junk: Message = { ...m, entries: [{ index: 4, term: 2, data: enc.encode('nope'), type: EntryType.Config }] } as Message;
  t.match(messageProblem(junk, 2 ** 31), /not JSON/, 'one that is not a configuration is refused');
  const f = makeCore(1, 3, 5);
  t.notOk(f.step(junk), 'and the core drops it');
  t.same(f.config().voters, [0, 1, 2], 'its configuration unchanged');
});

t.test('storage keeps config entries and a snapshot\'s configuration, and upgrades a version 2 file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'membership-'));
  const file = join(dir, 'p.sqlite');
  const cfg = { voters: [0, 1], learners: [2] };
  const rd = (over: Partial<Ready>): Ready => ({ entries: [], lastIndex: 0, messages: [], earlyCount: 0, committed: [], readStates: [], ...over });
  const s = new SqliteStorage(file, { peer: 0 });
  s.save(rd({ entries: [{ index: 1, term: 1, data: enc.encode('a') }, { index: 2, term: 1, data: encodeConfig(cfg), type: EntryType.Config }], lastIndex: 2 }));
  s.save(rd({ snapshot: { index: 1, term: 1, data: enc.encode('st'), config: { voters: [0, 1], learners: [] } }, lastIndex: 2 }));
  s.close();
  const again = new SqliteStorage(file, { peer: 0 });
  const st = again.load();
  again.close();
  t.same(st.entries.map((e) => [e.index, e.type ?? 0]), [[2, EntryType.Config]], 'the config entry is read back as one');
  t.same(decodeConfig(st.entries[0]!.data), cfg, 'with its configuration');
  t.same(st.snapshot?.config, { voters: [0, 1], learners: [] }, 'the snapshot\'s configuration');

  // A file of version 2: no config entries, no snapshot configuration, a row per entry.
  const old = join(dir, 'old.sqlite');
  writeOldPeerFile(old, 2, 0, { term: 2, vote: 0 }, [{ index: 1, term: 2, data: enc.encode('kept') }]);
  t.same(SqliteStorage.inspectLog(old).map((e) => [e.index, e.term]), [[1, 2]], 'a version 2 file is readable as it is');
  const up = new SqliteStorage(old, { peer: 0 });
  t.same(up.load().entries.map((e) => Buffer.from(e.data).toString()), ['kept'], 'and taken over, its entries intact');
  up.save(rd({ entries: [{ index: 2, term: 2, data: encodeConfig(cfg), type: EntryType.Config }], lastIndex: 2 }));
  up.close();
  const check = new Database(old, { readonly: true });
  t.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION, `upgraded to version ${SCHEMA_VERSION}`);
  check.close();
  const final = new SqliteStorage(old, { peer: 0 });
  t.same(final.load().entries.map((e) => e.type ?? 0), [0, EntryType.Config], 'and it stores config entries from then on');
  final.close();
});
