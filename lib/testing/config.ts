import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type Applied, type AppliedSnapshot, type ClusterOptions } from './cluster.js';
import { decodeValue, encodeValue } from '../transport/codec.js';
import { PeerNotRunningError } from '../api/errors.js';
import { randInt, seededRng, type Rng } from '../raft/prng.js';
import { LabRun } from './lab-run.js';

/** The tester's assumed election deadline. */
export const RaftElectionTimeout = 1000;
export const SnapShotInterval = 10;
export const MAXLOGSIZE = 2000;
/** Per-test limit of the original suite. */
export const TEST_LIMIT_MS = 120_000;

/** A lab assertion failed; the message is the original suite's failure text. */
export class LabFailure extends Error {
  override name = 'LabFailure';
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `k` characters of URL-safe base64 from cryptographic randomness. */
export function randstring(k: number): string {
  return randomBytes(Math.ceil((k * 3) / 4) + 3)
    .toString('base64url')
    .slice(0, k);
}

export interface ConfigOptions {
  /** Where begin/Passed/warning lines go (default: console.log). */
  log?: (line: string) => void;
  /** Seed for the test's own random choices (printed at creation). */
  seed?: number;
  /** Peer timing; lab defaults otherwise. */
  timing?: Omit<ClusterOptions, 'peers' | 'dataDir'>;
  /**
   * Keep the peers' SQLite files here instead of a fresh temporary
   * directory (which cleanup() removes).
   */
  dataDir?: string;
}

/** The five figures of a Passed line. */
export interface PassedFigures {
  seconds: number;
  peers: number;
  rpcs: number;
  bytes: number;
  commits: number;
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

/**
 * The lab's test harness ("config"): one cluster, its fault-injecting
 * network, a record of what every server applied, and the checks the lab
 * tests are written in. Every fatal check throws LabFailure with the
 * original message; apply errors, which arrive outside the test's own await
 * chain, fail the test through LabRun, so `run()` returns at once.
 */
export class Config {
  readonly n: number;
  readonly cluster: Cluster;
  readonly rng: Rng;
  readonly seed: number;
  readonly connected: boolean[];
  readonly logs: Map<number, unknown>[];
  readonly lastApplied: number[];
  private readonly applyErr: string[];
  maxIndex = 0;
  private maxIndex0 = 0;
  private readonly created = Date.now();
  private t0 = Date.now();
  private rpcs0 = 0;
  private bytes0 = 0;
  finished = false;
  private readonly lab = new LabRun();
  readonly log: (line: string) => void;
  figures: PassedFigures | undefined;
  private readonly ownDataDir: string | undefined;
  private readonly snapshotMode: boolean;
  /** Which start1 of each server is current; appliers of older ones fall silent. */
  private readonly generation: number[];

  private constructor(n: number, unreliable: boolean, snapshot: boolean, opts: ConfigOptions) {
    this.n = n;
    this.log = opts.log ?? ((s) => console.log(s));
    this.seed = opts.seed ?? randomInt(2 ** 31);
    this.rng = seededRng(this.seed);
    this.ownDataDir = opts.dataDir ? undefined : mkdtempSync(join(tmpdir(), 'actor-raft-lab-'));
    this.cluster = new Cluster({
      peers: n,
      ...opts.timing,
      dataDir: opts.dataDir ?? this.ownDataDir,
      onPeerError: (peer, inc, err) => this.fail(`peer ${peer} (incarnation ${inc}) died: ${err.stack ?? String(err)}`),
    });
    this.cluster.faults.reliable = !unreliable;
    this.cluster.faults.longDelays = true;
    this.connected = new Array(n).fill(false);
    this.logs = Array.from({ length: n }, () => new Map());
    this.lastApplied = new Array(n).fill(0);
    this.applyErr = new Array(n).fill('');
    this.generation = new Array(n).fill(0);
    this.snapshotMode = snapshot;
  }

  /** make_config: n servers, all started and connected. */
  static async make(n: number, unreliable: boolean, snapshot: boolean, opts: ConfigOptions = {}): Promise<Config> {
    const cfg = new Config(n, unreliable, snapshot, opts);
    try {
      // The peers boot side by side (each start wires itself to the peers
      // already placed, so the order does not matter); every start settles
      // before a failure is reported, so none outlives the cleanup.
      const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => cfg.start1(i)));
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      for (let i = 0; i < n; i++) cfg.connect(i);
    } catch (e) {
      await cfg.cluster.close();
      throw e;
    }
    return cfg;
  }

  /** Run a test body against this config, failing at once on an apply error, and always clean up. */
  async run(body: (cfg: this) => Promise<void>): Promise<void> {
    await this.lab.run(() => body(this), () => this.cleanup());
  }

  private fail(message: string): LabFailure {
    return this.lab.fail(message);
  }

  /** Fail the test with the original suite's message. */
  fatal(message: string): never {
    throw this.fail(message);
  }

  // ---- random values -------------------------------------------------------

  /** A random non-negative safe integer (the port of Go's rand.Int()). */
  randomInt(): number {
    return Math.floor(this.rng() * 2 ** 21) * 2 ** 32 + Math.floor(this.rng() * 2 ** 32);
  }

  /** Uniform integer in [lo, hi]. */
  randint(lo: number, hi: number): number {
    return randInt(this.rng, lo, hi);
  }

  // ---- appliers ------------------------------------------------------------

  private checkLogs(i: number, index: number, command: unknown): [string, boolean] {
    let err = '';
    for (let j = 0; j < this.logs.length; j++) {
      const old = this.logs[j]!.get(index);
      if (this.logs[j]!.has(index) && old !== command) {
        err = `commit index=${index} server=${i} ${show(command)} != server=${j} ${show(old)}`;
      }
    }
    const prevOk = this.logs[i]!.has(index - 1);
    this.logs[i]!.set(index, command);
    if (index > this.maxIndex) this.maxIndex = index;
    return [err, prevOk];
  }

  private plainApplier = (i: number, entries: Applied[]): void => {
    for (const { index, command } of entries) {
      if (this.lab.failedWith) return;
      let [err, prevOk] = this.checkLogs(i, index, command);
      if (index > 1 && !prevOk) err = `server ${i} apply out of order ${index}`;
      if (err) {
        this.applyErr[i] = err;
        this.fail(`apply error: ${err}`);
        return;
      }
    }
  };

  /** The tester's snapshot blob: (index, commands 0..index with slot 0 empty). */
  private snapshotBlob(i: number, index: number): Uint8Array {
    const xlog: unknown[] = [null];
    for (let j = 1; j <= index; j++) xlog.push(this.logs[i]!.get(j) ?? null);
    return encodeValue([index, xlog]);
  }

  /** Ingest a snapshot blob into server i's record; `expected` is undefined for "any index". */
  private ingestSnap(i: number, blob: Uint8Array | undefined, expected: number | undefined): string {
    if (!blob) {
      this.fail('nil snapshot');
      return 'nil snapshot';
    }
    let decoded: unknown;
    try {
      decoded = decodeValue(blob);
    } catch {
      decoded = undefined;
    }
    if (!Array.isArray(decoded) || !Number.isSafeInteger(decoded[0]) || !Array.isArray(decoded[1])) {
      this.fail('snapshot decode error');
      return 'snapshot decode error';
    }
    const [lastIncludedIndex, xlog] = decoded as [number, unknown[]];
    if (expected !== undefined && expected !== lastIncludedIndex) return `server ${i} snapshot doesn't match m.SnapshotIndex`;
    const log = new Map<number, unknown>();
    for (let j = 0; j < xlog.length; j++) log.set(j, xlog[j]);
    this.logs[i] = log;
    this.lastApplied[i] = lastIncludedIndex;
    return '';
  }

  /** 3.7.2: exact sequence after the last applied index or snapshot; Snapshot() every SnapShotInterval. */
  private async snapshotApply(i: number, entries: Applied[], snap: AppliedSnapshot | undefined): Promise<void> {
    if (snap) {
      const err = this.ingestSnap(i, snap.data, snap.index);
      if (err) {
        this.applyErr[i] = err;
        this.fail(`apply error: ${err}`);
        return;
      }
    }
    for (const { index, command } of entries) {
      if (this.lab.failedWith) return;
      let err = '';
      if (index !== this.lastApplied[i]! + 1) {
        err = `server ${i} apply out of order, expected index ${this.lastApplied[i]! + 1}, got ${index}`;
      }
      if (!err) {
        let prevOk: boolean;
        [err, prevOk] = this.checkLogs(i, index, command);
        if (index > 1 && !prevOk) err = `server ${i} apply out of order ${index}`;
      }
      if (err) {
        this.applyErr[i] = err;
        this.fail(`apply error: ${err}`);
        return;
      }
      this.lastApplied[i] = index;
      if ((index + 1) % SnapShotInterval === 0) {
        await this.cluster.snapshot(i, index, this.snapshotBlob(i, index)).catch(() => {});
      }
    }
  }

  /** The applier for one start1 of server i: plain, or snapshotting one message at a time. */
  private applierFor(i: number) {
    const generation = ++this.generation[i]!;
    if (!this.snapshotMode) return this.plainApplier;
    let queue = Promise.resolve();
    return (_peer: number, entries: Applied[], snap?: AppliedSnapshot) => {
      queue = queue.then(() => (this.generation[i] === generation ? this.snapshotApply(i, entries, snap) : undefined));
    };
  }

  // ---- servers and links ---------------------------------------------------

  /** start1: (re)start server i with fresh ends, disconnected. */
  async start1(i: number): Promise<void> {
    this.throwIfFailed();
    await this.crash1(i);
    this.lastApplied[i] = 0;
    const stored = this.cluster.inspectStorage(i)?.snapshot;
    if (stored && stored.data.length > 0) {
      const err = this.ingestSnap(i, stored.data, undefined);
      if (err) this.fatal(err);
    }
    await this.cluster.start(i, this.applierFor(i));
  }

  /** crash1: disconnect i, remove it from the network and kill its worker. */
  async crash1(i: number): Promise<void> {
    this.disconnect(i);
    await this.cluster.crash(i);
  }

  connect(i: number): void {
    this.connected[i] = true;
    const f = this.cluster.faults;
    for (let j = 0; j < this.n; j++) if (this.connected[j]) f.setEnabled(i, j, true);
    for (let j = 0; j < this.n; j++) if (this.connected[j]) f.setEnabled(j, i, true);
  }

  disconnect(i: number): void {
    this.connected[i] = false;
    const f = this.cluster.faults;
    for (let j = 0; j < this.n; j++) {
      f.setEnabled(i, j, false);
      f.setEnabled(j, i, false);
    }
  }

  setunreliable(unrel: boolean): void {
    this.cluster.faults.reliable = !unrel;
  }

  setlongreordering(on: boolean): void {
    this.cluster.faults.longReordering = on;
  }

  rpcCount(i: number): number {
    return this.cluster.faults.rpcCount(i);
  }

  rpcTotal(): number {
    return this.cluster.faults.totalCount();
  }

  bytesTotal(): number {
    return this.cluster.faults.totalBytes();
  }

  /** Start(cmd) on server i, as the tester calls it directly. */
  start(i: number, cmd: unknown) {
    return this.cluster.startCommand(i, cmd);
  }

  getState(i: number) {
    return this.cluster.getState(i);
  }

  private throwIfFailed(): void {
    if (this.lab.failedWith) throw this.lab.failedWith;
  }

  // ---- checks --------------------------------------------------------------

  async checkOneLeader(): Promise<number> {
    for (let iters = 0; iters < 10; iters++) {
      await sleep(this.randint(450, 549));
      this.throwIfFailed();
      const leaders = new Map<number, number[]>();
      const states = await Promise.all(
        this.connected.map((c, i) => (c ? this.getState(i).then((s) => ({ i, ...s })) : undefined)),
      );
      for (const s of states) {
        if (!s || !s.isLeader) continue;
        const list = leaders.get(s.term) ?? [];
        list.push(s.i);
        leaders.set(s.term, list);
      }
      let lastTermWithLeader = -1;
      for (const [term, list] of leaders) {
        if (list.length > 1) this.fatal(`term ${term} has ${list.length} (>1) leaders`);
        if (term > lastTermWithLeader) lastTermWithLeader = term;
      }
      if (leaders.size !== 0) return leaders.get(lastTermWithLeader)![0]!;
    }
    this.fatal('expected one leader, got none');
  }

  async checkTerms(): Promise<number> {
    let term = -1;
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i]) continue;
      const xterm = (await this.getState(i)).term;
      if (term === -1) term = xterm;
      else if (term !== xterm) this.fatal('servers disagree on term');
    }
    return term;
  }

  async checkNoLeader(): Promise<void> {
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i]) continue;
      if ((await this.getState(i)).isLeader) {
        this.fatal(`expected no leader among connected servers, but ${i} claims to be leader`);
      }
    }
  }

  /** How many servers think index is committed, and the command there. */
  nCommitted(index: number): [number, unknown] {
    let count = 0;
    let cmd: unknown = undefined;
    for (let i = 0; i < this.n; i++) {
      if (this.applyErr[i]) this.fatal(this.applyErr[i]!);
      if (!this.logs[i]!.has(index)) continue;
      const cmd1 = this.logs[i]!.get(index);
      if (count > 0 && cmd !== cmd1) {
        this.fatal(`committed values do not match: index ${index}, ${show(cmd)}, ${show(cmd1)}`);
      }
      count++;
      cmd = cmd1;
    }
    return [count, cmd];
  }

  /** Wait for at least n servers to commit index; -1 if a term beyond startTerm appears. */
  async wait(index: number, n: number, startTerm: number): Promise<unknown> {
    let to = 10;
    for (let iters = 0; iters < 30; iters++) {
      const [nd] = this.nCommitted(index);
      if (nd >= n) break;
      await sleep(to);
      if (to < 1000) to *= 2;
      if (startTerm > -1) {
        for (let i = 0; i < this.n; i++) {
          if (!this.cluster.isRunning(i)) continue;
          const st = await this.getState(i).catch(() => undefined);
          if (st && st.term > startTerm) return -1;
        }
      }
    }
    const [nd, cmd] = this.nCommitted(index);
    if (nd < n) this.fatal(`only ${nd} decided for index ${index}; wanted ${n}`);
    return cmd;
  }

  /** A complete agreement on cmd, as the lab's one(). */
  async one(cmd: unknown, expectedServers: number, retry: boolean): Promise<number> {
    const t0 = Date.now();
    // Each call starts its rotation at server 1; later passes continue it.
    let cursor = 0;
    while (Date.now() - t0 < 10_000 && !this.finished) {
      this.throwIfFailed();
      let index = -1;
      for (let si = 0; si < this.n; si++) {
        cursor = (cursor + 1) % this.n;
        const s = cursor;
        if (!this.connected[s] || !this.cluster.isRunning(s)) continue;
        let r;
        try {
          r = await this.start(s, cmd);
        } catch (e) {
          if (e instanceof PeerNotRunningError) continue;
          throw e;
        }
        if (r.isLeader) {
          index = r.index;
          break;
        }
      }
      if (index !== -1) {
        const t1 = Date.now();
        while (Date.now() - t1 < 2000) {
          const [nd, cmd1] = this.nCommitted(index);
          if (nd > 0 && nd >= expectedServers && cmd1 === cmd) return index;
          await sleep(20);
        }
        if (!retry) this.fatal(`one(${show(cmd)}) failed to reach agreement`);
      } else {
        await sleep(50);
      }
    }
    if (!this.finished) this.fatal(`one(${show(cmd)}) failed to reach agreement`);
    return -1;
  }

  // ---- begin / end / cleanup -------------------------------------------------

  begin(description: string): void {
    this.log(`${description} ...`);
    this.t0 = Date.now();
    this.rpcs0 = this.rpcTotal();
    this.bytes0 = this.bytesTotal();
    this.maxIndex0 = this.maxIndex;
  }

  private checkTimeout(): void {
    if (!this.lab.failedWith && Date.now() - this.created > TEST_LIMIT_MS) this.fatal('test took longer than 120 seconds');
  }

  end(): PassedFigures {
    this.checkTimeout();
    this.throwIfFailed();
    const f: PassedFigures = {
      seconds: (Date.now() - this.t0) / 1000,
      peers: this.n,
      rpcs: this.rpcTotal() - this.rpcs0,
      bytes: this.bytesTotal() - this.bytes0,
      commits: this.maxIndex - this.maxIndex0,
    };
    this.figures = f;
    this.log(
      `  ... Passed --  ${f.seconds.toFixed(1).padStart(4)}  ${f.peers} ${String(f.rpcs).padStart(4)} ` +
        `${String(f.bytes).padStart(7)} ${String(f.commits).padStart(4)}`,
    );
    return f;
  }

  async cleanup(): Promise<void> {
    this.finished = true;
    await this.cluster.close();
    if (this.ownDataDir) rmSync(this.ownDataDir, { recursive: true, force: true });
    this.checkTimeout();
  }

  /** LogSize(): the largest persisted Raft state (without snapshot) over all peers, crashed ones included. */
  logSize(): number {
    let max = 0;
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.cluster.inspectStorage(i)?.raftStateSize ?? 0);
    return max;
  }
}
