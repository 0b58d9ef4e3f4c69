import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort, type Transferable } from 'node:worker_threads';
import type { PeerTiming } from '../node/host.js';
import type { BootResult, LeaderEvent, PeerBoot, PeerControl, PeerFatal } from '../node/boot.js';
import { Comlink, nodeEndpoint, type Remote } from '../transport/comlink.js';
import type { ClientLink, EndUpdate } from './client.js';
import { storageFailure } from '../../storage/errors.js';
import { GroupClosedError, OptionError, PeerNotRunningError, RaftError, reviveError, serializeError } from './errors.js';

export interface SupervisorOptions {
  n: number;
  timing: PeerTiming;
  seed: number;
  host: PeerBoot['host'];
  /** Where peer i keeps its state (`peer-<i>.sqlite`); volatile memory when absent. */
  dataDir?: string;
  fsync: boolean;
  /** Peers' files open to readers while they run (the lab harness reads them); default: each peer's alone. */
  shareReads?: boolean;
  stateMachine: { module: string; options?: unknown };
  /** The lab's fault-injecting network; absent: a plain one. */
  faults?: SharedArrayBuffer;
  onPeerError(peer: number, incarnation: number, err: Error): void;
  onLeaderEvent?(peer: number, incarnation: number, ev: LeaderEvent): void;
  /** Peer i is up (before client channels are handed out); the lab opens its fault fence here. */
  afterStart?(peer: number, incarnation: number): void;
  /** Peer i is about to go down; the lab fences it off here. */
  beforeCrash?(peer: number): void;
  /** What the caller name their group in errors ('the group', 'the cluster'). */
  closedError?(what: string): Error;
  /**
   * close() stops each peer cleanly first (files closed, what is in flight
   * answered) rather than only ending its thread (default true). The lab
   * ends threads, as its crashes do.
   */
  cleanClose?: boolean;
  /** V8 heap limits of each peer worker (MiB): the old generation (default V8's own) and the young one. */
  heap?: { oldMb?: number; youngMb?: number };
}

/** Per start: state machine options for this incarnation, with the ports they carry. */
export interface StartExtras {
  stateMachineOptions?: unknown;
  transfer?: Transferable[];
}

/** A peer worker thread, from its spawn on (it may be spawned before it knows which peer it is). */
interface PeerThread {
  worker: Worker;
  dead: boolean;
  /** Calls in flight, failed at once if the worker exits (one entry per call, removed when it settles). */
  onExit: Set<() => void>;
  /** Why the worker died, if it died of an error (what it said before it died, else its error event). */
  error?: Error;
  /** The worker ended without being asked to (told once, with why). */
  onDeath?: (err: Error) => void;
}

interface Slot {
  thread: PeerThread;
  /** Booted and handed out to clients (a death before that is start()'s to report). */
  running: boolean;
  api: Remote<PeerControl>;
  incarnation: number;
  events: MessagePort | undefined;
}

// The peer worker as one bundled CommonJS file, started through a small
// entry point that runs it from a V8 code cache (scripts/bundle-peer.mjs and
// scripts/peer-boot.cjs, run by `npm run build`): a worker boots on every
// start, and one cached file loads far faster than the module graph it is
// built from.
const workerUrl = new URL('../../workers/peer-boot.cjs', import.meta.url);

/**
 * The worker threads of one group of peers: spawning, booting, wiring each
 * pair with a MessageChannel, handing client channels to every registered
 * link, crashing and restarting. The product group and the lab fixture both
 * run on it.
 */
export class PeerSupervisor {
  /** Peers ever added (ids 0..n-1; a removed peer's id is never given to another). */
  n: number;
  /** Peers added to a running group: they boot knowing no configuration (the leader brings it). */
  private readonly joiners = new Set<number>();
  private readonly opts: SupervisorOptions;
  private readonly slots: (Slot | undefined)[];
  private incarnations = 0;
  private closed = false;
  /**
   * A worker spawned while a peer is down, so that its start need not wait
   * for a thread to boot and load its modules (about 90 ms here, a cost the
   * crash-heavy lab tests would otherwise pay on every restart).
   */
  private spare: PeerThread | undefined;
  private readonly links = new Set<MessagePort>();

  constructor(opts: SupervisorOptions) {
    this.opts = opts;
    this.n = opts.n;
    this.slots = new Array(opts.n).fill(undefined);
    if (opts.dataDir) prepareDataDir(opts.dataDir);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private closedError(what: string): Error {
    return this.opts.closedError?.(what) ?? new GroupClosedError(what);
  }

  checkPeer(what: string, i: number): void {
    if (this.closed) throw this.closedError(what);
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

  /** Peer i's SQLite file, when the group has a data directory. */
  storageFile(i: number): string | undefined {
    return this.opts.dataDir === undefined ? undefined : join(this.opts.dataDir, `peer-${i}.sqlite`);
  }

  /** A new peer id for a peer that joins the running group (not started yet: start() it). */
  addSlot(): number {
    if (this.closed) throw this.closedError('addSlot');
    const id = this.n++;
    this.slots.push(undefined);
    this.joiners.add(id);
    return id;
  }

  /** Spawn a fresh worker for peer i (crashing the running one first); resolves once it runs. */
  async start(i: number, extras: StartExtras = {}): Promise<number> {
    this.checkPeer('start', i);
    await this.crash(i);
    const incarnation = ++this.incarnations;
    const ports: Record<number, MessagePort> = {};
    const transfers: Transferable[] = [...(extras.transfer ?? [])];
    const handoffs: Promise<void>[] = [];
    for (let j = 0; j < this.n; j++) {
      const other = this.slots[j];
      if (j === i || !other) continue;
      const { port1, port2 } = new MessageChannel();
      ports[j] = port1;
      transfers.push(port1);
      handoffs.push(other.api.setPeerPort(i, Comlink.transfer(port2, [port2 as never])).catch(() => {}));
    }
    const o = this.opts;
    // Leader changes are reported only to a group that listens (the lab does not).
    const events = o.onLeaderEvent ? new MessageChannel() : undefined;
    if (events) transfers.push(events.port2);
    const boot: PeerBoot = {
      id: i,
      n: this.n,
      voters: this.joiners.has(i) ? [] : Array.from({ length: this.opts.n }, (_, k) => k),
      incarnation,
      seed: (o.seed + Math.imul(incarnation, 0x9e3779b1)) >>> 0,
      timing: o.timing,
      host: o.host,
      ports,
      ...(events ? { events: events.port2 } : {}),
      stateMachine: { module: o.stateMachine.module, options: extras.stateMachineOptions ?? o.stateMachine.options },
    };
    if (o.faults) boot.faults = o.faults;
    const file = this.storageFile(i);
    if (file) boot.storage = { file, fsync: o.fsync, shareReads: o.shareReads ?? false };
    const thread = this.takeSpare() ?? spawnPeerThread(this.opts.heap);
    thread.worker.postMessage({ boot }, transfers as never);
    const slot: Slot = { thread, running: false, api: Comlink.wrap<PeerControl>(nodeEndpoint(thread.worker)), incarnation, events: events?.port1 };
    thread.onDeath = (err) => {
      if (this.slots[i] !== slot || !slot.running) return;
      // Down at once: fenced off like a crash (the lab network), no longer listed as running,
      // a spare readied for its restart; then the error is reported.
      this.opts.beforeCrash?.(i);
      this.abandon(i, slot);
      if (!this.closed) this.prepareSpare();
      this.opts.onPeerError(i, incarnation, err);
    };
    this.slots[i] = slot;
    events?.port1.on('message', (ev: LeaderEvent) => {
      if (this.slots[i] === slot) o.onLeaderEvent?.(i, incarnation, ev);
    });
    await Promise.all(handoffs);
    let started: BootResult;
    try {
      started = await this.call<BootResult>(i, 'start', (api) => api.ready() as Promise<BootResult>);
    } catch (e) {
      this.abandon(i, slot);
      throw thread.error ?? e;
    }
    if (!started.ok) {
      this.abandon(i, slot);
      await thread.worker.terminate();
      throw reviveError(started.error, o.stateMachine.module);
    }
    slot.running = true;
    o.afterStart?.(i, incarnation);
    for (const control of this.links) this.attachLink(control, i);
    if (this.slots.includes(undefined)) this.prepareSpare();
    return incarnation;
  }

  private abandon(i: number, slot: Slot): void {
    if (this.slots[i] === slot) this.slots[i] = undefined;
    slot.events?.close();
  }

  private takeSpare(): PeerThread | undefined {
    const spare = this.spare;
    this.spare = undefined;
    return spare && !spare.dead ? spare : undefined;
  }

  /** Have a booted worker ready for the next start while some peer is down. */
  private prepareSpare(): void {
    if (this.spare || this.closed) return;
    this.spare = spawnPeerThread(this.opts.heap);
  }

  /** Kill peer i's worker: it becomes unreachable at once and its thread is terminated. */
  async crash(i: number): Promise<void> {
    this.checkPeer('crash', i);
    const slot = this.slots[i];
    if (!slot) return;
    this.opts.beforeCrash?.(i);
    this.slots[i] = undefined;
    slot.events?.close();
    this.prepareSpare();
    await slot.thread.worker.terminate();
  }

  /** Stop peer i cleanly (its files closed, what it has in flight answered), then end its thread. */
  async stop(i: number): Promise<void> {
    const slot = this.slots[i];
    if (!slot) return;
    await withTimeout(slot.api.stop().catch(() => {}), STOP_WAIT_MS);
    await this.crash(i);
  }

  async call<T>(i: number, what: string, fn: (api: Remote<PeerControl>) => Promise<T>): Promise<T> {
    this.checkPeer(what, i);
    const slot = this.slots[i];
    if (!slot) throw new PeerNotRunningError(i, what);
    const thread = slot.thread;
    if (thread.dead) throw new PeerNotRunningError(i, what);
    // Not a race against the exit: that would leave one reaction per call on a
    // promise that lives as long as the worker.
    return new Promise<T>((resolve, reject) => {
      const onExit = (): void => reject(new PeerNotRunningError(i, what));
      thread.onExit.add(onExit);
      fn(slot.api).then(resolve, reject).finally(() => thread.onExit.delete(onExit));
    });
  }

  /**
   * Register a client link: every running peer, and every peer started
   * later, gets a channel to it. `order` is the order in which the client
   * lists the peers (default 0..n-1). `close()` stops handing it channels.
   */
  openLink(order?: number[]): { link: ClientLink; close(): void } {
    if (this.closed) throw this.closedError('openLink');
    const ord = order ?? Array.from({ length: this.n }, (_, i) => i);
    if (!Array.isArray(ord) || ord.length !== this.n || [...ord].sort((a, b) => a - b).some((v, i) => v !== i)) {
      throw new OptionError('order', `must be a permutation of 0..${this.n - 1}`);
    }
    const { port1, port2 } = new MessageChannel();
    this.links.add(port1);
    for (let i = 0; i < this.n; i++) if (this.slots[i]) this.attachLink(port1, i);
    return {
      link: { n: this.n, control: port2, order: ord },
      close: () => {
        port1.close();
        this.links.delete(port1);
      },
    };
  }

  private attachLink(control: MessagePort, i: number): void {
    const slot = this.slots[i]!;
    const { port1, port2 } = new MessageChannel();
    slot.api.attachClient(Comlink.transfer(port2, [port2 as never])).catch(() => {});
    const update: EndUpdate = { peer: i, incarnation: slot.incarnation, port: port1 };
    control.postMessage(update, [port1]);
  }

  /** Stop every peer (cleanly: files closed, in-flight requests answered) and end every thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const control of this.links) {
      control.postMessage({ closed: true });
      control.close();
    }
    this.links.clear();
    await Promise.all(
      this.slots.map(async (slot, i) => {
        if (!slot) return;
        if (this.opts.cleanClose !== false) await withTimeout(slot.api.stop().catch(() => {}), STOP_WAIT_MS);
        this.opts.beforeCrash?.(i);
        this.slots[i] = undefined;
        slot.events?.close();
        await slot.thread.worker.terminate();
      }),
    );
    const spare = this.takeSpare();
    if (spare) await spare.worker.terminate();
  }
}

/**
 * Make sure the data directory exists and can be used, so that a bad one is
 * reported when the group opens (an OptionError for a path that is not a
 * directory, a StorageError for one that cannot be created or written),
 * not as a peer's death later.
 */
function prepareDataDir(dir: string): void {
  const isDir = (() => {
    try {
      return statSync(dir).isDirectory();
    } catch {
      return undefined;
    }
  })();
  if (isDir === false) throw new OptionError('dataDir', `must be a directory; ${dir} is a file`);
  if (isDir === undefined) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOTDIR' || code === 'EEXIST') throw new OptionError('dataDir', `must be a directory; part of the path ${dir} is a file`);
      throw storageFailure(e, dir, 'creating the data directory');
    }
  }
  try {
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (e) {
    throw storageFailure(e, dir, 'checking that the data directory can be written');
  }
}

/** How long a clean stop may take before the thread is ended anyway (a peer stuck in a loop must not hang close()). */
const STOP_WAIT_MS = 2000;

function withTimeout(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
}

let workerChecked = false;

const DEFAULT_YOUNG_GENERATION_MB = 8;

function spawnPeerThread(heap: SupervisorOptions['heap']): PeerThread {
  if (!workerChecked) {
    if (!existsSync(workerUrl)) {
      throw new RaftError('peer-not-running', `the peer worker's entry point ${fileURLToPath(workerUrl)} is missing: run \`npm run build\``);
    }
    workerChecked = true;
  }
  const worker = new Worker(workerUrl, {
    execArgv: workerExecArgv(),
    // Peer traffic carries no strings, so msgpackr's native string decoder
    // would only add its load time (about 10 ms of CPU) to every peer start.
    env: { ...process.env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' },
    resourceLimits: {
      // A peer's garbage is short-lived (messages, entries on their way to
      // the disk): a small young generation holds less of it at once, at no
      // measured cost in CPU (README, memory).
      maxYoungGenerationSizeMb: heap?.youngMb ?? DEFAULT_YOUNG_GENERATION_MB,
      ...(heap?.oldMb !== undefined ? { maxOldGenerationSizeMb: heap.oldMb } : {}),
    },
  });
  const thread: PeerThread = { worker, dead: false, onExit: new Set() };
  worker.on('message', (m: unknown) => {
    const fatal = (m as Partial<PeerFatal> | null)?.fatal;
    if (fatal && !thread.error) thread.error = reviveError(fatal);
  });
  worker.on('error', (err: unknown) => {
    // Reached only if the worker died before it could say why: keep what there is, as an Error.
    if (!thread.error) thread.error = err instanceof Error ? err : reviveError(serializeError(err));
  });
  worker.once('exit', (code) => {
    thread.dead = true;
    for (const f of thread.onExit) f();
    thread.onExit.clear();
    thread.onDeath?.(thread.error ?? new RaftError('peer-not-running', `the peer's worker thread exited with code ${code}`));
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
