import { RaftCore, type CoreStatus, type PlantedBugs } from '../raft/core.js';
import { seededRng } from '../raft/prng.js';
import { EntryType, MessageType, Role, type ClusterConfig, type Entry, type ReadState, type Snapshot, type SnapshotRequest } from '../raft/types.js';
import type { ConfigChange } from '../raft/config.js';
import type { SnapshotStager, Storage } from '../../storage/storage.js';
import { HostMessageType, type ForwardReply, type ForwardRequest, type WireMessage } from './messages.js';
import { Status, type Outcome, type OutcomeCallback } from './outcome.js';
import { RaftStateSize } from './raft-state-size.js';
import type { ByteStateMachine, Clock, SnapshotWriter, TimerHandle, Transport } from './seams.js';

/**
 * A snapshot being made a step at a time, and the index it is taken at:
 * first the state machine's writer encodes it, then (for a large one) the
 * storage writes its bytes in pieces, before the log is compacted.
 */
interface Writing {
  index: number;
  writer: SnapshotWriter;
  /** Once encoded: its bytes, and the storage writing them ahead of the compaction. */
  staged?: { data: Uint8Array; stager: SnapshotStager };
}

/** Timing of a peer, in the units the core and its host use. */
export interface PeerTiming {
  /** Milliseconds between two core ticks. */
  tickMs: number;
  /** Election timeout, drawn from [electionTicks, 2*electionTicks) ticks. */
  electionTicks: number;
  /** Heartbeat interval in ticks. */
  heartbeatTicks: number;
}

export interface HostOptions {
  id: number;
  /** The voters are 0..peers-1 (unless `voters` is given). */
  peers?: number;
  /** The voters the cluster starts with; [] for a server joining a running cluster. */
  voters?: number[];
  /** Seeds the core's PRNG (election timeouts). */
  seed: number;
  timing: PeerTiming;
  maxInflight?: number;
  maxEntriesPerMessage?: number;
  maxBytesPerMessage?: number;
  maxCommittedPerReady?: number;
  preVote?: boolean;
  refuseWithoutQuorum?: boolean;
  leaseReads?: boolean;
  leaseMarginTicks?: number;
  /** Snapshot once the persisted Raft state reaches this many bytes; -1 (default): never. */
  snapshotThreshold?: number;
  /**
   * ...and only once the Raft state is also at least this many times the
   * size of the latest snapshot (default 0: the threshold alone decides, as
   * the Raft lab's maxraftstate wants). With a ratio r, writing snapshots
   * costs at most 1/r of writing the log, however large the table grows.
   */
  snapshotRatio?: number;
  /** Largest command accepted (bytes). Default 4 MiB. */
  maxCommandBytes?: number;
  /** Largest query accepted (bytes). Default 4 MiB. */
  maxQueryBytes?: number;
  /**
   * Flow control: at most this many proposals (and as many reads, and as
   * many forwarded proposals) wait at once on this peer; past it a request
   * is answered Busy at once, nothing done (default 8192).
   */
  maxPending?: number;
  /** ...and at most this many bytes of proposed commands wait to be applied (default 64 MiB). */
  maxPendingBytes?: number;
  bugs?: PlantedBugs;
}

export interface HostSeams {
  storage: Storage;
  transport: Transport;
  clock: Clock;
  stateMachine: ByteStateMachine;
}

export interface HostEvents {
  /** This peer's view of the term or the leader changed (leader -1: none known). */
  leaderChanged?(term: number, leader: number): void;
  /** The configuration in force changed (a Config entry appended or truncated away, or a snapshot installed). */
  configChanged?(config: ClusterConfig): void;
  /** A snapshot was taken by this peer's policy or call, or one from a leader was installed. */
  snapshot?(kind: 'taken' | 'installed', index: number, bytes: number): void;
}

export type ReadConsistency = 'linearizable' | 'lease' | 'stale';

export interface ProposeOptions {
  /** A follower hands the proposal to the leader it knows of (default false: it answers NotLeader). */
  forward?: boolean;
  /** How long to wait for the entry to be applied before answering Unknown. */
  timeoutMs: number;
}

export interface ReadOptions {
  consistency: ReadConsistency;
  /** A follower serves linearizable and lease reads through its leader's read index (default false: NotLeader). */
  forward?: boolean;
  timeoutMs: number;
}

export interface HostStatus extends CoreStatus {
  /** The configuration in force (the latest in the log) and whether it is committed. */
  config: ClusterConfig;
  configCommitted: boolean;
  /** The last index handed to the state machine (or restored from a snapshot). */
  stateMachineIndex: number;
  /** Commands whose apply threw, on this peer since it started. */
  applyErrors: number;
  pendingProposals: number;
  /** Bytes of the commands proposed on this peer (as leader) and not yet applied. */
  pendingProposalBytes: number;
  pendingReads: number;
  /** Requests answered Busy (flow control) since the peer started. */
  busyAnswers: number;
  /** Snapshots this peer's policy took since it started, and the latest snapshot's size (taken or installed). */
  snapshotsTaken: number;
  /** Snapshots from a leader this peer installed since it started. */
  snapshotsInstalled: number;
  snapshotBytes: number;
  /** The persisted Raft state's size as the snapshot policy counts it (the log and its metadata). */
  raftStateBytes: number;
  /** Readies handled, those that wrote log entries, and the entries they wrote, since the peer started (how well work batches). */
  readies: number;
  entryWrites: number;
  entriesWritten: number;
  /** Snapshots from a leader that the state machine could not restore: refused before they were stored. */
  refusedSnapshots: number;
  /** Why the last one was refused. */
  lastRefusedSnapshot?: string;
}

export const DEFAULT_MAX_COMMAND_BYTES = 4 << 20;
export const DEFAULT_MAX_PENDING = 8192;
export const DEFAULT_MAX_PENDING_BYTES = 64 << 20;
/**
 * A random start in [1, 2^52] drawn from `seed` (with a salt: the core's
 * generator uses the seed as it is): 2^52 numbers above it stay within
 * the safe integers a message's ctx may hold.
 */
function firstCtx(seed: number): number {
  const rng = seededRng((seed ^ 0x2f6b3c1d) >>> 0);
  return 1 + Math.floor(rng() * 2 ** 26) * 2 ** 26 + Math.floor(rng() * 2 ** 26);
}

/** Committed entries one drain applies before it lets the event loop run (the core gives at most 4096 per Ready). */
const MAX_APPLIED_PER_TURN = 4096;
/** Extra time a forwarding follower gives the leader's own answer (which carries the leader's timeout) to arrive. */
const FORWARD_GRACE_MS = 50;
/** setTimeout's limit; longer timeouts would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const EMPTY = new Uint8Array(0);

interface PendingProposal {
  term: number;
  done: OutcomeCallback;
  /** Clock time past which the proposal is answered Unknown. */
  deadline: number;
  timeoutMs: number;
  /** The command's size (flow control counts bytes waiting). */
  bytes: number;
}

interface PendingRead {
  /** The peer that places it: this one when leading, else the leader asked. */
  via: number;
  query: Uint8Array;
  done: OutcomeCallback;
  timer: TimerHandle;
  /** The read index once the core placed the read; -1 before. */
  index: number;
}

interface PendingForward {
  /** The leader it went to. */
  leader: number;
  done: OutcomeCallback;
  timer: TimerHandle;
}

/** A membership change waiting for this leader's first commit in its term and, for a promotion, the learner to catch up. */
interface PendingPromotion {
  change: ConfigChange;
  /** The commit index the learner must reach (-1: not a promotion). */
  target: number;
  deadline: number;
  term: number;
  done: OutcomeCallback;
}

interface PendingTransfer {
  to: number;
  done: OutcomeCallback;
  timer: TimerHandle;
}

function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

function clampTimeout(ms: number): number {
  return Math.min(MAX_TIMEOUT_MS, Math.max(1, Math.floor(ms)));
}

/**
 * One Raft peer with its state machine: the drain loop and nothing else.
 * Every input (a message, a tick, a proposal, a read) only feeds the core
 * and schedules one drain for the end of the turn; the drain takes each
 * Ready, sends what may leave early, persists, sends the rest, applies
 * committed entries to the state machine, answers the proposals and reads
 * they settle, and advances the core. So a turn's proposals share one write
 * and one message per peer. The worker runs this over SQLite and
 * MessagePorts; the simulator runs it over simulated seams.
 */
export class PeerHost {
  readonly id: number;
  readonly core: RaftCore;
  private readonly storage: Storage;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly sm: ByteStateMachine;
  private readonly events: HostEvents;
  private readonly tickMs: number;
  private readonly snapshotThreshold: number;
  private readonly snapshotRatio: number;
  private readonly maxCommandBytes: number;
  private readonly maxQueryBytes: number;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly size = new RaftStateSize();

  private stopped = false;
  private drainScheduled = false;
  private readonly drainFn = () => this.drain();
  private lastTick: number;
  private timer: TimerHandle | undefined;
  private timerDue = Infinity;

  /** The last index handed to the state machine. */
  private applied: number;
  private applyErrors = 0;
  private refusedSnapshots = 0;
  private busyAnswers = 0;
  private snapshotsTaken = 0;
  /** A snapshot the state machine is writing a step at a time (beginSnapshot), and the index it is taken at. */
  private writing: Writing | undefined;
  /** Planted bugs (the simulator's), the host's own among them. */
  private readonly bugs: PlantedBugs | undefined;
  private snapshotsInstalled = 0;
  private promotions: PendingPromotion[] = [];
  private reportedConfig: ClusterConfig | undefined;
  private readies = 0;
  private entryWrites = 0;
  private entriesWritten = 0;
  private lastRefusal: string | undefined;
  /** The last leader snapshot tried on the state machine (leaders resend it), and whether it restored. */
  private lastTried: { index: number; term: number; bytes: number; ok: boolean } | undefined;
  /** Proposals this peer appended as leader, by index; all of one term. */
  private readonly proposals = new Map<number, PendingProposal>();
  /** Bytes of the commands in `proposals`. */
  private proposalBytes = 0;
  /**
   * No proposal's deadline is earlier than this (one may be later: answered
   * proposals leave it behind). One timer for all of them, not one each.
   */
  private proposalDeadline = Infinity;
  private proposalTerm = -1;
  private readonly reads = new Map<number, PendingRead>();
  /** Placed reads whose index the state machine has not reached yet. */
  private waitingReads: number[] = [];
  private readonly forwards = new Map<number, PendingForward>();
  /**
   * The number of this peer's next read or forwarded proposal, the key its
   * answer comes back under. It starts at a random point of this
   * incarnation's own (from its seed: a restart has another), not at 1: a
   * restarted peer numbering from 1 again took a late answer to its
   * predecessor's read 2 (an older read index) or forwarded proposal 2 (an
   * outcome of another command) for the answer to its own.
   */
  private nextCtx: number;
  private transfer: PendingTransfer | undefined;
  private reportedTerm = -1;
  private reportedLeader = -2;
  /** Called once a Ready's committed entries are applied, before its write: the client service posts its answers then. */
  afterApply: (() => void) | undefined;
  /** A peer's channel closed since the last drain (what was sent there may never be answered). */
  private lostPeer = false;

  constructor(opts: HostOptions, seams: HostSeams, events: HostEvents = {}) {
    this.id = opts.id;
    this.storage = seams.storage;
    this.transport = seams.transport;
    this.clock = seams.clock;
    this.sm = seams.stateMachine;
    this.events = events;
    this.tickMs = opts.timing.tickMs;
    this.snapshotThreshold = opts.snapshotThreshold ?? -1;
    this.snapshotRatio = opts.snapshotRatio ?? 0;
    this.maxCommandBytes = opts.maxCommandBytes ?? DEFAULT_MAX_COMMAND_BYTES;
    this.maxQueryBytes = opts.maxQueryBytes ?? DEFAULT_MAX_COMMAND_BYTES;
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.maxPendingBytes = opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    const initial = this.storage.load();
    this.bugs = opts.bugs;
    this.nextCtx = firstCtx(opts.seed);
    this.core = new RaftCore({
      id: opts.id,
      peers: opts.peers,
      voters: opts.voters,
      electionTicks: opts.timing.electionTicks,
      heartbeatTicks: opts.timing.heartbeatTicks,
      maxInflight: opts.maxInflight,
      maxEntriesPerMessage: opts.maxEntriesPerMessage,
      maxBytesPerMessage: opts.maxBytesPerMessage,
      maxCommittedPerReady: opts.maxCommittedPerReady,
      preVote: opts.preVote,
      refuseWithoutQuorum: opts.refuseWithoutQuorum,
      leaseReads: opts.leaseReads,
      leaseMarginTicks: opts.leaseMarginTicks,
      bugs: opts.bugs,
      rng: seededRng(opts.seed),
      initial,
    });
    // The state machine starts from the stored snapshot, before any entry is applied.
    this.applied = 0;
    if (initial.snapshot && initial.snapshot.index > 0) this.restore(initial.snapshot);
    this.lastTick = this.clock.now();
    this.armTimer();
  }

  // ---- inputs -------------------------------------------------------------------

  /**
   * A message from another peer (the transport calls this for each one it
   * delivers). Returns false when it is refused as one no valid peer sends
   * (the core's checks, or a ForwardReply from a peer the proposal did not
   * go to): the transport counts it as garbage.
   */
  receive(m: WireMessage): boolean {
    if (this.stopped) return true;
    this.catchUp();
    let ok = true;
    if (m.type === HostMessageType.Forward) this.onForward(m);
    else if (m.type === HostMessageType.ForwardReply) ok = this.onForwardReply(m);
    // A snapshot the state machine cannot restore is refused and counted as such, not as garbage.
    else if (m.type === MessageType.Snapshot && !this.restorable(m)) this.refusedSnapshots++;
    else ok = this.core.step(m);
    this.schedule();
    return ok;
  }

  /** The channel to `peer` went away: look again at what waits on it. */
  unreachable(peer: number): void {
    void peer;
    this.lostPeer = true;
    this.schedule();
  }

  /**
   * Propose a command; `done` gets its outcome: Ok with the state machine's
   * result once the entry is applied here, NotLeader (not appended: safe to
   * retry), Unknown (appended, fate unknown: the timeout passed or this peer
   * lost its leadership first), ApplyError, Rejected or Stopped.
   */
  propose(command: Uint8Array, opts: ProposeOptions, done: OutcomeCallback): void {
    if (this.stopped) return done(this.outcome(Status.Stopped, `peer ${this.id} is stopped`));
    if (!(command instanceof Uint8Array) || command.length === 0) return done(this.outcome(Status.Rejected, 'a command must be non-empty bytes'));
    if (command.length > this.maxCommandBytes) {
      return done(this.outcome(Status.Rejected, `the command has ${command.length} bytes; the limit is ${this.maxCommandBytes}`));
    }
    const timeoutMs = clampTimeout(opts.timeoutMs);
    this.catchUp();
    if (this.core.isLeader() && (this.proposals.size >= this.maxPending || this.proposalBytes + command.length > this.maxPendingBytes)) {
      return done(this.busy(`${this.proposals.size} proposals (${this.proposalBytes} bytes) wait to be applied`));
    }
    const placed = this.core.propose(command);
    if (placed) {
      this.track(placed.index, placed.term, timeoutMs, command.length, done);
      this.schedule();
      return;
    }
    const leader = this.core.leaderId();
    if (opts.forward && leader !== -1 && leader !== this.id) {
      if (this.forwards.size >= this.maxPending) return done(this.busy(`${this.forwards.size} forwarded proposals wait for the leader's answer`));
      if (this.transport.reachable(leader)) this.forward(command, leader, timeoutMs, done);
      else done(this.outcome(Status.NotLeader, `propose: peer ${this.id} cannot reach its leader, peer ${leader}`));
      return;
    }
    done(this.notLeader('propose'));
  }

  /** Figure 2's Start(): append if leading, answer at once (the lab's raw interface). */
  start(command: Uint8Array): { index: number; term: number; isLeader: boolean } {
    if (this.stopped) throw new Error(`peer ${this.id} is stopped`);
    this.catchUp();
    const placed = this.core.propose(command);
    if (!placed) return { index: -1, term: this.core.currentTerm(), isLeader: false };
    // The entry may still be lost; a caller's next Start can join this one's write and message.
    this.schedule();
    return { index: placed.index, term: placed.term, isLeader: true };
  }

  /**
   * Answer a query from the state machine. 'stale': now, from this peer's
   * state. 'linearizable': by ReadIndex (thesis 6.4), on the leader or, with
   * `forward`, through the leader's read index. 'lease': as linearizable,
   * but a leader holding a lease skips the round (thesis 6.4.1).
   */
  read(query: Uint8Array, opts: ReadOptions, done: OutcomeCallback): void {
    if (this.stopped) return done(this.outcome(Status.Stopped, `peer ${this.id} is stopped`));
    if (!(query instanceof Uint8Array)) return done(this.outcome(Status.Rejected, 'a query must be bytes'));
    if (query.length > this.maxQueryBytes) {
      return done(this.outcome(Status.Rejected, `the query has ${query.length} bytes; the limit is ${this.maxQueryBytes}`));
    }
    if (opts.consistency === 'stale') return done(this.answer(query));
    this.catchUp();
    if (!opts.forward && !this.core.isLeader()) return done(this.notLeader('read'));
    const via = this.core.leaderId();
    if (via !== this.id && via !== -1 && !this.transport.reachable(via)) {
      return done(this.outcome(Status.NotLeader, `read: peer ${this.id} cannot reach its leader, peer ${via}`));
    }
    if (this.reads.size >= this.maxPending) return done(this.busy(`${this.reads.size} reads wait to be answered`));
    const ctx = this.nextCtx++;
    if (!this.core.readIndex(ctx, opts.consistency === 'lease')) return done(this.notLeader('read'));
    const r: PendingRead = {
      via,
      query,
      done,
      index: -1,
      timer: this.clock.setTimer(() => {
        if (this.reads.get(ctx) !== r) return;
        this.reads.delete(ctx);
        done(this.outcome(Status.Timeout, `the read was not confirmed and answered within ${opts.timeoutMs} ms`));
      }, clampTimeout(opts.timeoutMs)),
    };
    this.reads.set(ctx, r);
    this.schedule();
  }

  /**
   * Hand leadership to peer `to` (thesis 3.10). Ok once `to` leads; Timeout
   * if it did not happen within an election timeout (this peer then leads
   * on) or someone else won; NotLeader if this peer does not lead.
   */
  transferLeadership(to: number, timeoutMs: number, done: OutcomeCallback): void {
    if (this.stopped) return done(this.outcome(Status.Stopped, `peer ${this.id} is stopped`));
    if (!this.core.isVoter(to)) {
      return done(this.outcome(Status.Rejected, `peer ${String(to)} is not a voter (voters: ${this.core.config().voters.join(', ')})`));
    }
    this.catchUp();
    if (to === this.id && this.core.isLeader()) return done(this.outcome(Status.Ok));
    if (this.core.transferLeadership(to) === 'not-leader') return done(this.notLeader('transferLeadership'));
    this.transfer?.done(this.outcome(Status.Timeout, `superseded by a transfer to peer ${to}`));
    if (this.transfer) this.clock.clearTimer(this.transfer.timer);
    const t: PendingTransfer = {
      to,
      done,
      timer: this.clock.setTimer(() => this.finishTransfer(t, this.outcome(Status.Timeout, `peer ${to} did not take over within ${timeoutMs} ms`)), clampTimeout(timeoutMs)),
    };
    this.transfer = t;
    this.schedule();
  }

  /**
   * A single-server membership change (thesis 4.2): Ok once its Config
   * entry is applied here. NotLeader (nothing done) if this peer does not
   * lead; Rejected, with `code`, for a change that does not apply (another
   * is in flight: 'in-progress'; 'already-member', 'not-member',
   * 'not-learner', 'last-voter'), the configuration unchanged. A promotion
   * waits until the learner holds everything committed when it was asked
   * (thesis 4.2.1: it must not slow the commits it will count in), and
   * answers Timeout if that does not happen in time.
   */
  changeMembership(change: ConfigChange, timeoutMs: number, done: OutcomeCallback): void {
    if (this.stopped) return done(this.outcome(Status.Stopped, `peer ${this.id} is stopped`));
    this.catchUp();
    if (!this.core.isLeader()) return done(this.notLeader('changeMembership'));
    const ms = clampTimeout(timeoutMs);
    // A new leader first commits an entry of its term (it may not know the latest committed configuration before).
    this.core.commitInTerm();
    const promoting = change.type === 'promote' && this.core.config().learners.includes(change.id);
    const target = promoting ? this.core.log.commitIndex : -1;
    const wait: PendingPromotion = { change, target, deadline: this.clock.now() + ms, done, term: this.core.currentTerm() };
    this.promotions.push(wait);
    // Checked after every drain: the learner's answers drain, and so do the leader's heartbeats.
    this.checkPromotions();
    this.schedule();
  }

  private proposeChange(change: ConfigChange, timeoutMs: number, done: OutcomeCallback): void {
    const placed = this.core.proposeConfigChange(change);
    if (typeof placed === 'string') {
      if (placed === 'not-leader') return done(this.notLeader('changeMembership'));
      const why: Record<string, string> = {
        'in-progress': 'another membership change is not committed yet (or this leader has not committed an entry of its term)',
        'already-member': `peer ${change.id} is already ${this.core.isVoter(change.id) ? 'a voter' : 'a learner'}`,
        'not-member': `peer ${change.id} is not a member`,
        'not-learner': `peer ${change.id} is not a learner (add it as a learner first)`,
        'last-voter': `peer ${change.id} is the last voter`,
      };
      return done({ ...this.outcome(Status.Rejected, `${placed}: ${why[placed] ?? placed}`), code: placed });
    }
    this.track(placed.index, placed.term, timeoutMs, 0, done);
    this.schedule();
  }

  /** Promotions whose learner has caught up are proposed; those past their deadline, or of an older leadership, end. */
  private checkPromotions(): void {
    if (this.promotions.length === 0) return;
    const now = this.clock.now();
    const left: PendingPromotion[] = [];
    for (const w of this.promotions) {
      const id = w.change.id;
      const caughtUp = w.target < 0 || this.core.matchOf(id) >= w.target;
      if (!this.core.isLeader() || this.core.currentTerm() !== w.term) w.done(this.notLeader('changeMembership'));
      else if (this.core.committedInTerm() && caughtUp) this.proposeChange(w.change, Math.max(1, w.deadline - now), w.done);
      else if (now >= w.deadline) {
        w.done(
          this.outcome(
            Status.Timeout,
            caughtUp ? `the leader did not commit an entry of its term in time; nothing was changed` : `learner ${id} did not catch up (it holds ${this.core.matchOf(id)} of ${w.target}) in time; nothing was changed`,
          ),
        );
      } else left.push(w);
    }
    this.promotions = left;
  }

  /** Take a snapshot of the state machine now and compact the log up to what it has applied. */
  takeSnapshot(): boolean {
    if (this.stopped || this.applied <= this.core.log.snapshotIndex()) return false;
    // This one is complete now; one being written in steps would only be older.
    this.cancelWriting();
    return this.compactTo(this.applied, this.sm.snapshot());
  }

  private compactTo(index: number, data: Uint8Array): boolean {
    if (!this.core.compact(index, data)) return false;
    this.snapshotsTaken++;
    this.events.snapshot?.('taken', index, data.length);
    this.schedule();
    return true;
  }

  /**
   * The snapshot policy's snapshot: written a step at a time between the
   * peer's other work when the state machine can (beginSnapshot), so that a
   * large state does not stop the peer (and, on a leader, the group) while
   * it is encoded; otherwise at once.
   */
  private startSnapshot(): void {
    if (!this.sm.beginSnapshot) {
      this.takeSnapshot();
      return;
    }
    const w = { index: this.applied, writer: this.sm.beginSnapshot() };
    this.writing = w;
    this.clock.defer(() => this.stepSnapshot(w));
  }

  /** One step of writer `w`, if it is still the one being written (a step queued for a cancelled writer does nothing). */
  private stepSnapshot(w: Writing): void {
    if (this.writing !== w || this.stopped) return;
    // Not ours while it runs: a step that throws leaves no writer behind to block the policy.
    this.writing = undefined;
    const data = w.writer.step();
    if (data === undefined) {
      this.writing = w;
      this.clock.defer(() => this.stepSnapshot(w));
      return;
    }
    const index = this.bugs?.snapshotAtFinish ? this.applied : w.index;
    // A snapshot installed meanwhile may already cover its index: then it is simply not needed.
    if (index <= this.core.log.snapshotIndex()) return;
    const meta = this.core.snapshotMetaAt(index);
    const stager = meta ? this.storage.stageSnapshot?.({ index, term: meta.term, config: meta.config, data }) : undefined;
    if (!stager) {
      this.compactTo(index, data);
      return;
    }
    const staged: Writing = { index, writer: w.writer, staged: { data, stager } };
    this.writing = staged;
    this.clock.defer(() => this.stepStaging(staged));
  }

  /** One piece of a large snapshot written by storage; once all are, the log is compacted (its Ready records the snapshot). */
  private stepStaging(w: Writing): void {
    if (this.writing !== w || this.stopped) return;
    this.writing = undefined;
    const { data, stager } = w.staged!;
    if (!stager.step()) {
      this.writing = w;
      this.clock.defer(() => this.stepStaging(w));
      return;
    }
    if (w.index > this.core.log.snapshotIndex()) this.compactTo(w.index, data);
  }

  private cancelWriting(): void {
    const w = this.writing;
    if (!w) return;
    this.writing = undefined;
    try {
      if (w.staged) w.staged.stager.cancel();
      else w.writer.cancel();
    } catch {
      // The writer is given up either way; a cancel that fails must not stop a restore or the peer's stop.
    }
  }

  /** The state machine captured everything through `index` in `data` (Raft lab's Snapshot()). */
  compact(index: number, data: Uint8Array): void {
    if (this.stopped) throw new Error(`peer ${this.id} is stopped`);
    if (this.core.compact(index, data)) this.schedule();
  }

  getState(): { term: number; isLeader: boolean } {
    return { term: this.core.currentTerm(), isLeader: this.core.isLeader() };
  }

  status(): HostStatus {
    return {
      ...this.core.status(),
      config: this.core.config(),
      configCommitted: this.core.configCommitted(),
      stateMachineIndex: this.applied,
      applyErrors: this.applyErrors,
      pendingProposals: this.proposals.size + this.forwards.size,
      pendingProposalBytes: this.proposalBytes,
      pendingReads: this.reads.size,
      busyAnswers: this.busyAnswers,
      snapshotsTaken: this.snapshotsTaken,
      snapshotsInstalled: this.snapshotsInstalled,
      readies: this.readies,
      entryWrites: this.entryWrites,
      entriesWritten: this.entriesWritten,
      snapshotBytes: this.core.latestSnapshot().data.length,
      raftStateBytes: this.size.bytes(this.core.log),
      refusedSnapshots: this.refusedSnapshots,
      ...(this.lastRefusal === undefined ? {} : { lastRefusedSnapshot: this.lastRefusal }),
    };
  }

  /** Stop for good: everything in flight gets Stopped, and storage, transport and state machine are closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    const why = `peer ${this.id} stopped`;
    this.failProposals(Status.Stopped, `${why}; the proposal may or may not be applied`);
    for (const w of this.promotions.splice(0)) w.done(this.outcome(Status.Stopped, `${why}; the learner was not promoted`));
    for (const [ctx, f] of this.forwards) {
      this.forwards.delete(ctx);
      this.clock.clearTimer(f.timer);
      f.done(this.outcome(Status.Stopped, `${why} while the leader had the proposal; it may or may not be applied`));
    }
    for (const [ctx, r] of this.reads) {
      this.reads.delete(ctx);
      this.clock.clearTimer(r.timer);
      r.done(this.outcome(Status.Stopped, why));
    }
    if (this.transfer) this.finishTransfer(this.transfer, this.outcome(Status.Stopped, why));
    this.cancelWriting();
    this.transport.close();
    this.storage.close();
    this.sm.close?.();
  }

  /**
   * Would the state machine accept this leader's snapshot? Asked before the
   * core sees it, because once the core installs a snapshot it is stored and
   * restored on every start: one the state machine cannot restore would
   * kill the peer now and at every restart. The state machine checks it
   * (the API's adapter tries it and puts its own state back; the lab's
   * apply stream has no check). Only a snapshot the core would install is
   * checked, and the same one sent again is not checked twice.
   */
  private restorable(m: SnapshotRequest): boolean {
    const snap = m.snapshot;
    if (m.term < this.core.currentTerm() || snap.index <= this.core.log.commitIndex) return true;
    const last = this.lastTried;
    if (last && last.index === snap.index && last.term === snap.term && last.bytes === snap.data.length) return last.ok;
    if (!this.sm.check) return true;
    // Checking replaces the state and puts it back: a snapshot being written from it cannot go on.
    this.cancelWriting();
    const current = { index: this.applied, term: this.core.log.term(this.applied) ?? this.core.log.snapshotTerm() };
    const refusal = this.sm.check(snap.data, { index: snap.index, term: snap.term }, current);
    const ok = refusal === undefined;
    if (!ok) this.lastRefusal = `peer ${m.from}'s snapshot through index ${snap.index} (term ${snap.term}) could not be restored: ${refusal}`;
    this.lastTried = { index: snap.index, term: snap.term, bytes: snap.data.length, ok };
    return ok;
  }

  // ---- ticks -----------------------------------------------------------------------

  /**
   * Run the ticks that have come due while the host slept. Every input calls
   * this before reaching the core, so ticks and messages reach it in the order
   * they happened (a heartbeat must reset the election timer after the ticks
   * before it, not before).
   */
  private catchUp(): void {
    // Timers fire on whole milliseconds: a tick less than 1 ms away counts as due.
    const due = Math.floor((this.clock.now() - this.lastTick + 1) / this.tickMs);
    if (due <= 0) return;
    this.lastTick += due * this.tickMs;
    for (let k = 0; k < due; k++) this.core.tick();
    this.schedule();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerDue = Infinity;
    if (this.stopped) return;
    this.catchUp();
    if (this.clock.now() >= this.proposalDeadline) this.expireProposals();
    this.armTimer();
  };

  /**
   * Ticks keep a fixed grid (one per tickMs since start), but the host only
   * wakes when the core has something due: an idle follower sleeps until its
   * election timeout, a leader until its next heartbeat. Waking every tick
   * costs real CPU for nothing (about 10 ms a second per worker here).
   */
  private armTimer(): void {
    if (this.stopped) return;
    const due = Math.min(this.lastTick + this.core.ticksUntilDue() * this.tickMs, this.proposalDeadline);
    if (this.timer !== undefined && due >= this.timerDue) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerDue = due;
    this.timer = this.clock.setTimer(this.onTimer, Math.max(0, due - this.clock.now()));
  }

  // ---- the drain loop --------------------------------------------------------------

  private schedule(): void {
    if (this.drainScheduled || this.stopped) return;
    this.drainScheduled = true;
    this.clock.defer(this.drainFn);
  }

  private drain(): void {
    this.drainScheduled = false;
    if (this.stopped) return;
    const core = this.core;
    let appliedNow = 0;
    while (core.hasReady()) {
      // A long catch-up is applied over several turns, so messages and clients are heard in between.
      if (appliedNow >= MAX_APPLIED_PER_TURN) {
        this.schedule();
        break;
      }
      const rd = core.ready();
      // A leader's requests leave before its own write, so that the
      // followers write while it does (they go out now, not at the end of the turn).
      if (rd.earlyCount > 0) {
        for (let i = 0; i < rd.earlyCount; i++) this.transport.send(rd.messages[i]!);
        this.transport.flush();
      }
      if (rd.applySnapshot) {
        this.restore(rd.applySnapshot);
        this.snapshotsInstalled++;
        this.events.snapshot?.('installed', rd.applySnapshot.index, rd.applySnapshot.data.length);
      }
      // Committed entries are durable on a majority already. A leader
      // applies them, and answers their callers, before this Ready's own
      // write: the answers need not wait for an fsync that is not theirs.
      // Anyone else writes first and sends its acknowledgements, then
      // applies: nobody waits for its results, and the leader waits for
      // those acknowledgements (its next commit is on them).
      const applyFirst = core.isLeader();
      if (applyFirst && rd.committed.length > 0) {
        this.apply(rd.committed);
        appliedNow += rd.committed.length;
        if (rd.entries.length > 0 || rd.hardState || rd.snapshot) this.afterApply?.();
      }
      this.storage.save(rd);
      this.size.saved(rd);
      this.readies++;
      if (rd.entries.length > 0) {
        this.entryWrites++;
        this.entriesWritten += rd.entries.length;
      }
      for (let i = rd.earlyCount; i < rd.messages.length; i++) this.transport.send(rd.messages[i]!);
      if (!applyFirst && rd.committed.length > 0) {
        if (rd.messages.length > rd.earlyCount) this.transport.flush();
        this.apply(rd.committed);
        appliedNow += rd.committed.length;
      }
      core.advance(rd);
      for (const rs of rd.readStates) this.placeRead(rs);
    }
    this.afterDrain();
    this.transport.flush();
    this.armTimer();
  }

  private restore(snap: Snapshot): void {
    this.cancelWriting();
    this.sm.restore(snap.data, { index: snap.index, term: snap.term });
    this.applied = snap.index;
    // Proposals whose entries the snapshot swallowed cannot learn their result here.
    for (const [index, p] of this.proposals) {
      if (index > snap.index) continue;
      this.untrack(index, p);
      p.done(this.outcome(Status.Unknown, `a snapshot through ${snap.index} replaced the entries here; the proposal may or may not be applied`));
    }
  }

  private apply(entries: Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.applied) continue;
      let result: Uint8Array | undefined;
      let failure: string | undefined;
      // An empty entry is the core's own (a new leader's, for a read), a Config entry the core's too: no command.
      const command = e.data.length > 0 && e.type !== EntryType.Config;
      if (command) {
        try {
          result = this.sm.apply(e.data, { index: e.index, term: e.term }, this.proposals.has(e.index));
        } catch (err) {
          this.applyErrors++;
          failure = errorMessage(err);
        }
      }
      this.applied = e.index;
      if (this.proposals.size === 0) continue;
      const p = this.proposals.get(e.index);
      if (!p) continue;
      this.untrack(e.index, p);
      const leader = this.core.leaderId();
      if (p.term !== e.term || e.data.length === 0) {
        p.done(this.outcome(Status.NotLeader, `another leader's entry took index ${e.index}; the proposal was not applied`));
      } else if (failure !== undefined) {
        p.done({ status: Status.ApplyError, message: failure, leader, index: e.index });
      } else {
        p.done({ status: Status.Ok, data: result, leader, index: e.index });
      }
    }
  }

  private afterDrain(): void {
    const core = this.core;
    const term = core.currentTerm();
    const leading = core.isLeader();
    // Waiting proposals are this leadership's: once it is over, their fate is unknown here.
    if (this.proposals.size > 0 && (!leading || term !== this.proposalTerm)) {
      // Entries already committed in that term are applied here all the same
      // (a leader that removed itself steps down just as its removal commits): they keep their answer.
      this.failProposals(Status.Unknown, `peer ${this.id} lost its leadership before the entry was applied; the proposal may or may not be applied`, core.log.commitIndex);
    }
    // A forwarded proposal or a read asked of a leader that is no longer this
    // peer's leader, or can no longer be reached, will get no answer worth
    // waiting for. Only a change of leader or a lost channel can cause that.
    const leader = core.leaderId();
    if (leader !== this.reportedLeader || this.lostPeer) {
      this.lostPeer = false;
      if (this.forwards.size > 0) this.checkForwards();
      if (this.reads.size > 0) this.checkAskedReads();
    }
    if (this.waitingReads.length > 0) this.serveWaitingReads();
    if (this.transfer) this.checkTransfer();
    if (this.promotions.length > 0) this.checkPromotions();
    const config = core.config();
    if (config !== this.reportedConfig) {
      this.reportedConfig = config;
      this.events.configChanged?.(config);
    }
    if (this.writing === undefined && this.snapshotDue()) {
      this.startSnapshot();
      // Compaction is a Ready of its own: written on the next drain (scheduled once the snapshot is taken).
    }
    if (term !== this.reportedTerm || leader !== this.reportedLeader) {
      this.reportedTerm = term;
      this.reportedLeader = leader;
      this.events.leaderChanged?.(term, leader);
    }
  }

  /** The snapshot policy: the threshold, and the log at least snapshotRatio times the latest snapshot. */
  private snapshotDue(): boolean {
    const core = this.core;
    if (this.snapshotThreshold <= 0 || this.applied <= core.log.snapshotIndex()) return false;
    const bytes = this.size.bytes(core.log);
    return bytes >= this.snapshotThreshold && bytes >= this.snapshotRatio * core.latestSnapshot().data.length;
  }

  // ---- proposals ----------------------------------------------------------------------

  private track(index: number, term: number, timeoutMs: number, bytes: number, done: OutcomeCallback): void {
    // A new leadership: whatever waited from an older one is not this one's to answer.
    if (term !== this.proposalTerm) this.failProposals(Status.Unknown, `peer ${this.id} lost its leadership before the entry was applied; the proposal may or may not be applied`, this.core.log.commitIndex);
    this.proposalTerm = term;
    const deadline = this.clock.now() + timeoutMs;
    this.proposals.set(index, { term, done, deadline, timeoutMs, bytes });
    this.proposalBytes += bytes;
    if (deadline < this.proposalDeadline) {
      this.proposalDeadline = deadline;
      this.armTimer();
    }
  }

  /** Answer every waiting proposal but those at or below `keepThrough` (committed in their term: apply answers them). */
  private failProposals(status: Status, message: string, keepThrough = 0): void {
    if (this.proposals.size === 0) return;
    const all = [...this.proposals];
    this.proposals.clear();
    this.proposalBytes = 0;
    this.proposalDeadline = Infinity;
    for (const [index, p] of all) {
      if (index <= keepThrough && this.core.log.term(index) === p.term) {
        this.proposals.set(index, p);
        this.proposalBytes += p.bytes;
        this.proposalDeadline = Math.min(this.proposalDeadline, p.deadline);
        continue;
      }
      p.done(this.outcome(status, message, index));
    }
  }

  private untrack(index: number, p: PendingProposal): void {
    this.proposals.delete(index);
    this.proposalBytes -= p.bytes;
  }

  /** Answer Unknown every proposal whose deadline has passed; note the next deadline. */
  private expireProposals(): void {
    const now = this.clock.now();
    let next = Infinity;
    const expired: [number, PendingProposal][] = [];
    for (const [index, p] of this.proposals) {
      if (p.deadline <= now) expired.push([index, p]);
      else if (p.deadline < next) next = p.deadline;
    }
    this.proposalDeadline = next;
    for (const [index, p] of expired) {
      this.untrack(index, p);
      p.done(this.outcome(Status.Unknown, `the entry at index ${index} was not applied within ${p.timeoutMs} ms; it may or may not be applied`, index));
    }
  }

  /** Nothing was done: too much already waits here (flow control). */
  private busy(what: string): Outcome {
    this.busyAnswers++;
    return this.outcome(Status.Busy, `peer ${this.id} is busy: ${what}; nothing was done, try again shortly`);
  }

  private forward(command: Uint8Array, leader: number, timeoutMs: number, done: OutcomeCallback): void {
    const ctx = this.nextCtx++;
    const f: PendingForward = {
      leader,
      done,
      timer: this.clock.setTimer(() => {
        if (this.forwards.get(ctx) !== f) return;
        this.forwards.delete(ctx);
        done(this.outcome(Status.Unknown, `no answer from leader ${leader} within ${timeoutMs} ms; the proposal may or may not be applied`));
      }, clampTimeout(timeoutMs + FORWARD_GRACE_MS)),
    };
    this.forwards.set(ctx, f);
    this.transport.send({ type: HostMessageType.Forward, from: this.id, to: leader, term: this.core.currentTerm(), ctx, timeoutMs, data: command });
    this.schedule();
  }

  private checkForwards(): void {
    const leader = this.core.leaderId();
    for (const [ctx, f] of this.forwards) {
      if (f.leader === leader && this.transport.reachable(f.leader)) continue;
      this.forwards.delete(ctx);
      this.clock.clearTimer(f.timer);
      const why = this.transport.reachable(f.leader) ? `peer ${f.leader} is no longer the leader` : `peer ${f.leader} went away`;
      f.done(this.outcome(Status.Unknown, `${why} while it had the proposal; it may or may not be applied`));
    }
  }

  /** Reads asked of a leader that is no longer this peer's leader, or gone, will not be placed: refuse them. */
  private checkAskedReads(): void {
    const leader = this.core.leaderId();
    for (const [ctx, r] of this.reads) {
      if (r.index >= 0 || r.via === this.id || (r.via === leader && this.transport.reachable(r.via))) continue;
      this.reads.delete(ctx);
      this.clock.clearTimer(r.timer);
      r.done(this.outcome(Status.NotLeader, `read: peer ${r.via}, asked for the read index, is no longer the leader or went away`));
    }
  }

  /** A follower's proposal: propose it here (no further forwarding) and send the outcome back. */
  private onForward(m: ForwardRequest): void {
    this.propose(m.data, { forward: false, timeoutMs: m.timeoutMs }, (o) => {
      if (this.stopped) return;
      const reply: ForwardReply = {
        type: HostMessageType.ForwardReply,
        from: this.id,
        to: m.from,
        term: this.core.currentTerm(),
        ctx: m.ctx,
        status: o.status,
        leader: o.leader,
        index: o.index ?? -1,
        data: o.data ?? EMPTY,
        message: o.message ?? '',
      };
      this.transport.send(reply);
      this.schedule();
    });
  }

  private onForwardReply(m: ForwardReply): boolean {
    const f = this.forwards.get(m.ctx);
    // No longer waited for (it timed out, or its leader changed): nothing to do.
    if (!f) return true;
    // Only the leader the proposal went to can answer it.
    if (m.from !== f.leader) return false;
    this.forwards.delete(m.ctx);
    this.clock.clearTimer(f.timer);
    const o: Outcome = { status: m.status as Status, data: m.data, leader: m.leader };
    if (m.message) o.message = m.message;
    if (m.index >= 0) o.index = m.index;
    f.done(o);
    return true;
  }

  // ---- reads ---------------------------------------------------------------------------

  private placeRead(rs: ReadState): void {
    const r = this.reads.get(rs.ctx);
    if (!r) return;
    if (rs.index < 0) {
      this.reads.delete(rs.ctx);
      this.clock.clearTimer(r.timer);
      r.done(this.outcome(Status.NotLeader, 'the leader could not confirm its leadership for this read'));
      return;
    }
    r.index = rs.index;
    if (this.applied >= rs.index) this.serveRead(rs.ctx, r);
    else this.waitingReads.push(rs.ctx);
  }

  private serveWaitingReads(): void {
    const still: number[] = [];
    for (const ctx of this.waitingReads) {
      const r = this.reads.get(ctx);
      if (!r) continue;
      if (this.applied >= r.index) this.serveRead(ctx, r);
      else still.push(ctx);
    }
    this.waitingReads = still;
  }

  private serveRead(ctx: number, r: PendingRead): void {
    this.reads.delete(ctx);
    this.clock.clearTimer(r.timer);
    r.done(this.answer(r.query));
  }

  private answer(query: Uint8Array): Outcome {
    try {
      return { status: Status.Ok, data: this.sm.query(query), leader: this.core.leaderId(), index: this.applied };
    } catch (err) {
      return this.outcome(Status.ApplyError, errorMessage(err));
    }
  }

  // ---- leadership transfer ----------------------------------------------------------------

  private checkTransfer(): void {
    const t = this.transfer!;
    const core = this.core;
    if (core.isLeader()) {
      if (core.status().transferee === -1) {
        this.finishTransfer(t, this.outcome(Status.Timeout, `peer ${t.to} did not take over within an election timeout; peer ${this.id} leads on`));
      }
      return;
    }
    const leader = core.leaderId();
    if (leader === t.to) this.finishTransfer(t, this.outcome(Status.Ok));
    else if (leader !== -1) this.finishTransfer(t, this.outcome(Status.Timeout, `peer ${leader} was elected instead of peer ${t.to}`));
  }

  private finishTransfer(t: PendingTransfer, o: Outcome): void {
    if (this.transfer !== t) return;
    this.transfer = undefined;
    this.clock.clearTimer(t.timer);
    t.done(o);
  }

  // ---- outcomes ----------------------------------------------------------------------------

  private outcome(status: Status, message?: string, index?: number): Outcome {
    const o: Outcome = { status, leader: this.core.leaderId() };
    if (message !== undefined) o.message = message;
    if (index !== undefined) o.index = index;
    return o;
  }

  private notLeader(what: string): Outcome {
    const st = this.core.status();
    if (st.role === Role.Leader && st.transferee !== -1) {
      return { status: Status.NotLeader, message: `${what}: peer ${this.id} is handing leadership to peer ${st.transferee}`, leader: st.transferee };
    }
    if (st.role === Role.Leader) {
      return { status: Status.NotLeader, message: `${what}: leader ${this.id} has not heard from a majority within an election timeout`, leader: -1 };
    }
    const where = st.leader === -1 ? 'no leader is known' : `the leader is peer ${st.leader}`;
    return { status: Status.NotLeader, message: `${what}: peer ${this.id} is not the leader; ${where}`, leader: st.leader };
  }
}
