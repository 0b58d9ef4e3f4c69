// The pure core fed messages that are well-formed (every field of the right
// type and within its range) but inconsistent with what the receiver knows,
// or malformed messages handed to step() directly. None may throw, corrupt a
// leader's progress state or stop progress; step() returns false for the
// ones it refuses (a host counts them as garbage). Cores driven by hand, as
// in raft-paper.test.ts.
import t from 'tap';
import {
  MAX_INDEX,
  MAX_TERM,
  MAX_TERM_JUMP,
  MessageType,
  RaftCore,
  RaftOptionError,
  Role,
  type AppendRequest,
  type AppendResponse,
  type Entry,
  type InitialState,
  type Message,
  type PeerId,
} from '../../lib/raft/index.js';
import { ELECTION, HEARTBEAT, ack, appendAck, leaderWithCommits as leaderOf, makeCore, ofType, take } from './core-driver.js';

const enc = new TextEncoder();

function core(id: PeerId, n: number, initial?: InitialState): RaftCore {
  return makeCore(id, n, 300, initial ? { initial } : {});
}

function ent(index: number, term: number): Entry {
  return { index, term, data: enc.encode(`e${index}`) };
}

const ackOf = (m: AppendRequest): AppendResponse => appendAck(m, m.term);
const leaderWithCommits = (count: number): RaftCore => leaderOf(core(0, 3), count);

/** A follower (peer 1 of 3) of leader 0 in `term`, holding `entries`. */
function follower(term: number, entries: Entry[] = []): RaftCore {
  const f = core(1, 3, { hardState: { term, vote: -1 }, entries });
  const heartbeat: AppendRequest = { type: MessageType.Append, from: 0, to: 1, term, prevLogIndex: entries.length, prevLogTerm: entries.at(-1)?.term ?? 0, entries: [], commit: 0, seq: 1 };
  if (!f.step(heartbeat)) throw new Error('a genuine heartbeat was refused');
  take(f);
  return f;
}

t.test('an AppendResponse beyond the leader\'s log is refused: entries that do not exist never count as replicated', async (t) => {
  const l = leaderWithCommits(2);
  const term = l.currentTerm();
  const last = l.log.lastIndex();
  for (const from of [1, 2]) {
    const bogus: AppendResponse = { type: MessageType.AppendResponse, from, to: 0, term, success: true, index: last + 5, hintTerm: 0, hintIndex: 0, seq: 0 };
    t.equal(l.step(bogus), false, `peer ${from} claiming index ${last + 5} of a log ending at ${last} is refused`);
  }
  t.equal(l.log.commitIndex, 2, 'nothing more is committed');
  // Had either claim been taken as a match, these entries (which no follower
  // has) would now count as held by a majority and commit.
  for (let k = 0; k < 10; k++) l.propose(enc.encode(`later ${k}`));
  const rd = take(l);
  take(l);
  t.equal(l.log.commitIndex, 2, 'entries no follower acknowledged stay uncommitted');
  ack(l, rd.messages, 1);
  take(l);
  t.equal(l.log.commitIndex, 12, 'a genuine acknowledgement commits them');
  t.equal(l.step({ type: MessageType.AppendResponse, from: 1, to: 0, term, success: true, index: MAX_INDEX, hintTerm: 0, hintIndex: 0 }), false, 'and MAX_INDEX is refused too');
});

t.test('a refusal pointing beyond the leader\'s log is refused; the follower is still brought up to date', async (t) => {
  const l = leaderWithCommits(2);
  const term = l.currentTerm();
  const last = l.log.lastIndex();
  const far = last + 100;
  t.equal(l.step({ type: MessageType.AppendResponse, from: 2, to: 0, term, success: false, index: far, hintTerm: 0, hintIndex: far, seq: 0 }), false, 'refused');
  t.equal(l.step({ type: MessageType.AppendResponse, from: 2, to: 0, term, success: false, index: last, hintTerm: term + 1, hintIndex: 0, seq: 0 }), false, 'a hint term beyond the answer\'s term is refused');
  // Peer 2 is at index 0: the leader probes it and, answered, sends it the log.
  for (let k = 0; k < HEARTBEAT; k++) l.tick();
  const rd = take(l);
  const toPeer2 = ofType(rd.messages, MessageType.Append).filter((m) => m.to === 2);
  t.ok(toPeer2.length > 0, 'the leader still sends to peer 2');
  t.ok(toPeer2.every((m) => m.prevLogIndex <= last), 'from within its own log');
  ack(l, rd.messages, 2);
  t.equal(l.status().commitIndex, 2);
});

t.test('an answer echoing a round the leader never sent that follower is refused: it confirms no read', async (t) => {
  const l = leaderWithCommits(1);
  for (let k = 0; k < HEARTBEAT; k++) l.tick();
  take(l);
  t.ok(l.readIndex(7));
  const rd = take(l);
  t.same(rd.readStates, [], 'the read waits for its round');
  const round = ofType(rd.messages, MessageType.Append).find((m) => m.to === 1)!;
  const forged = { ...ackOf(round), seq: (round.seq ?? 0) + 1000 };
  t.equal(l.step(forged), false, 'an echo of round ' + forged.seq + ' is refused');
  t.same(take(l).readStates, [], 'the read is not placed');
  t.ok(l.step(ackOf(round)), 'the genuine answer');
  t.same(take(l).readStates, [{ ctx: 7, index: 1 }], 'places it');
});

t.test('a SnapshotResponse beyond the leader\'s log is refused', async (t) => {
  const l = leaderWithCommits(2);
  const term = l.currentTerm();
  t.equal(l.step({ type: MessageType.SnapshotResponse, from: 2, to: 0, term, index: l.log.lastIndex() + 1 }), false);
  t.equal(l.step({ type: MessageType.SnapshotResponse, from: 2, to: 0, term, index: MAX_INDEX }), false);
  t.equal(l.status().commitIndex, 2, 'nothing moved');
  t.ok(l.step({ type: MessageType.SnapshotResponse, from: 2, to: 0, term, index: 2 }), 'within the log it is taken');
});

t.test('a follower commits no further than the AppendEntries carried, whatever its commit index says', async (t) => {
  const f = follower(1);
  t.ok(f.step({ type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [ent(1, 1), ent(2, 1)], commit: MAX_INDEX }));
  t.equal(f.status().commitIndex, 2, 'commit MAX_INDEX: committed through the last entry carried');
  t.ok(f.step({ type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 1, prevLogTerm: 1, entries: [], commit: 1000 }));
  t.equal(f.status().commitIndex, 2, 'a heartbeat anchored at 1 commits nothing beyond');
  const rd = take(f);
  t.same(rd.committed.map((e) => e.index), [1, 2], 'only entries it holds are handed to the state machine');
});

t.test('a read answer for a ctx never asked is ignored; one from a peer other than the leader asked is refused', async (t) => {
  const f = follower(2);
  t.ok(f.readIndex(3));
  take(f);
  t.equal(f.step({ type: MessageType.ReadIndexResponse, from: 2, to: 1, term: 2, ctx: 3, index: 0 }), false, 'peer 2 was not asked: refused');
  t.ok(f.step({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 2, ctx: 99, index: 5 }), 'ctx 99 was never asked: ignored');
  t.same(take(f).readStates, [], 'neither places a read');
  t.ok(f.step({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 2, ctx: 3, index: 4 }));
  t.same(take(f).readStates, [{ ctx: 3, index: 4 }], 'the leader asked places it');
  t.ok(f.step({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 2, ctx: 3, index: 1 }), 'a repeat is ignored');
  t.same(take(f).readStates, [], 'and places nothing');
  t.throws(() => f.readIndex(-1), RaftOptionError, 'a negative ctx cannot be asked (no peer would accept it)');
});

t.test('a RequestVote with a huge lastLogIndex is only a claim to an up-to-date log; a lastLogTerm beyond its term is refused', async (t) => {
  const f = core(1, 3);
  t.ok(f.step({ type: MessageType.Vote, from: 2, to: 1, term: 1, lastLogIndex: MAX_INDEX, lastLogTerm: 1, pre: false }), 'taken');
  const granted = ofType(take(f).messages, MessageType.VoteResponse);
  t.same(granted.map((m) => m.granted), [true], 'and granted: the candidate\'s log is at least as up to date as this one');
  t.equal(f.log.lastIndex(), 0, 'nothing of the claim reaches this peer\'s log');
  const g = core(1, 3);
  t.equal(g.step({ type: MessageType.Vote, from: 2, to: 1, term: 1, lastLogIndex: 3, lastLogTerm: 2, pre: false }), false, 'a log of a later term than the candidate\'s own');
  t.equal(g.currentTerm(), 0, 'changes nothing');
});

t.test('terms: beyond MAX_TERM, or more than MAX_TERM_JUMP ahead, are refused; a peer never campaigns beyond MAX_TERM', async (t) => {
  const f = follower(5);
  const append = (term: number): AppendRequest => ({ type: MessageType.Append, from: 2, to: 1, term, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0 });
  t.equal(f.step(append(Number.MAX_SAFE_INTEGER)), false, 'MAX_SAFE_INTEGER');
  t.equal(f.step(append(MAX_TERM + 1)), false, 'MAX_TERM + 1');
  t.equal(f.step(append(MAX_TERM)), false, 'MAX_TERM itself, from term 5: more than MAX_TERM_JUMP ahead');
  t.equal(f.step(append(5 + MAX_TERM_JUMP + 1)), false, 'one more than MAX_TERM_JUMP ahead');
  t.equal(f.currentTerm(), 5, 'the term is unchanged');
  t.ok(f.step(append(5 + MAX_TERM_JUMP)), 'exactly MAX_TERM_JUMP ahead is taken');
  t.equal(f.currentTerm(), 5 + MAX_TERM_JUMP);
  t.equal(f.leaderId(), 2, 'from the new term\'s leader');

  // Pushed to MAX_TERM, a peer stays a follower rather than start a term no peer accepts.
  const top = core(1, 3, { hardState: { term: MAX_TERM - 1, vote: -1 }, entries: [] });
  for (let k = 0; k < 4 * ELECTION; k++) top.tick();
  t.equal(top.currentTerm(), MAX_TERM, 'from MAX_TERM - 1 it campaigns once, to MAX_TERM');
  take(top);
  for (let k = 0; k < 10 * ELECTION; k++) top.tick();
  const rd = take(top);
  t.equal(top.currentTerm(), MAX_TERM, 'and no further');
  t.same(ofType(rd.messages, MessageType.Vote), [], 'it asks for no votes');
  t.not(top.status().role, Role.Leader);
});

t.test('a second leader in one term is refused: AppendEntries, InstallSnapshot or TimeoutNow from a peer other than the term\'s leader', async (t) => {
  const f = follower(2, [ent(1, 1)]);
  t.equal(f.leaderId(), 0);
  t.equal(f.step({ type: MessageType.Append, from: 2, to: 1, term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [ent(2, 2)], commit: 2 }), false, 'AppendEntries from peer 2');
  t.equal(f.step({ type: MessageType.Snapshot, from: 2, to: 1, term: 2, snapshot: { index: 9, term: 2, data: new Uint8Array(0) } }), false, 'InstallSnapshot from peer 2');
  t.equal(f.step({ type: MessageType.TimeoutNow, from: 2, to: 1, term: 2 }), false, 'TimeoutNow from peer 2');
  t.same([f.leaderId(), f.currentTerm(), f.log.lastIndex(), f.status().role], [0, 2, 1, Role.Follower], 'nothing changed');
  t.ok(f.step({ type: MessageType.TimeoutNow, from: 0, to: 1, term: 2 }), 'from the leader it is taken');
  t.equal(f.status().role, Role.Candidate, 'and the follower campaigns');

  const l = leaderWithCommits(1);
  const term = l.currentTerm();
  t.equal(l.step({ type: MessageType.Append, from: 1, to: 0, term, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0 }), false, 'AppendEntries to the leader of the same term');
  t.equal(l.step({ type: MessageType.TimeoutNow, from: 1, to: 0, term }), false, 'TimeoutNow to the leader');
  t.ok(l.isLeader(), 'it still leads');
});

t.test('malformed messages handed to step() directly are refused without throwing', async (t) => {
  const f = follower(1);
  const before = JSON.stringify(f.status());
  const bad: [string, unknown][] = [
    // Before validation, log.append threw on this one: a peer died of its input.
    ['entries with a gap', { type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [ent(1, 1), ent(3, 1)], commit: 0 }],
    ['entries that do not follow prevLogIndex', { type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [ent(5, 1)], commit: 0 }],
    ['entry data that is not bytes', { type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [{ index: 1, term: 1, data: 'x' }], commit: 0 }],
    ['entries that are not an array', { type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: 'x', commit: 0 }],
    ['a missing field', { type: MessageType.AppendResponse, from: 0, to: 1, term: 1, success: true }],
    ['a snapshot that is not an object', { type: MessageType.Snapshot, from: 0, to: 1, term: 1, snapshot: null }],
    ['an unknown type', { type: 77, from: 0, to: 1, term: 1 }],
    ['a fractional term', { type: MessageType.TimeoutNow, from: 0, to: 1, term: 1.5 }],
    ['to another peer', { type: MessageType.TimeoutNow, from: 0, to: 2, term: 1 }],
    ['from itself', { type: MessageType.TimeoutNow, from: 1, to: 1, term: 1 }],
    ['from no peer', { type: MessageType.TimeoutNow, from: 7, to: 1, term: 1 }],
    ['null', null],
  ];
  for (const [what, m] of bad) {
    let ok: boolean | undefined;
    t.doesNotThrow(() => {
      ok = f.step(m as Message);
    }, what);
    t.equal(ok, false, `${what}: refused`);
  }
  t.equal(JSON.stringify(f.status()), before, 'the follower is as it was');
  t.ok(f.step({ type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [ent(1, 1)], commit: 1 }), 'and takes the next genuine message');
  t.equal(f.status().commitIndex, 1);
});
