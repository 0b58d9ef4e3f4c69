// Unit tests of the core's ReadIndex reads (Raft thesis 6.4), lease reads
// (6.4.1) and leadership transfer (3.10), one tap test per rule, cores driven
// by hand: no threads, no timers.
import t from 'tap';
import {
  MessageType,
  RaftCore,
  RaftOptionError,
  Role,
  type CoreOptions,
  type Entry,
  type Message,
  type PeerId,
} from '../../lib/raft/index.js';
import { ELECTION, HEARTBEAT, ack, appendAck, elect, leaderWithCommits as leaderOf, makeCore, ofType, take } from './core-driver.js';

const enc = new TextEncoder();

function core(id: PeerId, n: number, opts: Partial<CoreOptions> = {}): RaftCore {
  return makeCore(id, n, 100, opts);
}

/** A leader of a 3-peer group that has committed `count` entries of its own term. */
function leaderWithCommits(count: number, opts: Partial<CoreOptions> = {}): RaftCore {
  return leaderOf(core(0, 3, opts), count);
}

t.test('6.4: a leader places a read at its commit index only once a majority has answered a round begun after the read arrived', async (t) => {
  const l = leaderWithCommits(2);
  // Heartbeats already out belong to an earlier round.
  for (let k = 0; k < HEARTBEAT; k++) l.tick();
  const before = take(l).messages;
  t.ok(l.readIndex(7), 'the leader takes the read');
  const rd = take(l);
  t.same(rd.readStates, [], 'not placed before any answer');
  const round = ofType(rd.messages, MessageType.Append);
  t.equal(round.length, 2, 'a heartbeat to each follower starts the round');
  t.equal(rd.entries.length, 0, 'no entry is written for a read');
  const seq = round[0]!.seq!;
  t.ok(seq > (ofType(before, MessageType.Append)[0]?.seq ?? 0), 'the round is newer than anything sent before');
  // An answer to a message sent before the read proves nothing about after it.
  ack(l, before, 1);
  t.same(take(l).readStates, [], 'an answer to an older round does not place it');
  // A write after the read: its AppendEntries carries the read's round, so its answer completes the round.
  l.propose(enc.encode('later'));
  const w = take(l);
  t.same(w.readStates, [], 'still not placed');
  t.ok(ofType(w.messages, MessageType.Append).every((m) => (m.seq ?? 0) >= seq), 'the write carries the round');
  ack(l, w.messages, 1);
  const placed = take(l);
  t.equal(l.log.commitIndex, 3, 'the later write committed');
  t.same(placed.readStates, [{ ctx: 7, index: 2 }], 'placed at the commit index when the read arrived, not the later one');
});

t.test('6.4: reads arriving before the round has gone out share it; one round answers them all', async (t) => {
  const l = leaderWithCommits(1);
  l.readIndex(1);
  l.readIndex(2);
  const rd = take(l);
  const round = ofType(rd.messages, MessageType.Append);
  t.equal(round.length, 2, 'one heartbeat per follower for both reads');
  ack(l, round, 2);
  t.same(take(l).readStates, [{ ctx: 1, index: 1 }, { ctx: 2, index: 1 }], 'both placed, in order');
});

t.test('6.4: a new leader that has committed nothing of its term appends an empty entry and places reads once it commits', async (t) => {
  const l = core(0, 3, { initial: { hardState: { term: 1, vote: -1 }, entries: [{ index: 1, term: 1, data: enc.encode('old') }] } });
  elect(l);
  const announce = take(l);
  // Peer 1 holds the old entry.
  for (const m of ofType(announce.messages, MessageType.Append).filter((m) => m.to === 1)) l.step(appendAck(m, l.currentTerm()));
  t.equal(l.log.commitIndex, 0, 'the old entry is not committed by counting replicas');
  t.ok(l.readIndex(5));
  const rd = take(l);
  t.equal(rd.entries.length, 1, 'an entry is appended');
  t.equal(rd.entries[0]!.data.length, 0, 'an empty one (hosts do not apply it)');
  t.equal(rd.entries[0]!.term, l.currentTerm(), 'of the new term');
  t.same(rd.readStates, [], 'the read waits');
  ack(l, rd.messages, 1);
  const next = take(l);
  t.equal(l.log.commitIndex, 2, 'the empty entry commits (and the old one with it)');
  const round = ofType(next.messages, MessageType.Append);
  t.ok(round.length > 0, 'then the read starts its round');
  ack(l, round, 2);
  t.same(take(l).readStates, [{ ctx: 5, index: 2 }], 'placed at the commit index that includes the earlier term');
  t.ok(l.readIndex(6));
  t.equal(take(l).entries.length, 0, 'a later read appends nothing');
});

t.test('6.4: a leader that steps down before its round completes refuses the read, its own and a follower\'s', async (t) => {
  const l = leaderWithCommits(1);
  l.readIndex(1);
  l.step({ type: MessageType.ReadIndex, from: 2, to: 0, term: l.currentTerm(), ctx: 44, lease: false });
  take(l);
  l.step({ type: MessageType.Vote, from: 1, to: 0, term: l.currentTerm() + 1, lastLogIndex: 9, lastLogTerm: l.currentTerm(), pre: false });
  const rd = take(l);
  t.equal(l.status().role, Role.Follower, 'it stepped down');
  t.same(rd.readStates, [{ ctx: 1, index: -1 }], 'its own read is refused');
  const resp = ofType(rd.messages, MessageType.ReadIndexResponse);
  t.same(resp.map((m) => [m.to, m.ctx, m.index]), [[2, 44, -1]], "the follower's read is refused too");
});

t.test('6.4: a follower asks its leader, whose answer places the read; without a leader there is nothing to ask', async (t) => {
  const f = core(1, 3);
  t.equal(f.readIndex(3), false, 'no leader known: refused at once');
  f.step({ type: MessageType.Append, from: 0, to: 1, term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0, seq: 1 });
  take(f);
  t.ok(f.readIndex(3), 'with a leader the read is asked for');
  t.ok(f.readIndex(4));
  const ask = ofType(take(f).messages, MessageType.ReadIndex);
  t.same(ask.map((m) => [m.to, m.ctx, m.lease]), [[0, 3, false], [0, 4, false]], 'one ReadIndex to the leader for each');
  f.step({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 2, ctx: 3, index: 12 });
  t.same(take(f).readStates, [{ ctx: 3, index: 12 }], 'the leader\'s index places it');
  // Valid even if this follower has moved to a later term since.
  f.step({ type: MessageType.Vote, from: 2, to: 1, term: 5, lastLogIndex: 0, lastLogTerm: 0, pre: false });
  take(f);
  f.step({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 2, ctx: 4, index: 13 });
  t.same(take(f).readStates, [{ ctx: 4, index: 13 }], 'an answer from an older term still places the read');
});

t.test('6.4: a leader answers a follower\'s ReadIndex after its round; a peer that does not lead refuses it', async (t) => {
  const l = leaderWithCommits(2);
  l.step({ type: MessageType.ReadIndex, from: 2, to: 0, term: l.currentTerm(), ctx: 9, lease: false });
  const rd = take(l);
  t.same(ofType(rd.messages, MessageType.ReadIndexResponse), [], 'no answer before the round');
  ack(l, rd.messages, 1);
  const ans = ofType(take(l).messages, MessageType.ReadIndexResponse);
  t.same(ans.map((m) => [m.to, m.ctx, m.index]), [[2, 9, 2]], 'the commit index, to the asking follower');
  const f = core(1, 3);
  f.step({ type: MessageType.ReadIndex, from: 2, to: 1, term: 0, ctx: 1, lease: false });
  t.same(ofType(take(f).messages, MessageType.ReadIndexResponse).map((m) => m.index), [-1], 'a follower refuses');
});

t.test('6.4: a leader alone in its group places a read at once', async (t) => {
  const l = core(0, 1);
  elect(l);
  take(l);
  l.propose(enc.encode('x'));
  take(l);
  take(l);
  l.readIndex(1);
  t.same(take(l).readStates, [{ ctx: 1, index: 1 }]);
});

t.test('6.4: a leader cut off from its majority for an election timeout refuses reads (refuseWithoutQuorum)', async (t) => {
  const l = leaderWithCommits(1, { refuseWithoutQuorum: true });
  for (let k = 0; k < ELECTION; k++) l.tick();
  take(l);
  l.readIndex(2);
  t.same(take(l).readStates, [{ ctx: 2, index: -1 }], 'refused at once');
});

t.test('6.4.1: a leader holding a lease places a lease read without a round, until the lease runs out', async (t) => {
  const l = leaderWithCommits(1, { preVote: true, leaseReads: true, leaseMarginTicks: 1 });
  // Renew the lease: a heartbeat round answered by a majority.
  for (let k = 0; k < HEARTBEAT; k++) l.tick();
  const hb = take(l);
  ack(l, hb.messages, 1);
  take(l);
  l.readIndex(1, true);
  const rd = take(l);
  t.same(rd.readStates, [{ ctx: 1, index: 1 }], 'placed at once');
  t.same(ofType(rd.messages, MessageType.Append), [], 'no round was needed');
  l.readIndex(2, false);
  t.same(take(l).readStates, [], 'a linearizable read still waits for its round');
  // electionTicks - 2 - margin ticks after the acknowledged round began, the lease is gone.
  for (let k = 0; k < ELECTION - 2 - 1 + 1; k++) l.tick();
  take(l);
  l.readIndex(3, true);
  const late = take(l);
  t.same(late.readStates.filter((r) => r.ctx === 3), [], 'past the lease, a lease read waits for a round');
});

t.test('6.4.1: without pre-vote there is no lease: a lease read is a ReadIndex read', async (t) => {
  const l = leaderWithCommits(1, { preVote: false, leaseReads: true });
  for (let k = 0; k < HEARTBEAT; k++) l.tick();
  ack(l, take(l).messages, 1);
  take(l);
  l.readIndex(1, true);
  t.same(take(l).readStates, [], 'it waits for a round');
});

t.test('6.4.1: with leases on, a peer just started refuses pre-votes for a minimum election timeout', async (t) => {
  const ask = (c: RaftCore) => {
    c.step({ type: MessageType.Vote, from: 1, to: 0, term: 1, lastLogIndex: 0, lastLogTerm: 0, pre: true });
    return ofType(take(c).messages, MessageType.VoteResponse)[0]!.granted;
  };
  t.equal(ask(core(0, 3, { preVote: true, leaseReads: true })), false, 'refused right after start');
  t.equal(ask(core(0, 3, { preVote: true, leaseReads: false })), true, 'granted without leases');
  const c = core(0, 3, { preVote: true, leaseReads: true });
  for (let k = 0; k < ELECTION - 1; k++) c.tick();
  take(c);
  t.equal(ask(c), false, 'still refused one tick before the timeout');
  c.tick();
  take(c);
  t.equal(ask(c), true, 'granted once a minimum election timeout has passed');
});

t.test('3.10: a caught-up target gets TimeoutNow at once; proposals are refused while the transfer runs', async (t) => {
  const l = leaderWithCommits(2, { preVote: true, leaseReads: true });
  // Peer 1 acknowledged everything.
  t.equal(l.transferLeadership(1), undefined, 'the transfer starts');
  const rd = take(l);
  t.same(ofType(rd.messages, MessageType.TimeoutNow).map((m) => m.to), [1], 'TimeoutNow to the target');
  t.equal(l.status().transferee, 1, 'the status shows it');
  t.equal(l.propose(enc.encode('x')), undefined, 'a proposal is refused meanwhile');
  // Its lease is gone for the rest of the term: a TimeoutNow may be in flight.
  for (let k = 0; k < HEARTBEAT; k++) l.tick();
  ack(l, take(l).messages, 2);
  take(l);
  l.readIndex(3, true);
  t.same(take(l).readStates, [], 'no lease read without a round after a transfer began');
});

t.test('3.10: a lagging target is brought up to date first; TimeoutNow follows the answer that shows it caught up', async (t) => {
  const l = leaderWithCommits(2);
  // Peer 2 never answered: it is behind.
  l.transferLeadership(2);
  let rd = take(l);
  t.same(ofType(rd.messages, MessageType.TimeoutNow), [], 'no TimeoutNow while it lags');
  // Answer for everything the leader holds.
  l.step({ type: MessageType.AppendResponse, from: 2, to: 0, term: l.currentTerm(), success: true, index: l.log.lastIndex(), hintTerm: 0, hintIndex: 0, seq: 0 });
  rd = take(l);
  t.same(ofType(rd.messages, MessageType.TimeoutNow).map((m) => m.to), [2], 'TimeoutNow once it holds the whole log');
});

t.test('3.10: TimeoutNow makes its target campaign at once in the next term, skipping pre-vote, asking every peer', async (t) => {
  const f = core(1, 3, { preVote: true });
  f.step({ type: MessageType.Append, from: 0, to: 1, term: 3, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0, seq: 1 });
  take(f);
  f.step({ type: MessageType.TimeoutNow, from: 0, to: 1, term: 3 });
  const rd = take(f);
  t.equal(f.status().role, Role.Candidate, 'a candidate, not a pre-candidate');
  t.equal(f.currentTerm(), 4, 'in the next term');
  const votes = ofType(rd.messages, MessageType.Vote);
  t.same(votes.map((v) => [v.to, v.pre]).sort(), [[0, false], [2, false]], 'real RequestVotes to every other peer');
  const stale = core(2, 3);
  stale.step({ type: MessageType.Append, from: 0, to: 2, term: 5, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0, seq: 1 });
  take(stale);
  stale.step({ type: MessageType.TimeoutNow, from: 0, to: 2, term: 3 });
  take(stale);
  t.equal(stale.status().role, Role.Follower, 'a TimeoutNow from an older term is ignored');
});

t.test('3.10: a transfer that does not complete within an election timeout is given up, and the leader carries on', async (t) => {
  const l = leaderWithCommits(1);
  l.transferLeadership(2);
  take(l);
  for (let k = 0; k < ELECTION - 1; k++) l.tick();
  take(l);
  t.equal(l.status().transferee, 2, 'still transferring one tick before the timeout');
  l.tick();
  take(l);
  t.equal(l.status().transferee, -1, 'given up');
  t.ok(l.isLeader(), 'still the leader');
  t.ok(l.propose(enc.encode('y')), 'proposals are accepted again');
});

t.test('3.10: once TimeoutNow is sent the target has a whole election timeout to win; proposals stay refused meanwhile', async (t) => {
  const l = leaderWithCommits(2);
  l.transferLeadership(2);
  take(l);
  // Peer 2 catches up just before the transfer would be given up.
  for (let k = 0; k < ELECTION - 2; k++) l.tick();
  take(l);
  l.step({ type: MessageType.AppendResponse, from: 2, to: 0, term: l.currentTerm(), success: true, index: l.log.lastIndex(), hintTerm: 0, hintIndex: 0, seq: 0 });
  t.same(ofType(take(l).messages, MessageType.TimeoutNow).map((m) => m.to), [2], 'TimeoutNow goes out');
  for (let k = 0; k < ELECTION - 1; k++) l.tick();
  take(l);
  t.equal(l.status().transferee, 2, 'an election timeout after the start, the transfer still waits for the target');
  t.equal(l.propose(enc.encode('late')), undefined, 'and refuses proposals the target would not have');
  l.tick();
  take(l);
  t.equal(l.status().transferee, -1, 'an election timeout after the TimeoutNow it is given up');
});

t.test('3.10: only a leader transfers; the target must be a peer', async (t) => {
  const f = core(1, 3);
  t.equal(f.transferLeadership(0), 'not-leader');
  const l = leaderWithCommits(1);
  t.throws(() => l.transferLeadership(3), RaftOptionError, 'a peer out of range');
  t.throws(() => l.transferLeadership(-1), RaftOptionError);
  t.equal(l.transferLeadership(0), undefined, 'to itself: nothing to do');
  t.equal(l.status().transferee, -1);
});

/** Three cores wired by a FIFO queue, everything persisted at once. */
function trio(opts: Partial<CoreOptions> = {}) {
  const cores = [0, 1, 2].map((id) => core(id, 3, opts));
  const queue: Message[] = [];
  const applied: Entry[][] = [[], [], []];
  const run = (steps = 200) => {
    for (let k = 0; k < steps; k++) {
      for (const c of cores) {
        while (c.hasReady()) {
          const rd = c.ready();
          queue.push(...rd.messages);
          applied[c.id]!.push(...rd.committed);
          c.advance(rd);
        }
      }
      const m = queue.shift();
      if (!m) return;
      cores[m.to]!.step(m);
    }
  };
  return { cores, run, applied };
}

t.test('3.10: end to end, the target becomes leader of the next term, the old leader follows it, no term has two leaders', async (t) => {
  const { cores, run } = trio({ preVote: true });
  elect(cores[0]!);
  run();
  cores[0]!.propose(enc.encode('a'));
  run();
  const term = cores[0]!.currentTerm();
  cores[0]!.transferLeadership(2);
  run();
  t.ok(cores[2]!.isLeader(), 'peer 2 leads');
  t.equal(cores[2]!.currentTerm(), term + 1, 'in the next term');
  t.equal(cores.filter((c) => c.isLeader()).length, 1, 'one leader');
  t.equal(cores[0]!.status().leader, 2, 'the old leader follows it');
  cores[2]!.propose(enc.encode('b'));
  run();
  t.equal(cores[2]!.log.commitIndex, 2, 'and the group commits under it');
  t.same(cores.map((c) => c.log.lastIndex()), [2, 2, 2], 'every peer holds the entry');
});
