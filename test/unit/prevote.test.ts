// Pre-vote (thesis 9.6), refusing proposals without a quorum, and the host's sleep between due ticks, on the pure core.
import t from 'tap';
import { MessageType, RaftCore, Role, seededRng, type Message, type PeerId, type Ready } from '../../lib/raft/index.js';

const ELECTION = 10;
const HEARTBEAT = 2;

function core(id: PeerId, peers: number, preVote: boolean, seed = 1, refuseWithoutQuorum = false): RaftCore {
  return new RaftCore({ id, peers, electionTicks: ELECTION, heartbeatTicks: HEARTBEAT, rng: seededRng(seed * 100 + id), preVote, refuseWithoutQuorum });
}

function take(c: RaftCore): Ready {
  const rd = c.ready();
  c.advance(rd);
  return rd;
}

/** Everything the core has to say right now (one Ready after another). */
function drain(c: RaftCore): Message[] {
  const out: Message[] = [];
  while (c.hasReady()) out.push(...take(c).messages);
  return out;
}

function tickUntil(c: RaftCore, done: () => boolean, limit = 1000): void {
  for (let k = 0; k < limit && !done(); k++) c.tick();
  if (!done()) throw new Error('condition never reached');
}

/**
 * An in-memory network of cores: `cut` peers neither send nor receive.
 * Each step ticks every core once and delivers every message sent.
 */
class Net {
  readonly cores: RaftCore[];
  readonly cut = new Set<PeerId>();
  sent: Message[] = [];
  constructor(n: number, preVote: boolean, seed = 1, refuseWithoutQuorum = false) {
    this.cores = Array.from({ length: n }, (_, i) => core(i, n, preVote, seed, refuseWithoutQuorum));
  }
  step(): void {
    for (const c of this.cores) c.tick();
    this.deliver();
  }
  deliver(): void {
    for (let round = 0; round < 100; round++) {
      const msgs = this.cores.flatMap((c) => drain(c));
      if (msgs.length === 0) return;
      this.sent.push(...msgs);
      for (const m of msgs) if (!this.cut.has(m.from) && !this.cut.has(m.to)) this.cores[m.to]!.step(m);
    }
  }
  leader(): RaftCore | undefined {
    return this.cores.find((c) => c.isLeader() && !this.cut.has(c.id));
  }
  run(steps: number): void {
    for (let k = 0; k < steps; k++) this.step();
  }
}

t.test('pre-vote: a peer whose timer fires asks for pre-votes for term+1 without changing its term or vote', async (t) => {
  const c = core(0, 3, true);
  tickUntil(c, () => c.status().role !== Role.Follower);
  t.equal(c.status().role, Role.PreCandidate);
  t.equal(c.currentTerm(), 0, 'the term is unchanged');
  const rd = take(c);
  t.notOk(rd.hardState, 'nothing to persist: no term, no vote');
  const asks = rd.messages.filter((m) => m.type === MessageType.Vote);
  t.same(asks.map((m) => [m.to, m.term, m.type === MessageType.Vote && m.pre]), [[1, 1, true], [2, 1, true]], 'pre-votes for term 1 to both peers');
});

t.test('pre-vote: granted only when the log is up to date and no leader is heard from; the voter changes nothing', async (t) => {
  const f = core(1, 3, true);
  const ask = (term: number, lastLogIndex: number, lastLogTerm: number): Message => ({ type: MessageType.Vote, from: 0, to: 1, term, lastLogIndex, lastLogTerm, pre: true });
  f.step(ask(1, 0, 0));
  let r = take(f).messages[0]!;
  t.match(r, { type: MessageType.VoteResponse, granted: true, pre: true, term: 1 }, 'granted, echoing the term asked about');
  t.equal(f.currentTerm(), 0, 'the voter keeps its term');
  t.equal(f.status().vote, -1, 'and records no vote');

  // A leader of term 2 is heard from: pre-votes are refused while it is.
  f.step({ type: MessageType.Append, from: 2, to: 1, term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0 });
  drain(f);
  f.step(ask(3, 5, 2));
  r = take(f).messages[0]!;
  t.match(r, { granted: false, term: 2 }, 'refused while the leader is heard from, with the voter term');
  for (let k = 0; k < ELECTION; k++) f.tick();
  drain(f);
  f.step(ask(3, 5, 2));
  t.match(take(f).messages[0]!, { granted: true, term: 3 }, 'granted once the leader has been silent for a minimum election timeout');
  t.equal(f.currentTerm(), 2, 'the voter still keeps its term');

  // A peer that just granted its vote does not help a rival pre-candidate.
  const v = core(2, 3, true);
  v.step({ type: MessageType.Vote, from: 0, to: 2, term: 1, lastLogIndex: 0, lastLogTerm: 0, pre: false });
  t.match(take(v).messages[0]!, { type: MessageType.VoteResponse, granted: true }, 'votes for peer 0 in term 1');
  v.step({ type: MessageType.Vote, from: 1, to: 2, term: 2, lastLogIndex: 0, lastLogTerm: 0, pre: true });
  t.match(take(v).messages[0]!, { granted: false, term: 1 }, 'refuses peer 1 a pre-vote right after voting');
  for (let k = 0; k < ELECTION; k++) v.tick();
  drain(v);
  v.step({ type: MessageType.Vote, from: 1, to: 2, term: 2, lastLogIndex: 0, lastLogTerm: 0, pre: true });
  t.match(take(v).messages[0]!, { granted: true, term: 2 }, 'but grants it once a minimum election timeout has passed since the vote');
});

t.test('pre-vote: after a majority would vote, the real election starts; the new leader announces itself to the peers that answered', async (t) => {
  const c = core(0, 5, true);
  tickUntil(c, () => c.status().role === Role.PreCandidate);
  drain(c);
  c.step({ type: MessageType.VoteResponse, from: 1, to: 0, term: 1, granted: true, pre: true });
  t.equal(c.status().role, Role.PreCandidate, 'two of five is not a majority');
  c.step({ type: MessageType.VoteResponse, from: 2, to: 0, term: 1, granted: true, pre: true });
  t.equal(c.status().role, Role.Candidate, 'three of five: the real election starts');
  t.equal(c.currentTerm(), 1, 'in term 1');
  const rd = take(c);
  t.same(rd.hardState, { term: 1, vote: 0 }, 'term and self-vote persisted');
  const votes = rd.messages.filter((m) => m.type === MessageType.Vote);
  t.same(votes.map((m) => m.to).sort(), [1, 2], 'real RequestVote only to the peers that answered the pre-vote');
  t.ok(votes.every((m) => m.type === MessageType.Vote && !m.pre && m.term === 1), 'real votes of term 1');
  c.step({ type: MessageType.VoteResponse, from: 1, to: 0, term: 1, granted: true, pre: false });
  c.step({ type: MessageType.VoteResponse, from: 2, to: 0, term: 1, granted: true, pre: false });
  t.ok(c.isLeader(), 'leader with three votes');
  const announce = take(c).messages.filter((m) => m.type === MessageType.Append);
  t.same(announce.map((m) => m.to).sort(), [1, 2], 'leadership is announced at once to the peers that answered');
  c.propose(new TextEncoder().encode('x'));
  const appends = take(c).messages.filter((m) => m.type === MessageType.Append);
  t.same(appends.map((m) => m.to), [], 'the silent peers get nothing until the heartbeat round (the others are probing)');
  const rounds: number[][] = [];
  for (let r = 0; r < 3; r++) {
    for (let k = 0; k < HEARTBEAT; k++) c.tick();
    rounds.push(take(c).messages.filter((m) => m.type === MessageType.Append).map((m) => m.to).sort());
  }
  t.same(rounds, [[1, 2], [1, 2], [1, 2, 3, 4]], 'heartbeat rounds reach the silent peers every third round');
});

t.test('pre-vote: a pre-vote answer that arrives after the real election started brings its own RequestVote; silent peers are never asked', async (t) => {
  const c = core(0, 5, true);
  tickUntil(c, () => c.status().role === Role.PreCandidate);
  t.same(drain(c).filter((m) => m.type === MessageType.Vote).map((m) => m.to).sort(), [1, 2, 3, 4], 'pre-votes go to every peer');
  c.step({ type: MessageType.VoteResponse, from: 1, to: 0, term: 1, granted: true, pre: true });
  c.step({ type: MessageType.VoteResponse, from: 2, to: 0, term: 1, granted: true, pre: true });
  t.equal(c.status().role, Role.Candidate);
  t.same(drain(c).filter((m) => m.type === MessageType.Vote).map((m) => m.to).sort(), [1, 2]);
  c.step({ type: MessageType.VoteResponse, from: 3, to: 0, term: 1, granted: true, pre: true });
  const late = drain(c).filter((m) => m.type === MessageType.Vote);
  t.same(late.map((m) => [m.to, m.term, m.type === MessageType.Vote && m.pre]), [[3, 1, false]], 'the late answerer is asked for its real vote');
  c.step({ type: MessageType.VoteResponse, from: 3, to: 0, term: 1, granted: true, pre: true });
  t.same(drain(c), [], 'a repeated answer asks nothing more');
  c.step({ type: MessageType.VoteResponse, from: 3, to: 0, term: 1, granted: true, pre: false });
  t.equal(c.status().role, Role.Candidate, 'two votes of five are not enough');
  c.step({ type: MessageType.VoteResponse, from: 1, to: 0, term: 1, granted: true, pre: false });
  t.ok(c.isLeader(), 'leader with the late answerer counted');
  t.same(take(c).messages.filter((m) => m.type === MessageType.Append).map((m) => m.to).sort(), [1, 2, 3], 'announced to every peer that answered, not to the silent one');
});

t.test('pre-vote: a refusal from a higher term sends the pre-candidate back to follower in that term', async (t) => {
  const c = core(0, 3, true);
  tickUntil(c, () => c.status().role === Role.PreCandidate);
  drain(c);
  c.step({ type: MessageType.VoteResponse, from: 1, to: 0, term: 4, granted: false, pre: true });
  t.equal(c.status().role, Role.Follower);
  t.equal(c.currentTerm(), 4);
});

t.test('pre-vote: a partitioned peer does not inflate its term and does not depose the leader when it returns', async (t) => {
  for (const preVote of [true, false]) {
    const net = new Net(3, preVote, 3);
    net.run(200);
    const leader = net.leader();
    t.ok(leader, 'a leader is elected');
    if (!leader) return;
    const term = leader.currentTerm();
    const lone = (leader.id + 1) % 3;
    net.cut.add(lone);
    net.run(20 * ELECTION);
    const loneTerm = net.cores[lone]!.currentTerm();
    net.cut.delete(lone);
    net.run(10 * ELECTION);
    const after = net.leader();
    if (preVote) {
      t.equal(loneTerm, term, 'with pre-vote the cut-off peer stays in the leader term');
      t.equal(after?.id, leader.id, 'and the leader keeps its place after the partition heals');
      t.equal(after?.currentTerm(), term, 'in the same term');
    } else {
      t.ok(loneTerm > term + 5, `without pre-vote the cut-off peer's term climbs (${term} -> ${loneTerm})`);
      t.ok((after?.currentTerm() ?? 0) > term, 'and its return forces a new term');
    }
  }
});

t.test('ticksUntilDue: the ticks before the due one change nothing, the due one acts', async (t) => {
  let checked = 0;
  let acted = 0;
  for (const preVote of [false, true]) {
    const net = new Net(3, preVote, 5);
    for (let step = 0; step < 600; step++) {
      // Now and then cut a peer off for a while, so elections and silences happen too.
      if (step % 150 === 40) net.cut.add(step % 3);
      if (step % 150 === 110) net.cut.clear();
      const c = net.cores[step % 3]!;
      net.deliver();
      const due = c.ticksUntilDue();
      const before = JSON.stringify(c.status());
      for (let k = 1; k < due; k++) {
        c.tick();
        if (c.hasReady() || JSON.stringify(c.status()) !== before) {
          t.fail(`peer ${c.id} acted on tick ${k} of ${due} (${before} -> ${JSON.stringify(c.status())})`);
          return;
        }
        checked++;
      }
      c.tick();
      if (c.hasReady() || JSON.stringify(c.status()) !== before) acted++;
      net.step();
    }
  }
  t.ok(checked > 1000, `${checked} idle ticks checked`);
  t.ok(acted > 50, `the due tick acted ${acted} times`);
});

t.test('refuseWithoutQuorum: a leader cut off from every follower refuses proposals after a minimum election timeout, not before, and keeps its role', async (t) => {
  for (const refuse of [true, false]) {
    const net = new Net(3, true, 7, refuse);
    net.run(200);
    const leader = net.leader();
    t.ok(leader, 'a leader is elected');
    if (!leader) return;
    const term = leader.currentTerm();
    const others = [0, 1, 2].filter((p) => p !== leader.id);
    for (const p of others) net.cut.add(p);
    // The leader last heard from them at most a heartbeat interval ago.
    net.run(ELECTION - HEARTBEAT - 1);
    t.ok(leader.propose(new Uint8Array([1])), `accepts ${ELECTION - HEARTBEAT - 1} ticks into the silence`);
    net.run(HEARTBEAT + 2);
    t.ok(leader.isLeader(), 'keeps its role either way');
    if (refuse) {
      t.notOk(leader.propose(new Uint8Array([2])), 'refuses once a minimum election timeout has passed without a majority');
      t.equal(leader.currentTerm(), term, 'in its term');
      net.cut.clear();
      net.run(5 * ELECTION);
      t.ok(net.leader()?.propose(new Uint8Array([3])), 'once the partition heals, the leader accepts again');
    } else {
      t.ok(leader.propose(new Uint8Array([2])), 'without the option it still accepts what it cannot commit');
    }
  }
});

t.test('refuseWithoutQuorum: a leader that hears from a majority keeps accepting', async (t) => {
  const net = new Net(5, true, 9, true);
  net.run(200);
  const leader = net.leader();
  t.ok(leader, 'a leader is elected');
  if (!leader) return;
  const term = leader.currentTerm();
  net.cut.add((leader.id + 1) % 5).add((leader.id + 2) % 5);
  net.run(20 * ELECTION);
  t.ok(leader.isLeader(), 'two of five cut off: the leader keeps its place');
  t.equal(leader.currentTerm(), term, 'in the same term');
  t.ok(leader.propose(new Uint8Array([1])), 'and accepts commands');
});
