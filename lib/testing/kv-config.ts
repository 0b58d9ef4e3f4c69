import { KvOp, type KvOperation } from '../check/kv-model.js';
import { labEnds } from './lab-ends.js';
import { Clerk } from '../kv/clerk.js';
import { ServiceGroup, type ServiceGroupOptions } from './service-group.js';

/** The KV tester's election deadline, also its "let things settle" delay. */
export const electionTimeout = 1000;
export const linearizabilityCheckTimeout = 1000;

export type KvConfigOptions = ServiceGroupOptions;

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
 * The key/value lab's harness: n servers running the KV service on SQLite
 * (the shared harness, ServiceGroup), clerk bookkeeping, recorded
 * operations, the partition the tests make and the Passed line.
 */
export class KvConfig extends ServiceGroup {
  private t0 = Date.now();
  private rpcs0 = 0;
  private ops = 0;
  private readonly clients = new Set<KvClient>();

  private constructor(n: number, unreliable: boolean, maxraftstate: number, opts: KvConfigOptions) {
    super(n, unreliable, { maxRaftState: maxraftstate }, opts);
  }

  /** make_config: start every server and connect everything. */
  static async make(n: number, unreliable: boolean, maxraftstate: number, opts: KvConfigOptions = {}): Promise<KvConfig> {
    const cfg = new KvConfig(n, unreliable, maxraftstate, opts);
    await cfg.startAll();
    return cfg;
  }

  // ---- clients ---------------------------------------------------------------

  /** A clerk with ends to every server, shuffled, and only those to `to` enabled. */
  makeClient(to: number[]): KvClient {
    const { id, link } = this.openLink(to);
    const ck: KvClient = { clerk: new Clerk(labEnds(link)), id };
    this.clients.add(ck);
    return ck;
  }

  deleteClient(ck: KvClient): void {
    ck.clerk.close();
    this.closeLink(ck.id);
    this.clients.delete(ck);
  }

  protected override releaseClients(): void {
    for (const ck of [...this.clients]) this.deleteClient(ck);
  }

  connectClient(ck: KvClient, to: number[]): void {
    this.cluster.setClientEnds(ck.id, to, true);
  }

  disconnectClient(ck: KvClient, from: number[]): void {
    this.cluster.setClientEnds(ck.id, from, false);
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

  // ---- begin / end ------------------------------------------------------------

  begin(description: string): void {
    this.log(`${description} ...`);
    this.t0 = Date.now();
    this.rpcs0 = this.cluster.faults.totalCount();
    this.ops = 0;
  }

  end(): void {
    this.checkTimeout();
    if (this.failedWith) throw this.failedWith;
    const secs = (Date.now() - this.t0) / 1000;
    const rpcs = this.cluster.faults.totalCount() - this.rpcs0;
    this.log(`  ... Passed --  ${secs.toFixed(1).padStart(4)}  ${this.n} ${String(rpcs).padStart(5)} ${String(this.ops).padStart(5)}`);
  }
}
