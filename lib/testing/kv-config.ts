import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvOp, type KvOperation } from '../check/kv-model.js';
import { Cluster, type ClusterOptions } from './cluster.js';
import { labEnds } from './lab-ends.js';
import { Clerk } from '../kv/clerk.js';
import { LabFailure, TEST_LIMIT_MS, sleep } from './config.js';
import { randInt, seededRng, type Rng } from '../raft/prng.js';

/** The KV tester's election deadline, also its "let things settle" delay. */
export const electionTimeout = 1000;
export const linearizabilityCheckTimeout = 1000;

export interface KvConfigOptions {
  log?: (line: string) => void;
  seed?: number;
  timing?: Omit<ClusterOptions, 'peers' | 'dataDir' | 'kv'>;
}

/** A clerk made by the harness, with the client registration behind it. */
export interface KvClient {
  clerk: Clerk;
  id: number;
}

/** The recorded operation log: every wrapper call that returned. */
export class OpLog {
  private readonly ops: KvOperation[] = [];
  append(op: KvOperation): void {
    this.ops.push(op);
  }
  read(): KvOperation[] {
    return this.ops.slice();
  }
}

/** Nanoseconds on one monotonic clock, as a number (exact for about 104 days). */
export const nowNs = () => Number(process.hrtime.bigint());

/**
 * The key/value lab's harness: n servers running the KV service on SQLite,
 * the fault-injecting network (clerks' ends are separate from server links,
 * so partitions never cut clients off), clerk bookkeeping, size probes and
 * the Passed line. Fatal checks throw LabFailure with the original text.
 */
export class KvConfig {
  readonly n: number;
  readonly cluster: Cluster;
  readonly seed: number;
  readonly rng: Rng;
  readonly maxraftstate: number;
  readonly log: (line: string) => void;
  private readonly dataDir: string;
  private readonly created = Date.now();
  private t0 = Date.now();
  private rpcs0 = 0;
  private ops = 0;
  private readonly clients = new Set<KvClient>();
  private failure: Error | undefined;
  private rejectFailed!: (e: Error) => void;
  private readonly failed: Promise<never>;
  finished = false;

  private constructor(n: number, unreliable: boolean, maxraftstate: number, opts: KvConfigOptions) {
    this.n = n;
    this.maxraftstate = maxraftstate;
    this.log = opts.log ?? ((s) => console.log(s));
    this.seed = opts.seed ?? randomInt(2 ** 31);
    this.rng = seededRng(this.seed);
    this.dataDir = mkdtempSync(join(tmpdir(), 'actor-raft-kv-'));
    this.cluster = new Cluster({
      peers: n,
      ...opts.timing,
      dataDir: this.dataDir,
      kv: { maxRaftState: maxraftstate },
      onPeerError: (peer, inc, err) => this.fail(`server ${peer} (incarnation ${inc}) died: ${err.stack ?? String(err)}`),
    });
    this.cluster.faults.reliable = !unreliable;
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => {});
  }

  /** make_config: start every server and connect everything. */
  static async make(n: number, unreliable: boolean, maxraftstate: number, opts: KvConfigOptions = {}): Promise<KvConfig> {
    const cfg = new KvConfig(n, unreliable, maxraftstate, opts);
    try {
      for (let i = 0; i < n; i++) await cfg.startServer(i);
      cfg.connectAll();
    } catch (e) {
      await cfg.cleanup();
      throw e;
    }
    return cfg;
  }

  /** Run a test body, failing at once when a client task fails, and always clean up. */
  async run(body: (cfg: this) => Promise<void>): Promise<void> {
    const watchdog = setTimeout(() => this.fail('test took longer than 120 seconds'), TEST_LIMIT_MS);
    try {
      await Promise.race([body(this), this.failed]);
    } finally {
      clearTimeout(watchdog);
      await this.cleanup();
    }
    if (this.failure) throw this.failure;
  }

  private fail(message: string): LabFailure {
    const e = new LabFailure(message);
    if (!this.failure) {
      this.failure = e;
      this.rejectFailed(e);
    }
    return e;
  }

  fatal(message: string): never {
    throw this.fail(message);
  }

  /** Uniform integer in [lo, hi] from the test's seeded generator. */
  randint(lo: number, hi: number): number {
    return randInt(this.rng, lo, hi);
  }

  all(): number[] {
    return Array.from({ length: this.n }, (_, i) => i);
  }

  // ---- servers and links ---------------------------------------------------

  /** StartServer(i): a new worker on server i's file, with its server links disabled. */
  async startServer(i: number): Promise<void> {
    this.disconnect(i, this.all());
    await this.cluster.start(i);
  }

  /** ShutdownServer(i): cut it off, remove it from the network, and kill its worker. */
  async shutdownServer(i: number): Promise<void> {
    this.disconnect(i, this.all());
    await this.cluster.crash(i);
  }

  connect(i: number, to: number[]): void {
    const f = this.cluster.faults;
    for (const j of to) {
      f.setEnabled(i, j, true);
      f.setEnabled(j, i, true);
    }
  }

  disconnect(i: number, from: number[]): void {
    const f = this.cluster.faults;
    for (const j of from) {
      f.setEnabled(i, j, false);
      f.setEnabled(j, i, false);
    }
  }

  connectAll(): void {
    for (let i = 0; i < this.n; i++) this.connect(i, this.all());
  }

  /** Servers in p1 reach each other and not p2, and the other way round; clerks are untouched. */
  partition(p1: number[], p2: number[]): void {
    for (const i of p1) {
      this.disconnect(i, p2);
      this.connect(i, p1);
    }
    for (const i of p2) {
      this.disconnect(i, p1);
      this.connect(i, p2);
    }
  }

  setunreliable(unrel: boolean): void {
    this.cluster.faults.reliable = !unrel;
  }

  // ---- clients ---------------------------------------------------------------

  /** A clerk with ends to every server, shuffled, and only those to `to` enabled. */
  makeClient(to: number[]): KvClient {
    const order = this.all();
    for (let k = order.length - 1; k > 0; k--) {
      const j = Math.floor(this.rng() * (k + 1));
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    const { id, link } = this.cluster.openClient({ servers: to, order });
    const ck: KvClient = { clerk: new Clerk(labEnds(link)), id };
    this.clients.add(ck);
    return ck;
  }

  deleteClient(ck: KvClient): void {
    ck.clerk.close();
    this.cluster.closeClient(ck.id);
    this.clients.delete(ck);
  }

  connectClient(ck: KvClient, to: number[]): void {
    this.cluster.setClientEnds(ck.id, to, true);
  }

  disconnectClient(ck: KvClient, from: number[]): void {
    this.cluster.setClientEnds(ck.id, from, false);
  }

  /** The first server (by index) whose Raft peer claims to lead. */
  async leader(): Promise<[boolean, number]> {
    for (let i = 0; i < this.n; i++) {
      if (!this.cluster.isRunning(i)) continue;
      const s = await this.cluster.getState(i).catch(() => undefined);
      if (s?.isLeader) return [true, i];
    }
    return [false, 0];
  }

  /** make_partition: n/2+1 non-leaders, then the rest with the leader last. */
  async makePartition(): Promise<[number[], number[]]> {
    const [, l] = await this.leader();
    const p1: number[] = [];
    const p2: number[] = [];
    const half = Math.floor(this.n / 2);
    let j = 0;
    for (let i = 0; i < this.n; i++) {
      if (i === l) continue;
      if (j < half + 1) p1.push(i);
      else p2.push(i);
      j++;
    }
    p2.push(l);
    return [p1, p2];
  }

  // ---- recorded operations ----------------------------------------------------

  private async record(ck: KvClient, op: 0 | 1 | 2, key: string, value: string, log: OpLog | undefined, cli: number): Promise<string> {
    const call = nowNs();
    let out = '';
    if (op === KvOp.Get) out = await ck.clerk.get(key);
    else if (op === KvOp.Put) await ck.clerk.put(key, value);
    else await ck.clerk.append(key, value);
    const ret = nowNs();
    this.ops++;
    log?.append({ clientId: cli, input: { op, key, value: op === KvOp.Get ? '' : value }, output: { value: out }, call, ret });
    return out;
  }

  get(ck: KvClient, key: string, log?: OpLog, cli = -1): Promise<string> {
    return this.record(ck, KvOp.Get, key, '', log, cli);
  }

  async put(ck: KvClient, key: string, value: string, log?: OpLog, cli = -1): Promise<void> {
    await this.record(ck, KvOp.Put, key, value, log, cli);
  }

  async append(ck: KvClient, key: string, value: string, log?: OpLog, cli = -1): Promise<void> {
    await this.record(ck, KvOp.Append, key, value, log, cli);
  }

  /** check(ck, key, expected): an unrecorded Get that must return `expected`. */
  async check(ck: KvClient, key: string, expected: string): Promise<void> {
    const v = await ck.clerk.get(key);
    if (v !== expected) this.fatal(`Get(${key}): expected:\n${expected}\nreceived:\n${v}`);
  }

  // ---- probes, begin / end ------------------------------------------------------

  /** LogSize(): the largest persisted Raft state over all servers (their files). */
  logSize(): number {
    let max = 0;
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.cluster.inspectStorage(i)?.raftStateSize ?? 0);
    return max;
  }

  /** SnapshotSize(): the largest persisted snapshot over all servers. */
  snapshotSize(): number {
    let max = 0;
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.cluster.inspectStorage(i)?.snapshot?.data.length ?? 0);
    return max;
  }

  begin(description: string): void {
    this.log(`${description} ...`);
    this.t0 = Date.now();
    this.rpcs0 = this.cluster.faults.totalCount();
    this.ops = 0;
  }

  private checkTimeout(): void {
    if (!this.failure && Date.now() - this.created > TEST_LIMIT_MS) this.fatal('test took longer than 120 seconds');
  }

  end(): void {
    this.checkTimeout();
    if (this.failure) throw this.failure;
    const secs = (Date.now() - this.t0) / 1000;
    const rpcs = this.cluster.faults.totalCount() - this.rpcs0;
    this.log(`  ... Passed --  ${secs.toFixed(1).padStart(4)}  ${this.n} ${String(rpcs).padStart(5)} ${String(this.ops).padStart(5)}`);
  }

  async cleanup(): Promise<void> {
    this.finished = true;
    for (const ck of [...this.clients]) this.deleteClient(ck);
    await this.cluster.close();
    rmSync(this.dataDir, { recursive: true, force: true });
    this.checkTimeout();
  }
}

