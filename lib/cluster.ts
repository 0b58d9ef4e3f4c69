import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SqliteStorage } from '../storage/sqlite.js';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { ClusterClosedError, OptionError, PeerNotRunningError } from './errors.js';
import { decodeValue, encodeValue } from './net/codec.js';
import { Comlink, nodeEndpoint, type Remote } from './net/comlink.js';
import { FaultState } from './net/faults.js';
import { Clerk, type ClientLink, type EndUpdate } from './kv/clerk.js';
import type { ApplyBatch, PeerApi, PeerState, PeerStatus, PeerTiming, PeerWorkerData, StartResult } from './peer-protocol.js';

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
  /**
   * Unacknowledged AppendEntries a leader keeps in flight to one follower
   * (default 4). New entries go at once when nothing is in flight; otherwise
   * they wait for the answer or the next tick and travel together (a full
   * message goes at once): fewer messages and fewer writes, the same latency
   * for a lone client.
   */
  maxInflight?: number;
  /**
   * Pre-vote elections (default true): a peer asks whether it could win
   * before it increments its term, and peers that hear from a leader refuse,
   * so a peer coming back from a partition or a crash does not depose a
   * healthy leader. false gives the plain elections of Figure 2.
   */
  preVote?: boolean;
  /**
   * Refuse proposals without a quorum (default true): a leader that has not
   * heard from a majority within the minimum election timeout answers
   * start() as a follower would, until it hears from one again, so clients
   * move on from a leader that a partition has cut off. It keeps its role:
   * a partition that heals costs no election.
   */
  refuseWithoutQuorum?: boolean;
  /**
   * Run the key/value service in every peer (lib/kv). maxRaftState: snapshot
   * once the persisted Raft state reaches this many bytes; -1 never (default).
   */
  kv?: { maxRaftState?: number };
  /**
   * Called when a peer's worker dies of an uncaught error (default: print
   * it). Tests pass a handler that fails the test: a peer must never crash.
   */
  onPeerError?: (peer: number, incarnation: number, err: Error) => void;
}

/** A registered key/value client: its end switches and the cluster's side of its control port. */
interface ClientRecord {
  flags: Int32Array;
  control: MessagePort;
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

/** A peer worker thread, from its spawn on (it may be spawned before it knows which peer it is). */
interface PeerThread {
  worker: Worker;
  exited: Promise<void>;
  dead: boolean;
  /** Calls in flight, failed at once if the worker exits (one entry per call, removed when it settles). */
  onExit: Set<() => void>;
  /** Why the worker died, if it died of an error. */
  error?: Error;
  onError?: (err: Error) => void;
}

interface Slot {
  thread: PeerThread;
  api: Remote<PeerApi>;
  incarnation: number;
  applyPort: MessagePort;
}

export const DEFAULT_TIMING: PeerTiming = { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 };

function positiveInt(option: string, v: unknown, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionError(option, `must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

// The peer worker as one bundled CommonJS file, started through a small
// entry point that runs it from a V8 code cache (scripts/bundle-peer.mjs and
// scripts/peer-boot.cjs, run by `npm run build`): a worker boots on every
// start, and one cached file loads far faster than the module graph it is
// built from.
const workerUrl = new URL('../workers/peer-boot.cjs', import.meta.url);

/**
 * A whole Raft cluster in this process: one worker thread per peer, wired
 * peer-to-peer with MessageChannels, sharing one fault-injecting network.
 * Peers start isolated (every link disabled): call connectAll() for a
 * healthy network, or drive `faults` link by link (the lab harness's
 * connect/disconnect do exactly that).
 */
export class Cluster {
  readonly n: number;
  readonly timing: PeerTiming;
  readonly maxInflight: number;
  readonly preVote: boolean;
  readonly refuseWithoutQuorum: boolean;
  readonly faults: FaultState;
  private readonly slots: (Slot | undefined)[];
  private readonly seed: number;
  readonly dataDir: string | undefined;
  private readonly fsync: boolean;
  private incarnations = 0;
  private closed = false;
  /**
   * A worker spawned while a peer is down, so that its start need not wait
   * for a thread to boot and load its modules (about 90 ms here, a cost the
   * crash-heavy lab tests would otherwise pay on every restart).
   */
  private spare: PeerThread | undefined;
  readonly kv: { maxRaftState: number } | undefined;
  private readonly clients = new Map<number, ClientRecord>();
  private readonly onPeerError: (peer: number, incarnation: number, err: Error) => void;
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
    this.maxInflight = positiveInt('maxInflight', opts.maxInflight ?? 4, 1, 1 << 16);
    if (opts.preVote !== undefined && typeof opts.preVote !== 'boolean') throw new OptionError('preVote', `must be a boolean, got ${String(opts.preVote)}`);
    this.preVote = opts.preVote ?? true;
    if (opts.refuseWithoutQuorum !== undefined && typeof opts.refuseWithoutQuorum !== 'boolean') {
      throw new OptionError('refuseWithoutQuorum', `must be a boolean, got ${String(opts.refuseWithoutQuorum)}`);
    }
    this.refuseWithoutQuorum = opts.refuseWithoutQuorum ?? true;
    this.seed = opts.seed === undefined ? randomInt(2 ** 31) : positiveInt('seed', opts.seed, 0, 2 ** 32 - 1);
    if (opts.dataDir !== undefined && (typeof opts.dataDir !== 'string' || opts.dataDir === '')) {
      throw new OptionError('dataDir', `must be a directory path, got ${String(opts.dataDir)}`);
    }
    if (opts.fsync !== undefined && typeof opts.fsync !== 'boolean') throw new OptionError('fsync', `must be a boolean, got ${String(opts.fsync)}`);
    this.dataDir = opts.dataDir;
    this.fsync = opts.fsync ?? true;
    if (this.dataDir) mkdirSync(this.dataDir, { recursive: true });
    this.faults = new FaultState(this.n);
    this.slots = new Array(this.n).fill(undefined);
    if (opts.onPeerError !== undefined && typeof opts.onPeerError !== 'function') throw new OptionError('onPeerError', 'must be a function');
    this.onPeerError = opts.onPeerError ?? ((peer, inc, err) => console.error(`peer ${peer} (incarnation ${inc}) failed:`, err));
    if (opts.kv !== undefined) {
      if (typeof opts.kv !== 'object' || opts.kv === null) throw new OptionError('kv', 'must be an object like { maxRaftState: -1 }');
      const m = opts.kv.maxRaftState ?? -1;
      if (!Number.isSafeInteger(m) || (m < 1 && m !== -1)) throw new OptionError('kv.maxRaftState', `must be -1 (never snapshot) or a positive integer, got ${String(m)}`);
      this.kv = { maxRaftState: m };
    }
  }

  /**
   * Register a key/value client and return its link: hand it to \`new Clerk()\`
   * here, or post it to another worker (transfer \`link.control\`). Its ends
   * to \`servers\` (default all) start enabled; \`order\` is the order in which
   * the Clerk lists the servers (default 0..n-1).
   */
  openClient(opts: { servers?: number[]; order?: number[] } = {}): { id: number; link: ClientLink } {
    if (this.closed) throw new ClusterClosedError('openClient');
    if (!this.kv) throw new OptionError('kv', 'openClient: this cluster runs no key/value service (set the kv option)');
    const order = opts.order ?? Array.from({ length: this.n }, (_, i) => i);
    if (order.length !== this.n || [...order].sort((a, b) => a - b).some((v, i) => v !== i)) {
      throw new OptionError('order', `must be a permutation of 0..${this.n - 1}`);
    }
    const ends = new SharedArrayBuffer(4 * this.n);
    const flags = new Int32Array(ends);
    for (const i of opts.servers ?? order) {
      this.checkPeer('openClient', i);
      flags[i] = 1;
    }
    const { port1, port2 } = new MessageChannel();
    const id = this.nextClient++;
    const rec: ClientRecord = { flags, control: port1 };
    this.clients.set(id, rec);
    for (let i = 0; i < this.n; i++) if (this.slots[i]) this.attachClientEnd(rec, i);
    return { id, link: { n: this.n, faults: this.faults.sab, ends, control: port2, order } };
  }

  /** A Clerk in this thread, with ends to \`servers\` (default all) enabled. */
  clerk(servers?: number[]): Clerk {
    return new Clerk(this.openClient(servers ? { servers } : {}).link);
  }

  /**
   * \`count\` Clerks in this thread on one shared link: one channel per
   * server for all of them, so their concurrent requests travel together.
   */
  clerks(count: number): Clerk[] {
    if (!Number.isSafeInteger(count) || count < 1) throw new OptionError('count', `must be a positive integer, got ${String(count)}`);
    const { link } = this.openClient();
    return Array.from({ length: count }, () => new Clerk(link));
  }

  /** Enable or disable client \`id\`'s ends to the given servers. */
  setClientEnds(id: number, servers: number[], enabled: boolean): void {
    const rec = this.clients.get(id);
    if (!rec) throw new OptionError('client', `no open client ${String(id)}`);
    for (const i of servers) {
      this.checkPeer('setClientEnds', i);
      Atomics.store(rec.flags, i, enabled ? 1 : 0);
    }
  }

  /** Forget client \`id\`: the cluster stops giving it channels to restarted servers. */
  closeClient(id: number): void {
    this.clients.get(id)?.control.close();
    this.clients.delete(id);
  }

  private attachClientEnd(rec: ClientRecord, i: number): void {
    const slot = this.slots[i]!;
    const { port1, port2 } = new MessageChannel();
    slot.api.attachClient(Comlink.transfer(port2, [port2 as never])).catch(() => {});
    const update: EndUpdate = { server: i, incarnation: slot.incarnation, port: port1 };
    rec.control.postMessage(update, [port1]);
  }

  /** Enable every link between every pair of peers. */
  connectAll(): void {
    for (let i = 0; i < this.n; i++) for (let j = 0; j < this.n; j++) this.faults.setEnabled(i, j, true);
  }

  private checkPeer(what: string, i: number): void {
    if (this.closed) throw new ClusterClosedError(what);
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= this.n) {
      throw new OptionError('peer', `${what}: peer index must be an integer in [0, ${this.n - 1}], got ${String(i)}`);
    }
  }

  isRunning(i: number): boolean {
    return this.slots[i] !== undefined;
  }

  incarnation(i: number): number {
    return this.slots[i]?.incarnation ?? 0;
  }

  /** Peer i's SQLite file, when the cluster has a data directory. */
  storageFile(i: number): string | undefined {
    return this.dataDir === undefined ? undefined : join(this.dataDir, `peer-${i}.sqlite`);
  }

  /** Read peer i's stored state without disturbing it (running or crashed). */
  inspectStorage(i: number): ReturnType<typeof SqliteStorage.inspect> | undefined {
    const file = this.storageFile(i);
    return file && existsSync(file) ? SqliteStorage.inspect(file) : undefined;
  }

  /** Spawn a fresh worker for peer i (crashing the running one first). */
  async start(i: number, onApply?: ApplyListener): Promise<void> {
    this.checkPeer('start', i);
    await this.crash(i);
    const incarnation = ++this.incarnations;
    const ports: Record<number, MessagePort> = {};
    const transfers: MessagePort[] = [];
    const handoffs: Promise<void>[] = [];
    for (let j = 0; j < this.n; j++) {
      const other = this.slots[j];
      if (j === i || !other) continue;
      const { port1, port2 } = new MessageChannel();
      ports[j] = port1;
      transfers.push(port1);
      handoffs.push(other.api.setPeerPort(i, Comlink.transfer(port2, [port2 as never])).catch(() => {}));
    }
    const apply = new MessageChannel();
    transfers.push(apply.port2);
    const data: PeerWorkerData = {
      id: i,
      n: this.n,
      incarnation,
      seed: (this.seed + Math.imul(incarnation, 0x9e3779b1)) >>> 0,
      timing: this.timing,
      maxInflight: this.maxInflight,
      preVote: this.preVote,
      refuseWithoutQuorum: this.refuseWithoutQuorum,
      faults: this.faults.sab,
      ...(this.kv ? { kv: this.kv } : {}),
      ports,
      applyPort: apply.port2,
    };
    const file = this.storageFile(i);
    if (file) data.storage = { file, fsync: this.fsync };
    const thread = this.takeSpare() ?? spawnPeerThread();
    thread.worker.postMessage({ boot: data }, transfers);
    const slot: Slot = { thread, api: Comlink.wrap<PeerApi>(nodeEndpoint(thread.worker)), incarnation, applyPort: apply.port1 };
    thread.onError = (err) => {
      if (this.slots[i] === slot) this.onPeerError(i, incarnation, err);
    };
    this.slots[i] = slot;
    apply.port1.on('message', (batch: ApplyBatch) => {
      if (batch.incarnation !== this.slots[i]?.incarnation || !onApply) return;
      onApply(
        i,
        batch.entries.map(([index, term, bytes]) => ({ index, term, command: decodeValue(bytes) })),
        batch.snapshot,
      );
    });
    await Promise.all(handoffs);
    try {
      await this.call(i, 'start', (api) => api.getState());
    } catch (e) {
      // A peer that cannot start (say, its storage file is refused) reports why.
      if (this.slots[i] === slot) this.slots[i] = undefined;
      apply.port1.close();
      throw thread.error ?? e;
    }
    this.faults.resetCount(i);
    this.faults.setIncarnation(i, incarnation);
    if (this.kv) for (const rec of this.clients.values()) this.attachClientEnd(rec, i);
    if (this.slots.includes(undefined)) this.prepareSpare();
  }

  private takeSpare(): PeerThread | undefined {
    const spare = this.spare;
    this.spare = undefined;
    return spare && !spare.dead ? spare : undefined;
  }

  /** Have a booted worker ready for the next start while some peer is down. */
  private prepareSpare(): void {
    if (this.spare || this.closed || this.faults.shutdown) return;
    this.spare = spawnPeerThread();
  }

  /** Kill peer i's worker: it becomes unreachable at once and its thread is terminated. */
  async crash(i: number): Promise<void> {
    this.checkPeer('crash', i);
    const slot = this.slots[i];
    if (!slot) return;
    this.faults.setIncarnation(i, 0);
    this.slots[i] = undefined;
    slot.applyPort.close();
    this.prepareSpare();
    await slot.thread.worker.terminate();
  }

  private async call<T>(i: number, what: string, fn: (api: Remote<PeerApi>) => Promise<T>): Promise<T> {
    this.checkPeer(what, i);
    const slot = this.slots[i];
    if (!slot) throw new PeerNotRunningError(i, what);
    const thread = slot.thread;
    if (thread.dead) throw new PeerNotRunningError(i, what);
    // Not a race against `exited`: that would leave one reaction per call on a
    // promise that lives as long as the worker.
    return new Promise<T>((resolve, reject) => {
      const onExit = (): void => reject(new PeerNotRunningError(i, what));
      thread.onExit.add(onExit);
      fn(slot.api).then(resolve, reject).finally(() => thread.onExit.delete(onExit));
    });
  }

  /** Propose a command (any msgpack-encodable value) on peer i. */
  startCommand(i: number, command: unknown): Promise<StartResult> {
    const bytes = encodeValue(command);
    return this.call(i, 'startCommand', (api) => api.start(Comlink.transfer(bytes, [bytes.buffer as never])));
  }

  getState(i: number): Promise<PeerState> {
    return this.call(i, 'getState', (api) => api.getState());
  }

  status(i: number): Promise<PeerStatus> {
    return this.call(i, 'status', (api) => api.status());
  }

  /** Tell peer i that its service captured everything through `index` in `data`. */
  snapshot(i: number, index: number, data: Uint8Array): Promise<void> {
    // An exact copy is transferred; the caller's bytes stay theirs.
    const bytes = data instanceof Uint8Array ? new Uint8Array(data) : data;
    return this.call(i, 'snapshot', (api) => api.snapshot(index, bytes instanceof Uint8Array ? Comlink.transfer(bytes, [bytes.buffer as never]) : bytes));
  }

  /** A port whose messages peer i treats like peer traffic (for tests of bad input). */
  async openMailbox(i: number): Promise<MessagePort> {
    const { port1, port2 } = new MessageChannel();
    await this.call(i, 'openMailbox', (api) => api.attachMailbox(Comlink.transfer(port2, [port2 as never])));
    return port1;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.faults.shutdown = true;
    for (const id of [...this.clients.keys()]) this.closeClient(id);
    await Promise.all(this.slots.map((_, i) => this.crash(i)));
    const spare = this.takeSpare();
    if (spare) await spare.worker.terminate();
    this.closed = true;
  }
}

let workerChecked = false;

function spawnPeerThread(): PeerThread {
  if (!workerChecked) {
    if (!existsSync(workerUrl)) {
      throw new Error(`the peer worker's entry point ${fileURLToPath(workerUrl)} is missing: run \`npm run build\``);
    }
    workerChecked = true;
  }
  const worker = new Worker(workerUrl, {
    execArgv: workerExecArgv(),
    // Peer traffic carries no strings, so msgpackr's native string decoder
    // would only add its load time (about 10 ms of CPU) to every peer start.
    env: { ...process.env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' },
  });
  const thread: PeerThread = {
    worker,
    dead: false,
    onExit: new Set(),
    exited: new Promise((resolve) => worker.once('exit', () => resolve())),
  };
  void thread.exited.then(() => {
    thread.dead = true;
    for (const f of thread.onExit) f();
    thread.onExit.clear();
  });
  worker.on('error', (err) => {
    thread.error = err;
    thread.onError?.(err);
  });
  return thread;
}

/**
 * Peer workers run compiled JavaScript and need none of the module hooks a
 * test runner or loader installs in the main thread (--import, --loader,
 * --require); inheriting them costs each worker its own loader start-up.
 * Other flags (source maps, memory limits) are kept.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let k = 0; k < args.length; k++) {
    const a = args[k]!;
    if (/^--(import|loader|experimental-loader|require)$/.test(a) || a === '-r') {
      k++;
      continue;
    }
    if (/^--(import|loader|experimental-loader|require)=/.test(a)) continue;
    out.push(a);
  }
  return out;
}
