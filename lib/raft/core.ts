import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { committedIndex, majority } from './quorum.js';
import { applyChange, decodeConfig, encodeConfig, initialConfig, membersOf, type ConfigChange, type ConfigRefusal } from './config.js';
import type { Rng } from './prng.js';
import { messageProblem } from './validate.js';
import {
  MAX_TERM,
  MAX_TERM_JUMP,
  MAX_PEER_ID,
  EntryType,
  MessageType,
  RaftOptionError,
  Role,
  type AppendRequest,
  type AppendResponse,
  type ClusterConfig,
  type Entry,
  type HardState,
  type InitialState,
  type Message,
  type PeerId,
  type ReadIndexRequest,
  type ReadState,
  type Ready,
  type Snapshot,
  type SnapshotRequest,
  type SnapshotResponse,
  type VoteRequest,
  type VoteResponse,
} from './types.js';

export interface CoreOptions {
  id: PeerId;
  /** Cluster size: the voters are 0..peers-1 (unless `voters` is given). */
  peers?: number;
  /**
   * The voters the cluster starts with (the configuration until the log or
   * a snapshot holds a later one). Empty: a server that joins an existing
   * cluster; it learns the configuration from the leader and never
   * campaigns before it is a voter.
   */
  voters?: PeerId[];
  /** Election timeout is drawn uniformly from [electionTicks, 2*electionTicks). */
  electionTicks: number;
  /** A leader sends heartbeats every heartbeatTicks ticks. */
  heartbeatTicks: number;
  /** Source of randomness in [0,1): injected so runs can be replayed. */
  rng: Rng;
  /** Restored durable state (term, vote, snapshot, log). */
  initial?: InitialState;
  /** Upper bound on entries in one AppendEntries. */
  maxEntriesPerMessage?: number;
  /** Upper bound on entry payload bytes in one AppendEntries (at least one entry is always sent). */
  maxBytesPerMessage?: number;
  /**
   * Upper bound on the committed entries one Ready hands to the state
   * machine (default 4096): a peer catching up on a long log applies it in
   * steps, and its host can read its messages in between.
   */
  maxCommittedPerReady?: number;
  /** Unacknowledged AppendEntries a leader keeps outstanding per follower. */
  maxInflight?: number;
  /**
   * Pre-vote (thesis 9.6; default false, the plain Figure 2 election): a peer
   * whose election timer fires first asks whether a majority would vote for
   * it, and only then increments its term. A peer that has heard from a
   * leader, or granted a vote, within the minimum election timeout refuses. A partitioned or
   * lagging peer therefore cannot force a healthy leader out when it returns.
   */
  preVote?: boolean;
  /**
   * Refuse proposals without a quorum (default false): a leader that has not
   * heard from a majority within the minimum election timeout refuses new
   * commands, as a follower would, until it hears from one again. A leader
   * cut off by a partition thus stops taking commands it cannot commit about
   * when the others can elect a new leader. Unlike etcd's CheckQuorum it
   * keeps its role, so a partition that heals costs no election.
   */
  refuseWithoutQuorum?: boolean;
  /**
   * Lease reads (thesis 6.4.1; default false). A leader that a majority
   * acknowledged within the last minimum election timeout, less
   * `leaseMarginTicks`, answers a lease read at its commit index without a
   * round of messages: with pre-vote, no other peer can win an election in
   * that time, because a peer that heard from a leader within a minimum
   * election timeout refuses pre-votes. Two rules make that hold, and this
   * option turns them on: a peer that has just started refuses pre-votes for
   * its first minimum election timeout (it may have heard from a leader just
   * before it went down), and a leader that began a leadership transfer holds
   * no lease for the rest of its term (the transfer skips pre-vote). Without
   * pre-vote a lease read is an ordinary ReadIndex read.
   */
  leaseReads?: boolean;
  /**
   * The clock-drift margin taken off a lease, in ticks (default: a tenth of
   * electionTicks, at least 1). Peers in one process share one clock; between
   * machines, set it to cover how far their clocks' rates may differ over a
   * minimum election timeout.
   */
  leaseMarginTicks?: number;
  /**
   * Test-only: deliberately broken rules, so the simulator can prove it
   * catches them. Never set outside tests.
   */
  bugs?: PlantedBugs;
}

export interface PlantedBugs {
  /** Grant votes without the 5.4.1 up-to-date check. */
  voteWithoutLogCheck?: boolean;
  /** Commit entries of earlier terms by counting replicas (violates 5.4.2). */
  commitPreviousTerm?: boolean;
  /** Overwrite conflicting entries in place but keep the conflicting suffix after them. */
  keepConflictingSuffix?: boolean;
  /** Never hand a vote to storage: it is lost on restart. */
  forgetVote?: boolean;
  /** Accept a configuration change while another one is still uncommitted (thesis 4.1 forbids it). */
  concurrentConfigChanges?: boolean;
  /** Let every message leave before the Ready is written, votes and responses too. */
  everythingEarly?: boolean;
  /** Answer a ReadIndex read at once, without the round that confirms this peer still leads. */
  readWithoutRound?: boolean;
  /** Tell a transfer's target to campaign before it holds the leader's whole log. */
  transferWithoutCatchUp?: boolean;
  /** Hold a lease for ever once a majority answered a round: lease reads with no clock bound. */
  leaseWithoutExpiry?: boolean;
  /** The peer host's: store a snapshot written in steps at the index applied when it finished, not where it began. */
  snapshotAtFinish?: boolean;
}

export interface CoreStatus {
  id: PeerId;
  term: number;
  vote: PeerId;
  role: Role;
  leader: PeerId;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  /** The peer a leadership transfer in progress hands over to, or -1. */
  transferee: PeerId;
}

/** A read waiting for its round; `from` is -1 for this peer's own read. */
interface PendingRead {
  ctx: number;
  from: PeerId;
  index: number;
  seq: number;
}

/** Round start ticks kept for the lease; older ones go (bounds the list while no quorum answers). */
const MAX_ROUND_STARTS = 64;
/** The empty entry a leader appends when a read needs a commit in its term (hosts do not apply it). */
const NOOP = new Uint8Array(0);

/** Follower reads asked of a leader and not yet answered that are remembered; older ones are forgotten. */
const MAX_ASKED_READS = 1 << 16;

/** Heartbeat rounds without an answer to an InstallSnapshot before it is sent again. */
const SNAPSHOT_RETRY_ROUNDS = 3;
/** After this many silent heartbeat rounds a follower is contacted once per this many rounds. */
const SILENT_ROUNDS_BACKOFF = 3;
/**
 * Ticks a leader waits after its commit index last moved before telling
 * followers in a message of its own; entries sent meanwhile carry it free.
 */
export const COMMIT_NOTICE_TICKS = 2;

/** A rule of the core's own that must hold whatever its input; broken, the core has a bug. */
function invariant(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`raft core invariant broken: ${what}`);
}

function requireInt(option: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RaftOptionError(option, `must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * The Raft algorithm of Figure 2 of the extended Raft paper as a pure state
 * machine: no timers, no I/O, no hidden randomness. Feed it tick(), step()
 * and propose(); drain ready() and call advance() once the Ready is handled.
 */
export class RaftCore {
  readonly id: PeerId;
  readonly log: RaftLog;
  /** The configuration in force: the latest in the log, committed or not (thesis 4.1). */
  private cfg!: ClusterConfig;
  private voterSet = new Set<PeerId>();
  /** Every member but this peer (voters and learners), sorted. */
  private others: PeerId[] = [];
  /** The configuration as of the snapshot (or the initial one). */
  private baseConfig: ClusterConfig;
  /** Config entries in the log after the snapshot, in index order. */
  private configLog: { index: number; config: ClusterConfig }[] = [];
  /** The tick the configuration last changed (leases are not trusted across a change). */
  private configChangedAt = -Infinity;
  private term: number;
  private vote: PeerId;
  private role: Role = Role.Follower;
  private leader: PeerId = -1;

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly rng: Rng;
  private readonly maxEntries: number;
  private readonly maxCommitted: number;
  private readonly maxBytes: number;
  private readonly maxInflight: number;
  private readonly preVote: boolean;
  private readonly refuseWithoutQuorum: boolean;
  private readonly bugs: PlantedBugs;

  private electionElapsed = 0;
  private randomizedElection = 0;
  private heartbeatElapsed = 0;
  /** Ticks since this core started (the leader's clock for retransmission). */
  private ticks = 0;
  /** When this leader's commit index last moved (ticks). */
  private committedAt = 0;
  /** When this peer last granted a real vote (ticks). */
  private votedAt = -Infinity;
  /** An AppendEntries unanswered for this many ticks is presumed lost and sent again. */
  private readonly retransmitTicks: number;
  private votes = new Set<PeerId>();
  /** Peers that answered this campaign's pre-votes or votes: the ones known to be up. */
  private responders = new Set<PeerId>();
  /** This campaign skipped pre-vote (a transfer's): nothing is known of who is up. */
  private forcedCampaign = false;
  private progress = new Map<PeerId, Progress>();
  /** Reused by the quorum computations (commit index, read rounds) instead of an array per acknowledgement. */
  private readonly quorumScratch: number[] = [];
  private needBroadcast = false;
  private msgs: Message[] = [];
  private persistedHard: HardState;
  /** The latest snapshot, kept whole so a leader can ship it to a lagging follower. */
  private snapshot: Snapshot;
  private unpersistedSnapshot: Snapshot | undefined;
  private unappliedSnapshot: Snapshot | undefined;

  // ---- reads (thesis 6.4) and leadership transfer (3.10) --------------------
  private readonly leaseReads: boolean;
  private readonly leaseMarginTicks: number;
  /** Leader: its current round. Every AppendEntries carries it, every answer echoes it. */
  private seq = 0;
  /** Whether a message carrying `seq` has left (a new read needs a round no earlier message belongs to). */
  private seqSent = false;
  /** Leader: the tick each round began, oldest first (the lease counts from one). */
  private roundStarts: { seq: number; at: number }[] = [];
  /** Leader: reads waiting for a majority to echo their round, in round order. */
  private pendingReads: PendingRead[] = [];
  /** Leader: reads waiting for this term's first commit (until then its commit index may lag). */
  private readsAwaitingCommit: { ctx: number; from: PeerId; lease: boolean }[] = [];
  /** Followers that must be sent the current round (a read is waiting for it). */
  private roundWanted = false;
  private readStates: ReadState[] = [];
  /** Follower: the reads it asked a leader for, by ctx, with the leader asked (only its answer places one). */
  private askedReads = new Map<number, PeerId>();
  private transferee: PeerId = -1;
  private transferElapsed = 0;
  private timeoutNowSent = false;
  /** This leader started a transfer in its term: a TimeoutNow may be in flight, so no lease. */
  private transferredInTerm = false;

  constructor(opts: CoreOptions) {
    this.id = requireInt('id', opts.id, 0);
    if (this.id > MAX_PEER_ID) throw new RaftOptionError('id', `must be at most ${MAX_PEER_ID}, got ${this.id}`);
    let voters: PeerId[];
    if (opts.voters !== undefined) {
      if (!Array.isArray(opts.voters)) throw new RaftOptionError('voters', 'must be a list of peer ids');
      voters = opts.voters;
    } else {
      const n = requireInt('peers', opts.peers, 1);
      if (this.id >= n) throw new RaftOptionError('id', `must be below peers (${n}), got ${this.id}`);
      voters = Array.from({ length: n }, (_, k) => k);
    }
    for (const v of voters) if (!Number.isSafeInteger(v) || v < 0 || v > MAX_PEER_ID) throw new RaftOptionError('voters', `holds ${String(v)}, not a peer id`);
    this.electionTicks = requireInt('electionTicks', opts.electionTicks, 1);
    this.heartbeatTicks = requireInt('heartbeatTicks', opts.heartbeatTicks, 1);
    if (this.heartbeatTicks >= this.electionTicks) {
      throw new RaftOptionError('heartbeatTicks', `must be below electionTicks (${this.electionTicks})`);
    }
    if (typeof opts.rng !== 'function') throw new RaftOptionError('rng', 'must be a function returning [0,1)');
    this.rng = opts.rng;
    this.maxEntries = requireInt('maxEntriesPerMessage', opts.maxEntriesPerMessage ?? 4096, 1);
    this.maxBytes = requireInt('maxBytesPerMessage', opts.maxBytesPerMessage ?? 1 << 20, 1);
    this.maxCommitted = requireInt('maxCommittedPerReady', opts.maxCommittedPerReady ?? 4096, 1);
    this.maxInflight = requireInt('maxInflight', opts.maxInflight ?? 256, 1);
    if (opts.preVote !== undefined && typeof opts.preVote !== 'boolean') throw new RaftOptionError('preVote', 'must be a boolean');
    this.preVote = opts.preVote ?? false;
    if (opts.refuseWithoutQuorum !== undefined && typeof opts.refuseWithoutQuorum !== 'boolean') {
      throw new RaftOptionError('refuseWithoutQuorum', 'must be a boolean');
    }
    this.refuseWithoutQuorum = opts.refuseWithoutQuorum ?? false;
    this.bugs = opts.bugs ?? {};
    if (opts.leaseReads !== undefined && typeof opts.leaseReads !== 'boolean') throw new RaftOptionError('leaseReads', 'must be a boolean');
    this.leaseReads = opts.leaseReads ?? false;
    this.leaseMarginTicks = requireInt('leaseMarginTicks', opts.leaseMarginTicks ?? Math.max(1, Math.ceil(this.electionTicks / 10)), 0);
    this.retransmitTicks = Math.max(2, Math.floor(this.heartbeatTicks / 3));

    const init = opts.initial;
    this.term = init?.hardState.term ?? 0;
    this.vote = init?.hardState.vote ?? -1;
    this.persistedHard = { term: this.term, vote: this.vote };
    this.snapshot = init?.snapshot ?? { index: 0, term: 0, data: new Uint8Array(0) };
    this.log = new RaftLog(this.snapshot, init?.entries ?? []);
    const start = initialConfig(voters);
    this.baseConfig = this.snapshot.config ?? start;
    this.noteEntries(init?.entries ?? []);
    this.setConfig(this.configLog.length > 0 ? this.configLog[this.configLog.length - 1]!.config : this.baseConfig);
    this.configChangedAt = -Infinity;
    this.resetElectionTimer();
  }

  // ---- configuration (thesis chapter 4) -----------------------------------------

  /** The configuration in force: the latest one in the log, committed or not. */
  config(): ClusterConfig {
    return this.cfg;
  }

  /** Whether the latest configuration in the log is committed (a new change may start). */
  configCommitted(): boolean {
    const last = this.configLog[this.configLog.length - 1];
    return !last || last.index <= this.log.commitIndex;
  }

  isVoter(p: PeerId = this.id): boolean {
    return this.voterSet.has(p);
  }

  /** What this leader knows of member p's log: its match index, -1 when not leading or p is not a member. */
  matchOf(p: PeerId): number {
    if (this.role !== Role.Leader) return -1;
    return this.progress.get(p)?.match ?? -1;
  }

  /**
   * Propose a single-server change (thesis 4.2): append a Config entry,
   * which takes effect here at once and on each peer when it appends it.
   * Refused while an earlier change is uncommitted, before this leader has
   * committed an entry of its own term (a leader may not know the latest
   * committed configuration before that), and during a leadership transfer.
   */
  proposeConfigChange(change: ConfigChange): { index: number; term: number; config: ClusterConfig } | ConfigRefusal {
    if (this.role !== Role.Leader || this.transferee !== -1) return 'not-leader';
    if (!this.bugs.concurrentConfigChanges && (!this.configCommitted() || !this.committedInTerm())) return 'in-progress';
    const next = applyChange(this.cfg, change);
    if (typeof next === 'string') return next;
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, data: encodeConfig(next), type: EntryType.Config };
    this.log.append(entry);
    this.noteEntries([entry]);
    this.setConfig(next);
    this.needBroadcast = true;
    return { index: entry.index, term: entry.term, config: next };
  }

  /**
   * A leader removed from the configuration steps down once the change is
   * committed (thesis 4.2.2): until then it leads the new configuration
   * without counting itself. Checked after each input, not in the middle of
   * handling one (the handlers go on using the leader's state).
   */
  /**
   * A voter campaigns; so does a server that an uncommitted change in its
   * own log removed. Without it that change could never commit when the
   * leader that appended it fell: the remaining voters may lack the entry,
   * and the only up-to-date server would not stand. It wins only with a
   * majority of the new configuration's voters (it does not count itself),
   * and steps down once the change commits.
   */
  private mayCampaign(): boolean {
    if (this.voterSet.has(this.id)) return true;
    if (this.configCommitted() || this.configLog.length === 0) return false;
    return this.configAt(this.configLog[this.configLog.length - 1]!.index - 1).voters.includes(this.id);
  }

  /** Votes (or pre-votes) granted by voters of the configuration in force, this peer's own included only if it is one. */
  private granted(): number {
    let k = 0;
    for (const v of this.votes) if (this.voterSet.has(v)) k++;
    return k;
  }

  private stepDownIfRemoved(): void {
    if (this.role !== Role.Leader || this.voterSet.has(this.id) || !this.configCommitted()) return;
    // Hand over rather than leave the others to time out (thesis 3.10): the voter furthest along campaigns at once.
    let to = -1;
    let best = -1;
    for (const p of this.cfg.voters) {
      const m = this.progress.get(p)?.match ?? -1;
      if (m > best) [to, best] = [p, m];
    }
    if (to !== -1 && best === this.log.lastIndex()) this.send({ type: MessageType.TimeoutNow, from: this.id, to, term: this.term });
    this.becomeFollower(this.term, -1);
  }

  private setConfig(c: ClusterConfig): void {
    if (c === this.cfg) return;
    this.cfg = c;
    this.voterSet = new Set(c.voters);
    this.others = membersOf(c).filter((p) => p !== this.id);
    this.configChangedAt = this.ticks;
    if (this.role !== Role.Leader) return;
    // A new member is probed from the last entry (the one that added it, when this leader just appended it).
    for (const p of this.others) {
      if (!this.progress.has(p)) this.progress.set(p, new Progress(Math.max(1, this.log.lastIndex()), this.maxInflight, this.ticks));
    }
    for (const p of [...this.progress.keys()]) if (p !== this.id && !this.voterSet.has(p) && !c.learners.includes(p)) this.progress.delete(p);
    if (this.transferee !== -1 && !this.voterSet.has(this.transferee)) this.transferee = -1;
    this.maybeCommit();
  }

  /** Record the Config entries among `entries` (just appended to the log). */
  private noteEntries(entries: Entry[]): void {
    for (const e of entries) if (e.type === EntryType.Config) this.configLog.push({ index: e.index, config: decodeConfig(e.data) });
  }

  /** The log lost everything from `index` on: so did its configurations. */
  private noteTruncated(index: number): void {
    while (this.configLog.length > 0 && this.configLog[this.configLog.length - 1]!.index >= index) this.configLog.pop();
  }

  /** The configuration as of log index `index` (at or after the snapshot). */
  private configAt(index: number): ClusterConfig {
    let c = this.baseConfig;
    for (const e of this.configLog) {
      if (e.index > index) break;
      c = e.config;
    }
    return c;
  }

  /** The log now starts after a snapshot through `index` whose configuration is `config`. */
  private noteCompacted(index: number, config: ClusterConfig): void {
    this.baseConfig = config;
    this.configLog = this.configLog.filter((e) => e.index > index && this.log.term(e.index) !== undefined);
  }

  private refreshConfig(): void {
    const last = this.configLog[this.configLog.length - 1];
    this.setConfig(last ? last.config : this.baseConfig);
  }

  status(): CoreStatus {
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commitIndex: this.log.commitIndex,
      appliedIndex: this.log.appliedIndex,
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshotIndex(),
      transferee: this.transferee,
    };
  }

  isLeader(): boolean {
    return this.role === Role.Leader;
  }

  /** The leader this peer knows of (itself when it leads), -1 for none. */
  leaderId(): PeerId {
    return this.leader;
  }

  currentTerm(): number {
    return this.term;
  }

  // ---- inputs ---------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.role === Role.Leader) {
      // A transfer that has not completed within an election timeout is given up (thesis 3.10).
      if (this.transferee !== -1 && ++this.transferElapsed >= this.electionTicks) this.transferee = -1;
      this.retransmitLost();
      this.needBroadcast = true;
      this.heartbeatElapsed++;
      if (this.heartbeatElapsed >= this.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.heartbeatRound();
      } else {
        this.propagateCommit();
      }
      return;
    }
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElection) {
      // A learner, or a server not (or no longer) in the configuration, never campaigns.
      if (!this.mayCampaign()) this.resetElectionTimer();
      else if (this.preVote) this.preCampaign();
      else this.campaign();
    }
  }

  /**
   * How many tick() calls from now the next one that does anything will be
   * (an election, a heartbeat round, a commit notice); the ones before it
   * change nothing. A host may sleep that long instead of ticking idly.
   */
  ticksUntilDue(): number {
    if (this.role === Role.Leader) {
      let due = this.heartbeatTicks - this.heartbeatElapsed;
      if (this.holdsEntries()) return 1;
      if (this.transferee !== -1) due = Math.min(due, this.electionTicks - this.transferElapsed);
      if (this.commitToPropagate()) due = Math.min(due, this.committedAt + COMMIT_NOTICE_TICKS - this.ticks);
      for (const p of this.others) {
        const at = this.progress.get(p)!.oldestInflightAt();
        if (at !== undefined) due = Math.min(due, at + this.retransmitTicks - this.ticks);
      }
      return Math.max(1, due);
    }
    return Math.max(1, this.randomizedElection - this.electionElapsed);
  }

  /** Append a command if this peer leads; returns where it will sit if it commits. */
  propose(data: Uint8Array): { index: number; term: number } | undefined {
    if (this.role !== Role.Leader || this.transferee !== -1) return undefined;
    if (this.refuseWithoutQuorum && this.quorumLost()) return undefined;
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, data };
    this.log.append(entry);
    this.needBroadcast = true;
    return { index: entry.index, term: entry.term };
  }

  /**
   * Take in one message from another peer. Returns false, changing nothing,
   * for a message no valid peer sends: one that breaks a rule of
   * messageProblem (lib/raft/validate.ts: types, ranges, terms within
   * MAX_TERM), is misaddressed, raises this peer's term by more than
   * MAX_TERM_JUMP, or contradicts what this peer knows: an AppendEntries,
   * InstallSnapshot or TimeoutNow of this peer's term from a peer other
   * than the term's known leader (a term has one leader), an answer to this
   * leader that acknowledges an index beyond its log or echoes a round it
   * never sent that follower, or an answer to a follower's read from a peer
   * other than the one asked. A host counts these as garbage. Answers that
   * are merely late or repeated are taken (and ignored) as before.
   */
  step(m: Message): boolean {
    const ok = this.stepMessage(m);
    this.stepDownIfRemoved();
    return ok;
  }

  private stepMessage(m: Message): boolean {
    if (messageProblem(m, MAX_PEER_ID + 1) !== undefined || m.to !== this.id || m.from === this.id) return false;
    if (m.term > this.term + MAX_TERM_JUMP) return false;
    if (m.type === MessageType.ReadIndexResponse) {
      // Valid whatever the terms now: the leader confirmed it led after the read arrived.
      const asked = this.askedReads.get(m.ctx);
      // Already answered (a repeat) or long forgotten: nobody waits for it.
      if (asked === undefined) return true;
      if (asked !== m.from) return false;
      this.askedReads.delete(m.ctx);
      this.readStates.push({ ctx: m.ctx, index: m.index });
      return true;
    }
    if (
      m.term === this.term &&
      (m.type === MessageType.Append || m.type === MessageType.Snapshot || m.type === MessageType.TimeoutNow) &&
      this.leader !== -1 &&
      this.leader !== m.from
    ) {
      // A second leader in one term (or one sending to the leader itself): Election Safety says none exists.
      return false;
    }
    // A server outside this peer's configuration (removed, and perhaps never
    // told) asks for votes: while a leader is heard from it is ignored
    // altogether, term included (thesis 4.2.3), or, without pre-vote, it
    // would depose each leader in turn and never win.
    if (
      m.type === MessageType.Vote &&
      !m.pre &&
      m.term > this.term &&
      !this.voterSet.has(m.from) &&
      this.leader !== -1 &&
      (this.role === Role.Leader || this.electionElapsed < this.electionTicks)
    ) {
      return true;
    }
    // A pre-vote asks about a future term, and a granted one echoes it: neither moves our term.
    const aboutFutureTerm = (m.type === MessageType.Vote && m.pre) || (m.type === MessageType.VoteResponse && m.pre && m.granted);
    if (m.term > this.term && !aboutFutureTerm) {
      const fromLeader = m.type === MessageType.Append || m.type === MessageType.Snapshot;
      this.becomeFollower(m.term, fromLeader ? m.from : -1);
    } else if (m.term < this.term) {
      this.rejectStale(m);
      return true;
    }
    switch (m.type) {
      case MessageType.Vote:
        this.handleVote(m);
        break;
      case MessageType.VoteResponse:
        this.handleVoteResponse(m);
        break;
      case MessageType.Append:
        this.handleAppend(m);
        break;
      case MessageType.AppendResponse:
        return this.handleAppendResponse(m);
      case MessageType.Snapshot:
        this.handleSnapshot(m);
        break;
      case MessageType.SnapshotResponse:
        return this.handleSnapshotResponse(m);
      case MessageType.ReadIndex:
        this.handleReadIndex(m);
        break;
      case MessageType.TimeoutNow:
        // Only a follower of this term is handed leadership; anything else is stale.
        if (this.role !== Role.Leader && this.mayCampaign()) this.campaign(true);
        break;
    }
    return true;
  }

  /**
   * Place a linearizable read (thesis 6.4); the answer comes in a later
   * Ready's readStates under `ctx`. On the leader, the read is placed at its
   * commit index once a majority has echoed a round that began after the
   * read arrived (so nobody else led meanwhile), and only once the leader
   * has committed an entry of its own term (until then its commit index may
   * lag what an earlier leader committed; if its log holds no entry of its
   * term it appends an empty one, which hosts do not apply). With `lease`,
   * a leader whose lease holds places it at once. A follower asks its leader.
   * Returns false when no leader is known: no answer will come.
   */
  readIndex(ctx: number, lease = false): boolean {
    if (!Number.isSafeInteger(ctx) || ctx < 0) throw new RaftOptionError('ctx', `must be a non-negative integer, got ${String(ctx)}`);
    if (this.role === Role.Leader) {
      this.leaderRead(ctx, -1, lease);
      return true;
    }
    if (this.role !== Role.Follower || this.leader === -1) return false;
    this.send({ type: MessageType.ReadIndex, from: this.id, to: this.leader, term: this.term, ctx, lease });
    this.askedReads.delete(ctx);
    this.askedReads.set(ctx, this.leader);
    // An ask or answer lost on the way leaves its entry behind: forget the oldest.
    if (this.askedReads.size > MAX_ASKED_READS) this.askedReads.delete(this.askedReads.keys().next().value!);
    return true;
  }

  /**
   * Hand leadership to `to` (thesis 3.10): bring it up to date, then tell it
   * to campaign at once (TimeoutNow). Proposals are refused meanwhile. The
   * transfer is given up, and this leader carries on, if the target has not
   * caught up within an election timeout, or has not won an election
   * timeout after the TimeoutNow. Returns 'not-leader' when this peer does
   * not lead.
   */
  transferLeadership(to: PeerId): 'not-leader' | undefined {
    if (!this.voterSet.has(to)) throw new RaftOptionError('to', `must be a voter (${this.cfg.voters.join(', ')}), got ${String(to)}`);
    if (this.role !== Role.Leader) return 'not-leader';
    if (to === this.id || to === this.transferee) return undefined;
    this.transferee = to;
    this.transferElapsed = 0;
    this.timeoutNowSent = false;
    this.transferredInTerm = true;
    this.maybeSendTimeoutNow();
    if (!this.timeoutNowSent && this.progress.get(to)!.canSend()) this.sendAppend(to);
    return undefined;
  }

  private maybeSendTimeoutNow(): void {
    if (this.transferee === -1 || this.timeoutNowSent) return;
    if (!this.bugs.transferWithoutCatchUp && this.progress.get(this.transferee)!.match < this.log.lastIndex()) return;
    this.send({ type: MessageType.TimeoutNow, from: this.id, to: this.transferee, term: this.term });
    this.timeoutNowSent = true;
    // The target gets a whole election timeout to win from here: giving up
    // sooner would let this leader take proposals the target lacks while
    // the TimeoutNow is still on its way.
    this.transferElapsed = 0;
  }

  /**
   * The service has captured everything up to and including `index` in
   * `data`: discard the log through `index` (section 7). Calls at or below
   * the current snapshot are ignored; `index` may not pass what was applied.
   */
  compact(index: number, data: Uint8Array): boolean {
    if (!Number.isSafeInteger(index) || index < 0) throw new RaftOptionError('index', `must be a non-negative integer, got ${String(index)}`);
    if (!(data instanceof Uint8Array)) throw new RaftOptionError('data', 'must be a Uint8Array');
    if (index <= this.log.snapshotIndex()) return false;
    if (index > this.log.appliedIndex) {
      throw new RaftOptionError('index', `cannot snapshot at ${index}: only ${this.log.appliedIndex} is applied`);
    }
    const { term, config } = this.snapshotMetaAt(index)!;
    this.log.compactTo(index, term);
    this.noteCompacted(index, config);
    this.snapshot = { index, term, data, config };
    this.unpersistedSnapshot = this.snapshot;
    return true;
  }

  /**
   * The term and configuration that compact(index) would record with a
   * snapshot at `index` (undefined unless applied and not yet compacted):
   * what a snapshot written ahead of its compaction is checksummed with.
   */
  snapshotMetaAt(index: number): { term: number; config: ClusterConfig } | undefined {
    if (index <= this.log.snapshotIndex() || index > this.log.appliedIndex) return undefined;
    return { term: this.log.term(index)!, config: this.configAt(index) };
  }

  /** The latest snapshot (index 0 and no data when none was taken). */
  latestSnapshot(): Snapshot {
    return this.snapshot;
  }

  // ---- output ---------------------------------------------------------------

  hasReady(): boolean {
    this.flushBroadcast();
    return (
      this.readStates.length > 0 ||
      this.term !== this.persistedHard.term ||
      this.vote !== this.persistedHard.vote ||
      this.log.stableIndex < this.persistLimit() ||
      this.msgs.length > 0 ||
      this.log.commitIndex > this.log.appliedIndex ||
      this.unpersistedSnapshot !== undefined ||
      this.unappliedSnapshot !== undefined
    );
  }

  ready(): Ready {
    this.flushBroadcast();
    const hardChanged = this.term !== this.persistedHard.term || this.vote !== this.persistedHard.vote;
    const { messages, earlyCount } = this.orderForPersist(this.msgs, hardChanged);
    const rd: Ready = {
      entries: this.log.slice(this.log.stableIndex + 1, this.persistLimit()),
      lastIndex: this.log.lastIndex(),
      messages,
      earlyCount,
      committed: this.log.slice(this.log.appliedIndex + 1, Math.min(this.log.commitIndex, this.log.appliedIndex + this.maxCommitted)),
      readStates: this.readStates,
    };
    this.readStates = [];
    if (hardChanged) rd.hardState = { term: this.term, vote: this.bugs.forgetVote ? -1 : this.vote };
    if (this.unpersistedSnapshot) rd.snapshot = this.unpersistedSnapshot;
    if (this.unappliedSnapshot) rd.applySnapshot = this.unappliedSnapshot;
    this.msgs = [];
    return rd;
  }

  /**
   * A leader's requests first, counted as early: nothing in them depends on
   * the leader's unwritten state (its term was written before it asked for
   * votes). With a term or vote change in this Ready nothing goes early, and
   * everything else (votes, responses) always waits for the write.
   */
  private orderForPersist(msgs: Message[], hardChanged: boolean): { messages: Message[]; earlyCount: number } {
    if (this.bugs.everythingEarly) return { messages: msgs, earlyCount: msgs.length };
    if (this.role !== Role.Leader || hardChanged) return { messages: msgs, earlyCount: 0 };
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of msgs) (m.type === MessageType.Append || m.type === MessageType.Snapshot ? early : late).push(m);
    if (late.length === 0) return { messages: msgs, earlyCount: msgs.length };
    return { messages: early.concat(late), earlyCount: early.length };
  }

  advance(rd: Ready): void {
    if (rd.hardState) this.persistedHard = this.bugs.forgetVote ? { term: rd.hardState.term, vote: this.vote } : rd.hardState;
    if (rd.snapshot === this.unpersistedSnapshot) this.unpersistedSnapshot = undefined;
    if (rd.applySnapshot === this.unappliedSnapshot) this.unappliedSnapshot = undefined;
    const last = rd.entries[rd.entries.length - 1];
    if (last && this.log.term(last.index) === last.term && last.index > this.log.stableIndex) {
      this.log.stableIndex = last.index;
    }
    const applied = rd.committed[rd.committed.length - 1];
    if (applied && applied.index > this.log.appliedIndex) this.log.appliedIndex = applied.index;
    if (this.role === Role.Leader) {
      this.progress.get(this.id)!.maybeUpdate(this.log.stableIndex);
      this.maybeCommit();
      this.stepDownIfRemoved();
    }
  }

  // ---- elections (5.2) ------------------------------------------------------

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.randomizedElection = this.electionTicks + Math.floor(this.rng() * this.electionTicks);
  }

  private becomeFollower(term: number, leader: PeerId): void {
    invariant(term <= MAX_TERM, `term ${term} beyond MAX_TERM`);
    if (this.role === Role.Leader) this.dropLeaderState();
    if (term > this.term) {
      this.term = term;
      this.vote = -1;
    }
    this.role = Role.Follower;
    this.leader = leader;
    this.progress = new Map();
    this.votes.clear();
    this.needBroadcast = false;
    this.resetElectionTimer();
  }

  /** `force`: a transfer's target, which asks every peer (no pre-vote round came first). */
  private campaign(force = false): void {
    // No room for another term (only reachable by being pushed there): wait, as a follower.
    if (this.term >= MAX_TERM) return this.resetElectionTimer();
    this.forcedCampaign = force;
    this.term++;
    this.vote = this.id;
    this.role = Role.Candidate;
    this.leader = -1;
    this.votes = new Set([this.id]);
    this.resetElectionTimer();
    if (this.granted() >= majority(this.cfg.voters.length)) {
      this.becomeLeader();
      return;
    }
    // After a pre-vote round, only the peers that answered it are asked (a
    // late answer brings its own request): the silent ones are down or cut
    // off, and asking them again would only cost a message each.
    for (const p of this.cfg.voters) {
      if (p !== this.id && (force || !this.preVote || this.responders.has(p))) this.requestVote(p, this.term, false);
    }
  }

  private requestVote(to: PeerId, term: number, pre: boolean): void {
    this.send({ type: MessageType.Vote, from: this.id, to, term, lastLogIndex: this.log.lastIndex(), lastLogTerm: this.log.lastTerm(), pre });
  }

  /** Ask for pre-votes for term+1; the real election starts only once a majority would vote. */
  private preCampaign(): void {
    if (this.term >= MAX_TERM) return this.resetElectionTimer();
    this.role = Role.PreCandidate;
    this.leader = -1;
    this.votes = new Set([this.id]);
    this.responders = new Set();
    this.resetElectionTimer();
    if (this.granted() >= majority(this.cfg.voters.length)) {
      this.campaign();
      return;
    }
    for (const p of this.cfg.voters) if (p !== this.id) this.requestVote(p, this.term + 1, true);
  }

  private handleVote(m: VoteRequest): void {
    // 5.4.1: only a candidate whose log is at least as up-to-date may win.
    const upToDate = this.bugs.voteWithoutLogCheck || this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (m.pre) {
      // Leader stickiness: while a leader is heard from (or the candidate we
      // just voted for may be winning), nobody needs a new one.
      // With lease reads, a peer just started counts as having heard from a
      // leader: it may have, just before it went down, and that leader's lease
      // relies on it refusing.
      const leaderHeard =
        (this.leader !== -1 && this.electionElapsed < this.electionTicks) || (this.leaseReads && this.ticks < this.electionTicks);
      const justVoted = this.ticks - this.votedAt < this.electionTicks;
      const granted = m.term > this.term && this.role !== Role.Leader && !leaderHeard && !justVoted && upToDate;
      this.send({ type: MessageType.VoteResponse, from: this.id, to: m.from, term: granted ? m.term : this.term, granted, pre: true });
      return;
    }
    const free = this.vote === -1 || this.vote === m.from;
    const granted = free && (this.role === Role.Follower || this.role === Role.PreCandidate) && upToDate;
    if (granted) {
      this.vote = m.from;
      this.votedAt = this.ticks;
      this.resetElectionTimer();
    }
    this.send({ type: MessageType.VoteResponse, from: this.id, to: m.from, term: this.term, granted, pre: false });
  }

  private handleVoteResponse(m: VoteResponse): void {
    // Any answer, even one that comes after the majority, shows the peer is up.
    const fresh = this.role !== Role.Follower && !this.responders.has(m.from);
    if (this.role !== Role.Follower) this.responders.add(m.from);
    if (m.pre) {
      if (this.role === Role.Candidate && fresh) this.requestVote(m.from, this.term, false);
      if (this.role !== Role.PreCandidate || !m.granted || m.term !== this.term + 1 || !this.voterSet.has(m.from)) return;
      this.votes.add(m.from);
      if (this.granted() >= majority(this.cfg.voters.length)) this.campaign();
      return;
    }
    // Only the votes of this peer's configuration's voters count.
    if (this.role !== Role.Candidate || !m.granted || !this.voterSet.has(m.from)) return;
    this.votes.add(m.from);
    if (this.granted() >= majority(this.cfg.voters.length)) this.becomeLeader();
  }

  private becomeLeader(): void {
    this.role = Role.Leader;
    this.leader = this.id;
    this.heartbeatElapsed = 0;
    this.seq = 1;
    this.seqSent = false;
    this.roundStarts = [{ seq: 1, at: this.ticks }];
    this.transferee = -1;
    this.transferredInTerm = false;
    this.progress = new Map();
    // The quorum check counts from the election: the votes just received.
    for (const p of [this.id, ...this.others]) this.progress.set(p, new Progress(this.log.lastIndex() + 1, this.maxInflight, this.ticks));
    this.progress.get(this.id)!.maybeUpdate(this.log.stableIndex);
    this.progress.get(this.id)!.becomeReplicate();
    // Assert leadership at once rather than waiting a heartbeat interval; with
    // pre-vote, only to the peers known to be up (learners are not asked for
    // votes, so nothing is known of them: they are sent to).
    for (const p of this.others) {
      if (!this.preVote || this.forcedCampaign || this.responders.has(p) || !this.voterSet.has(p)) {
        this.sendAppend(p);
      } else {
        // Presumed down: new entries wait for a heartbeat round, and rounds
        // contact it at the silent-follower pace until it answers.
        const pr = this.progress.get(p)!;
        pr.paused = true;
        pr.silentRounds = SILENT_ROUNDS_BACKOFF;
      }
    }
  }

  /** Answer a request from an older term so its sender learns the newer term. */
  private rejectStale(m: Message): void {
    if (m.type === MessageType.Vote) {
      this.send({ type: MessageType.VoteResponse, from: this.id, to: m.from, term: this.term, granted: false, pre: m.pre });
    } else if (m.type === MessageType.Append) {
      this.respondAppend(m.from, false, m.prevLogIndex, 0, 0);
    } else if (m.type === MessageType.Snapshot) {
      this.send({ type: MessageType.SnapshotResponse, from: this.id, to: m.from, term: this.term, index: 0 });
    } else if (m.type === MessageType.ReadIndex) {
      this.send({ type: MessageType.ReadIndexResponse, from: this.id, to: m.from, term: this.term, ctx: m.ctx, index: -1 });
    }
  }

  // ---- replication (5.3) ----------------------------------------------------

  private handleAppend(m: AppendRequest): void {
    if (this.role !== Role.Follower) this.becomeFollower(this.term, m.from);
    this.leader = m.from;
    this.resetElectionTimer();

    const lastNew = m.prevLogIndex + m.entries.length;
    let prev = m.prevLogIndex;
    let prevTerm = m.prevLogTerm;
    let entries = m.entries;
    const commit = this.log.commitIndex;
    if (prev < commit) {
      // Everything up to our commit index already matches any current leader.
      entries = entries.filter((e) => e.index > commit);
      prev = commit;
      prevTerm = this.log.term(commit)!;
    }

    const seq = m.seq ?? 0;
    const myPrevTerm = this.log.term(prev);
    if (myPrevTerm === undefined || myPrevTerm !== prevTerm) {
      if (myPrevTerm === undefined) this.respondAppend(m.from, false, m.prevLogIndex, 0, this.log.lastIndex() + 1, seq);
      else this.respondAppend(m.from, false, m.prevLogIndex, myPrevTerm, this.log.firstIndexOfTerm(prev, myPrevTerm), seq);
      return;
    }

    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      const existing = this.log.term(e.index);
      if (existing === e.term) continue;
      if (existing !== undefined && this.bugs.keepConflictingSuffix) {
        this.log.overwrite(e);
        continue;
      }
      // A conflicting entry and everything after it goes; an absent one is appended.
      if (existing !== undefined) {
        this.log.truncateFrom(e.index);
        this.noteTruncated(e.index);
      }
      for (let j = k; j < entries.length; j++) this.log.append(entries[j]!);
      this.noteEntries(k === 0 ? entries : entries.slice(k));
      this.refreshConfig();
      break;
    }

    // A commit index beyond what this message carried counts only as far as it.
    if (m.commit > this.log.commitIndex) {
      this.log.commitIndex = Math.max(this.log.commitIndex, Math.min(m.commit, lastNew));
    }
    invariant(this.log.commitIndex <= this.log.lastIndex(), `commit index ${this.log.commitIndex} beyond the last index ${this.log.lastIndex()}`);
    this.respondAppend(m.from, true, lastNew, 0, 0, seq);
  }

  private respondAppend(to: PeerId, success: boolean, index: number, hintTerm: number, hintIndex: number, seq = 0): void {
    this.send({ type: MessageType.AppendResponse, from: this.id, to, term: this.term, success, index, hintTerm, hintIndex, seq });
  }

  /** False: an answer no follower of this leader sends (beyond its log, or a round never sent it). */
  private handleAppendResponse(m: AppendResponse): boolean {
    if (this.role !== Role.Leader) return true;
    const pr = this.progress.get(m.from);
    // A server no longer in the configuration (or not yet in this leader's): nothing to track.
    if (!pr) return m.index <= this.log.lastIndex();
    // A follower answers only what this leader sent it: an index this log
    // does not hold would let entries that do not exist count as replicated.
    if (m.index > this.log.lastIndex() || (m.seq ?? 0) > pr.sentSeq) return false;
    pr.heard(this.ticks);
    // Any answer in this term, a refusal too, shows the follower still followed this leader.
    if ((m.seq ?? 0) > pr.ackedSeq) {
      pr.ackedSeq = m.seq!;
      this.releaseReads();
    }
    if (m.success) {
      if (pr.maybeUpdate(m.index)) {
        if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot)) pr.becomeReplicate();
        this.maybeCommit();
      } else if (pr.state === 'probe') {
        pr.paused = false;
      }
      if (m.from === this.transferee) this.maybeSendTimeoutNow();
      if (this.shouldStream(pr)) this.sendAppend(m.from);
      return true;
    }
    // A rejection that answers an older message than the one outstanding is stale;
    // while a snapshot is outstanding only its answer moves the follower on.
    if (pr.state === 'snapshot') return true;
    if (pr.state === 'replicate' && m.index <= pr.match) return true;
    if (pr.state === 'probe' && m.index !== pr.next - 1) return true;
    let hintNext = m.hintIndex;
    if (m.hintTerm > 0) {
      const last = this.log.lastIndexOfTerm(m.hintTerm);
      if (last > 0) hintNext = last + 1;
    }
    pr.becomeProbe();
    pr.next = Math.max(pr.match + 1, Math.min(hintNext, m.index));
    this.sendAppend(m.from);
    return true;
  }

  // ---- log compaction (7) ----------------------------------------------------

  private handleSnapshot(m: SnapshotRequest): void {
    if (this.role !== Role.Follower) this.becomeFollower(this.term, m.from);
    this.leader = m.from;
    this.resetElectionTimer();
    const snap = m.snapshot;
    if (snap.index <= this.log.commitIndex) {
      // Nothing new: our committed prefix already covers it and matches any current leader.
      this.send({ type: MessageType.SnapshotResponse, from: this.id, to: m.from, term: this.term, index: this.log.commitIndex });
      return;
    }
    // Keep the entries that follow a matching snapshot point; otherwise the whole log goes.
    const config = snap.config ?? this.configAt(snap.index);
    this.log.compactTo(snap.index, snap.term);
    this.noteCompacted(snap.index, config);
    this.refreshConfig();
    this.snapshot = snap;
    this.unpersistedSnapshot = snap;
    this.unappliedSnapshot = snap;
    this.send({ type: MessageType.SnapshotResponse, from: this.id, to: m.from, term: this.term, index: snap.index });
  }

  /** False: an answer beyond this leader's log (its snapshot, or the follower's commit index, never is). */
  private handleSnapshotResponse(m: SnapshotResponse): boolean {
    if (this.role !== Role.Leader) return true;
    if (m.index > this.log.lastIndex()) return false;
    const pr = this.progress.get(m.from);
    if (!pr) return true;
    pr.heard(this.ticks);
    pr.maybeUpdate(m.index);
    if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      this.maybeCommit();
      this.sendAppend(m.from);
    }
    return true;
  }

  private sendSnapshot(to: PeerId): void {
    const pr = this.progress.get(to)!;
    this.send({ type: MessageType.Snapshot, from: this.id, to, term: this.term, snapshot: this.snapshot });
    pr.becomeSnapshot(this.snapshot.index);
    pr.lastSentAt = this.ticks;
  }

  /** 5.4.2: only entries of the current term are committed by counting replicas. */
  private maybeCommit(): void {
    // A majority of the voters of the configuration in force; this leader counts only if it is one.
    const voters = this.cfg.voters;
    const matches = this.quorumScratch;
    for (let k = 0; k < voters.length; k++) matches[k] = this.progress.get(voters[k]!)?.match ?? 0;
    const n = committedIndex(matches, voters.length);
    invariant(n <= this.log.lastIndex(), `a majority matches ${n}, beyond the last index ${this.log.lastIndex()}`);
    if (n > this.log.commitIndex && (this.log.term(n) === this.term || this.bugs.commitPreviousTerm)) {
      this.log.commitIndex = n;
      this.committedAt = this.ticks;
      if (this.readsAwaitingCommit.length > 0 && this.committedInTerm()) {
        const waiting = this.readsAwaitingCommit;
        this.readsAwaitingCommit = [];
        for (const r of waiting) this.leaderRead(r.ctx, r.from, r.lease);
      }
    }
  }

  // ---- reads (thesis 6.4) ------------------------------------------------------

  /** Has this leader committed an entry of its own term? (Until then its commit index may lag, thesis 6.4.) */
  committedInTerm(): boolean {
    return this.log.term(this.log.commitIndex) === this.term;
  }

  /**
   * A leader whose log holds no entry of its term appends an empty one (which
   * hosts do not apply), so that it comes to commit one: a membership change
   * waits for that. Returns false when not leading.
   */
  commitInTerm(): boolean {
    if (this.role !== Role.Leader) return false;
    if (this.log.lastTerm() !== this.term && this.transferee === -1) {
      this.log.append({ index: this.log.lastIndex() + 1, term: this.term, data: NOOP });
      this.needBroadcast = true;
    }
    return true;
  }

  private handleReadIndex(m: ReadIndexRequest): void {
    if (this.role === Role.Leader) this.leaderRead(m.ctx, m.from, m.lease);
    else this.placeRead(m.ctx, m.from, -1);
  }

  private leaderRead(ctx: number, from: PeerId, lease: boolean): void {
    // A leader cut off from its majority fails the read now, as it refuses proposals.
    if (this.refuseWithoutQuorum && this.quorumLost()) {
      this.placeRead(ctx, from, -1);
      return;
    }
    if (!this.committedInTerm()) {
      // A transfer may not see the log grow, so no empty entry then: refuse.
      if (this.transferee !== -1) {
        this.placeRead(ctx, from, -1);
        return;
      }
      if (this.log.lastTerm() !== this.term) {
        this.log.append({ index: this.log.lastIndex() + 1, term: this.term, data: NOOP });
        this.needBroadcast = true;
      }
      this.readsAwaitingCommit.push({ ctx, from, lease });
      return;
    }
    if (this.bugs.readWithoutRound || (lease && this.leaseHolds())) {
      this.placeRead(ctx, from, this.log.commitIndex);
      return;
    }
    // Reads that arrive before the current round has gone anywhere share it.
    if (this.seqSent) this.newRound();
    this.pendingReads.push({ ctx, from, index: this.log.commitIndex, seq: this.seq });
    this.roundWanted = true;
    this.releaseReads();
  }

  private newRound(): void {
    this.seq++;
    this.seqSent = false;
    this.roundStarts.push({ seq: this.seq, at: this.ticks });
    if (this.roundStarts.length > MAX_ROUND_STARTS) this.roundStarts.shift();
  }

  /** The newest round a majority (this leader included) has echoed. */
  private quorumSeq(): number {
    const voters = this.cfg.voters;
    const seqs = this.quorumScratch;
    for (let k = 0; k < voters.length; k++) {
      const p = voters[k]!;
      seqs[k] = p === this.id ? this.seq : (this.progress.get(p)?.ackedSeq ?? 0);
    }
    return committedIndex(seqs, voters.length);
  }

  private releaseReads(): void {
    if (this.pendingReads.length === 0) return;
    const q = this.quorumSeq();
    let k = 0;
    while (k < this.pendingReads.length && this.pendingReads[k]!.seq <= q) {
      const r = this.pendingReads[k++]!;
      this.placeRead(r.ctx, r.from, r.index);
    }
    if (k > 0) this.pendingReads.splice(0, k);
  }

  /**
   * Does this leader hold a lease (thesis 6.4.1)? A majority echoed round q,
   * which began at tick `at`; each of them refuses pre-votes until it has
   * ticked a minimum election timeout since, which in real time is at least
   * electionTicks - 1 ticks after `at` (its first tick may come right after
   * the message), and this leader's own tick count may trail real time by
   * up to one tick: electionTicks - 2, less the drift margin.
   */
  private leaseHolds(): boolean {
    if (!this.leaseReads || !this.preVote || this.transferredInTerm) return false;
    // The peers that refuse pre-votes for this lease were counted in one
    // configuration; right after a change another majority may exist.
    if (this.ticks - this.configChangedAt < this.electionTicks) return false;
    const q = this.quorumSeq();
    while (this.roundStarts.length > 1 && this.roundStarts[1]!.seq <= q) this.roundStarts.shift();
    const start = this.roundStarts[0];
    if (!start || start.seq !== q) return false;
    if (this.bugs.leaseWithoutExpiry) return true;
    return this.ticks - start.at <= this.electionTicks - 2 - this.leaseMarginTicks;
  }

  private placeRead(ctx: number, from: PeerId, index: number): void {
    if (from === -1) this.readStates.push({ ctx, index });
    else this.send({ type: MessageType.ReadIndexResponse, from: this.id, to: from, term: this.term, ctx, index });
  }

  /** A leader stepping down: its reads cannot be confirmed, its transfer is over. */
  private dropLeaderState(): void {
    for (const r of this.pendingReads) this.placeRead(r.ctx, r.from, -1);
    for (const r of this.readsAwaitingCommit) this.placeRead(r.ctx, r.from, -1);
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.roundWanted = false;
    this.transferee = -1;
  }

  private flushBroadcast(): void {
    if (this.needBroadcast) {
      this.needBroadcast = false;
      if (this.role === Role.Leader) {
        for (const p of this.others) if (this.shouldStream(this.progress.get(p)!)) this.sendAppend(p);
      }
    }
    if (this.roundWanted) {
      // A read waits for this round: every follower not yet sent it gets a heartbeat.
      this.roundWanted = false;
      if (this.role === Role.Leader) {
        for (const p of this.others) if (this.progress.get(p)!.sentSeq < this.seq) this.sendHeartbeat(p);
      }
    }
  }

  /**
   * Send new entries to this follower now? While an AppendEntries sent to it
   * during the current tick is unanswered, new entries wait for that answer
   * or the next tick and then travel together (Nagle): a lone client still
   * gets one round trip, and a burst costs a few messages instead of one per
   * entry. On a slow link the tick keeps them moving; a whole message's worth
   * goes at once.
   */
  private shouldStream(pr: Progress): boolean {
    if (!pr.canSend() || pr.next > this.log.lastIndex()) return false;
    if (pr.state !== 'replicate' || pr.inflightCount() === 0 || pr.newestInflightAt()! < this.ticks) return true;
    // What it needs next is compacted away: the snapshot goes at once.
    if (pr.next <= this.log.snapshotIndex()) return true;
    const pending = this.log.lastIndex() - pr.next + 1;
    if (pending >= this.maxEntries) return true;
    let bytes = 0;
    for (let i = pr.next; i <= this.log.lastIndex(); i++) {
      bytes += this.log.entry(i)!.data.length;
      if (bytes >= this.maxBytes) return true;
    }
    return false;
  }

  /**
   * The last index to persist now. A leader writes its new entries when it
   * ships them: entries held back for followers that are awaiting an answer
   * are written together with the message that carries them, so a burst
   * costs one write as well as one message. Nothing waits on them meanwhile;
   * the leader counts only what it has persisted.
   */
  private persistLimit(): number {
    const last = this.log.lastIndex();
    if (this.role !== Role.Leader) return last;
    let limit = -1;
    for (const p of this.others) {
      const pr = this.progress.get(p)!;
      if (pr.state !== 'replicate') continue;
      limit = Math.max(limit, pr.inflightCount() > 0 ? pr.next - 1 : last);
    }
    return limit < 0 ? last : Math.min(limit, last);
  }

  private sendAppend(to: PeerId): void {
    const pr = this.progress.get(to)!;
    const prev = pr.next - 1;
    const prevTerm = this.log.term(prev);
    if (prevTerm === undefined) {
      // The entries this follower needs are compacted away.
      this.sendSnapshot(to);
      return;
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex(), this.maxEntries);
    let bytes = 0;
    for (let k = 0; k < entries.length; k++) {
      bytes += entries[k]!.data.length;
      if (bytes > this.maxBytes && k > 0) {
        entries.length = k;
        break;
      }
    }
    const commit = this.log.commitIndex;
    this.send({
      type: MessageType.Append,
      from: this.id,
      to,
      term: this.term,
      prevLogIndex: prev,
      prevLogTerm: prevTerm,
      entries,
      commit,
      seq: this.seq,
    });
    pr.sentSeq = this.seq;
    this.seqSent = true;
    pr.sentCommit = Math.max(pr.sentCommit, Math.min(commit, prev + entries.length));
    pr.lastSentAt = this.ticks;
    if (entries.length > 0) pr.sentEntries(entries[entries.length - 1]!.index, this.ticks);
    else if (pr.state === 'probe') pr.paused = true;
  }

  /** An empty AppendEntries anchored at the known match, so it cannot be refused spuriously. */
  private sendHeartbeat(to: PeerId): void {
    const pr = this.progress.get(to)!;
    const commit = this.log.commitIndex;
    this.send({
      type: MessageType.Append,
      from: this.id,
      to,
      term: this.term,
      prevLogIndex: pr.match,
      prevLogTerm: this.log.term(pr.match) ?? 0,
      entries: [],
      commit,
      seq: this.seq,
    });
    pr.sentSeq = this.seq;
    this.seqSent = true;
    pr.sentCommit = Math.max(pr.sentCommit, Math.min(commit, pr.match));
    pr.lastSentAt = this.ticks;
  }

  private heartbeatRound(): void {
    // Each round is a new round number, so the lease can be renewed by it.
    if (this.seqSent) this.newRound();
    for (const p of this.others) {
      const pr = this.progress.get(p)!;
      // A streaming follower sent something during this interval needs no
      // heartbeat; a lost AppendEntries is caught by retransmitLost().
      if (pr.state === 'replicate' && this.ticks - pr.lastSentAt < this.heartbeatTicks) continue;
      const heard = pr.heardFrom;
      pr.heardFrom = false;
      pr.silentRounds = heard ? 0 : pr.silentRounds + 1;
      // A follower silent for several rounds is unreachable or down: contact
      // it only every few rounds instead of spending a message each time.
      if (pr.silentRounds >= SILENT_ROUNDS_BACKOFF && pr.silentRounds % SILENT_ROUNDS_BACKOFF !== 0) continue;
      if (pr.state === 'replicate') {
        if (pr.match < this.log.lastIndex() && !heard) {
          // Nothing acknowledged for a whole interval: assume the stream was lost.
          pr.becomeProbe();
          pr.next = pr.match + 1;
          this.sendAppend(p);
        } else if (pr.canSend() && pr.next <= this.log.lastIndex()) {
          this.sendAppend(p);
        } else {
          this.sendHeartbeat(p);
        }
      } else if (pr.state === 'probe') {
        pr.paused = false;
        this.sendAppend(p);
      } else if (++pr.snapshotRounds < SNAPSHOT_RETRY_ROUNDS) {
        this.sendHeartbeat(p);
      } else {
        // Only the snapshot's own answer counts (heartbeat answers do not):
        // unanswered for several rounds, it is presumed lost and sent again.
        this.sendSnapshot(p);
      }
    }
  }

  /**
   * With few AppendEntries allowed in flight, a lost one would stall its
   * follower until a heartbeat round noticed; resend it after a short wait.
   */
  private retransmitLost(): void {
    for (const p of this.others) {
      const pr = this.progress.get(p)!;
      const at = pr.oldestInflightAt();
      if (pr.state !== 'replicate' || at === undefined || this.ticks - at < this.retransmitTicks) continue;
      pr.becomeProbe();
      pr.next = pr.match + 1;
      this.sendAppend(p);
    }
  }

  /**
   * Ticks left before this leader has gone a minimum election timeout
   * without hearing from a majority (itself included); zero or less: it has.
   */
  private ticksUntilQuorumLost(): number {
    const heard: number[] = [];
    for (const p of this.cfg.voters) if (p !== this.id) heard.push(this.progress.get(p)!.heardAt);
    heard.sort((a, b) => b - a);
    const need = majority(this.cfg.voters.length) - (this.voterSet.has(this.id) ? 1 : 0);
    if (need === 0) return Infinity;
    return heard[need - 1]! + this.electionTicks - this.ticks;
  }

  /**
   * ticksUntilQuorumLost() <= 0, without building and sorting a list: at
   * least `need` voters heard from within the last election timeout. Asked
   * for every proposal, so it must not allocate.
   */
  private quorumLost(): boolean {
    const need = majority(this.cfg.voters.length) - (this.voterSet.has(this.id) ? 1 : 0);
    if (need <= 0) return false;
    let recent = 0;
    for (const p of this.cfg.voters) if (p !== this.id && this.progress.get(p)!.heardAt + this.electionTicks - this.ticks > 0) recent++;
    return recent < need;
  }

  /** Entries wait for some follower's answer or the next tick (see shouldStream). */
  private holdsEntries(): boolean {
    const last = this.log.lastIndex();
    for (const p of this.others) {
      const pr = this.progress.get(p)!;
      if (pr.state === 'replicate' && pr.next <= last && pr.canSend()) return true;
    }
    return false;
  }

  /** A follower in the stream that has not been told the commit index its log already allows. */
  private needsCommit(p: PeerId): boolean {
    const pr = this.progress.get(p)!;
    return pr.state === 'replicate' && pr.sentCommit < Math.min(this.log.commitIndex, pr.match);
  }

  private commitToPropagate(): boolean {
    for (const p of this.others) if (this.needsCommit(p)) return true;
    return false;
  }

  /** Followers learn a new commit index within a few ticks instead of one heartbeat. */
  private propagateCommit(): void {
    if (this.ticks - this.committedAt < COMMIT_NOTICE_TICKS) return;
    for (const p of this.others) if (this.needsCommit(p)) this.sendHeartbeat(p);
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }
}
