import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { MessageChannel, type MessagePort, type Transferable } from 'node:worker_threads';
import { SqliteStorage } from '../../storage/sqlite.js';
import { GroupClosedError, OptionError, PeerNotRunningError } from '../api/errors.js';
import { PeerSupervisor } from '../api/supervisor.js';
import type { PeerState, PeerStatus, StartResult } from '../node/boot.js';
import type { PeerTiming } from '../node/host.js';
import { decodeValue, encodeValue } from '../transport/codec.js';
import { Comlink } from '../transport/comlink.js';
import { Clerk } from '../kv/clerk.js';
import type { ApplyBatch } from './apply-stream.js';
import { FaultState } from './faults.js';
import { StartChannel } from './start-channel.js';
import { labEnds, type LabClientLink } from './lab-ends.js';

/** The lab's name for a closed group. */
export { GroupClosedError as ClusterClosedError };

export interface ClusterOptions {
  /** Number of peers (1..64). */
  peers: number;
  /** Milliseconds per core tick. Default 10. */
  tickMs?: number;
  /** Election timeout drawn from [electionTicks, 2*electionTicks) ticks. Default 50 (500-1000 ms at 10 ms ticks). */
  electionTicks?: number;
  /** Heartbeat interval in ticks. Default 10 (100 ms at 10 ms ticks: ten heartbeats a second). */
  heartbeatTicks?: number;
  /** Seed for the peers' PRNGs; random when omitted. */
  seed?: number;
  /**
   * Directory for the peers' SQLite files (peer-<i>.sqlite), created if
   * missing. Without it peers keep their state in memory and a restarted
   * peer starts empty.
   */
  dataDir?: string;
  /** Sync every write to disk (default true). false survives process crashes only. */
  fsync?: boolean;
  /** Unacknowledged AppendEntries a leader keeps in flight to one follower (default 4). */
  maxInflight?: number;
  /** Pre-vote elections (default true). */
  preVote?: boolean;
  /** A leader without a majority for an election timeout refuses commands (default true). */
  refuseWithoutQuorum?: boolean;
  /** Lease reads and the start-up pre-vote refusal they need (default false: the lab reads by ReadIndex only). */
  leaseReads?: boolean;
  /**
   * Run the key/value service in every peer (lib/kv). maxRaftState: snapshot
   * once the persisted Raft state reaches this many bytes; -1 never (default).
   */
  kv?: { maxRaftState?: number };
  /**
   * Run another service in every peer: a state machine module (as for
   * RaftGroup) whose clients go through openClient like the key/value
   * service's. maxRaftState as for kv. Not together with kv.
   */
  service?: { module: string; maxRaftState?: number };
  /**
   * Called when a peer's worker dies of an uncaught error (default: print
   * it). Tests pass a handler that fails the test: a peer must never crash.
   */
  onPeerError?: (peer: number, incarnation: number, err: Error) => void;
}

/** One applied command as seen on a peer's apply stream. */
export interface Applied {
  index: number;
  term: number;
  command: unknown;
}

/** A snapshot on the apply stream: the service must restore it before the entries that follow. */
export interface AppliedSnapshot {
  index: number;
  term: number;
  data: Uint8Array;
}

export type ApplyListener = (peer: number, entries: Applied[], snapshot?: AppliedSnapshot) => void;

export const DEFAULT_TIMING: PeerTiming = { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 };

function positiveInt(option: string, v: unknown, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionError(option, `must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

const applyStreamModule = new URL('./apply-stream.js', import.meta.url).href;
const kvModule = new URL('../kv/service.js', import.meta.url).href;

/**
 * The lab's cluster: a Raft group whose peers start isolated on a
 * fault-injecting network (call connectAll() for a healthy one, or drive
 * `faults` link by link, as the lab harness's connect/disconnect do), with
 * the lab's raw interfaces: Start() answering at once, the apply stream in
 * the main thread, the service's own Snapshot(), mailbox injection and
 * storage inspection. Products use RaftGroup (actor-raft) instead.
 */
export class Cluster {
  readonly n: number;
  readonly timing: PeerTiming;
  readonly faults: FaultState;
  readonly dataDir: string | undefined;
  readonly kv: { maxRaftState: number } | undefined;
  /** The service every peer runs (the key/value one for kv), with its snapshot bound; none: the apply stream. */
  readonly service: { module: string; maxRaftState: number } | undefined;
  private readonly sup: PeerSupervisor;
  private readonly applyPorts: (MessagePort | undefined)[];
  /** Each running peer's Start() channel, opened by its incarnation's first startCommand and closed by crash(). */
  private readonly starters: (StartChannel | undefined)[];
  private readonly clients = new Map<number, { flags: Int32Array; close(): void }>();
  private nextClient = 1;

  constructor(opts: ClusterOptions) {
    if (typeof opts !== 'object' || opts === null) throw new OptionError('options', 'must be an object');
    this.n = positiveInt('peers', opts.peers, 1, 64);
    const tickMs = positiveInt('tickMs', opts.tickMs ?? DEFAULT_TIMING.tickMs);
    const electionTicks = positiveInt('electionTicks', opts.electionTicks ?? DEFAULT_TIMING.electionTicks, 2);
    const heartbeatTicks = positiveInt('heartbeatTicks', opts.heartbeatTicks ?? DEFAULT_TIMING.heartbeatTicks);
    if (heartbeatTicks >= electionTicks) {
      throw new OptionError('heartbeatTicks', `must be below electionTicks (${electionTicks}), got ${heartbeatTicks}`);
    }
    this.timing = { tickMs, electionTicks, heartbeatTicks };
    const maxInflight = positiveInt('maxInflight', opts.maxInflight ?? 4, 1, 1 << 16);
    const flag = (name: 'preVote' | 'refuseWithoutQuorum' | 'fsync' | 'leaseReads', def: boolean): boolean => {
      const v = opts[name];
      if (v !== undefined && typeof v !== 'boolean') throw new OptionError(name, `must be a boolean, got ${String(v)}`);
      return v ?? def;
    };
    const preVote = flag('preVote', true);
    const refuseWithoutQuorum = flag('refuseWithoutQuorum', true);
    const leaseReads = flag('leaseReads', false);
    const seed = opts.seed === undefined ? randomInt(2 ** 31) : positiveInt('seed', opts.seed, 0, 2 ** 32 - 1);
    if (opts.dataDir !== undefined && (typeof opts.dataDir !== 'string' || opts.dataDir === '')) {
      throw new OptionError('dataDir', `must be a directory path, got ${String(opts.dataDir)}`);
    }
    this.dataDir = opts.dataDir;
    const fsync = flag('fsync', true);
    if (opts.onPeerError !== undefined && typeof opts.onPeerError !== 'function') throw new OptionError('onPeerError', 'must be a function');
    const onPeerError = opts.onPeerError ?? ((peer, inc, err) => console.error(`peer ${peer} (incarnation ${inc}) failed:`, err));
    const maxRaftState = (option: string, v: unknown): number => {
      const m = v ?? -1;
      if (!Number.isSafeInteger(m) || ((m as number) < 1 && m !== -1)) throw new OptionError(option, `must be -1 (never snapshot) or a positive integer, got ${String(m)}`);
      return m as number;
    };
    if (opts.kv !== undefined && opts.service !== undefined) throw new OptionError('service', 'give kv or service, not both');
    if (opts.kv !== undefined) {
      if (typeof opts.kv !== 'object' || opts.kv === null) throw new OptionError('kv', 'must be an object like { maxRaftState: -1 }');
      this.kv = { maxRaftState: maxRaftState('kv.maxRaftState', opts.kv.maxRaftState) };
      this.service = { module: kvModule, maxRaftState: this.kv.maxRaftState };
    } else if (opts.service !== undefined) {
      const sv = opts.service;
      if (typeof sv !== 'object' || sv === null || typeof sv.module !== 'string' || sv.module === '') {
        throw new OptionError('service', 'must be an object like { module: url, maxRaftState: -1 }');
      }
      this.service = { module: sv.module, maxRaftState: maxRaftState('service.maxRaftState', sv.maxRaftState) };
    }
    this.faults = new FaultState(this.n);
    this.applyPorts = new Array(this.n).fill(undefined);
    this.starters = new Array(this.n).fill(undefined);
    this.sup = new PeerSupervisor({
      n: this.n,
      timing: this.timing,
      seed,
      host: {
        maxInflight,
        preVote,
        refuseWithoutQuorum,
        leaseReads,
        snapshotThreshold: this.service?.maxRaftState ?? -1,
        // The lab's maxraftstate is a bound on the Raft state, whatever the snapshot's size.
        snapshotRatio: 0,
        maxCommandBytes: 4 << 20,
        maxQueryBytes: 4 << 20,
      },
      dataDir: this.dataDir,
      fsync,
      // inspectStorage() reads running peers' files.
      shareReads: true,
      stateMachine: { module: this.service?.module ?? applyStreamModule },
      faults: this.faults.sab,
      onPeerError,
      afterStart: (i, inc) => {
        this.faults.resetCount(i);
        this.faults.setIncarnation(i, inc);
      },
      // Unreachable at once: nothing the dying worker still sends is delivered.
      beforeCrash: (i) => this.faults.setIncarnation(i, 0),
      closedError: (what) => new GroupClosedError(what),
      cleanClose: false,
    });
  }

  /**
   * Register a client of the service (key/value or other) and return its link: hand it to
   * `new Clerk(labEnds(link))` here, or post it to another worker (transfer
   * `link.control`). Its ends to `servers` (default all) start enabled;
   * `order` is the order in which the Clerk lists the servers.
   */
  openClient(opts: { servers?: number[]; order?: number[] } = {}): { id: number; link: LabClientLink } {
    if (this.sup.isClosed) throw new GroupClosedError('openClient');
    if (!this.service) throw new OptionError('kv', 'openClient: this cluster runs no service (set the kv or service option)');
    const ends = new SharedArrayBuffer(4 * this.n);
    const flags = new Int32Array(ends);
    const opened = this.sup.openLink(opts.order);
    for (const i of opts.servers ?? opened.link.order) {
      this.sup.checkPeer('openClient', i);
      flags[i] = 1;
    }
    const id = this.nextClient++;
    this.clients.set(id, { flags, close: opened.close });
    return { id, link: { ...opened.link, faults: this.faults.sab, ends } };
  }

  /** A Clerk in this thread, with ends to `servers` (default all) enabled. */
  clerk(servers?: number[]): Clerk {
    return new Clerk(labEnds(this.openClient(servers ? { servers } : {}).link));
  }

  /** `count` Clerks in this thread on one shared link: their concurrent requests travel together. */
  clerks(count: number): Clerk[] {
    if (!Number.isSafeInteger(count) || count < 1) throw new OptionError('count', `must be a positive integer, got ${String(count)}`);
    const { link } = this.openClient();
    return Array.from({ length: count }, () => new Clerk(labEnds(link)));
  }

  /** Enable or disable client `id`'s ends to the given servers. */
  setClientEnds(id: number, servers: number[], enabled: boolean): void {
    const rec = this.clients.get(id);
    if (!rec) throw new OptionError('client', `no open client ${String(id)}`);
    for (const i of servers) {
      this.sup.checkPeer('setClientEnds', i);
      Atomics.store(rec.flags, i, enabled ? 1 : 0);
    }
  }

  /** Forget client `id`: the cluster stops giving it channels to restarted servers. */
  closeClient(id: number): void {
    this.clients.get(id)?.close();
    this.clients.delete(id);
  }

  /** Enable every link between every pair of peers. */
  connectAll(): void {
    for (let i = 0; i < this.n; i++) for (let j = 0; j < this.n; j++) this.faults.setEnabled(i, j, true);
  }

  isRunning(i: number): boolean {
    return this.sup.isRunning(i);
  }

  incarnation(i: number): number {
    return this.sup.incarnation(i);
  }

  /** Peer i's SQLite file, when the cluster has a data directory. */
  storageFile(i: number): string | undefined {
    return this.sup.storageFile(i);
  }

  /** Read peer i's stored state without disturbing it (running or crashed). */
  inspectStorage(i: number): ReturnType<typeof SqliteStorage.inspect> | undefined {
    const file = this.storageFile(i);
    return file && existsSync(file) ? SqliteStorage.inspect(file) : undefined;
  }

  /** Spawn a fresh worker for peer i (crashing the running one first); `onApply` receives its apply stream. */
  async start(i: number, onApply?: ApplyListener): Promise<void> {
    this.sup.checkPeer('start', i);
    await this.crash(i);
    if (this.service) {
      await this.sup.start(i);
      return;
    }
    const apply = new MessageChannel();
    this.applyPorts[i] = apply.port1;
    apply.port1.on('message', (batch: ApplyBatch) => {
      if (this.applyPorts[i] !== apply.port1 || !onApply) return;
      onApply(
        i,
        batch.entries.map(([index, term, bytes]) => ({ index, term, command: decodeValue(bytes) })),
        batch.snapshot,
      );
    });
    try {
      await this.sup.start(i, { stateMachineOptions: { port: apply.port2 }, transfer: [apply.port2] });
    } catch (e) {
      this.closePorts(i);
      throw e;
    }
  }

  /**
   * Spawn a fresh worker for peer i of a service cluster, handing its state
   * machine's factory `options` (plain data, and the MessagePorts listed in
   * `transfer`, such as client links to other groups).
   */
  async startService(i: number, options: unknown, transfer: Transferable[] = []): Promise<void> {
    this.sup.checkPeer('startService', i);
    if (!this.service) throw new OptionError('service', 'startService: this cluster runs no service (set the service option)');
    await this.crash(i);
    await this.sup.start(i, { stateMachineOptions: options, transfer });
  }

  /** Close peer i's apply stream and Start() channel (its calls still waiting are rejected). */
  private closePorts(i: number): void {
    this.applyPorts[i]?.close();
    this.applyPorts[i] = undefined;
    this.starters[i]?.close();
    this.starters[i] = undefined;
  }

  /** Kill peer i's worker: it becomes unreachable at once and its thread is terminated. */
  async crash(i: number): Promise<void> {
    this.sup.checkPeer('crash', i);
    this.closePorts(i);
    await this.sup.crash(i);
  }

  /** Propose a command (any msgpack-encodable value) on peer i: Figure 2's Start(), answered at once. */
  startCommand(i: number, command: unknown): Promise<StartResult> {
    const bytes = encodeValue(command);
    return this.sup.call(i, 'startCommand', async (api) => {
      // Over a channel of its own (see StartChannel), opened once per incarnation: every
      // (re)start goes through crash(), which closes the last one. Calls made while it is
      // being handed over wait in its port until the worker listens.
      let starter = this.starters[i];
      if (!starter) {
        const { port1, port2 } = new MessageChannel();
        starter = new StartChannel(port1, () => new PeerNotRunningError(i, 'startCommand'));
        this.starters[i] = starter;
        await api.attachStarter(Comlink.transfer(port2, [port2 as never]));
      }
      return starter.start(bytes);
    });
  }

  getState(i: number): Promise<PeerState> {
    return this.sup.call(i, 'getState', (api) => api.getState());
  }

  status(i: number): Promise<PeerStatus> {
    return this.sup.call(i, 'status', (api) => api.status());
  }

  /** Tell peer i that its service captured everything through `index` in `data`. */
  snapshot(i: number, index: number, data: Uint8Array): Promise<void> {
    // An exact copy is transferred; the caller's bytes stay theirs.
    const bytes = data instanceof Uint8Array ? new Uint8Array(data) : data;
    return this.sup.call(i, 'snapshot', (api) => api.compact(index, bytes instanceof Uint8Array ? Comlink.transfer(bytes, [bytes.buffer as never]) : bytes));
  }

  /** A port whose messages peer i treats like peer traffic (for tests of bad input). */
  async openMailbox(i: number): Promise<MessagePort> {
    const { port1, port2 } = new MessageChannel();
    await this.sup.call(i, 'openMailbox', (api) => api.attachMailbox(Comlink.transfer(port2, [port2 as never])));
    return port1;
  }

  async close(): Promise<void> {
    if (this.sup.isClosed) return;
    this.faults.shutdown = true;
    for (const id of [...this.clients.keys()]) this.closeClient(id);
    for (let i = 0; i < this.n; i++) this.closePorts(i);
    await this.sup.close();
  }
}
