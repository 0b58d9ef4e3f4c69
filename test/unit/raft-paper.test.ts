// Direct unit tests of the pure Raft core (lib/raft), one tap test per rule
// of the extended Raft paper (Figure 2 and the section that states it). No
// worker threads, no timers: cores are driven by hand or by the small
// in-memory network below, so every run is deterministic.
import t from 'tap';
import {
  COMMIT_NOTICE_TICKS,
  MessageType,
  RaftCore,
  RaftOptionError,
  Role,
  randInt,
  seededRng,
  type AppendRequest,
  type AppendResponse,
  type CoreOptions,
  type Entry,
  type HardState,
  type InitialState,
  type Message,
  type PeerId,
  type Ready,
  type Rng,
  type VoteRequest,
  type VoteResponse,
} from '../../lib/raft/index.js';

/** The type of a tap subtest's `t`. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const ELECTION = 10;
const HEARTBEAT = 2;

// ---- small builders ---------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder();

function ent(index: number, term: number, tag?: string): Entry {
  return { index, term, data: enc.encode(tag ?? `e${index}t${term}`) };
}

/** A log whose entry k+1 has terms[k]. */
function logOf(...terms: number[]): Entry[] {
  return terms.map((term, k) => ent(k + 1, term));
}

function termsOf(core: RaftCore): number[] {
  const out: number[] = [];
  for (let i = 1; i <= core.log.lastIndex(); i++) out.push(core.log.term(i)!);
  return out;
}

function newCore(
  id: PeerId,
  peers: number,
  opts: { initial?: InitialState; seed?: number; rng?: Rng; electionTicks?: number; heartbeatTicks?: number } = {},
): RaftCore {
  return new RaftCore({
    id,
    peers,
    electionTicks: opts.electionTicks ?? ELECTION,
    heartbeatTicks: opts.heartbeatTicks ?? HEARTBEAT,
    rng: opts.rng ?? seededRng(opts.seed ?? 1000 + id),
    initial: opts.initial,
  });
}

function initial(term: number, vote: PeerId, entries: Entry[] = []): InitialState {
  return { hardState: { term, vote }, entries };
}

/** Take the pending Ready, "persist" it (no-op) and advance. */
function take(core: RaftCore): Ready {
  const rd = core.ready();
  core.advance(rd);
  return rd;
}

function ofType<T extends Message['type']>(msgs: Message[], type: T): Extract<Message, { type: T }>[] {
  return msgs.filter((m): m is Extract<Message, { type: T }> => m.type === type);
}

const voteReq = (from: PeerId, to: PeerId, term: number, lastLogIndex = 0, lastLogTerm = 0): VoteRequest => ({
  type: MessageType.Vote,
  from,
  to,
  term,
  lastLogIndex,
  lastLogTerm,
  pre: false,
});

const voteResp = (from: PeerId, to: PeerId, term: number, granted: boolean): VoteResponse => ({
  type: MessageType.VoteResponse,
  from,
  to,
  term,
  granted,
  pre: false,
});

const appendReq = (
  from: PeerId,
  to: PeerId,
  term: number,
  prevLogIndex: number,
  prevLogTerm: number,
  entries: Entry[] = [],
  commit = 0,
): AppendRequest => ({ type: MessageType.Append, from, to, term, prevLogIndex, prevLogTerm, entries, commit });

const appendResp = (from: PeerId, to: PeerId, term: number, success: boolean, index: number): AppendResponse => ({
  type: MessageType.AppendResponse,
  from,
  to,
  term,
  success,
  index,
  hintTerm: 0,
  hintIndex: 0,
});

/** Tick `core` until `pred` holds; returns the number of ticks, or -1 after `max` ticks. */
function ticksUntil(core: RaftCore, pred: () => boolean, max: number): number {
  for (let k = 1; k <= max; k++) {
    core.tick();
    if (pred()) return k;
  }
  return -1;
}

/** Tick a lone core until it starts an election; drain that Ready. */
function makeCandidate(core: RaftCore): Ready {
  const term = core.currentTerm();
  if (ticksUntil(core, () => core.currentTerm() > term, 2 * ELECTION) < 0) throw new Error('no election');
  return take(core);
}

/** Make a lone core leader by feeding it granted votes from the lowest peers. */
function makeLeader(core: RaftCore): Ready {
  makeCandidate(core);
  for (const p of core.config().voters) {
    if (core.isLeader()) break;
    if (p !== core.id) core.step(voteResp(p, core.id, core.currentTerm(), true));
  }
  if (!core.isLeader()) throw new Error('not elected');
  return take(core);
}

// ---- in-memory network --------------------------------------------------------

interface Stored {
  hardState: HardState;
  entries: Entry[];
}

interface ClusterOptions {
  seed?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  initial?: (id: PeerId) => InitialState | undefined;
}

/**
 * Drives N cores in memory. flush(id) takes a Ready, persists it into a plain
 * in-memory "disk" (only used to restart a core), queues its messages and
 * advances. Messages are delivered from a FIFO queue; a message is lost when
 * its destination is down, its link is cut, or dropIf says so.
 */
class Cluster {
  readonly cores: RaftCore[] = [];
  readonly disk: Stored[] = [];
  /** Every committed entry handed out to each peer's state machine, in order. */
  readonly applied: Entry[][] = [];
  /** Every message ever sent (before any loss), in send order. */
  readonly sent: Message[] = [];
  queue: Message[] = [];
  readonly down = new Set<PeerId>();
  readonly cut = new Set<string>();
  dropIf: ((m: Message) => boolean) | undefined;
  /** Called after every tick and every delivered message. */
  observe: (() => void) | undefined;
  /** Contract violations seen while flushing (committed out of order, ...). */
  readonly errors: string[] = [];
  private restarts = 0;

  constructor(readonly n: number, private readonly opts: ClusterOptions = {}) {
    for (let id = 0; id < n; id++) {
      const init = opts.initial?.(id);
      this.disk.push({
        hardState: init ? { ...init.hardState } : { term: 0, vote: -1 },
        entries: init ? init.entries.slice() : [],
      });
      this.applied.push([]);
      this.cores.push(this.build(id, init));
    }
  }

  private build(id: PeerId, init: InitialState | undefined): RaftCore {
    const o: CoreOptions = {
      id,
      peers: this.n,
      electionTicks: this.opts.electionTicks ?? ELECTION,
      heartbeatTicks: this.opts.heartbeatTicks ?? HEARTBEAT,
      rng: seededRng((this.opts.seed ?? 1) * 7919 + id * 104729 + this.restarts * 15485863),
    };
    if (init) o.initial = init;
    return new RaftCore(o);
  }

  flush(id: PeerId): void {
    const core = this.cores[id]!;
    for (let rounds = 0; core.hasReady(); rounds++) {
      // A core that keeps saying it has work it never hands out would hang the test.
      if (rounds >= 100) throw new Error(`peer ${id}: hasReady() still true after ${rounds} Readies`);
      const rd = core.ready();
      const d = this.disk[id]!;
      if (rd.hardState) d.hardState = { ...rd.hardState };
      if (rd.entries.length > 0) {
        d.entries.length = rd.entries[0]!.index - 1;
        d.entries.push(...rd.entries);
      }
      for (const m of rd.messages) {
        this.sent.push(m);
        this.queue.push(m);
      }
      const ap = this.applied[id]!;
      for (const e of rd.committed) {
        if (e.index !== ap.length + 1) this.errors.push(`peer ${id} handed out index ${e.index} after ${ap.length}`);
        ap.push(e);
      }
      core.advance(rd);
    }
  }

  flushAll(): void {
    for (let id = 0; id < this.n; id++) if (!this.down.has(id)) this.flush(id);
  }

  lost(m: Message): boolean {
    return (
      this.down.has(m.to) ||
      this.down.has(m.from) ||
      this.cut.has(`${m.from}>${m.to}`) ||
      (this.dropIf !== undefined && this.dropIf(m))
    );
  }

  deliver(m: Message): void {
    if (this.lost(m)) return;
    this.cores[m.to]!.step(m);
    this.observe?.();
  }

  /** Flush and deliver until nothing is in flight. */
  stabilize(maxRounds = 1000): void {
    for (let r = 0; r < maxRounds; r++) {
      this.flushAll();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.deliver(m);
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: PeerId): void {
    if (this.down.has(id)) return;
    this.cores[id]!.tick();
    this.observe?.();
  }

  /** Tick only `id` until it starts a new election, then stabilize. */
  campaign(id: PeerId): void {
    const core = this.cores[id]!;
    const term = core.currentTerm();
    for (let k = 0; k < 2 * ELECTION && core.currentTerm() === term; k++) this.tick(id);
    if (core.currentTerm() === term) throw new Error(`peer ${id} did not campaign`);
    this.stabilize();
  }

  /** Cut every link to and from `id` (both directions). */
  isolate(id: PeerId): void {
    for (let p = 0; p < this.n; p++) {
      if (p === id) continue;
      this.cut.add(`${id}>${p}`);
      this.cut.add(`${p}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  crash(id: PeerId): void {
    this.down.add(id);
  }

  /** Rebuild a core from what it persisted; its state machine starts over. */
  restart(id: PeerId): void {
    this.restarts++;
    const d = this.disk[id]!;
    this.cores[id] = this.build(id, { hardState: { ...d.hardState }, entries: d.entries.slice() });
    this.applied[id] = [];
    this.down.delete(id);
  }

  propose(id: PeerId, tag: string): { index: number; term: number } {
    const r = this.cores[id]!.propose(enc.encode(tag));
    if (!r) throw new Error(`peer ${id} is not leader`);
    return r;
  }

  leaders(): PeerId[] {
    return this.cores.filter((c, id) => !this.down.has(id) && c.isLeader()).map((c) => c.id);
  }
}

// ---- 5.2 leader election ------------------------------------------------------

t.test('5.2: a follower that hears nothing for its election timeout becomes candidate, increments its term, votes for itself and sends RequestVote to all', async (t) => {
  const core = newCore(1, 5, { initial: initial(3, -1, logOf(1, 2, 3)) });
  for (let k = 1; k < ELECTION; k++) core.tick();
  t.equal(core.status().role, Role.Follower, 'still a follower before electionTicks ticks');
  t.notOk(core.hasReady(), 'nothing to do before the timeout');

  const ticks = ticksUntil(core, () => core.status().role !== Role.Follower, 2 * ELECTION);
  t.ok(ticks > 0, 'times out within 2*electionTicks');
  const st = core.status();
  t.equal(st.role, Role.Candidate, 'became candidate');
  t.equal(st.term, 4, 'incremented its term');
  t.equal(st.vote, 1, 'voted for itself');
  t.equal(st.leader, -1, 'knows no leader');

  const rd = take(core);
  t.same(rd.hardState, { term: 4, vote: 1 }, 'the new term and self-vote are handed out for persisting');
  const votes = ofType(rd.messages, MessageType.Vote);
  t.equal(votes.length, 4, 'one RequestVote per other peer');
  t.same(
    votes.map((m) => m.to).sort(),
    [0, 2, 3, 4],
    'sent to every other peer',
  );
  for (const m of votes) {
    t.equal(m.from, 1);
    t.equal(m.term, 4, 'carries the new term');
    t.equal(m.lastLogIndex, 3, 'carries the last log index');
    t.equal(m.lastLogTerm, 3, 'carries the last log term');
  }
  t.equal(rd.messages.length, 4, 'and nothing else');
});

t.test('5.2: a candidate that receives votes from a majority becomes leader and sends AppendEntries to all at once', async (t) => {
  const core = newCore(0, 5);
  makeCandidate(core);
  const term = core.currentTerm();

  core.step(voteResp(1, 0, term, true));
  t.equal(core.status().role, Role.Candidate, '2 of 5 votes is no majority');
  core.step(voteResp(1, 0, term, true));
  t.equal(core.status().role, Role.Candidate, 'a duplicated vote from the same peer is not counted twice');
  core.step(voteResp(2, 0, term, false));
  t.equal(core.status().role, Role.Candidate, 'a refused vote is not counted');
  t.equal(take(core).messages.length, 0, 'a candidate sends nothing while waiting');

  core.step(voteResp(3, 0, term, true));
  t.equal(core.status().role, Role.Leader, '3 of 5 votes wins');
  t.equal(core.status().leader, 0, 'knows itself as leader');
  t.equal(core.currentTerm(), term, 'in the term it campaigned for');

  const rd = take(core);
  const apps = ofType(rd.messages, MessageType.Append);
  t.same(
    apps.map((m) => m.to).sort(),
    [1, 2, 3, 4],
    'one AppendEntries to every follower, without waiting for a tick',
  );
  for (const m of apps) t.equal(m.term, term, 'AppendEntries carries the leader term');
});

t.test('5.2: a candidate that receives AppendEntries from a leader of its own term steps down to follower', async (t) => {
  const core = newCore(0, 3);
  makeCandidate(core);
  const term = core.currentTerm();
  t.equal(core.status().role, Role.Candidate);

  core.step(appendReq(2, 0, term, 0, 0));
  const st = core.status();
  t.equal(st.role, Role.Follower, 'stepped down');
  t.equal(st.term, term, 'keeps its term');
  t.equal(st.leader, 2, 'recognises the sender as leader');
  t.equal(st.vote, 0, 'its vote for itself in this term stands');
  const resp = ofType(take(core).messages, MessageType.AppendResponse);
  t.equal(resp.length, 1, 'answers the AppendEntries');
  t.equal(resp[0]!.success, true, 'and accepts it');

  // The same holds for a leader of a later term.
  const c2 = newCore(0, 3);
  makeCandidate(c2);
  c2.step(appendReq(1, 0, c2.currentTerm() + 2, 0, 0));
  t.equal(c2.status().role, Role.Follower, 'steps down for a later-term leader too');
  t.equal(c2.currentTerm(), 3, 'and adopts its term');
});

t.test('5.2: election timeouts are randomized in [electionTicks, 2*electionTicks) and redrawn for every election', async (t) => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 300; seed++) {
    const core = newCore(0, 3, { seed });
    const first = ticksUntil(core, () => core.status().role === Role.Candidate, 3 * ELECTION);
    if (first < ELECTION || first >= 2 * ELECTION) t.fail(`seed ${seed}: first timeout ${first} out of range`);
    seen.add(first);
    take(core);
    // A candidate that neither wins nor loses (split vote) starts a new
    // election with a higher term after a fresh randomized timeout.
    const again = ticksUntil(core, () => core.currentTerm() === 2, 3 * ELECTION);
    if (again < ELECTION || again >= 2 * ELECTION) t.fail(`seed ${seed}: candidate timeout ${again} out of range`);
    seen.add(again);
    if (core.status().role !== Role.Candidate) t.fail(`seed ${seed}: not a candidate after its second timeout`);
  }
  t.ok(seen.size >= ELECTION / 2, `timeouts are spread out (${[...seen].sort((a, b) => a - b).join(',')})`);
  t.ok([...seen].every((x) => x >= ELECTION && x < 2 * ELECTION), 'every timeout in range');

  // The two ends of the range, from an rng at its extremes.
  const low = newCore(0, 3, { rng: () => 0 });
  t.equal(ticksUntil(low, () => low.status().role === Role.Candidate, 3 * ELECTION), ELECTION, 'rng 0 -> electionTicks');
  const high = newCore(0, 3, { rng: () => 0.999999 });
  t.equal(
    ticksUntil(high, () => high.status().role === Role.Candidate, 3 * ELECTION),
    2 * ELECTION - 1,
    'rng -> 1 gives 2*electionTicks - 1',
  );
});

t.test('5.2: a follower that keeps receiving AppendEntries from a current leader does not start an election', async (t) => {
  const net = new Cluster(3, { seed: 5 });
  net.campaign(0);
  t.same(net.leaders(), [0]);
  const term = net.cores[0]!.currentTerm();
  for (let k = 0; k < 10 * ELECTION; k++) {
    for (let id = 0; id < 3; id++) net.tick(id);
    net.stabilize();
  }
  t.same(net.leaders(), [0], 'leader unchanged');
  for (const c of net.cores) t.equal(c.currentTerm(), term, `peer ${c.id} stays in term ${term}`);

  // Once the leader goes silent, someone else takes over.
  net.crash(0);
  for (let k = 0; k < 3 * ELECTION; k++) {
    for (let id = 0; id < 3; id++) net.tick(id);
    net.stabilize();
  }
  t.equal(net.leaders().length, 1, 'a new leader is elected without the old one');
  t.ok(net.cores[net.leaders()[0]!]!.currentTerm() > term, 'in a later term');
});

// ---- election safety ----------------------------------------------------------

interface ChaosResult {
  /** Two leaders in one term. */
  electionViolations: string[];
  /** Two different entries committed at one index. */
  safetyViolations: string[];
  /** A new leader missing an entry already committed. */
  completenessViolations: string[];
  contractErrors: string[];
  terms: number;
  committed: number;
}

/**
 * Five peers, random message loss, random reordering, duplicates, shifting
 * partitions, random crashes and restarts from the persisted state, random
 * proposals. Checks the Figure 3 properties after every single event.
 */
function chaos(seed: number, steps = 400): ChaosResult {
  const rng = seededRng(seed * 2654435761);
  const net = new Cluster(5, { seed });
  let side = new Set<PeerId>();
  net.dropIf = (m) => side.has(m.from) !== side.has(m.to) || rng() < 0.15;
  const leaderOf = new Map<number, PeerId>();
  const committedAt = new Map<number, string>();
  const res: ChaosResult = {
    electionViolations: [],
    safetyViolations: [],
    completenessViolations: [],
    contractErrors: net.errors,
    terms: 0,
    committed: 0,
  };
  const seenApplied = net.applied.map((arr) => ({ arr, upto: 0 }));
  const key = (e: Entry) => `${e.term}:${dec.decode(e.data)}`;
  net.observe = () => {
    for (let id = 0; id < net.n; id++) {
      const c = net.cores[id]!;
      if (!c.isLeader()) continue;
      const term = c.currentTerm();
      const prev = leaderOf.get(term);
      if (prev === undefined) {
        leaderOf.set(term, id);
        for (const [index, k] of committedAt) {
          const e = c.log.entry(index);
          if (!e || key(e) !== k) {
            res.completenessViolations.push(`seed ${seed}: leader ${id} of term ${term} lacks committed ${index}=${k}`);
          }
        }
      } else if (prev !== id) {
        res.electionViolations.push(`seed ${seed}: term ${term} has leaders ${prev} and ${id}`);
      }
    }
    for (let id = 0; id < net.n; id++) {
      const ap = net.applied[id]!;
      // Only look at what was handed out since the last check (a restart starts a new array).
      const from = seenApplied[id]!.arr === ap ? seenApplied[id]!.upto : 0;
      seenApplied[id] = { arr: ap, upto: ap.length };
      for (const e of ap.slice(from)) {
        const k = committedAt.get(e.index);
        if (k === undefined) committedAt.set(e.index, key(e));
        else if (k !== key(e)) res.safetyViolations.push(`seed ${seed}: index ${e.index} is ${k} and ${key(e)}`);
      }
    }
  };
  let proposals = 0;
  for (let step = 0; step < steps; step++) {
    if (step % 50 === 0) {
      side = new Set();
      const k = randInt(rng, 0, 2);
      for (let j = 0; j < k; j++) side.add(randInt(rng, 0, 4));
    }
    if (rng() < 0.02) net.crash(randInt(rng, 0, 4));
    for (const id of [...net.down]) if (rng() < 0.05) net.restart(id);
    for (let id = 0; id < net.n; id++) net.tick(id);
    for (const id of net.leaders()) if (rng() < 0.3) net.propose(id, `p${proposals++}`);
    net.flushAll();
    net.observe!();
    // Deliver the queue in a random order; hold some back, duplicate a few.
    const batch = net.queue;
    net.queue = [];
    for (let k = batch.length - 1; k > 0; k--) {
      const j = randInt(rng, 0, k);
      [batch[k], batch[j]] = [batch[j]!, batch[k]!];
    }
    for (const m of batch) {
      const r = rng();
      if (r < 0.1) net.queue.push(m);
      else {
        net.deliver(m);
        if (r > 0.97) net.queue.push(m);
      }
    }
    net.flushAll();
    net.observe!();
  }
  res.terms = leaderOf.size;
  res.committed = committedAt.size;
  return res;
}

const chaosRuns: ChaosResult[] = [];
function chaosResults(): ChaosResult[] {
  if (chaosRuns.length === 0) for (let seed = 1; seed <= 150; seed++) chaosRuns.push(chaos(seed));
  return chaosRuns;
}

t.test('5.2 Election Safety: at most one leader can be elected in a given term (5 peers, 150 seeds, lossy reordering network, crashes)', async (t) => {
  const runs = chaosResults();
  const violations = runs.flatMap((r) => r.electionViolations);
  t.same(violations.slice(0, 10), [], 'no term with two leaders');
  const terms = runs.reduce((s, r) => s + r.terms, 0);
  t.ok(terms >= 150 * 3, `leaders were actually elected (${terms} terms with a leader)`);
  t.ok(runs.every((r) => r.terms >= 1), 'every run elected at least one leader');
});

t.test('5.4.3 State Machine Safety and Leader Completeness under the same chaos', async (t) => {
  const runs = chaosResults();
  t.same(runs.flatMap((r) => r.safetyViolations).slice(0, 10), [], 'no index committed with two different entries');
  t.same(runs.flatMap((r) => r.completenessViolations).slice(0, 10), [], 'every new leader holds every committed entry');
  t.same(runs.flatMap((r) => r.contractErrors).slice(0, 10), [], 'committed entries handed out in index order');
  const committed = runs.reduce((s, r) => s + r.committed, 0);
  t.ok(committed >= 150 * 10, `entries were actually committed (${committed})`);
});

// ---- 5.1 terms ----------------------------------------------------------------

type Maker = () => RaftCore;
const roles: [string, Maker][] = [
  [
    'follower',
    () => {
      const c = newCore(0, 3, { initial: initial(2, -1, logOf(1, 2)) });
      return c;
    },
  ],
  [
    'candidate',
    () => {
      const c = newCore(0, 3, { initial: initial(1, -1, logOf(1, 1)) });
      makeCandidate(c);
      return c;
    },
  ],
  [
    'leader',
    () => {
      const c = newCore(0, 3, { initial: initial(1, -1, logOf(1, 1)) });
      makeLeader(c);
      return c;
    },
  ],
];

t.test('5.1: a peer that sees a higher term in any message adopts it and becomes follower', async (t) => {
  const higher: [string, (term: number) => Message][] = [
    ['RequestVote', (term) => voteReq(1, 0, term, 0, 0)],
    ['RequestVote response', (term) => voteResp(1, 0, term, false)],
    ['AppendEntries', (term) => appendReq(1, 0, term, 0, 0)],
    ['AppendEntries response', (term) => appendResp(1, 0, term, false, 0)],
  ];
  for (const [role, make] of roles) {
    for (const [what, msg] of higher) {
      const core = make();
      t.equal(core.status().role, role, `starts as ${role}`);
      const term = core.currentTerm() + 3;
      core.step(msg(term));
      const st = core.status();
      t.equal(st.term, term, `${role} adopts the term of a ${what}`);
      t.equal(st.role, Role.Follower, `${role} becomes follower on a ${what}`);
      t.equal(st.vote, -1, `${role} has not voted in the new term`);
      t.equal(st.leader, what === 'AppendEntries' ? 1 : -1, `${role} knows the leader only from an AppendEntries`);
      t.same(take(core).hardState, { term, vote: -1 }, 'the new term is handed out for persisting');
    }
  }
  // A vote request with a higher term still gets the vote only on its merits.
  const f = newCore(0, 3, { initial: initial(2, 0, logOf(1, 2)) });
  f.step(voteReq(1, 0, 5, 1, 1));
  t.equal(f.currentTerm(), 5, 'term adopted from a losing candidate');
  t.equal(ofType(take(f).messages, MessageType.VoteResponse)[0]!.granted, false, 'but the vote is refused (stale log)');
});

t.test('5.1: a request with a stale term is rejected and the reply carries the current term', async (t) => {
  for (const [role, make] of roles) {
    const core = make();
    const term = core.currentTerm();
    const before = { ...core.status() };
    const lastBefore = core.log.lastIndex();

    core.step(voteReq(1, 0, term - 1, 100, term - 1));
    core.step(appendReq(2, 0, term - 1, 0, 0, [ent(1, term - 1, 'stale')], 0));
    const rd = take(core);
    const vr = ofType(rd.messages, MessageType.VoteResponse);
    const ar = ofType(rd.messages, MessageType.AppendResponse);
    t.equal(vr.length, 1, `${role} answers a stale RequestVote`);
    t.equal(vr[0]!.granted, false, `${role} refuses it`);
    t.equal(vr[0]!.term, term, `${role} tells the candidate its term`);
    t.equal(ar.length, 1, `${role} answers a stale AppendEntries`);
    t.equal(ar[0]!.success, false, `${role} rejects it`);
    t.equal(ar[0]!.term, term, `${role} tells the old leader its term`);
    const after = core.status();
    t.equal(after.term, before.term, `${role} keeps its term`);
    t.equal(after.role, before.role, `${role} keeps its role`);
    t.equal(after.vote, before.vote, `${role} keeps its vote`);
    t.equal(core.log.lastIndex(), lastBefore, `${role} log untouched`);
    t.notOk(rd.hardState, 'nothing to persist');
  }

  // Stale responses are ignored: an old-term vote does not elect a candidate.
  const c = newCore(0, 3, { initial: initial(4, -1) });
  makeCandidate(c);
  c.step(voteResp(1, 0, c.currentTerm() - 1, true));
  t.equal(c.status().role, Role.Candidate, 'a granted vote from an earlier term is not counted');

  // A deposed leader learns the newer term from the rejection and steps down.
  const net = new Cluster(3, { seed: 11 });
  net.campaign(0);
  net.isolate(0);
  net.campaign(1);
  t.same(net.leaders().sort(), [0, 1], 'old leader 0 is cut off and has not noticed the new leader 1');
  net.heal();
  net.propose(0, 'from the past');
  net.stabilize();
  t.same(net.leaders(), [1], 'the stale leader stepped down after its AppendEntries were rejected');
  t.equal(net.cores[0]!.currentTerm(), net.cores[1]!.currentTerm(), 'and adopted the newer term');
});

// ---- 5.2 / 5.4.1 voting -------------------------------------------------------

t.test('5.2: each server votes for at most one candidate in a given term, first come first served', async (t) => {
  const core = newCore(0, 5);
  core.step(voteReq(1, 0, 1));
  let rd = take(core);
  t.equal(ofType(rd.messages, MessageType.VoteResponse)[0]!.granted, true, 'first candidate of term 1 gets the vote');
  t.equal(core.status().vote, 1);

  core.step(voteReq(2, 0, 1));
  rd = take(core);
  const r2 = ofType(rd.messages, MessageType.VoteResponse)[0]!;
  t.equal(r2.granted, false, 'a second candidate in the same term is refused');
  t.equal(r2.term, 1);
  t.equal(core.status().vote, 1, 'the vote is not changed');
  t.notOk(rd.hardState, 'nothing new to persist');

  core.step(voteReq(1, 0, 1));
  rd = take(core);
  t.equal(ofType(rd.messages, MessageType.VoteResponse)[0]!.granted, true, 'the same candidate asking again is granted');

  core.step(voteReq(2, 0, 2));
  rd = take(core);
  t.equal(ofType(rd.messages, MessageType.VoteResponse)[0]!.granted, true, 'in a new term the vote is free again');
  t.same(rd.hardState, { term: 2, vote: 2 });

  // A candidate votes for itself and so refuses its rivals of the same term.
  const cand = newCore(0, 3);
  makeCandidate(cand);
  cand.step(voteReq(1, 0, cand.currentTerm()));
  t.equal(ofType(take(cand).messages, MessageType.VoteResponse)[0]!.granted, false, 'a candidate refuses a rival');
  t.equal(cand.status().role, Role.Candidate, 'and stays candidate');
});

t.test('5.4.1: a vote is refused to a candidate whose log is less up-to-date (last term, then last index), granted otherwise', async (t) => {
  // The voter's log: terms [1, 1, 2] so lastTerm 2, lastIndex 3.
  const cases: [number, number, boolean, string][] = [
    [0, 0, false, 'empty log'],
    [1, 3, false, 'lower last term, same length'],
    [1, 9, false, 'lower last term, longer log'],
    [2, 2, false, 'same last term, shorter log'],
    [2, 3, true, 'same last term, same length'],
    [2, 4, true, 'same last term, longer log'],
    [3, 1, true, 'higher last term, shorter log'],
    [3, 3, true, 'higher last term, same length'],
  ];
  for (const [lastTerm, lastIndex, want, what] of cases) {
    const core = newCore(0, 3, { initial: initial(2, -1, logOf(1, 1, 2)) });
    core.step(voteReq(1, 0, 3, lastIndex, lastTerm));
    const rd = take(core);
    const r = ofType(rd.messages, MessageType.VoteResponse);
    t.equal(r.length, 1);
    t.equal(r[0]!.granted, want, `${what} (lastTerm ${lastTerm}, lastIndex ${lastIndex}): ${want ? 'granted' : 'refused'}`);
    t.equal(core.status().vote, want ? 1 : -1, 'the recorded vote matches');
    if (!want) {
      // A refusal does not use up the vote for the term.
      core.step(voteReq(2, 0, 3, 3, 2));
      t.equal(ofType(take(core).messages, MessageType.VoteResponse)[0]!.granted, true, 'an up-to-date rival still gets it');
    }
  }
});

// ---- 5.3 log replication --------------------------------------------------------

t.test('5.3: AppendEntries whose prevLogIndex/prevLogTerm do not match the log is rejected; a matching one appends', async (t) => {
  const mk = () => newCore(1, 3, { initial: initial(2, -1, logOf(1, 1, 2)) });

  const reject: [number, number, string][] = [
    [3, 1, 'wrong term at prevLogIndex'],
    [2, 2, 'wrong term at an earlier index'],
    [4, 2, 'prevLogIndex beyond the end of the log'],
    [9, 3, 'prevLogIndex far beyond the end'],
  ];
  for (const [prev, prevTerm, what] of reject) {
    const c = mk();
    c.step(appendReq(0, 1, 3, prev, prevTerm, [ent(prev + 1, 3)]));
    const rd = take(c);
    const r = ofType(rd.messages, MessageType.AppendResponse);
    t.equal(r.length, 1);
    t.equal(r[0]!.success, false, `${what}: rejected`);
    t.equal(r[0]!.index, prev, 'the rejection names the prevLogIndex it refused');
    t.same(termsOf(c), [1, 1, 2], 'log untouched');
    t.same(rd.entries, [], 'nothing to persist');
  }

  const accept: [number, number, Entry[], number[], string][] = [
    [3, 2, [ent(4, 3), ent(5, 3)], [1, 1, 2, 3, 3], 'match at the last entry'],
    [0, 0, [ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 3)], [1, 1, 2, 3], 'prevLogIndex 0 always matches'],
    [3, 2, [], [1, 1, 2], 'heartbeat at the last entry'],
  ];
  for (const [prev, prevTerm, entries, want, what] of accept) {
    const c = mk();
    c.step(appendReq(0, 1, 3, prev, prevTerm, entries));
    const r = ofType(take(c).messages, MessageType.AppendResponse);
    t.equal(r[0]!.success, true, `${what}: accepted`);
    t.equal(r[0]!.index, prev + entries.length, 'success names the last index now known to match');
    t.same(termsOf(c), want, 'log is as expected');
  }
});

t.test('5.3: a conflicting entry and all that follow it are deleted; entries that match are kept (a stale AppendEntries does not truncate)', async (t) => {
  // Conflict: index 3 has term 2 here, term 3 at the leader.
  const c = newCore(1, 3, { initial: initial(2, -1, logOf(1, 1, 2, 2)) });
  c.step(appendReq(0, 1, 3, 2, 1, [ent(3, 3, 'new')]));
  let rd = take(c);
  t.same(termsOf(c), [1, 1, 3], 'index 3 replaced, index 4 deleted');
  t.equal(dec.decode(c.log.entry(3)!.data), 'new');
  t.equal(rd.entries[0]?.index, 3, 'the Ready asks storage to rewrite from the conflict on');
  t.same(rd.entries.map((e) => e.term), [3]);

  // A stale/duplicate AppendEntries carrying a prefix must not truncate.
  const s = newCore(1, 3, { initial: initial(1, -1, logOf(1, 1, 1, 1)) });
  s.step(appendReq(0, 1, 1, 1, 1, [ent(2, 1)]));
  rd = take(s);
  t.same(termsOf(s), [1, 1, 1, 1], 'prefix already present: later matching entries are kept');
  t.same(rd.entries, [], 'nothing rewritten');
  const r = ofType(rd.messages, MessageType.AppendResponse)[0]!;
  t.equal(r.success, true);
  t.equal(r.index, 2, 'acknowledges only what the message covered');

  s.step(appendReq(0, 1, 1, 0, 0, [ent(1, 1), ent(2, 1), ent(3, 1)]));
  take(s);
  t.same(termsOf(s), [1, 1, 1, 1], 'an older, longer prefix does not truncate either');

  // Part match, part conflict, part new: keep 2, replace from 3.
  const m = newCore(1, 3, { initial: initial(2, -1, logOf(1, 1, 2, 2, 2)) });
  m.step(appendReq(0, 1, 3, 1, 1, [ent(2, 1), ent(3, 3), ent(4, 3)]));
  rd = take(m);
  t.same(termsOf(m), [1, 1, 3, 3], 'matching entry 2 kept, 3..5 replaced by 3..4');
  t.same(rd.entries.map((e) => e.index), [3, 4], 'storage rewrites from index 3');

  // Figure 7 follower (f) brought in line by the leader's log.
  const f = newCore(1, 2, { initial: initial(3, -1, logOf(1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3)) });
  const leaderLog = logOf(1, 1, 1, 4, 4, 5, 5, 6, 6, 6);
  f.step(appendReq(0, 1, 8, 3, 1, leaderLog.slice(3)));
  take(f);
  t.same(termsOf(f), [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], 'figure 7 (f) ends up identical to the leader');
});

t.test('5.3 fast backup: a rejection carries hintTerm/hintIndex', async (t) => {
  // Log too short: hintTerm 0, hintIndex = lastIndex + 1.
  const s = newCore(1, 2, { initial: initial(1, -1, logOf(1, 1)) });
  s.step(appendReq(0, 1, 6, 5, 3));
  let r = ofType(take(s).messages, MessageType.AppendResponse)[0]!;
  t.same(
    { success: r.success, index: r.index, hintTerm: r.hintTerm, hintIndex: r.hintIndex },
    { success: false, index: 5, hintTerm: 0, hintIndex: 3 },
    'short log',
  );

  // Conflicting term: that term and the first index holding it.
  const f = () => newCore(1, 2, { initial: initial(3, -1, logOf(1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3)) });
  const a = f();
  a.step(appendReq(0, 1, 8, 10, 6));
  r = ofType(take(a).messages, MessageType.AppendResponse)[0]!;
  t.same(
    { success: r.success, index: r.index, hintTerm: r.hintTerm, hintIndex: r.hintIndex },
    { success: false, index: 10, hintTerm: 3, hintIndex: 7 },
    'conflict inside the follower term 3 (indexes 7..11)',
  );
  const b = f();
  b.step(appendReq(0, 1, 8, 6, 5));
  r = ofType(take(b).messages, MessageType.AppendResponse)[0]!;
  t.same(
    { success: r.success, index: r.index, hintTerm: r.hintTerm, hintIndex: r.hintIndex },
    { success: false, index: 6, hintTerm: 2, hintIndex: 4 },
    'conflict inside the follower term 2 (indexes 4..6)',
  );
  const c = f();
  c.step(appendReq(0, 1, 8, 1, 7));
  r = ofType(take(c).messages, MessageType.AppendResponse)[0]!;
  t.same({ hintTerm: r.hintTerm, hintIndex: r.hintIndex }, { hintTerm: 1, hintIndex: 1 }, 'conflict at the first entry');
});

t.test('5.3 fast backup: the leader uses the hint to move nextIndex back a whole term per round trip', async (t) => {
  const leaderLog = logOf(1, 1, 1, 4, 4, 5, 5, 6, 6, 6);
  // Figure 7 followers (a), (b), (e), (f) plus a long stale tail; naive
  // backup costs one round trip per index between the leader's last index
  // and the match point, the hint at most one per conflicting term.
  const cases: [string, number[], number, number][] = [
    // name, follower log terms, max rejections allowed, naive rejections
    ['(a) one entry short', [1, 1, 1, 4, 4, 5, 5, 6, 6], 1, 1],
    ['(b) far too short', [1, 1, 1, 4], 1, 6],
    ['(e) short and conflicting term 4', [1, 1, 1, 4, 4, 4, 4], 2, 5],
    ['(f) conflicting terms 2 and 3', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 2, 7],
    ['empty follower', [], 1, 10],
  ];
  for (const [name, fterms, maxRejections, naive] of cases) {
    const net = new Cluster(3, {
      seed: 3,
      initial: (id) =>
        id === 1
          ? initial(fterms.length > 0 ? fterms[fterms.length - 1]! : 0, -1, logOf(...fterms))
          : initial(6, -1, leaderLog),
    });
    net.campaign(0);
    t.same(net.leaders(), [0], `${name}: leader elected`);
    const rejections = net.sent.filter(
      (m) => m.type === MessageType.AppendResponse && m.from === 1 && !m.success,
    ).length;
    const appends = net.sent.filter((m) => m.type === MessageType.Append && m.to === 1).length;
    t.ok(rejections <= maxRejections, `${name}: ${rejections} rejected round trips (at most ${maxRejections}, naive ${naive})`);
    t.equal(appends, rejections + 1, `${name}: one more AppendEntries than rejections`);
    t.same(termsOf(net.cores[1]!), termsOf(net.cores[0]!), `${name}: follower log now equals the leader log`);
  }
});

t.test('5.3: the leader commits an entry once a majority stores it; followers learn the commit index from a later AppendEntries', async (t) => {
  const net = new Cluster(5, { seed: 9 });
  net.campaign(0);
  const leader = net.cores[0]!;
  net.cut.add('0>2').add('0>3').add('0>4');
  const { index } = net.propose(0, 'x');
  net.stabilize();
  t.equal(net.cores[1]!.log.lastIndex(), index, 'follower 1 stores the entry');
  t.equal(leader.status().commitIndex, 0, 'stored on 2 of 5: not committed');
  t.same(net.applied[0], [], 'nothing handed out');

  net.cut.delete('0>2');
  for (let k = 0; k < HEARTBEAT; k++) net.tick(0);
  net.flush(0);
  // Deliver the leader's AppendEntries and the answers one hop at a time.
  const toFollowers = net.queue.splice(0);
  for (const m of toFollowers) net.deliver(m);
  net.flush(1);
  net.flush(2);
  t.equal(net.cores[2]!.log.lastIndex(), index, 'follower 2 now stores it too');
  const answers = net.queue.splice(0);
  for (const m of answers) net.deliver(m);
  t.equal(leader.status().commitIndex, index, 'stored on 3 of 5: committed');
  t.equal(net.cores[1]!.status().commitIndex, 0, 'follower 1 does not know yet');
  t.equal(net.cores[2]!.status().commitIndex, 0, 'follower 2 does not know yet');
  net.flush(0);
  t.same(net.applied[0]!.map((e) => e.index), [index], 'the leader hands the entry out as committed');

  // With nothing else to send, the leader waits a few ticks (new entries
  // would carry the commit index free), then sends it on its own.
  for (let k = 1; k < COMMIT_NOTICE_TICKS; k++) net.tick(0);
  net.stabilize();
  t.equal(net.cores[1]!.status().commitIndex, 0, 'no notice before COMMIT_NOTICE_TICKS ticks');
  net.tick(0);
  net.stabilize();
  t.equal(net.cores[1]!.status().commitIndex, index, 'follower 1 learned the commit index from the next AppendEntries');
  t.equal(net.cores[2]!.status().commitIndex, index, 'follower 2 too');
  t.same(net.applied[1]!.map((e) => dec.decode(e.data)), ['x'], 'and hands it out');
  t.equal(net.cores[3]!.status().commitIndex, 0, 'a follower that never got the entry commits nothing');
  t.same(net.errors, []);
});

t.test('5.3 (Figure 2 AppendEntries rule 5): a follower sets commitIndex = min(leaderCommit, index of last new entry)', async (t) => {
  // Entries 3 and 4 are left over from term 2 and may not be the leader's.
  const f = newCore(1, 3, { initial: initial(2, -1, logOf(1, 1, 2, 2)) });
  f.step(appendReq(0, 1, 3, 2, 1, [], 4));
  let rd = take(f);
  t.equal(ofType(rd.messages, MessageType.AppendResponse)[0]!.success, true);
  t.equal(f.status().commitIndex, 2, 'only up to the last entry the message vouched for');
  t.same(rd.committed.map((e) => e.index), [1, 2], 'the unverified entries 3, 4 are not handed out');

  f.step(appendReq(0, 1, 3, 2, 1, [ent(3, 3)], 4));
  rd = take(f);
  t.same(termsOf(f), [1, 1, 3], 'the stale entries are replaced');
  t.equal(f.status().commitIndex, 3, 'commit follows the new entry');
  t.same(rd.committed.map((e) => [e.index, e.term]), [[3, 3]], 'the leader\'s entry 3 is handed out, not the stale one');

  f.step(appendReq(0, 1, 3, 1, 1, [], 1));
  take(f);
  t.equal(f.status().commitIndex, 3, 'an older, lower commit index never moves it back');
});

t.test('5.3: committed entries are handed out in index order, each exactly once, on every peer', async (t) => {
  const net = new Cluster(3, { seed: 21 });
  net.campaign(0);
  const want: string[] = [];
  const lossy = seededRng(77);
  net.dropIf = () => lossy() < 0.2;
  for (let round = 0; round < 60; round++) {
    const burst = round % 3;
    for (let k = 0; k < burst; k++) {
      const tag = `c${want.length}`;
      if (net.cores[0]!.propose(enc.encode(tag))) want.push(tag);
    }
    for (let id = 0; id < 3; id++) net.tick(id);
    net.stabilize();
  }
  net.dropIf = undefined;
  for (let k = 0; k < 4 * HEARTBEAT; k++) {
    for (let id = 0; id < 3; id++) net.tick(id);
    net.stabilize();
  }
  t.same(net.leaders(), [0], 'one stable leader throughout (only responses were lost)');
  t.ok(want.length >= 50, `${want.length} proposals`);
  for (let id = 0; id < 3; id++) {
    t.same(
      net.applied[id]!.map((e) => e.index),
      want.map((_, k) => k + 1),
      `peer ${id}: indexes 1..${want.length}, in order, once each`,
    );
    t.same(net.applied[id]!.map((e) => dec.decode(e.data)), want, `peer ${id}: the proposed commands`);
  }
  t.same(net.errors, [], 'no Ready handed out a committed entry twice or out of order');
  for (let id = 0; id < 3; id++) t.notOk(net.cores[id]!.hasReady(), `peer ${id} has nothing left`);
});

// ---- 5.4.2 committing entries from previous terms ------------------------------

/**
 * Figure 8 with S1..S5 = peers 0..4, terms shifted:
 *  (a) S1 leads term 1 and gets index 1 (term 1) onto S2 only.
 *  (b) S1 crashes; S5 wins term 2 with S3, S4 and appends index 1 (term 2) locally.
 *  (c) S5 crashes; S1 restarts, wins term 3 and replicates its index 1 (term 1)
 *      to S3 as well (and S4): a majority holds it.
 */
function figure8(t: Tap): Cluster {
  const net = new Cluster(5, { seed: 8 });
  net.campaign(0);
  t.same(net.leaders(), [0], '(a) S1 leads');
  for (const p of [2, 3, 4]) net.cut.add(`0>${p}`);
  net.propose(0, 'from S1 term 1');
  net.stabilize();
  net.heal();
  t.same([0, 1, 2, 3, 4].map((p) => net.cores[p]!.log.lastIndex()), [1, 1, 0, 0, 0], '(a) index 1 on S1, S2');

  net.crash(0);
  net.campaign(4);
  t.same(net.leaders(), [4], '(b) S5 leads');
  t.equal(net.cores[4]!.currentTerm(), 2);
  net.isolate(4);
  net.propose(4, 'from S5 term 2');
  net.stabilize();
  net.heal();
  net.crash(4);
  t.same(termsOf(net.cores[4]!), [2], '(b) S5 alone holds index 1 from term 2');

  net.restart(0);
  net.campaign(0);
  if (!net.cores[0]!.isLeader()) net.campaign(0);
  t.same(net.leaders(), [0], '(c) S1 leads again');
  t.equal(net.cores[0]!.currentTerm(), 3, '(c) in term 3');
  net.stabilize();
  return net;
}

t.test('5.4.2: a leader does not commit an entry from a previous term by counting replicas (Figure 8)', async (t) => {
  const net = figure8(t);
  const s1 = net.cores[0]!;
  for (const p of [0, 1, 2, 3]) t.equal(net.cores[p]!.log.term(1), 1, `S${p + 1} holds index 1 from term 1`);
  t.equal(s1.status().commitIndex, 0, 'four of five replicas, but from term 1: not committed');
  for (let k = 0; k < 3 * HEARTBEAT; k++) {
    net.tick(0);
    net.stabilize();
  }
  t.equal(s1.status().commitIndex, 0, 'still not committed after several heartbeats');
  for (let p = 0; p < 4; p++) t.same(net.applied[p], [], `S${p + 1} handed out nothing`);

  // (e) once an entry of term 3 is on a majority, both are committed.
  const r = net.propose(0, 'from S1 term 3');
  t.same(r, { index: 2, term: 3 });
  net.stabilize();
  t.equal(s1.status().commitIndex, 2, 'the current-term entry commits, and the old one with it');
  t.same(
    net.applied[0]!.map((e) => [e.index, e.term]),
    [
      [1, 1],
      [2, 3],
    ],
    'both handed out, in order',
  );

  // S5 can no longer win and overwrite index 1.
  net.restart(4);
  const before = net.cores[0]!.currentTerm();
  net.campaign(4);
  net.campaign(4);
  t.notOk(net.cores[4]!.isLeader(), 'S5 (last term 2) cannot collect votes');
  t.ok(net.cores[4]!.currentTerm() > before, 'although it tried in later terms');
  t.equal(net.cores[4]!.log.term(1), 2, 'S5 keeps its stale entry until a leader replaces it');
});

t.test('5.4.2: why: an old-term entry on a majority can still be overwritten by a later leader (Figure 8 (d))', async (t) => {
  const net = figure8(t);
  t.equal(net.cores[0]!.status().commitIndex, 0, 'S1 did not commit index 1');
  // (d) S1 crashes; S5 restarts and is elected with S2, S3, S4: its last term 2 beats their 1.
  net.crash(0);
  net.restart(4);
  net.campaign(4);
  if (!net.cores[4]!.isLeader()) net.campaign(4);
  t.same(net.leaders(), [4], 'S5 wins');
  net.propose(4, 'from S5 later');
  net.stabilize();
  for (const p of [1, 2, 3, 4]) t.equal(net.cores[p]!.log.term(1), 2, `S${p + 1} now has term 2 at index 1`);
  t.same(
    net.applied[4]!.map((e) => [e.index, e.term]),
    [
      [1, 2],
      [2, net.cores[4]!.currentTerm()],
    ],
    'index 1 is committed with S5\'s entry: S1 must not have committed its own',
  );
});

// ---- persistence contract -------------------------------------------------------

t.test('Figure 2 persistence: the Ready carrying a granted vote also carries the vote in hardState', async (t) => {
  const f = newCore(0, 3, { initial: initial(1, -1) });
  f.step(voteReq(2, 0, 2, 0, 0));
  const rd = f.ready();
  const vr = ofType(rd.messages, MessageType.VoteResponse);
  t.equal(vr.length, 1);
  t.equal(vr[0]!.granted, true);
  t.same(rd.hardState, { term: 2, vote: 2 }, 'term and vote come in the same Ready, to persist before sending');
  t.equal(rd.earlyCount, 0, 'and the grant may not leave before they are written');
  f.advance(rd);
  t.notOk(f.hasReady(), 'after advance nothing is pending');

  // The same for a vote in the current term (no term change).
  const g = newCore(0, 3, { initial: initial(4, -1) });
  g.step(voteReq(1, 0, 4, 0, 0));
  const rd2 = take(g);
  t.equal(ofType(rd2.messages, MessageType.VoteResponse)[0]!.granted, true);
  t.same(rd2.hardState, { term: 4, vote: 1 }, 'a vote without a term change is persisted too');

  // A candidate's own vote.
  const c = newCore(0, 3);
  const rd3 = makeCandidate(c);
  t.same(rd3.hardState, { term: 1, vote: 0 }, 'the self-vote travels with the RequestVotes');
  t.equal(ofType(rd3.messages, MessageType.Vote).length, 2);
  t.equal(rd3.earlyCount, 0, 'which wait for the self-vote to be written');
});

t.test('Figure 2 persistence: entries appended by a follower are in Ready.entries of the Ready holding the AppendResponse', async (t) => {
  const f = newCore(1, 3, { initial: initial(1, -1, logOf(1)) });
  f.step(appendReq(0, 1, 2, 1, 1, [ent(2, 2), ent(3, 2)], 1));
  const rd = f.ready();
  const ar = ofType(rd.messages, MessageType.AppendResponse);
  t.equal(ar.length, 1);
  t.equal(ar[0]!.success, true);
  t.equal(ar[0]!.index, 3);
  t.same(
    rd.entries.map((e) => [e.index, e.term]),
    [
      [2, 2],
      [3, 2],
    ],
    'the appended entries are to be persisted before the acknowledgement goes out',
  );
  t.same(rd.hardState, { term: 2, vote: -1 }, 'so is the new term');
  t.equal(rd.earlyCount, 0, 'a follower sends nothing before its write');
  t.same(rd.committed.map((e) => e.index), [1], 'commit index 1 learned, entry 1 handed out');
  f.advance(rd);
  t.notOk(f.hasReady(), 'nothing pending after advance');
  f.step(appendReq(0, 1, 2, 3, 2, [], 3));
  const rd2 = take(f);
  t.same(rd2.entries, [], 'a heartbeat persists nothing');
  t.same(rd2.committed.map((e) => e.index), [2, 3], 'later commits are handed out once');
});

t.test("Thesis 10.2.1: a leader's AppendEntries may leave before its own write, but the leader counts itself toward a commit only once written", async (t) => {
  const l = newCore(0, 3);
  makeLeader(l);
  // Both followers answer the first AppendEntries, so the leader streams to them.
  for (const p of [1, 2]) l.step(appendResp(p, 0, l.currentTerm(), true, l.log.lastIndex()));
  take(l);
  const at = l.propose(enc.encode('x'))!;
  // A stale candidate's request makes the leader answer too: that answer must wait.
  l.step(voteReq(2, 0, l.currentTerm() - 1, 0, 0));
  const rd = l.ready();
  t.same(rd.entries.map((e) => e.index), [at.index], 'the new entry is to be written');
  t.equal(rd.earlyCount, 2, 'both AppendEntries may go before the write');
  t.same(rd.messages.slice(0, rd.earlyCount).map((m) => [m.type, m.to]), [
    [MessageType.Append, 1],
    [MessageType.Append, 2],
  ]);
  t.same(rd.messages.slice(rd.earlyCount).map((m) => m.type), [MessageType.VoteResponse], "the stale candidate's answer waits for the write");
  l.step(appendResp(1, 0, l.currentTerm(), true, at.index));
  t.ok(l.status().commitIndex < at.index, "one follower's copy is not a majority while the leader's own is unwritten");
  l.advance(rd);
  t.equal(l.status().commitIndex, at.index, 'once written, the leader and that follower commit it');

  const c = newCore(1, 3);
  makeCandidate(c);
  c.step(voteResp(0, 1, c.currentTerm(), true));
  t.ok(c.isLeader(), 'a new leader');
  const first = c.ready();
  t.equal(first.earlyCount, ofType(first.messages, MessageType.Append).length, "its first AppendEntries may go early: its term was written with its self-vote");
  t.ok(first.earlyCount > 0);
});

// ---- heartbeats -----------------------------------------------------------------

t.test('5.2: an idle leader sends exactly one AppendEntries per follower every heartbeatTicks ticks', async (t) => {
  for (const hb of [1, 3]) {
    for (const withEntries of [false, true]) {
      const net = new Cluster(4, { seed: 13, heartbeatTicks: hb });
      net.campaign(0);
      if (withEntries) {
        net.propose(0, 'a');
        net.propose(0, 'b');
        net.stabilize();
      }
      // Settle: let the commit index propagate.
      for (let k = 0; k < 2 * hb + 1; k++) {
        net.tick(0);
        net.stabilize();
      }
      const label = `heartbeatTicks ${hb}, ${withEntries ? 'non-empty' : 'empty'} log`;
      // Align to a heartbeat: tick until one goes out.
      let mark = net.sent.length;
      for (let k = 0; k < hb && net.sent.length === mark; k++) {
        net.tick(0);
        net.flush(0);
      }
      net.stabilize();
      const perTick: number[][] = [];
      for (let k = 1; k <= 4 * hb; k++) {
        mark = net.sent.length;
        net.tick(0);
        net.stabilize();
        const apps = net.sent.slice(mark).filter((m) => m.type === MessageType.Append && m.from === 0);
        perTick.push(apps.map((m) => m.to).sort());
        for (const m of apps) {
          if ((m as AppendRequest).entries.length !== 0) t.fail(`${label}: heartbeat carried entries`);
        }
      }
      const want = perTick.map((_, k) => ((k + 1) % hb === 0 ? [1, 2, 3] : []));
      t.same(perTick, want, `${label}: one AppendEntries to each follower on every ${hb}th tick, nothing in between`);
    }
  }
});

// ---- restart --------------------------------------------------------------------

t.test('Figure 2 restart: a core built from persisted state keeps its term, vote and log and will not vote for another candidate in that term', async (t) => {
  const entries = logOf(1, 2, 5);
  const core = newCore(0, 3, { initial: initial(5, 2, entries) });
  const st = core.status();
  t.equal(st.term, 5, 'term restored');
  t.equal(st.vote, 2, 'vote restored');
  t.equal(st.role, Role.Follower, 'restarts as follower');
  t.equal(st.lastIndex, 3, 'log restored');
  t.same(termsOf(core), [1, 2, 5]);
  t.equal(st.commitIndex, 0, 'commit index is volatile');
  t.notOk(core.hasReady(), 'restored state is not handed out again for persisting');

  core.step(voteReq(1, 0, 5, 10, 5));
  let rd = take(core);
  t.equal(ofType(rd.messages, MessageType.VoteResponse)[0]!.granted, false, 'another candidate of term 5 is refused');
  t.equal(core.status().vote, 2, 'vote unchanged');

  core.step(voteReq(2, 0, 5, 3, 5));
  rd = take(core);
  t.equal(ofType(rd.messages, MessageType.VoteResponse)[0]!.granted, true, 'the candidate it voted for may ask again');
  t.notOk(rd.hardState, 'same vote: nothing new to persist');

  core.step(voteReq(1, 0, 6, 3, 5));
  rd = take(core);
  t.equal(ofType(rd.messages, MessageType.VoteResponse)[0]!.granted, true, 'in term 6 the vote is free');
  t.same(rd.hardState, { term: 6, vote: 1 });

  // Through the network: a peer restarted after voting does not vote twice.
  const net = new Cluster(3, { seed: 17 });
  net.isolate(2);
  net.campaign(0);
  t.same(net.leaders(), [0]);
  const term = net.cores[0]!.currentTerm();
  t.same(net.disk[1]!.hardState, { term, vote: 0 }, 'peer 1 persisted its vote for 0');
  net.crash(1);
  net.restart(1);
  net.cores[1]!.step(voteReq(2, 1, term, 0, 0));
  t.equal(
    ofType(take(net.cores[1]!).messages, MessageType.VoteResponse)[0]!.granted,
    false,
    'after restart, peer 1 refuses a second candidate of the same term',
  );
});

// ---- options --------------------------------------------------------------------

t.test('Options: invalid options throw RaftOptionError naming the option', async (t) => {
  const good: CoreOptions = { id: 0, peers: 3, electionTicks: 10, heartbeatTicks: 2, rng: seededRng(1) };
  t.doesNotThrow(() => new RaftCore(good), 'valid options are accepted');
  const cases: [Partial<CoreOptions>, string][] = [
    [{ peers: 0 }, 'peers'],
    [{ peers: -1 }, 'peers'],
    [{ peers: 2.5 }, 'peers'],
    [{ id: 3 }, 'id'],
    [{ id: -1 }, 'id'],
    [{ id: 1.5 }, 'id'],
    [{ electionTicks: 10.5 }, 'electionTicks'],
    [{ electionTicks: 0 }, 'electionTicks'],
    [{ electionTicks: Number.NaN }, 'electionTicks'],
    [{ heartbeatTicks: 10 }, 'heartbeatTicks'],
    [{ heartbeatTicks: 11 }, 'heartbeatTicks'],
    [{ heartbeatTicks: 0 }, 'heartbeatTicks'],
  ];
  for (const [patch, option] of cases) {
    let thrown: unknown;
    try {
      new RaftCore({ ...good, ...patch });
    } catch (e) {
      thrown = e;
    }
    const label = JSON.stringify(patch);
    t.ok(thrown instanceof RaftOptionError, `${label} throws a RaftOptionError`);
    if (thrown instanceof RaftOptionError) {
      t.equal(thrown.option, option, `${label} names ${option}`);
      t.match(thrown.message, new RegExp(`^${option}: `), `${label}: message starts with the option`);
    }
  }
});
