// Driving a pure RaftCore by hand in unit tests: no threads, no timers.
import { MessageType, RaftCore, Role, seededRng, type AppendRequest, type AppendResponse, type CoreOptions, type Message, type PeerId, type Ready } from '../../lib/raft/index.js';

export const ELECTION = 10;
export const HEARTBEAT = 2;
const enc = new TextEncoder();

/** A core with the tests' timing; `seed` + id seeds its election timeouts. */
export function makeCore(id: PeerId, n: number, seed: number, opts: Partial<CoreOptions> = {}): RaftCore {
  return new RaftCore({ id, peers: n, electionTicks: ELECTION, heartbeatTicks: HEARTBEAT, rng: seededRng(seed + id), ...opts });
}

/** Take the pending Ready, "persist" it and advance. */
export function take(c: RaftCore): Ready {
  const rd = c.ready();
  c.advance(rd);
  return rd;
}

export function ofType<T extends Message['type']>(msgs: Message[], type: T): Extract<Message, { type: T }>[] {
  return msgs.filter((m): m is Extract<Message, { type: T }> => m.type === type);
}

/** Make a lone core leader of the next term by feeding it granted votes (pre-votes first when it asks for them). */
export function elect(c: RaftCore): void {
  const term = c.currentTerm();
  for (let k = 0; k < 4 * ELECTION && c.currentTerm() === term; k++) c.tick();
  take(c);
  if (c.status().role === Role.PreCandidate) {
    for (const p of c.config().voters) if (p !== c.id) c.step({ type: MessageType.VoteResponse, from: p, to: c.id, term: c.currentTerm() + 1, granted: true, pre: true });
    take(c);
  }
  for (const p of c.config().voters) {
    if (c.isLeader()) break;
    if (p !== c.id) c.step({ type: MessageType.VoteResponse, from: p, to: c.id, term: c.currentTerm(), granted: true, pre: false });
  }
  if (!c.isLeader()) throw new Error('not elected');
}

/** The follower's success answer to an AppendEntries, in `term`, echoing its round. */
export function appendAck(m: AppendRequest, term: number): AppendResponse {
  return {
    type: MessageType.AppendResponse,
    from: m.to,
    to: m.from,
    term,
    success: true,
    index: m.prevLogIndex + m.entries.length,
    hintTerm: 0,
    hintIndex: 0,
    seq: m.seq ?? 0,
  };
}

/** Acknowledge, as peer `from`, everything the leader sent it; a genuine answer must never be refused. */
export function ack(leader: RaftCore, msgs: Message[], from: PeerId): void {
  for (const m of ofType(msgs, MessageType.Append)) {
    if (m.to === from && !leader.step(appendAck(m, leader.currentTerm()))) throw new Error(`a genuine answer from peer ${from} was refused`);
  }
}

/** Make `l` (peer 0 of 3) leader with `count` entries of its term committed: peer 1 keeps up, peer 2 answered only the announcement. */
export function leaderWithCommits(l: RaftCore, count: number): RaftCore {
  elect(l);
  let rd = take(l);
  ack(l, rd.messages, 1);
  ack(l, rd.messages, 2);
  for (let k = 0; k < count; k++) l.propose(enc.encode(`cmd ${k}`));
  rd = take(l);
  ack(l, rd.messages, 1);
  take(l);
  if (l.log.commitIndex !== count) throw new Error(`commit ${l.log.commitIndex}, wanted ${count}`);
  return l;
}
