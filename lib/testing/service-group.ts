import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type ClusterOptions } from './cluster.js';
import type { LabClientLink } from './lab-ends.js';
import { TEST_LIMIT_MS, type LabFailure } from './config.js';
import { LabRun } from './lab-run.js';
import { randInt, seededRng, type Rng } from '../raft/prng.js';

export interface ServiceGroupOptions {
  log?: (line: string) => void;
  seed?: number;
  timing?: Omit<ClusterOptions, 'peers' | 'dataDir' | 'kv' | 'service'>;
}

/**
 * What the service labs' harnesses share: one replicated service (n
 * servers on SQLite, each a worker) on the fault-injecting network, server
 * start and shutdown, links and partitions, client links whose ends are
 * separate from the server links (partitions never cut clients off unless
 * a test says so), the leader probe, size probes, the 120 s limit, and
 * failing a test at once from any task. Fatal checks throw LabFailure
 * with the original suite's text.
 */
export class ServiceGroup {
  readonly n: number;
  readonly cluster: Cluster;
  readonly seed: number;
  readonly rng: Rng;
  readonly maxraftstate: number;
  readonly log: (line: string) => void;
  private readonly dataDir: string;
  protected readonly created = Date.now();
  private readonly clientIds = new Set<number>();
  private readonly lab = new LabRun();
  finished = false;

  constructor(n: number, unreliable: boolean, service: { module?: string; maxRaftState: number }, opts: ServiceGroupOptions) {
    this.n = n;
    this.maxraftstate = service.maxRaftState;
    this.log = opts.log ?? ((s) => console.log(s));
    this.seed = opts.seed ?? randomInt(2 ** 31);
    this.rng = seededRng(this.seed);
    this.dataDir = mkdtempSync(join(tmpdir(), 'actor-raft-lab-'));
    this.cluster = new Cluster({
      peers: n,
      ...opts.timing,
      dataDir: this.dataDir,
      ...(service.module === undefined ? { kv: { maxRaftState: service.maxRaftState } } : { service: { module: service.module, maxRaftState: service.maxRaftState } }),
      onPeerError: (peer, inc, err) => this.fail(`server ${peer} (incarnation ${inc}) died: ${err.stack ?? String(err)}`),
    });
    this.cluster.faults.reliable = !unreliable;
  }

  /** Start every server and connect them all. */
  protected async startAll(): Promise<void> {
    try {
      for (let i = 0; i < this.n; i++) await this.startServer(i);
      this.connectAll();
    } catch (e) {
      await this.cleanup();
      throw e;
    }
  }

  /** Run a test body, failing at once when a client task fails, and always clean up. */
  async run(body: (cfg: this) => Promise<void>): Promise<void> {
    await this.lab.run(() => body(this), () => this.cleanup());
  }

  /** Fail the test (once; the first failure wins) without throwing here. */
  fail(message: string): LabFailure {
    return this.lab.fail(message);
  }

  fatal(message: string): never {
    throw this.fail(message);
  }

  /** The failure so far, if any. */
  protected get failedWith(): Error | undefined {
    return this.lab.failedWith;
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

  /** Servers in p1 reach each other and not p2, and the other way round; clients are untouched. */
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

  /** A client link with ends to every server in a shuffled order, only those to `to` enabled. */
  openLink(to: number[]): { id: number; link: LabClientLink } {
    const order = this.all();
    for (let k = order.length - 1; k > 0; k--) {
      const j = Math.floor(this.rng() * (k + 1));
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    const opened = this.cluster.openClient({ servers: to, order });
    this.clientIds.add(opened.id);
    return opened;
  }

  closeLink(id: number): void {
    this.cluster.closeClient(id);
    this.clientIds.delete(id);
  }

  /** The first running server (by index) whose Raft peer claims to lead. */
  async leader(): Promise<[boolean, number]> {
    for (let i = 0; i < this.n; i++) {
      if (!this.cluster.isRunning(i)) continue;
      const s = await this.cluster.getState(i).catch(() => undefined);
      if (s?.isLeader) return [true, i];
    }
    return [false, 0];
  }

  // ---- probes and cleanup -----------------------------------------------------

  /** The persisted Raft state's size on server i (its file), 0 if it has none. */
  raftStateSize(i: number): number {
    return this.cluster.inspectStorage(i)?.raftStateSize ?? 0;
  }

  /** The persisted snapshot's size on server i. */
  snapshotSizeOf(i: number): number {
    return this.cluster.inspectStorage(i)?.snapshot?.data.length ?? 0;
  }

  /** LogSize(): the largest persisted Raft state over all servers (their files). */
  logSize(): number {
    let max = 0;
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.raftStateSize(i));
    return max;
  }

  /** SnapshotSize(): the largest persisted snapshot over all servers. */
  snapshotSize(): number {
    let max = 0;
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.snapshotSizeOf(i));
    return max;
  }

  protected checkTimeout(): void {
    if (!this.lab.failedWith && Date.now() - this.created > TEST_LIMIT_MS) this.fatal('test took longer than 120 seconds');
  }

  /** Release what the subclass holds (its clerks) before the servers go. */
  protected releaseClients(): void {}

  async cleanup(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.releaseClients();
    for (const id of [...this.clientIds]) this.closeLink(id);
    await this.cluster.close();
    rmSync(this.dataDir, { recursive: true, force: true });
    this.checkTimeout();
  }
}
