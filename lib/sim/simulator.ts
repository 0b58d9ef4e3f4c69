import { MemoryStorage, type Storage } from '../../storage/storage.js';
import type { PlantedBugs } from '../raft/core.js';
import { randInt, seededRng, type Rng } from '../raft/prng.js';
import { EntryType, MessageType, type InitialState, type Ready } from '../raft/types.js';
import type { ConfigChange } from '../raft/config.js';
import { PeerHost, type ReadConsistency } from '../node/host.js';
import { HostMessageType, type WireMessage } from '../node/messages.js';
import { Status, type Outcome } from '../node/outcome.js';
import type { ByteStateMachine, Clock, EntryMeta, SnapshotWriter, TimerHandle, Transport } from '../node/seams.js';
import { EventHeap } from './heap.js';

/**
 * Deterministic simulation of a Raft group: the real peer host (lib/node,
 * the drain loop the worker runs, state machine included) over simulated
 * seams: a clock per peer (with a small rate skew), a network that drops,
 * duplicates and delays (hence reorders) messages and forms and heals
 * partitions, and storage whose crashes lose everything a peer had not
 * written. One seeded PRNG drives every choice, so a seed replays exactly.
 * Clients propose commands (some through followers, which forward them),
 * read by ReadIndex or lease, and ask for leadership transfers. With
 * membership changes on, the cluster starts with three voters of five
 * peers and the leader is asked, at random moments and regardless of
 * whether one is in flight, to add learners, promote them and remove
 * members (the leader too); a removed peer is shut down once its removal
 * commits, and may be added back later with its disk.
 * Invariants are checked after every event; after the fault phase,
 * liveness is checked: a new command must commit and every peer catch up.
 */

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 2;

export interface SimOptions {
  seed: number;
  /** Cluster size; 3 or 5 drawn from the seed when omitted. */
  peers?: number;
  /** Simulated milliseconds of faults. Default 8000. */
  faultMs?: number;
  /** Bound, in simulated ms, for a new command to commit once faults stop. Default 5000. */
  livenessMs?: number;
  bugs?: PlantedBugs;
  /** Peers run pre-vote elections. Default: odd seeds do, even seeds run plain Figure 2 elections. */
  preVote?: boolean;
  /** Leaders refuse proposals without a quorum. Default: seeds whose seed mod 4 is 2 or 3 do. */
  refuseWithoutQuorum?: boolean;
  /** Membership changes during the fault phase. Default: seeds whose seed mod 5 is 2, 3 or 4 (then 5 peers, 3 voters at first). */
  membership?: boolean;
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
  /** Snapshots written a step at a time that finished, and writers the host cancelled (a restore, a stop, a whole snapshot asked for). */
  steppedSnapshots: number;
  cancelledWriters: number;
  crashes: number;
  /** Reads answered (linearizable or lease), each checked. */
  reads: number;
  /** Leadership transfers that completed. */
  transfers: number;
  /** Membership changes that committed. */
  configChanges: number;
}

export class Violation extends Error {
  override name = 'Violation';
}

/** Thrown out of a peer's storage to crash it mid-drain; the simulator catches it. */
class CrashSignal extends Error {}

type SimEvent =
  | { time: number; seq: number; kind: 'call'; peer: number; inc: number; fn: () => void; timer: { cancelled: boolean } }
  | { time: number; seq: number; kind: 'deliver'; msg: WireMessage }
  | { time: number; seq: number; kind: 'fault' }
  | { time: number; seq: number; kind: 'propose' }
  | { time: number; seq: number; kind: 'read' }
  | { time: number; seq: number; kind: 'transfer' }
  | { time: number; seq: number; kind: 'member' }
  | { time: number; seq: number; kind: 'retire'; peer: number }
  | { time: number; seq: number; kind: 'restart'; peer: number }
  | { time: number; seq: number; kind: 'heal' };

interface SimPeer {
  id: number;
  disk: MemoryStorage;
  host: PeerHost | undefined;
  inc: number;
  /** This peer's clock runs at `rate` times simulated time. */
  rate: number;
  svc: ChainMachine | undefined;
  lastCommit: number;
  lastApplied: number;
  diskTerm: number;
  snapshotThreshold: number;
  snapshotRatio: number;
  /**
   * 0: the service's snapshots are taken whole; otherwise they are written a
   * step at a time (beginSnapshot), each in 1 to this many steps that the
   * host runs between its other work.
   */
  snapshotSteps: number;
  /** Terms in which this peer, as leader, already persisted a proposal / committed. */
  firstProposalTerm: number;
  firstCommitTerm: number;
  /**
   * A Ready that crashes the peer once it has been sent and applied
   * ('sent'): nothing after it (a later message, a later write) happens.
   */
  crashAfter: Ready | undefined;
  /** With that crash, bring back every peer that is down (Figure 8's step (d) needs the diverged one). */
  reviveOthers: boolean;
  /** Removed from the cluster (the removal committed): shut down until it is added back. */
  retired: boolean;
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

function words(...vs: number[]): Uint8Array {
  const b = new Uint8Array(4 * vs.length);
  vs.forEach((v, k) => putU32(b, 4 * k, v));
  return b;
}

/** The command id in an entry's data (0 for the empty entry a leader appends for a read). */
function commandOf(data: Uint8Array): number {
  return data.length === 0 ? 0 : u32(data, 0);
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
  [HostMessageType.Forward]: 'Forward',
  [HostMessageType.ForwardReply]: 'ForwardReply',
};

function describeMessage(m: WireMessage): string {
  const head = `${typeName[m.type]} ${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case MessageType.Vote:
      return `${m.pre ? 'Pre' : ''}${head} last=${m.lastLogIndex}/t${m.lastLogTerm}`;
    case MessageType.VoteResponse:
      return `${m.pre ? 'Pre' : ''}${head} ${m.granted ? 'granted' : 'refused'}`;
    case MessageType.Append:
      return `${head} prev=${m.prevLogIndex}/t${m.prevLogTerm} n=${m.entries.length} commit=${m.commit} seq=${m.seq ?? 0}`;
    case MessageType.AppendResponse:
      return `${head} ${m.success ? 'ok' : 'reject'} index=${m.index}${m.success ? '' : ` hint=${m.hintIndex}/t${m.hintTerm}`} seq=${m.seq ?? 0}`;
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
    case HostMessageType.Forward:
      return `${head} ctx=${m.ctx} cmd=${commandOf(m.data)}`;
    case HostMessageType.ForwardReply:
      return `${head} ctx=${m.ctx} status=${m.status}`;
  }
}

/**
 * The service every peer runs: a hash chain over the commands it applied.
 * Its state is (position, last command index, hash): the position is the
 * log index it has reached (the host skips the empty entries leaders append
 * for reads, so it may pass the last command); the hash folds in every
 * command with its index. Results and answers are that state.
 */
class ChainMachine implements ByteStateMachine {
  pos = 0;
  real = 0;
  hash = 0;

  constructor(
    private readonly sim: Simulation,
    private readonly p: SimPeer,
  ) {
    if (p.snapshotSteps > 0) this.beginSnapshot = () => this.writer();
  }

  private state(): Uint8Array {
    return words(this.pos, this.real, this.hash);
  }

  apply(command: Uint8Array, e: EntryMeta): Uint8Array {
    this.sim.checkApply(this.p, this, e, command);
    this.pos = e.index;
    this.real = e.index;
    this.hash = mix(mix(this.hash, e.index), u32(command, 0));
    this.sim.recordApply(this.p, e, u32(command, 0), this.hash);
    return this.state();
  }

  snapshot(): Uint8Array {
    return words(this.real, this.hash);
  }

  restore(data: Uint8Array, e: EntryMeta): void {
    if (data.length !== 8) this.sim.fail(`peer ${this.p.id}: snapshot ${e.index} has ${data.length} bytes, not 8`);
    const real = u32(data, 0);
    const hash = u32(data, 4);
    if (real > e.index) this.sim.fail(`peer ${this.p.id}: snapshot labelled ${e.index} holds state through ${real}`);
    this.sim.checkState(this.p, real, hash, `restored a snapshot at ${e.index} whose state differs from what was applied through ${real}`);
    if (e.index < this.pos && this.p.host) this.sim.fail(`peer ${this.p.id}: snapshot ${e.index} would move its service back from ${this.pos}`);
    this.pos = e.index;
    this.real = real;
    this.hash = hash;
  }

  query(): Uint8Array {
    return this.state();
  }

  /** Only with snapshotSteps (set in the constructor): the host then writes this peer's snapshots a step at a time. */
  beginSnapshot?: () => SnapshotWriter;

  /**
   * A writer of the state as it is now, finished after 1 to snapshotSteps
   * steps. The host must step it only while it is the one being written:
   * never after its cancel() or after the step that finished it.
   */
  private writer(): SnapshotWriter {
    const data = words(this.real, this.hash);
    let left = 1 + (this.pos % this.p.snapshotSteps);
    let over: string | undefined;
    return {
      step: () => {
        if (over) this.sim.fail(`peer ${this.p.id}: a snapshot writer was stepped after it was ${over}`);
        if (--left > 0) return undefined;
        over = 'finished';
        this.sim.steppedSnapshots++;
        return data;
      },
      cancel: () => {
        if (over) return;
        over = 'cancelled';
        this.sim.cancelledWriters++;
      },
    };
  }
}

export class Simulation {
  readonly seed: number;
  readonly n: number;
  private readonly rng: Rng;
  private readonly faultMs: number;
  private readonly livenessMs: number;
  private readonly bugs: PlantedBugs | undefined;
  readonly peers: SimPeer[] = [];
  private readonly queue = new EventHeap<SimEvent>();
  private seq = 0;
  private now = 0;
  private events = 0;
  private readonly traceSize: number;
  /** Recent events, formatted only if a violation needs them. */
  private readonly trace: { time: number; text?: string; msg?: WireMessage }[] = [];

  // network
  private group: number[];
  private dropRate = 0;
  private dupRate = 0;
  private maxDelay = 5;
  healed = false;
  /** Per-seed fault profile: how hard focused crashes hit, how sparse proposals are. */
  private readonly crashScale: number;
  private readonly proposeGap: number;
  /** Longest gap between two reads; 0: no reads in this seed (a new leader then appends no empty entry). */
  private readonly readGap: number;
  /** Lease reads (and the start-up refusal of pre-votes they need) on this seed. */
  private readonly leaseReads: boolean;
  private readonly preVote: boolean;
  private readonly refuseWithoutQuorum: boolean;
  private readonly maxInflight: number;
  /** Leadership transfers are asked for on a third of the seeds: a leader that began one holds no lease. */
  private readonly transfers_: boolean;

  // what the checks remember
  private readonly leaderOfTerm = new Map<number, number>();
  /** (index, term) -> command id and term at index-1, from every persisted entry. */
  private readonly entryRecord = new Map<number, { cmd: number; prevTerm: number }>();
  /** index -> hash of the applied commands through index, from the first peer that applied it. */
  private readonly chain: number[] = [0];
  private readonly committedTerm: number[] = [0];
  /** TimeoutNow (from, to, term) -> the sender's last index and term when it sent it. */
  private readonly timeoutNows = new Map<string, { lastIndex: number; lastTerm: number }>();
  private maxApplied = 0;
  /** The highest index of a write whose proposer has been answered Ok. */
  private ackedIndex = 0;
  private nextCmd = 1;
  private installs = 0;
  steppedSnapshots = 0;
  cancelledWriters = 0;
  private crashes = 0;
  private reads = 0;
  private transfers = 0;
  private configChanges = 0;
  private readonly membership: boolean;
  private readonly initialVoters: number;
  private marker = 0;
  private markerCommitted = false;
  /** Index the marker command was committed at. */
  private markerAt = 0;
  private lastMarkerProposal = -Infinity;

  constructor(opts: SimOptions) {
    this.seed = opts.seed;
    this.rng = seededRng(opts.seed);
    this.membership = opts.membership ?? opts.seed % 5 >= 2;
    this.n = opts.peers ?? (this.membership ? 5 : this.rng() < 0.5 ? 3 : 5);
    this.initialVoters = this.membership ? Math.min(3, this.n) : this.n;
    this.faultMs = opts.faultMs ?? 8000;
    this.livenessMs = opts.livenessMs ?? 5000;
    this.bugs = opts.bugs;
    this.preVote = opts.preVote ?? opts.seed % 2 === 1;
    this.refuseWithoutQuorum = opts.refuseWithoutQuorum ?? opts.seed % 4 >= 2;
    // Without a PRNG draw: 1 (the Cluster default), 2 or 8.
    this.maxInflight = [1, 2, 8][Math.floor(opts.seed / 2) % 3]!;
    this.transfers_ = opts.seed % 3 === 0;
    this.traceSize = opts.traceSize ?? 30;
    this.group = new Array(this.n).fill(0);
    this.crashScale = [0.5, 1, 3][randInt(this.rng, 0, 2)]!;
    this.proposeGap = [40, 150, 300, 600][randInt(this.rng, 0, 3)]!;
    this.readGap = [0, 0, 60, 200][randInt(this.rng, 0, 3)]!;
    this.leaseReads = this.rng() < 0.5;
    this.pickNetwork();
    for (let id = 0; id < this.n; id++) {
      const p: SimPeer = {
        id,
        disk: new MemoryStorage(),
        host: undefined,
        inc: 0,
        // Clocks run at slightly different rates (well inside the lease's drift margin).
        rate: 1 + (this.rng() * 2 - 1) * 0.002,
        svc: undefined,
        lastCommit: 0,
        lastApplied: 0,
        diskTerm: 0,
        // The host's own snapshot policy, at a few entries' worth of state.
        snapshotThreshold: 37 + 8 * randInt(this.rng, 4, 30),
        // 0: the threshold alone (the lab's rule); otherwise the log must also outgrow the snapshot.
        snapshotRatio: randInt(this.rng, 0, 2),
        // Half the peers write their snapshots in steps (beginSnapshot), the other half whole; up to
        // 150 steps, a few hundred simulated ms, in which crashes, elections and installs happen.
        snapshotSteps: this.rng() < 0.5 ? 0 : randInt(this.rng, 1, 150),
        firstProposalTerm: 0,
        firstCommitTerm: 0,
        crashAfter: undefined,
        reviveOthers: false,
        retired: false,
      };
      this.peers.push(p);
      this.boot(p);
    }
    this.schedule({ kind: 'fault' }, 50);
    this.schedule({ kind: 'propose' }, randInt(this.rng, 5, 40));
    if (this.readGap > 0) this.schedule({ kind: 'read' }, randInt(this.rng, 5, this.readGap));
    this.schedule({ kind: 'transfer' }, randInt(this.rng, 100, 1000));
    if (this.membership) this.schedule({ kind: 'member' }, randInt(this.rng, 100, 500));
    this.schedule({ kind: 'heal' }, this.faultMs);
  }

  schedule(ev: { kind: string } & Record<string, unknown>, delay: number): void {
    this.queue.push({ ...ev, time: this.now + delay, seq: this.seq++ } as SimEvent);
  }

  private note(text: string): void {
    if (this.trace.length >= this.traceSize) this.trace.shift();
    this.trace.push({ time: this.now, text });
  }

  private noteDelivery(msg: WireMessage): void {
    if (this.trace.length >= this.traceSize) this.trace.shift();
    this.trace.push({ time: this.now, msg });
  }

  private formatTrace(): string[] {
    return this.trace.map((r) => `${r.time.toFixed(1).padStart(8)}ms ${r.text ?? `deliver ${describeMessage(r.msg!)}`}`);
  }

  fail(message: string): never {
    throw new Violation(message);
  }

  // ---- peers ------------------------------------------------------------------

  private boot(p: SimPeer): void {
    if (p.retired) return;
    p.inc++;
    p.crashAfter = undefined;
    const inc = p.inc;
    const sim = this;
    const clock: Clock = {
      now: () => sim.now * p.rate,
      setTimer: (fn, ms) => {
        const timer = { cancelled: false };
        sim.schedule({ kind: 'call', peer: p.id, inc, fn, timer }, ms / p.rate);
        return timer;
      },
      clearTimer: (t: TimerHandle) => {
        (t as { cancelled: boolean }).cancelled = true;
      },
      // Persisting lags the input a little, so a crash can fall in between.
      defer: (fn) => sim.schedule({ kind: 'call', peer: p.id, inc, fn, timer: { cancelled: false } }, randInt(sim.rng, 0, 3)),
    };
    const transport: Transport = {
      send: (m) => {
        // Past a 'sent' crash point only that Ready's own messages still leave.
        if (p.crashAfter && !p.crashAfter.messages.includes(m as never)) throw new CrashSignal();
        sim.send(m);
      },
      flush: () => {},
      close: () => {},
      // As in one process: a peer's channel closes when its worker dies.
      reachable: (peer) => sim.peers[peer]!.host !== undefined,
    };
    const storage: Storage = {
      load: (): InitialState => p.disk.load(),
      save: (rd: Ready) => sim.save(p, rd),
      close: () => {},
    };
    p.svc = new ChainMachine(this, p);
    p.host = undefined;
    const host = new PeerHost(
      {
        id: p.id,
        // Peers past the initial voters join later: they start knowing no configuration.
        voters: p.id < this.initialVoters ? Array.from({ length: this.initialVoters }, (_, k) => k) : [],
        seed: Math.floor(this.rng() * 2 ** 32),
        timing: { tickMs: TICK_MS, electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS },
        maxInflight: this.maxInflight,
        maxEntriesPerMessage: 16,
        // Small, so that applying a backlog in steps is exercised.
        maxCommittedPerReady: 1 + (p.snapshotThreshold % 7),
        preVote: this.preVote,
        refuseWithoutQuorum: this.refuseWithoutQuorum,
        leaseReads: this.leaseReads,
        leaseMarginTicks: 1,
        snapshotThreshold: p.snapshotThreshold,
        snapshotRatio: p.snapshotRatio,
        bugs: this.bugs,
      },
      { storage, transport, clock, stateMachine: p.svc },
    );
    p.host = host;
    p.lastCommit = host.core.log.commitIndex;
    p.lastApplied = host.core.log.appliedIndex;
  }

  private crash(p: SimPeer): void {
    if (!p.host) return;
    p.host = undefined;
    p.crashAfter = undefined;
    this.crashes++;
    this.note(`CRASH peer ${p.id} (unwritten state lost)`);
    for (const q of this.peers) q.host?.unreachable(p.id);
    // Quick restarts matter as much as long outages: a peer back within a
    // message delay meets requests that were addressed to its old self.
    const downtime = this.rng() < 0.5 ? randInt(this.rng, 1, 20) : randInt(this.rng, 30, 600);
    this.schedule({ kind: 'restart', peer: p.id }, downtime);
  }

  // ---- the service's checks ----------------------------------------------------------

  /** Liveness: the new command committed and every peer's service has caught up to it. */
  private allCaughtUp(): boolean {
    return this.markerCommitted && this.members().every((q) => q.host !== undefined && q.svc!.pos >= this.markerAt);
  }

  /** The peers of the configuration the newest leader has (all peers before any change): the ones that must catch up. */
  private members(): SimPeer[] {
    if (!this.membership) return this.peers;
    let best: SimPeer | undefined;
    for (const q of this.peers) if (q.host?.core.isLeader() && (!best || q.host.core.currentTerm() > best.host!.core.currentTerm())) best = q;
    if (!best) return this.peers.filter((q) => !q.retired && q.id < this.initialVoters);
    const c = best.host!.core.config();
    return this.peers.filter((q) => c.voters.includes(q.id) || c.learners.includes(q.id));
  }

  /** Before a command is applied: it comes after the last, and whatever the host skipped was empty entries. */
  checkApply(p: SimPeer, svc: ChainMachine, e: EntryMeta, command: Uint8Array): void {
    if (e.index <= svc.pos) this.fail(`peer ${p.id}: applied index ${e.index} after ${svc.pos} (a repeat)`);
    if (command.length !== 4) this.fail(`peer ${p.id}: the command at ${e.index} has ${command.length} bytes`);
    const log = p.host?.core.log;
    for (let i = svc.pos + 1; i < e.index && log; i++) {
      const skipped = log.entry(i);
      if (skipped && skipped.data.length > 0 && skipped.type !== EntryType.Config) this.fail(`peer ${p.id}: applied index ${e.index} after ${svc.pos}, skipping the command at ${i}`);
    }
  }

  recordApply(p: SimPeer, e: EntryMeta, cmd: number, hash: number): void {
    const known = this.chain[e.index];
    if (known === undefined) {
      this.chain[e.index] = hash;
      this.committedTerm[e.index] = e.term;
    } else if (known !== hash) {
      this.fail(`state machine safety: peer ${p.id} applied a different command (or prefix) at index ${e.index}`);
    }
    if (e.index > this.maxApplied) this.maxApplied = e.index;
    if (cmd === this.marker && this.marker !== 0 && !this.markerCommitted) {
      this.markerCommitted = true;
      this.markerAt = e.index;
    }
  }

  checkState(p: SimPeer, real: number, hash: number, what: string): void {
    const known = this.chain[real];
    if (real > 0 && known !== undefined && known !== hash) this.fail(`state machine safety: peer ${p.id} ${what}`);
  }

  // ---- storage: crash points and what persisting must never do -----------------------

  /**
   * Crashes aimed at the moments that matter (TigerBeetle-style fault
   * focusing): right after a term or vote reached the disk, before or after
   * the grant leaves; a leader dying with a proposal only on its own disk; a
   * leader dying just after it committed; above all a new leader dying at its
   * first proposal or its first commit (the steps of Figure 8). 'early':
   * after the messages allowed to precede the write left, before the write.
   */
  private crashPoint(p: SimPeer, rd: Ready): 'never' | 'early' | 'persisted' | 'sent' {
    const core = p.host!.core;
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
      // Above all when it commits entries of earlier terms (Figure 8's step
      // (c)); then the peers that are down come back, among them perhaps one
      // whose log diverged in a later term (step (d)).
      if (rd.committed[0]!.term < term && r < 0.7) {
        p.reviveOthers = true;
        return 'sent';
      }
      return r < 0.4 ? 'sent' : 'never';
    }
    if (rd.entries.length > 0) return r < 0.03 ? 'persisted' : r < 0.05 ? 'sent' : r < 0.07 ? 'early' : 'never';
    if (rd.committed.length > 0 && r < 0.05) return 'sent';
    return 'never';
  }

  private save(p: SimPeer, rd: Ready): void {
    if (p.crashAfter) throw new CrashSignal();
    const crashAt = this.healed ? 'never' : this.crashPoint(p, rd);
    if (crashAt === 'early') throw new CrashSignal();
    if (rd.hardState) {
      if (rd.hardState.term < p.diskTerm) this.fail(`peer ${p.id}: persisted term went back from ${p.diskTerm} to ${rd.hardState.term}`);
      p.diskTerm = rd.hardState.term;
    }
    const core = p.host!.core;
    for (const e of rd.entries) {
      if (e.term >= 1 << 16) this.fail('term too large for the simulator checks');
      const prevTerm = core.log.term(e.index - 1) ?? -1;
      const key = e.index * 65536 + e.term;
      const cmd = commandOf(e.data);
      const seen = this.entryRecord.get(key);
      if (!seen) {
        this.entryRecord.set(key, { cmd, prevTerm });
      } else if (seen.cmd !== cmd) {
        this.fail(`log matching: two different entries at index ${e.index} in term ${e.term} (peer ${p.id})`);
      } else if (seen.prevTerm !== -1 && prevTerm !== -1 && seen.prevTerm !== prevTerm) {
        this.fail(`log matching: entry ${e.index}/t${e.term} follows term ${prevTerm} on peer ${p.id} but term ${seen.prevTerm} elsewhere`);
      }
    }
    if (rd.applySnapshot) this.installs++;
    p.disk.save(rd);
    if (crashAt === 'persisted') throw new CrashSignal();
    if (crashAt === 'sent') p.crashAfter = rd;
  }

  // ---- network -------------------------------------------------------------------

  private pickNetwork(): void {
    this.dropRate = [0, 0.02, 0.1, 0.3][randInt(this.rng, 0, 3)]!;
    this.dupRate = [0, 0, 0.05][randInt(this.rng, 0, 2)]!;
    this.maxDelay = [3, 15, 60][randInt(this.rng, 0, 2)]!;
  }

  private send(m: WireMessage): void {
    if (m.type === MessageType.TimeoutNow) {
      const log = this.peers[m.from]!.host!.core.log;
      this.timeoutNows.set(`${m.from}/${m.to}/${m.term}`, { lastIndex: log.lastIndex(), lastTerm: log.lastTerm() });
    }
    if (this.group[m.from] !== this.group[m.to]) return;
    if (this.rng() < this.dropRate) return;
    this.schedule({ kind: 'deliver', msg: m }, randInt(this.rng, 1, this.maxDelay));
    if (this.rng() < this.dupRate) this.schedule({ kind: 'deliver', msg: m }, randInt(this.rng, 1, this.maxDelay * 2));
  }

  /** A transfer's target campaigns only once it holds its leader's whole log (thesis 3.10). */
  private checkTimeoutNow(p: SimPeer, m: WireMessage): void {
    const core = p.host!.core;
    if (m.type !== MessageType.TimeoutNow || m.term !== core.currentTerm() || core.isLeader()) return;
    const sent = this.timeoutNows.get(`${m.from}/${m.to}/${m.term}`)!;
    const t = core.log.term(sent.lastIndex);
    const holds = t === sent.lastTerm || (t === undefined && core.log.snapshotIndex() > sent.lastIndex);
    if (!holds) {
      this.fail(
        `transfer: peer ${p.id} was told to campaign by leader ${m.from} of term ${m.term} without holding its log through ${sent.lastIndex}/t${sent.lastTerm} (it has ${core.log.lastIndex()}/t${core.log.lastTerm()})`,
      );
    }
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
        // Half the time the leader: a deposed leader that does not know it yet is where reads go wrong.
        const leader = this.peers.find((q) => q.host?.core.isLeader());
        const lone = leader && this.rng() < 0.5 ? leader.id : randInt(this.rng, 0, this.n - 1);
        this.group.fill(0);
        this.group[lone] = 1;
        this.note(`network: peer ${lone} isolated`);
      }
    } else if (r < 0.16) {
      // Half the crashes hit whoever leads: the scenarios of Figure 8 need leaders to die mid-replication.
      const leaders = this.peers.filter((q) => q.host?.core.isLeader());
      const p = leaders.length > 0 && this.rng() < 0.5 ? leaders[randInt(this.rng, 0, leaders.length - 1)]! : this.peers[randInt(this.rng, 0, this.n - 1)]!;
      this.crash(p);
    } else if (r < 0.19) {
      this.pickNetwork();
      this.note(`network: drop ${this.dropRate}, duplicate ${this.dupRate}, delay 1-${this.maxDelay} ms`);
    } else if (r < 0.22) {
      // Peers with diverging logs coming back together is where Figure 8 lives.
      const down = this.peers.filter((q) => !q.host);
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
    for (const p of this.peers) if (!p.host) this.boot(p);
  }

  /**
   * Ask the leader for a membership change at random, whether or not one
   * is in flight (the leader must refuse a second one). A removal that
   * commits shuts its peer down; adding a retired peer back boots it first.
   */
  private member(): void {
    const leader = this.peers.find((q) => q.host?.core.isLeader());
    if (leader && !this.healed) {
      const c = leader.host!.core.config();
      const inConfig = (q: SimPeer) => c.voters.includes(q.id) || c.learners.includes(q.id);
      const spares = this.peers.filter((q) => !inConfig(q));
      const r = this.rng();
      let change: ConfigChange | undefined;
      if (r < 0.35 && spares.length > 0) {
        const q = spares[randInt(this.rng, 0, spares.length - 1)]!;
        if (q.retired) {
          q.retired = false;
          this.boot(q);
          this.note(`RESTART retired peer ${q.id} to be added back`);
        }
        change = { type: 'addLearner', id: q.id };
      } else if (r < 0.7 && c.learners.length > 0) {
        change = { type: 'promote', id: c.learners[randInt(this.rng, 0, c.learners.length - 1)]! };
      } else if (c.voters.length + c.learners.length > 1) {
        // Now and then the leader itself.
        const all = [...c.voters, ...c.learners];
        const id = this.rng() < 0.25 ? leader.id : all[randInt(this.rng, 0, all.length - 1)]!;
        if (id !== leader.id || c.voters.length > 1) change = { type: 'remove', id };
      }
      if (change) {
        const ch = change;
        this.note(`membership: ask leader ${leader.id} to ${ch.type} ${ch.id}`);
        leader.host!.changeMembership(ch, 500, (o) => {
          if (o.status !== Status.Ok) return;
          this.configChanges++;
          this.note(`membership: ${ch.type} ${ch.id} committed`);
          // Applied can come a while after committed: a change made since may have added the peer back.
          if (ch.type === 'remove' && !this.members().some((q) => q.id === ch.id)) {
            const q = this.peers[ch.id]!;
            q.retired = true;
            // Shut down (its disk kept, for when it is added back); delivered later, so not inside the leader's own drain.
            this.schedule({ kind: 'retire', peer: q.id }, 0);
          }
        });
      }
    }
    if (!this.healed) this.schedule({ kind: 'member' }, randInt(this.rng, 20, 400));
  }

  // ---- clients: proposals, reads, transfers -------------------------------------------------

  private onProposed(cmd: number, o: Outcome): void {
    if (o.status !== Status.Ok) return;
    if (o.index === undefined || o.data === undefined) this.fail(`proposal of cmd ${cmd}: answered Ok without its index and result`);
    const real = u32(o.data, 4);
    if (real !== o.index) this.fail(`proposal of cmd ${cmd}: the result is the state after ${real}, not after its own entry ${o.index}`);
    if (o.index > this.ackedIndex) this.ackedIndex = o.index;
  }

  private propose(): void {
    let cmd = this.nextCmd;
    const wantMarker = this.healed && !this.markerCommitted && this.now - this.lastMarkerProposal >= 200;
    if (wantMarker) {
      if (this.marker === 0) this.marker = this.nextCmd++;
      cmd = this.marker;
    }
    const live = this.peers.filter((p) => p.host);
    // A third of the proposals go to a random peer that forwards them to its leader.
    const forward = live.length > 0 && this.rng() < 0.33;
    const order = forward ? [live[randInt(this.rng, 0, live.length - 1)]!] : live;
    for (let k = order.length; k > 0; k--) {
      const p = order.splice(randInt(this.rng, 0, k - 1), 1)[0]!;
      let refused = false;
      const c = cmd;
      p.host!.propose(words(cmd), { forward, timeoutMs: 1000 }, (o) => {
        if (o.status === Status.NotLeader) refused = true;
        this.onProposed(c, o);
      });
      if (!refused) {
        if (!wantMarker) this.nextCmd++;
        else this.lastMarkerProposal = this.now;
        this.note(`propose cmd ${cmd} at peer ${p.id}${forward ? ' (forwarded)' : ''}`);
        break;
      }
    }
    this.schedule({ kind: 'propose' }, randInt(this.rng, 5, this.proposeGap));
  }

  /** A linearizable (or lease) read must see every write acknowledged before it began. */
  private read(): void {
    const live = this.peers.filter((p) => p.host);
    // Half the reads go to a peer that believes it leads: with a partition,
    // possibly a deposed leader, where a read that skips its round goes wrong.
    const leaders = live.filter((p) => p.host!.core.isLeader());
    // With two, the one of the older term is deposed and does not know it yet.
    const stale = leaders.length > 1 ? [leaders.reduce((a, b) => (a.host!.core.currentTerm() <= b.host!.core.currentTerm() ? a : b))] : leaders;
    const pool = leaders.length > 0 && this.rng() < 0.5 ? stale : live;
    if (pool.length > 0) {
      const p = pool[randInt(this.rng, 0, pool.length - 1)]!;
      const consistency: ReadConsistency = this.rng() < 0.5 ? 'linearizable' : 'lease';
      const ackedBefore = this.ackedIndex;
      const at = this.now;
      p.host!.read(new Uint8Array(1), { consistency, forward: true, timeoutMs: 500 }, (o) => {
        if (o.status !== Status.Ok) return;
        const pos = u32(o.data!, 0);
        const real = u32(o.data!, 4);
        const hash = u32(o.data!, 8);
        this.reads++;
        this.note(`peer ${p.id} answers a ${consistency} read begun at ${at.toFixed(1)} ms: state through ${pos}`);
        if (pos < ackedBefore) {
          this.fail(`linearizable read: peer ${p.id} answered a ${consistency} read begun at ${at.toFixed(1)} ms with the state through ${pos}, but the write at ${ackedBefore} had been acknowledged before it began`);
        }
        this.checkState(p, real, hash, 'answered a read with a state that was never applied');
      });
    }
    this.schedule({ kind: 'read' }, randInt(this.rng, 5, this.readGap));
  }

  private transfer(): void {
    const leader = this.peers.find((q) => q.host?.core.isLeader());
    if (leader && !this.healed && this.transfers_) {
      const others = this.peers.filter((q) => q !== leader);
      // Half the time the most lagging peer by the leader's own log: catching up must happen first.
      const to = this.rng() < 0.5 ? others[randInt(this.rng, 0, others.length - 1)]! : others.reduce((a, b) => (lagOf(a) >= lagOf(b) ? a : b));
      this.note(`transfer leadership ${leader.id} -> ${to.id}`);
      leader.host!.transferLeadership(to.id, 300, (o) => {
        if (o.status === Status.Ok) this.transfers++;
      });
    }
    this.schedule({ kind: 'transfer' }, randInt(this.rng, 200, 1000));
    function lagOf(q: SimPeer): number {
      return q.host ? -q.host.core.log.lastIndex() : 0;
    }
  }

  // ---- checks after every event --------------------------------------------------

  private check(p: SimPeer): void {
    const core = p.host?.core;
    if (!core) return;
    const log = core.log;
    if (log.commitIndex < p.lastCommit) this.fail(`peer ${p.id}: commit index went back from ${p.lastCommit} to ${log.commitIndex}`);
    if (log.appliedIndex < p.lastApplied) this.fail(`peer ${p.id}: applied index went back from ${p.lastApplied} to ${log.appliedIndex}`);
    p.lastCommit = log.commitIndex;
    p.lastApplied = log.appliedIndex;
    if (!core.isLeader()) return;
    const term = core.currentTerm();
    // A leadership counts once its term is on disk: before that nothing of it can
    // leave (a Ready that changes the term sends nothing before its write, and
    // commits need the leader's own entries written). A lone voter elects itself
    // at once, and may crash before the write and vote again in that term.
    if (p.diskTerm < term) return;
    const known = this.leaderOfTerm.get(term);
    if (known === p.id) return;
    if (known !== undefined) this.fail(`election safety: peers ${known} and ${p.id} are both leaders of term ${term}`);
    this.leaderOfTerm.set(term, p.id);
    this.note(`peer ${p.id} becomes leader of term ${term}`);
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    for (let i = log.snapshotIndex() + 1; i <= this.maxApplied; i++) {
      if (this.committedTerm[i] === undefined) continue;
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
          const lagging = this.peers.filter((q) => (q.svc?.pos ?? 0) < this.markerAt).map((q) => `${q.id}@${q.svc?.pos ?? 0}`);
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
      simulatedMs: Math.round(this.now),
      events: this.events,
      committed: this.maxApplied,
      installs: this.installs,
      steppedSnapshots: this.steppedSnapshots,
      cancelledWriters: this.cancelledWriters,
      crashes: this.crashes,
      reads: this.reads,
      transfers: this.transfers,
      configChanges: this.configChanges,
    };
  }

  /** Run one of a peer's own steps (a timer, a drain); a storage crash point ends it there. */
  private inPeer(p: SimPeer, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof CrashSignal)) throw e;
      this.crash(p);
      return;
    }
    if (!p.crashAfter) {
      this.check(p);
      return;
    }
    this.crash(p);
    if (p.reviveOthers) {
      p.reviveOthers = false;
      for (const q of this.peers) {
        if (q.host || q === p) continue;
        this.boot(q);
        this.note(`RESTART peer ${q.id} as its leader falls (term ${q.disk.load().hardState.term})`);
      }
    }
  }

  private step(ev: SimEvent): void {
    switch (ev.kind) {
      case 'call': {
        const p = this.peers[ev.peer]!;
        if (!p.host || p.inc !== ev.inc || ev.timer.cancelled) return;
        this.inPeer(p, ev.fn);
        return;
      }
      case 'deliver': {
        const m = ev.msg;
        const p = this.peers[m.to]!;
        if (!p.host || this.group[m.from] !== this.group[m.to]) return;
        this.noteDelivery(m);
        this.checkTimeoutNow(p, m);
        this.inPeer(p, () => p.host!.receive(m));
        return;
      }
      case 'fault':
        this.fault();
        return;
      case 'propose':
        this.propose();
        return;
      case 'read':
        this.read();
        return;
      case 'transfer':
        this.transfer();
        return;
      case 'member':
        this.member();
        return;
      case 'retire': {
        const p = this.peers[ev.peer]!;
        if (!p.retired || !p.host || this.members().includes(p)) {
          p.retired = false;
          return;
        }
        p.host = undefined;
        this.note(`RETIRE peer ${p.id}: its removal committed`);
        for (const q of this.peers) q.host?.unreachable(p.id);
        return;
      }
      case 'restart': {
        const p = this.peers[ev.peer]!;
        if (p.host) return;
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
