import { MemoryStorage } from '../../storage/storage.js';
import { RaftCore, type PlantedBugs } from '../raft/core.js';
import { randInt, seededRng, type Rng } from '../raft/prng.js';
import { MessageType, type Entry, type Message, type Ready, type Snapshot } from '../raft/types.js';
import { EventHeap } from './heap.js';

/**
 * Deterministic simulation of a Raft cluster: real RaftCore instances in one
 * thread, a simulated clock, a simulated network (drops, duplicates, delays
 * and so reordering, partitions that form and heal) and crashes that lose
 * everything a peer had not yet persisted. One seeded PRNG drives every
 * choice, so a seed replays exactly. Invariants are checked after every
 * event; after the fault phase, liveness is checked: a leader must emerge
 * and a new command commit within a bound.
 */

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 2;

export interface SimOptions {
  seed: number;
  /** Cluster size; 3 or 5 drawn from the seed when omitted. */
  peers?: number;
  /** Simulated milliseconds of faults. Default 3000. */
  faultMs?: number;
  /** Bound, in simulated ms, for a new command to commit once faults stop. Default 5000. */
  livenessMs?: number;
  bugs?: PlantedBugs;
  /** Peers run pre-vote elections. Default: odd seeds do, even seeds run plain Figure 2 elections. */
  preVote?: boolean;
  /** Leaders refuse proposals without a quorum. Default: seeds whose seed mod 4 is 2 or 3 do. */
  refuseWithoutQuorum?: boolean;
  /** Events kept for the failure trace. Default 30. */
  traceSize?: number;
}

export interface SimResult {
  seed: number;
  peers: number;
  ok: boolean;
  violation?: string;
  trace: string[];
  simulatedMs: number;
  events: number;
  /** Highest index any peer applied. */
  committed: number;
  /** Snapshots installed from a leader (InstallSnapshot). */
  installs: number;
  crashes: number;
}

export class Violation extends Error {
  override name = 'Violation';
}

type SimEvent =
  | { time: number; seq: number; kind: 'tick'; peer: number; inc: number }
  | { time: number; seq: number; kind: 'deliver'; msg: Message }
  | { time: number; seq: number; kind: 'drain'; peer: number; inc: number }
  | { time: number; seq: number; kind: 'fault' }
  | { time: number; seq: number; kind: 'propose' }
  | { time: number; seq: number; kind: 'restart'; peer: number }
  | { time: number; seq: number; kind: 'heal' };

interface Service {
  index: number;
  hash: number;
}

interface SimPeer {
  id: number;
  disk: MemoryStorage;
  core: RaftCore | undefined;
  inc: number;
  drainScheduled: boolean;
  svc: Service;
  lastCommit: number;
  lastApplied: number;
  diskTerm: number;
  snapEvery: number;
  lastSnapAt: number;
  /** Terms in which this peer, as leader, already persisted a proposal / committed. */
  firstProposalTerm: number;
  firstCommitTerm: number;
}

function mix(h: number, x: number): number {
  h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

function putU32(bytes: Uint8Array, at: number, v: number): void {
  bytes[at] = v & 0xff;
  bytes[at + 1] = (v >>> 8) & 0xff;
  bytes[at + 2] = (v >>> 16) & 0xff;
  bytes[at + 3] = (v >>> 24) & 0xff;
}

const typeName: Record<number, string> = {
  [MessageType.Vote]: 'Vote',
  [MessageType.VoteResponse]: 'VoteResp',
  [MessageType.Append]: 'Append',
  [MessageType.AppendResponse]: 'AppendResp',
  [MessageType.Snapshot]: 'Snapshot',
  [MessageType.SnapshotResponse]: 'SnapshotResp',
  [MessageType.ReadIndex]: 'ReadIndex',
  [MessageType.ReadIndexResponse]: 'ReadIndexResp',
  [MessageType.TimeoutNow]: 'TimeoutNow',
};

function describeMessage(m: Message): string {
  const head = `${typeName[m.type]} ${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case MessageType.Vote:
      return `${m.pre ? 'Pre' : ''}${head} last=${m.lastLogIndex}/t${m.lastLogTerm}`;
    case MessageType.VoteResponse:
      return `${m.pre ? 'Pre' : ''}${head} ${m.granted ? 'granted' : 'refused'}`;
    case MessageType.Append:
      return `${head} prev=${m.prevLogIndex}/t${m.prevLogTerm} n=${m.entries.length} commit=${m.commit}`;
    case MessageType.AppendResponse:
      return `${head} ${m.success ? 'ok' : 'reject'} index=${m.index}${m.success ? '' : ` hint=${m.hintIndex}/t${m.hintTerm}`}`;
    case MessageType.Snapshot:
      return `${head} snap=${m.snapshot.index}/t${m.snapshot.term}`;
    case MessageType.SnapshotResponse:
      return `${head} index=${m.index}`;
    case MessageType.ReadIndex:
      return `${head} ctx=${m.ctx}${m.lease ? ' lease' : ''}`;
    case MessageType.ReadIndexResponse:
      return `${head} ctx=${m.ctx} index=${m.index}`;
    case MessageType.TimeoutNow:
      return head;
  }
}

export class Simulation {
  readonly seed: number;
  readonly n: number;
  private readonly rng: Rng;
  private readonly faultMs: number;
  private readonly livenessMs: number;
  private readonly bugs: PlantedBugs | undefined;
  private readonly peers: SimPeer[] = [];
  private readonly queue = new EventHeap<SimEvent>();
  private seq = 0;
  private now = 0;
  private events = 0;
  private readonly traceSize: number;
  /** Recent events, formatted only if a violation needs them. */
  private readonly trace: { time: number; text?: string; msg?: Message }[] = [];

  // network
  private group: number[];
  private dropRate = 0;
  private dupRate = 0;
  private maxDelay = 5;
  private healed = false;
  /** Per-seed fault profile: how hard focused crashes hit, how sparse proposals are. */
  private readonly crashScale: number;
  private readonly proposeGap: number;
  private readonly preVote: boolean;
  private readonly refuseWithoutQuorum: boolean;
  private readonly maxInflight: number;

  // what the checks remember
  private readonly leaderOfTerm = new Map<number, number>();
  /** (index, term) -> command id and term at index-1, from every persisted entry. */
  private readonly entryRecord = new Map<number, { cmd: number; prevTerm: number }>();
  /** index -> hash of the applied prefix through index, from the first peer that applied it. */
  private readonly chain: number[] = [0];
  private readonly committedTerm: number[] = [0];
  private maxApplied = 0;
  private nextCmd = 1;
  private installs = 0;
  private crashes = 0;
  private marker = 0;
  private markerCommitted = false;
  /** Index the marker command was committed at. */
  private markerAt = 0;
  private lastMarkerProposal = -Infinity;

  constructor(opts: SimOptions) {
    this.seed = opts.seed;
    this.rng = seededRng(opts.seed);
    this.n = opts.peers ?? (this.rng() < 0.5 ? 3 : 5);
    this.faultMs = opts.faultMs ?? 3000;
    this.livenessMs = opts.livenessMs ?? 5000;
    this.bugs = opts.bugs;
    this.preVote = opts.preVote ?? opts.seed % 2 === 1;
    this.refuseWithoutQuorum = opts.refuseWithoutQuorum ?? opts.seed % 4 >= 2;
    // Without a PRNG draw, so existing seeds keep their paths: 1 (the Cluster default), 2 or 8.
    this.maxInflight = [1, 2, 8][Math.floor(opts.seed / 2) % 3]!;
    this.traceSize = opts.traceSize ?? 30;
    this.group = new Array(this.n).fill(0);
    this.crashScale = [0.5, 1, 3][randInt(this.rng, 0, 2)]!;
    this.proposeGap = [40, 150, 300][randInt(this.rng, 0, 2)]!;
    this.pickNetwork();
    for (let id = 0; id < this.n; id++) {
      const p: SimPeer = {
        id,
        disk: new MemoryStorage(),
        core: undefined,
        inc: 0,
        drainScheduled: false,
        svc: { index: 0, hash: 0 },
        lastCommit: 0,
        lastApplied: 0,
        diskTerm: 0,
        snapEvery: randInt(this.rng, 4, 30),
        lastSnapAt: 0,
        firstProposalTerm: 0,
        firstCommitTerm: 0,
      };
      this.peers.push(p);
      this.boot(p);
    }
    this.schedule({ kind: 'fault' }, 50);
    this.schedule({ kind: 'propose' }, randInt(this.rng, 5, 40));
    this.schedule({ kind: 'heal' }, this.faultMs);
  }

  private schedule(ev: { kind: string } & Record<string, unknown>, delay: number): void {
    this.queue.push({ ...ev, time: this.now + delay, seq: this.seq++ } as SimEvent);
  }

  private note(text: string): void {
    if (this.trace.length >= this.traceSize) this.trace.shift();
    this.trace.push({ time: this.now, text });
  }

  private noteDelivery(msg: Message): void {
    if (this.trace.length >= this.traceSize) this.trace.shift();
    this.trace.push({ time: this.now, msg });
  }

  private formatTrace(): string[] {
    return this.trace.map((r) => `${String(r.time).padStart(6)}ms ${r.text ?? `deliver ${describeMessage(r.msg!)}`}`);
  }

  private fail(message: string): never {
    throw new Violation(message);
  }

  // ---- peers ------------------------------------------------------------------

  private boot(p: SimPeer): void {
    p.inc++;
    const initial = p.disk.load();
    p.core = new RaftCore({
      id: p.id,
      peers: this.n,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      rng: seededRng(Math.floor(this.rng() * 2 ** 32)),
      initial,
      maxInflight: this.maxInflight,
      maxEntriesPerMessage: 16,
      preVote: this.preVote,
      refuseWithoutQuorum: this.refuseWithoutQuorum,
      bugs: this.bugs,
    });
    p.svc = { index: 0, hash: 0 };
    if (initial.snapshot && initial.snapshot.index > 0) this.restore(p, initial.snapshot);
    p.lastCommit = p.core.log.commitIndex;
    p.lastApplied = p.core.log.appliedIndex;
    p.drainScheduled = false;
    this.schedule({ kind: 'tick', peer: p.id, inc: p.inc }, randInt(this.rng, 1, TICK_MS));
  }

  private crash(p: SimPeer): void {
    if (!p.core) return;
    p.core = undefined;
    this.crashes++;
    this.note(`CRASH peer ${p.id} (unpersisted state lost)`);
    // Quick restarts matter as much as long outages: a peer back within a
    // message delay meets requests that were addressed to its old self.
    const downtime = this.rng() < 0.5 ? randInt(this.rng, 1, 20) : randInt(this.rng, 30, 600);
    this.schedule({ kind: 'restart', peer: p.id }, downtime);
  }

  private touched(p: SimPeer): void {
    if (p.drainScheduled || !p.core) return;
    p.drainScheduled = true;
    // Persisting lags the input a little, so a crash can fall in between.
    this.schedule({ kind: 'drain', peer: p.id, inc: p.inc }, randInt(this.rng, 0, 3));
  }

  // ---- the service: a hash chain of applied commands ----------------------------

  /** Liveness: the new command committed and every peer's service has caught up to it. */
  private allCaughtUp(): boolean {
    return this.markerCommitted && this.peers.every((q) => q.core !== undefined && q.svc.index >= this.markerAt);
  }

  private restore(p: SimPeer, snap: Snapshot): void {
    if (snap.data.length !== 8) this.fail(`peer ${p.id}: snapshot ${snap.index} has ${snap.data.length} bytes, not 8`);
    const index = u32(snap.data, 0);
    const hash = u32(snap.data, 4);
    if (index !== snap.index) this.fail(`peer ${p.id}: snapshot labelled ${snap.index} holds state through ${index}`);
    const known = this.chain[index];
    if (known !== undefined && known !== hash) {
      this.fail(`state machine safety: peer ${p.id} restored a snapshot at ${index} whose state differs from what was applied there`);
    }
    if (index < p.svc.index && p.core) {
      this.fail(`peer ${p.id}: snapshot ${index} would move its service back from ${p.svc.index}`);
    }
    p.svc = { index, hash };
  }

  private apply(p: SimPeer, e: Entry): void {
    if (e.index !== p.svc.index + 1) this.fail(`peer ${p.id}: applied index ${e.index} after ${p.svc.index} (gap or repeat)`);
    const cmd = u32(e.data, 0);
    const hash = mix(mix(p.svc.hash, e.index), cmd);
    const known = this.chain[e.index];
    if (known === undefined) {
      this.chain[e.index] = hash;
      this.committedTerm[e.index] = e.term;
    } else if (known !== hash) {
      this.fail(`state machine safety: peer ${p.id} applied a different command (or prefix) at index ${e.index}`);
    }
    p.svc = { index: e.index, hash };
    if (e.index > this.maxApplied) this.maxApplied = e.index;
    if (cmd === this.marker && this.marker !== 0 && !this.markerCommitted) {
      this.markerCommitted = true;
      this.markerAt = e.index;
    }
  }

  private maybeSnapshot(p: SimPeer): void {
    const core = p.core!;
    if (p.svc.index - p.lastSnapAt < p.snapEvery || this.rng() < 0.5) return;
    const data = new Uint8Array(8);
    putU32(data, 0, p.svc.index);
    putU32(data, 4, p.svc.hash);
    if (core.compact(p.svc.index, data)) {
      p.lastSnapAt = p.svc.index;
      this.note(`peer ${p.id} snapshots through ${p.svc.index}`);
      this.touched(p);
    }
  }

  // ---- the Ready loop ------------------------------------------------------------

  private drain(p: SimPeer): void {
    p.drainScheduled = false;
    const core = p.core!;
    while (core.hasReady()) {
      const rd = core.ready();
      const crashAt = this.healed ? 'never' : this.crashPoint(p, core, rd);
      for (let i = 0; i < rd.earlyCount; i++) this.send(rd.messages[i]!);
      if (crashAt === 'early') return this.crash(p);
      this.persist(p, rd);
      if (crashAt === 'persisted') return this.crash(p);
      for (let i = rd.earlyCount; i < rd.messages.length; i++) this.send(rd.messages[i]!);
      if (rd.applySnapshot) {
        this.installs++;
        this.restore(p, rd.applySnapshot);
      }
      for (const e of rd.committed) this.apply(p, e);
      if (crashAt === 'sent') return this.crash(p);
      core.advance(rd);
      this.maybeSnapshot(p);
    }
  }

  /**
   * Crashes aimed at the moments that matter (TigerBeetle-style fault
   * focusing): right after a term or vote reached the disk, before or after
   * the grant leaves; a leader dying with a proposal only on its own disk; a
   * leader dying just after it committed; above all a new leader dying at its
   * first proposal or its first commit (the steps of Figure 8). 'early':
   * after the messages allowed to precede the write left, before the write.
   */
  private crashPoint(p: SimPeer, core: RaftCore, rd: Ready): 'never' | 'early' | 'persisted' | 'sent' {
    const r = this.rng() / this.crashScale;
    if (rd.hardState) return r < 0.05 ? 'persisted' : r < 0.15 ? 'sent' : r < 0.2 ? 'early' : 'never';
    if (!core.isLeader()) return 'never';
    const term = core.currentTerm();
    if (rd.entries.length > 0 && p.firstProposalTerm !== term) {
      p.firstProposalTerm = term;
      return r < 0.2 ? 'persisted' : r < 0.3 ? 'early' : 'never';
    }
    if (rd.committed.length > 0 && p.firstCommitTerm !== term) {
      p.firstCommitTerm = term;
      return r < 0.4 ? 'sent' : 'never';
    }
    if (rd.entries.length > 0) return r < 0.03 ? 'persisted' : r < 0.05 ? 'sent' : r < 0.07 ? 'early' : 'never';
    if (rd.committed.length > 0 && r < 0.05) return 'sent';
    return 'never';
  }

  private persist(p: SimPeer, rd: Ready): void {
    if (rd.hardState) {
      if (rd.hardState.term < p.diskTerm) this.fail(`peer ${p.id}: persisted term went back from ${p.diskTerm} to ${rd.hardState.term}`);
      p.diskTerm = rd.hardState.term;
    }
    const core = p.core!;
    for (const e of rd.entries) {
      if (e.term >= 1 << 16) this.fail('term too large for the simulator checks');
      const prevTerm = core.log.term(e.index - 1) ?? -1;
      const key = e.index * 65536 + e.term;
      const cmd = u32(e.data, 0);
      const seen = this.entryRecord.get(key);
      if (!seen) {
        this.entryRecord.set(key, { cmd, prevTerm });
      } else if (seen.cmd !== cmd) {
        this.fail(`log matching: two different entries at index ${e.index} in term ${e.term} (peer ${p.id})`);
      } else if (seen.prevTerm !== -1 && prevTerm !== -1 && seen.prevTerm !== prevTerm) {
        this.fail(
          `log matching: entry ${e.index}/t${e.term} follows term ${prevTerm} on peer ${p.id} but term ${seen.prevTerm} elsewhere`,
        );
      }
    }
    p.disk.save(rd);
  }

  // ---- network -------------------------------------------------------------------

  private pickNetwork(): void {
    this.dropRate = [0, 0.02, 0.1, 0.3][randInt(this.rng, 0, 3)]!;
    this.dupRate = [0, 0, 0.05][randInt(this.rng, 0, 2)]!;
    this.maxDelay = [3, 15, 60][randInt(this.rng, 0, 2)]!;
  }

  private send(m: Message): void {
    if (this.group[m.from] !== this.group[m.to]) return;
    if (this.rng() < this.dropRate) return;
    this.schedule({ kind: 'deliver', msg: m }, randInt(this.rng, 1, this.maxDelay));
    if (this.rng() < this.dupRate) this.schedule({ kind: 'deliver', msg: m }, randInt(this.rng, 1, this.maxDelay * 2));
  }

  private fault(): void {
    if (this.healed) return;
    const r = this.rng();
    if (r < 0.1) {
      const k = this.rng();
      if (k < 0.4) {
        this.group.fill(0);
        this.note('network: partitions healed');
      } else if (k < 0.7) {
        for (let i = 0; i < this.n; i++) this.group[i] = this.rng() < 0.5 ? 0 : 1;
        this.note(`network: partition ${JSON.stringify(this.group)}`);
      } else {
        const lone = randInt(this.rng, 0, this.n - 1);
        this.group.fill(0);
        this.group[lone] = 1;
        this.note(`network: peer ${lone} isolated`);
      }
    } else if (r < 0.16) {
      // Half the crashes hit whoever leads: the scenarios of Figure 8 need leaders to die mid-replication.
      const leaders = this.peers.filter((q) => q.core?.isLeader());
      const p = leaders.length > 0 && this.rng() < 0.5 ? leaders[randInt(this.rng, 0, leaders.length - 1)]! : this.peers[randInt(this.rng, 0, this.n - 1)]!;
      this.crash(p);
    } else if (r < 0.19) {
      this.pickNetwork();
      this.note(`network: drop ${this.dropRate}, duplicate ${this.dupRate}, delay 1-${this.maxDelay} ms`);
    } else if (r < 0.22) {
      // Peers with diverging logs coming back together is where Figure 8 lives.
      const down = this.peers.filter((q) => !q.core);
      if (down.length > 0) this.note(`restart everyone down: ${down.map((q) => q.id).join(',')}`);
      for (const q of down) {
        this.boot(q);
        this.note(`RESTART peer ${q.id} from its persisted state (term ${q.disk.load().hardState.term})`);
      }
    } else if (r < 0.235) {
      const k = randInt(this.rng, 2, this.n);
      this.note(`crash ${k} peers at once`);
      for (let i = 0; i < k; i++) this.crash(this.peers[randInt(this.rng, 0, this.n - 1)]!);
    }
    if (!this.healed) this.schedule({ kind: 'fault' }, 50);
  }

  private heal(): void {
    this.healed = true;
    this.group.fill(0);
    this.dropRate = 0;
    this.dupRate = 0;
    this.maxDelay = 5;
    this.note('faults stop: network healed, crashed peers restart');
    for (const p of this.peers) if (!p.core) this.boot(p);
  }

  private propose(): void {
    const order = this.peers.filter((p) => p.core);
    let cmd = this.nextCmd;
    const wantMarker = this.healed && !this.markerCommitted && this.now - this.lastMarkerProposal >= 200;
    if (wantMarker) {
      if (this.marker === 0) this.marker = this.nextCmd++;
      cmd = this.marker;
    }
    for (let k = order.length; k > 0; k--) {
      const p = order.splice(randInt(this.rng, 0, k - 1), 1)[0]!;
      const data = new Uint8Array(4);
      putU32(data, 0, cmd);
      const placed = p.core!.propose(data);
      if (placed) {
        if (!wantMarker) this.nextCmd++;
        else this.lastMarkerProposal = this.now;
        this.note(`propose cmd ${cmd} at peer ${p.id}: index ${placed.index} term ${placed.term}`);
        this.touched(p);
        break;
      }
    }
    this.schedule({ kind: 'propose' }, randInt(this.rng, 5, this.proposeGap));
  }

  // ---- checks after every event --------------------------------------------------

  private check(p: SimPeer): void {
    const core = p.core;
    if (!core) return;
    const log = core.log;
    if (log.commitIndex < p.lastCommit) this.fail(`peer ${p.id}: commit index went back from ${p.lastCommit} to ${log.commitIndex}`);
    if (log.appliedIndex < p.lastApplied) this.fail(`peer ${p.id}: applied index went back from ${p.lastApplied} to ${log.appliedIndex}`);
    p.lastCommit = log.commitIndex;
    p.lastApplied = log.appliedIndex;
    if (!core.isLeader()) return;
    const term = core.currentTerm();
    const known = this.leaderOfTerm.get(term);
    if (known === p.id) return;
    if (known !== undefined) this.fail(`election safety: peers ${known} and ${p.id} are both leaders of term ${term}`);
    this.leaderOfTerm.set(term, p.id);
    this.note(`peer ${p.id} becomes leader of term ${term}`);
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    for (let i = log.snapshotIndex() + 1; i <= this.maxApplied; i++) {
      const t = log.term(i);
      if (t !== this.committedTerm[i]) {
        this.fail(`leader completeness: new leader ${p.id} of term ${term} lacks committed entry ${i}/t${this.committedTerm[i]} (has ${t ?? 'nothing'})`);
      }
    }
  }

  // ---- the run -------------------------------------------------------------------

  run(): SimResult {
    let violation: string | undefined;
    const deadline = this.faultMs + this.livenessMs;
    try {
      while (!this.allCaughtUp()) {
        const ev = this.queue.pop();
        if (!ev) this.fail('the event queue ran dry');
        this.now = ev.time;
        if (this.now > deadline) {
          const lagging = this.peers.filter((q) => q.svc.index < this.markerAt).map((q) => `${q.id}@${q.svc.index}`);
          this.fail(
            this.markerCommitted
              ? `liveness: peers ${lagging.join(', ')} did not catch up to index ${this.markerAt} within ${this.livenessMs} ms after faults stopped`
              : `liveness: no new command committed within ${this.livenessMs} ms after faults stopped`,
          );
        }
        this.events++;
        this.step(ev);
      }
    } catch (e) {
      // An exception thrown by the code under test is a finding too, with its trace.
      violation = e instanceof Violation ? e.message : `exception: ${e instanceof Error ? e.message : String(e)}`;
      this.note(`VIOLATION: ${violation}`);
    }
    return {
      seed: this.seed,
      peers: this.n,
      ok: violation === undefined,
      violation,
      trace: this.formatTrace(),
      simulatedMs: this.now,
      events: this.events,
      committed: this.maxApplied,
      installs: this.installs,
      crashes: this.crashes,
    };
  }

  private step(ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick': {
        const p = this.peers[ev.peer]!;
        if (!p.core || p.inc !== ev.inc) return;
        p.core.tick();
        this.touched(p);
        this.check(p);
        this.schedule({ kind: 'tick', peer: p.id, inc: p.inc }, TICK_MS);
        return;
      }
      case 'deliver': {
        const m = ev.msg;
        const p = this.peers[m.to]!;
        if (!p.core || this.group[m.from] !== this.group[m.to]) return;
        this.noteDelivery(m);
        p.core.step(m);
        this.touched(p);
        this.check(p);
        return;
      }
      case 'drain': {
        const p = this.peers[ev.peer]!;
        if (!p.core || p.inc !== ev.inc) return;
        this.drain(p);
        this.check(p);
        return;
      }
      case 'fault':
        this.fault();
        return;
      case 'propose':
        this.propose();
        return;
      case 'restart': {
        const p = this.peers[ev.peer]!;
        if (p.core) return;
        this.boot(p);
        this.note(`RESTART peer ${p.id} from its persisted state (term ${p.disk.load().hardState.term})`);
        return;
      }
      case 'heal':
        this.heal();
        return;
    }
  }
}

export function simulate(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
