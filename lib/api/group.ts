import { randomInt } from 'node:crypto';
import type { Transferable } from 'node:worker_threads';
import { Status } from '../node/outcome.js';
import type { LeaderEvent, PeerStatus } from '../node/boot.js';
import { DEFAULT_MAX_COMMAND_BYTES, DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_BYTES } from '../node/host.js';
import { GroupClient, type GroupHandle, type ProposeOptions, type ReadOptions } from './client.js';
import { GroupClosedError, MembershipError, NotLeaderError, OptionError, OutcomeUnknownError, PeerNotRunningError, TimeoutError } from './errors.js';
import type { ConfigChange } from '../raft/config.js';
import { PeerSupervisor } from './supervisor.js';
import { moduleUrl, type StateMachineSpec } from './state-machine.js';
import type { Registry } from 'prom-client';
import { DEFAULT_SNAPSHOT_RATIO } from '../node/snapshot-policy.js';

export interface GroupOptions {
  /** Number of peers (1..64); each runs in its own worker thread. Odd numbers tolerate the most failures per peer. */
  peers: number;
  /** Your state machine: an ES module (path or URL) exporting createStateMachine, and its options. */
  stateMachine: StateMachineSpec;
  /**
   * Options for one peer's state machine, asked for at every start of that
   * peer (open, restart), in place of `stateMachine.options`: for what each
   * peer needs of its own, or anew at each start, such as MessagePorts
   * (list them in `transfer`).
   */
  peerOptions?: (peer: number) => { options: unknown; transfer?: Transferable[] };
  /**
   * Directory for the peers' SQLite files (peer-<i>.sqlite), created if
   * missing. Without it peers keep their state in memory: a restarted peer
   * starts empty, and nothing survives the process.
   */
  dataDir?: string;
  /** Sync every write to disk before acting on it (default true). false survives process crashes only. */
  fsync?: boolean;
  /**
   * Snapshot a peer's state machine once its persisted Raft state (the log
   * and its metadata) reaches this many bytes, then drop the log it covers
   * (default 8 MiB; -1: never). Bounds both the files and a restart's replay.
   */
  snapshotThreshold?: number;
  /**
   * ...and once the Raft state is also at least this many times the size of
   * the latest snapshot (default 2; 0: the threshold alone decides). A
   * snapshot holds the whole state machine, so with a threshold alone a
   * large table would be written out again every few thousand commands;
   * with a ratio r, snapshots cost at most 1/r of what writing the log
   * costs, whatever the table's size, and the log stays within r times the
   * snapshot (plus the threshold).
   */
  snapshotRatio?: number;
  /** Milliseconds per tick (default 10). */
  tickMs?: number;
  /** Election timeout drawn from [electionTicks, 2*electionTicks) ticks (default 50: 500-1000 ms). */
  electionTicks?: number;
  /** Heartbeat interval in ticks (default 10). */
  heartbeatTicks?: number;
  /** Unacknowledged AppendEntries per follower (default 4). */
  maxInflight?: number;
  /** Pre-vote elections (default true; thesis 9.6). Lease reads need them. */
  preVote?: boolean;
  /** A leader that has not heard from a majority for an election timeout refuses proposals and reads (default true). */
  refuseWithoutQuorum?: boolean;
  /**
   * Allow 'lease' reads (default true; thesis 6.4.1). A restarted peer then
   * refuses pre-votes for its first minimum election timeout, which a lease
   * relies on.
   */
  leaseReads?: boolean;
  /**
   * How much of the minimum election timeout a lease gives up to clock
   * drift, in milliseconds (default a tenth of it, at least one tick).
   * Peers in one process share one clock; the margin is for clocks whose
   * rates differ.
   */
  leaseMarginMs?: number;
  /** Largest command accepted, in bytes (default 4 MiB). */
  maxCommandBytes?: number;
  /** Largest query accepted, in bytes (default 4 MiB). */
  maxQueryBytes?: number;
  /**
   * Flow control (default 8192): at most this many proposals wait on the
   * leader at once (and as many reads, and as many proposals a follower
   * forwards). Past it a request is answered Busy, nothing done; clients
   * wait and ask again (a GroupClient until its call's timeout, then
   * BusyError), so a burst queues in the callers, not in the peers.
   */
  maxPending?: number;
  /** ...and at most this many bytes of commands wait to be applied on the leader (default 64 MiB). */
  maxPendingBytes?: number;
  /**
   * The largest JavaScript heap (V8's old generation) of each peer's
   * worker, in MiB (default: V8's own limit, about a sixth of the
   * machine's memory). V8 paces its collections by this limit, so a lower
   * one also keeps less garbage around: a peer holds less memory than its
   * limit says. A peer that needs more than its limit dies with an
   * out-of-memory error (reported through onPeerError).
   */
  peerHeapMb?: number;
  /** Each peer worker's young generation in MiB (default 8). */
  peerYoungGenerationMb?: number;
  /** Seed for election timeouts; random when omitted. */
  seed?: number;
  /** A peer worker died of an error (default: print it). */
  onPeerError?: (peer: number, incarnation: number, err: Error) => void;
}

/** One peer as `status()` reports it. */
export type PeerReport = ({ running: true } & PeerStatus) | { running: false; id: number };

export interface GroupStatus {
  /** The leader of the highest term any running peer knows of, -1 if none. */
  leader: number;
  term: number;
  peers: PeerReport[];
}

export type LeaderListener = (change: { term: number; leader: number }) => void;

function int(option: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionError(option, `must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

function ratio(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1000) throw new OptionError(option, `must be a number from 0 to 1000, got ${String(v)}`);
  return v;
}

function bool(option: string, v: unknown, def: boolean): boolean {
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw new OptionError(option, `must be a boolean, got ${String(v)}`);
  return v;
}

/**
 * A Raft group in this process: N peers, each in its own worker thread
 * running your state machine, on a healthy in-process network, each peer's
 * state in its own SQLite file. Proposals return your state machine's
 * results; reads are served by ReadIndex (or a lease) without touching the
 * log. The group is usable from any thread through `handle()`.
 *
 *   const group = await RaftGroup.open({ peers: 3, dataDir: 'data', stateMachine: { module: './bank.js' } });
 *   await group.propose({ op: 'deposit', account: 'a', amount: 10 });
 *   await group.read({ balance: 'a' });
 *   await group.close();
 */
export class RaftGroup<Command = unknown, Result = unknown, Query = unknown, Answer = unknown> {
  /** Peers ever added (ids 0..n-1; ids of removed peers are not reused). */
  get n(): number {
    return this.sup.n;
  }
  private readonly initialPeers: number;
  private readonly sup: PeerSupervisor;
  private readonly peerOptions: GroupOptions['peerOptions'];
  private readonly client: GroupClient<Command, Result, Query, Answer>;
  private readonly closeOwnLink: () => void;
  private readonly listeners = new Set<LeaderListener>();
  private readonly timing: { tickMs: number; electionTicks: number };
  private leaderTerm = -1;
  private leader = -1;
  private closed = false;

  private constructor(opts: GroupOptions) {
    if (typeof opts !== 'object' || opts === null) throw new OptionError('options', 'must be an object');
    this.initialPeers = int('peers', opts.peers, 1, 64);
    const tickMs = int('tickMs', opts.tickMs ?? 10, 1);
    const electionTicks = int('electionTicks', opts.electionTicks ?? 50, 2);
    const heartbeatTicks = int('heartbeatTicks', opts.heartbeatTicks ?? 10, 1);
    if (heartbeatTicks >= electionTicks) throw new OptionError('heartbeatTicks', `must be below electionTicks (${electionTicks}), got ${heartbeatTicks}`);
    this.timing = { tickMs, electionTicks };
    const spec = opts.stateMachine;
    if (typeof spec !== 'object' || spec === null || spec.module === undefined) {
      throw new OptionError('stateMachine', 'must be { module: path or URL of an ES module, options? }');
    }
    const module = moduleUrl(spec.module);
    if (opts.peerOptions !== undefined && typeof opts.peerOptions !== 'function') throw new OptionError('peerOptions', 'must be a function (peer) => { options, transfer? }');
    this.peerOptions = opts.peerOptions;
    if (opts.dataDir !== undefined && (typeof opts.dataDir !== 'string' || opts.dataDir === '')) {
      throw new OptionError('dataDir', `must be a directory path, got ${String(opts.dataDir)}`);
    }
    const threshold = opts.snapshotThreshold ?? 8 << 20;
    if (!Number.isSafeInteger(threshold) || (threshold < 1 && threshold !== -1)) {
      throw new OptionError('snapshotThreshold', `must be -1 (never) or a positive number of bytes, got ${String(threshold)}`);
    }
    const leaseMarginTicks =
      opts.leaseMarginMs === undefined ? undefined : Math.ceil(int('leaseMarginMs', opts.leaseMarginMs, 0) / tickMs);
    if (leaseMarginTicks !== undefined && leaseMarginTicks > electionTicks - 3) {
      throw new OptionError('leaseMarginMs', `leaves no lease: must be below ${(electionTicks - 2) * tickMs} ms`);
    }
    if (opts.onPeerError !== undefined && typeof opts.onPeerError !== 'function') throw new OptionError('onPeerError', 'must be a function');
    const onPeerError = opts.onPeerError ?? ((peer, inc, err) => console.error(`peer ${peer} (incarnation ${inc}) failed:`, err));
    this.sup = new PeerSupervisor({
      n: this.initialPeers,
      timing: { tickMs, electionTicks, heartbeatTicks },
      seed: opts.seed === undefined ? randomInt(2 ** 31) : int('seed', opts.seed, 0, 2 ** 32 - 1),
      host: {
        maxInflight: int('maxInflight', opts.maxInflight ?? 4, 1, 1 << 16),
        preVote: bool('preVote', opts.preVote, true),
        refuseWithoutQuorum: bool('refuseWithoutQuorum', opts.refuseWithoutQuorum, true),
        leaseReads: bool('leaseReads', opts.leaseReads, true),
        ...(leaseMarginTicks !== undefined ? { leaseMarginTicks } : {}),
        snapshotThreshold: threshold,
        snapshotRatio: ratio('snapshotRatio', opts.snapshotRatio ?? DEFAULT_SNAPSHOT_RATIO),
        maxCommandBytes: int('maxCommandBytes', opts.maxCommandBytes ?? DEFAULT_MAX_COMMAND_BYTES, 1),
        maxQueryBytes: int('maxQueryBytes', opts.maxQueryBytes ?? DEFAULT_MAX_COMMAND_BYTES, 1),
        maxPending: int('maxPending', opts.maxPending ?? DEFAULT_MAX_PENDING, 1),
        maxPendingBytes: int('maxPendingBytes', opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, 1),
      },
      dataDir: opts.dataDir,
      fsync: bool('fsync', opts.fsync, true),
      stateMachine: { module, options: spec.options },
      heap: {
        ...(opts.peerHeapMb !== undefined ? { oldMb: int('peerHeapMb', opts.peerHeapMb, 32, 1 << 20) } : {}),
        ...(opts.peerYoungGenerationMb !== undefined ? { youngMb: int('peerYoungGenerationMb', opts.peerYoungGenerationMb, 1, 1024) } : {}),
      },
      onPeerError,
      onLeaderEvent: (peer, _inc, ev) => this.onLeaderEvent(peer, ev),
    });
    const own = this.sup.openLink();
    this.closeOwnLink = own.close;
    this.client = new GroupClient(own.link);
  }

  /** Start every peer; resolves once all run (an election follows within an election timeout). */
  static async open<C = unknown, R = unknown, Q = unknown, A = unknown>(opts: GroupOptions): Promise<RaftGroup<C, R, Q, A>> {
    const g = new RaftGroup<C, R, Q, A>(opts);
    try {
      const started = await Promise.allSettled(Array.from({ length: g.n }, (_, i) => g.startPeer(i)));
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    } catch (e) {
      await g.close();
      throw e;
    }
    return g;
  }

  /**
   * Propose a command: resolves with the result your state machine's apply
   * returned once it is committed and applied (see GroupClient.propose for
   * the errors).
   */
  propose(command: Command, opts?: ProposeOptions): Promise<Result> {
    if (this.closed) return Promise.reject(new GroupClosedError('propose'));
    return this.client.propose(command, opts);
  }

  /** Answer a query from your state machine (linearizable by default; see ReadOptions). */
  read(query: Query, opts?: ReadOptions): Promise<Answer> {
    if (this.closed) return Promise.reject(new GroupClosedError('read'));
    return this.client.read(query, opts);
  }

  /**
   * A handle for another thread: post it, transferring `handle.control`,
   * and call GroupClient.connect(handle) there. Each call makes a new one.
   */
  handle(): GroupHandle {
    if (this.closed) throw new GroupClosedError('handle');
    return this.sup.openLink().link;
  }

  /** A client in this thread of its own (the group's propose and read share one). */
  connect(): GroupClient<Command, Result, Query, Answer> {
    return new GroupClient(this.handle());
  }

  /**
   * Make peer `to` the leader (thesis 3.10): the leader brings it up to
   * date, then tells it to campaign; proposals wait meanwhile. Rejects with
   * TimeoutError if it did not happen within an election timeout (the old
   * leader then carries on), NotLeaderError if no leader is known.
   */
  async transferLeadership(to: number, opts: { timeoutMs?: number } = {}): Promise<void> {
    this.sup.checkPeer('transferLeadership', to);
    if (!this.sup.isRunning(to)) throw new PeerNotRunningError(to, 'transferLeadership');
    const timeoutMs = opts.timeoutMs ?? 2 * this.timing.electionTicks * this.timing.tickMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new OptionError('timeoutMs', `must be a positive number, got ${String(timeoutMs)}`);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const leader = (await this.status()).leader;
      if (leader === to) return;
      if (leader === -1 || !this.sup.isRunning(leader)) {
        if (performance.now() >= deadline) throw new NotLeaderError('transferLeadership: no leader is known', -1);
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const o = await this.sup.call(leader, 'transferLeadership', (api) => api.transferLeadership(to, Math.max(1, deadline - performance.now())));
      if (o.status === Status.Ok) return;
      if (o.status === Status.NotLeader && performance.now() < deadline) continue;
      if (o.status === Status.NotLeader) throw new NotLeaderError(`transferLeadership: ${o.message ?? 'no leader'}`, o.leader);
      if (o.status === Status.Stopped) throw new PeerNotRunningError(leader, 'transferLeadership');
      throw new TimeoutError(`transferLeadership: ${o.message ?? 'did not complete'}`);
    }
  }

  /**
   * Add a peer to the running group (thesis 4.2): a new worker with a new
   * id joins as a learner, catches up (by snapshot if the log was
   * compacted), and, unless `voter` is false, is promoted to voter once it
   * holds everything committed. Resolves with its id. Rejects with
   * MembershipError ('in-progress' while another change is uncommitted),
   * TimeoutError if the learner did not catch up in time (it stays a
   * learner), NotLeaderError if no leader took the change.
   */
  async addMember(opts: { voter?: boolean; timeoutMs?: number } = {}): Promise<number> {
    if (this.closed) throw new GroupClosedError('addMember');
    const timeoutMs = this.membershipTimeout(opts.timeoutMs);
    const deadline = performance.now() + timeoutMs;
    const id = this.sup.addSlot();
    await this.startPeer(id);
    try {
      await this.changeMembership({ type: 'addLearner', id }, deadline);
    } catch (e) {
      // Not a member: its worker has nothing to do (its id stays used).
      await this.sup.stop(id);
      throw e;
    }
    if (opts.voter !== false) await this.changeMembership({ type: 'promote', id }, deadline);
    return id;
  }

  /**
   * Remove peer `id` (voter or learner) while serving; once the change is
   * committed its worker is stopped (its file is kept). Removing the leader
   * works: it leads until the change commits, then steps down and the
   * others elect a new leader. Rejects with MembershipError ('not-member',
   * 'last-voter', 'in-progress').
   */
  async removeMember(id: number, opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) throw new GroupClosedError('removeMember');
    this.sup.checkPeer('removeMember', id);
    const deadline = performance.now() + this.membershipTimeout(opts.timeoutMs);
    await this.changeMembership({ type: 'remove', id }, deadline);
    await this.sup.stop(id);
  }

  /** The configuration the leader (or, with none, the highest-term peer) holds: voters and learners by id. */
  async members(): Promise<{ voters: number[]; learners: number[]; committed: boolean }> {
    const st = await this.status();
    const running = st.peers.filter((p): p is Extract<PeerReport, { running: true }> => p.running);
    const from = running.find((p) => p.id === st.leader) ?? running.sort((a, b) => b.term - a.term)[0];
    if (!from) throw new PeerNotRunningError(0, 'members');
    return { voters: from.config.voters, learners: from.config.learners, committed: from.configCommitted };
  }

  private membershipTimeout(ms: number | undefined): number {
    const timeoutMs = ms ?? 10_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new OptionError('timeoutMs', `must be a positive number, got ${String(timeoutMs)}`);
    return timeoutMs;
  }

  /** One change through whichever peer leads, retried while none does (or the leader changes) until the deadline. */
  private async changeMembership(change: ConfigChange, deadline: number): Promise<void> {
    for (;;) {
      const leader = (await this.status()).leader;
      const left = deadline - performance.now();
      if (leader === -1 || !this.sup.isRunning(leader)) {
        if (left <= 0) throw new NotLeaderError(`${change.type} ${change.id}: no leader is known`, -1);
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      let o;
      try {
        o = await this.sup.call(leader, 'changeMembership', (api) => api.changeMembership(change, Math.max(1, left)));
      } catch (e) {
        if (e instanceof PeerNotRunningError && performance.now() < deadline) continue;
        throw e;
      }
      if (o.status === Status.Ok) return;
      if (o.status === Status.Rejected && o.code) throw new MembershipError(o.code, `${change.type} ${change.id}: ${o.message ?? o.code}`);
      if ((o.status === Status.NotLeader || o.status === Status.Stopped) && performance.now() < deadline) continue;
      if (o.status === Status.NotLeader) throw new NotLeaderError(`${change.type} ${change.id}: ${o.message ?? 'no leader'}`, o.leader);
      if (o.status === Status.Timeout) throw new TimeoutError(`${change.type} ${change.id}: ${o.message ?? 'timed out'}`);
      throw new OutcomeUnknownError(`${change.type} ${change.id}: ${o.message ?? 'the change may or may not have been made'}`);
    }
  }

  /**
   * A prom-client registry with every running peer's metrics, labelled
   * peer="<id>" (term, role, indexes, leader changes, proposals by outcome
   * and their latency, durable-write latency, snapshots, heap, CPU): each
   * scrape asks the peers' threads once. Pass your own registry to add
   * them to it. prom-client is loaded on the first call.
   */
  async metrics(registry?: Registry): Promise<Registry> {
    const { peerRegistry } = await import('../metrics/registry.js');
    const { Registry: RegistryClass } = await import('prom-client');
    return peerRegistry(async () => {
      const peers = this.closed ? [] : (await this.status()).peers;
      return peers.flatMap((p) =>
        p.running
          ? [{ labels: { peer: String(p.id) }, host: p, meter: p.meter, ...(p.traffic ? { traffic: p.traffic } : {}), heapUsedBytes: p.heapUsedBytes, ...(p.cpuMs === undefined ? {} : { cpuMs: p.cpuMs }) }]
          : [],
      );
    }, registry ?? new RegistryClass());
  }

  /** Every peer's status, and the leader of the highest term among them. */
  async status(): Promise<GroupStatus> {
    if (this.closed) throw new GroupClosedError('status');
    const peers: PeerReport[] = await Promise.all(
      Array.from({ length: this.n }, async (_, i): Promise<PeerReport> => {
        if (!this.sup.isRunning(i)) return { running: false, id: i };
        try {
          return { running: true, ...(await this.sup.call(i, 'status', (api) => api.status())) };
        } catch {
          return { running: false, id: i };
        }
      }),
    );
    let leader = -1;
    let term = 0;
    for (const p of peers) {
      if (!p.running) continue;
      if (p.term > term) term = p.term;
      if (p.role === 'leader' && p.term >= term) leader = p.id;
    }
    const leading = peers.find((p) => p.running && p.id === leader);
    if (leading && leading.running && leading.term < term) leader = -1;
    return { leader, term, peers };
  }

  /** Called with { term, leader } whenever a new leader is known (leader -1: the known leader went down). Returns an unsubscribe function. */
  onLeaderChange(listener: LeaderListener): () => void {
    if (typeof listener !== 'function') throw new OptionError('listener', 'must be a function');
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onLeaderEvent(peer: number, ev: LeaderEvent): void {
    if (ev.leader !== peer || ev.term <= this.leaderTerm) return;
    this.leaderTerm = ev.term;
    this.announce(ev.term, peer);
  }

  private announce(term: number, leader: number): void {
    this.leader = leader;
    for (const l of [...this.listeners]) {
      try {
        l({ term, leader });
      } catch (e) {
        console.error('onLeaderChange listener threw:', e);
      }
    }
  }

  /** Snapshot peer i's state machine now and compact its log (returns false if nothing new was applied). */
  snapshot(peer: number): Promise<boolean> {
    return this.sup.call(peer, 'snapshot', (api) => api.takeSnapshot());
  }

  /** Kill peer i's worker without warning (a crash, for recovery drills): what it had not written is lost. */
  async crash(peer: number): Promise<void> {
    this.sup.checkPeer('crash', peer);
    await this.sup.crash(peer);
    if (peer === this.leader) this.announce(this.leaderTerm, -1);
  }

  /** Start peer i again in a new worker, from its file (after crash(), or to replace a running one). */
  async restart(peer: number): Promise<void> {
    await this.startPeer(peer);
  }

  private async startPeer(i: number): Promise<void> {
    if (!this.peerOptions) {
      await this.sup.start(i);
      return;
    }
    this.sup.checkPeer('restart', i);
    const o = this.peerOptions(i);
    await this.sup.start(i, { stateMachineOptions: o.options, transfer: o.transfer ?? [] });
  }

  isRunning(peer: number): boolean {
    return this.sup.isRunning(peer);
  }

  /** Stop every peer: calls in flight reject with GroupClosedError, every file is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
    this.closeOwnLink();
    this.listeners.clear();
    await this.sup.close();
  }
}
