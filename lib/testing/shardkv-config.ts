import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Transferable } from 'node:worker_threads';
import { Cluster, type ClusterOptions } from './cluster.js';
import { labEnds, type LabClientLink } from './lab-ends.js';
import { TEST_LIMIT_MS, type LabFailure } from './config.js';
import { LabRun } from './lab-run.js';
import { ControllerClerk } from '../shard/controller-clerk.js';
import { ShardClerk } from '../shard/shard-clerk.js';
import type { ShardKvOptions } from '../shard/shardkv-service.js';

const controllerModule = new URL('../shard/controller.js', import.meta.url).href;
const shardKvModule = new URL('../shard/shardkv-service.js', import.meta.url).href;

export interface ShardKvConfigOptions {
  log?: (line: string) => void;
  timing?: Omit<ClusterOptions, 'peers' | 'dataDir' | 'kv' | 'service'>;
}

/**
 * The sharded key/value lab's harness (part 4B): a controller of 3
 * servers and 3 replica groups (GIDs 100, 101, 102) of n servers each,
 * every server a peer worker on its own SQLite file. Each group and the
 * controller is its own Raft group on its own fault-injecting network;
 * every link a server or clerk opens obeys its target's network, and the
 * unreliable mode applies to all of them. A server gets, at each start,
 * links to its own group, the controller and every group (its make_end).
 */
export class ShardKvConfig {
  readonly n: number;
  readonly maxraftstate: number;
  readonly ngroups = 3;
  readonly gids = [100, 101, 102];
  readonly ctrler: Cluster;
  readonly groups: Cluster[];
  readonly log: (line: string) => void;
  /** The harness's own controller clerk (mck). */
  mck!: ControllerClerk;
  private readonly dataDir: string;
  private readonly created = Date.now();
  /** Per group and server: the client links its current incarnation holds, as [cluster, id]. */
  private readonly serverLinks: [Cluster, number][][][];
  private readonly clerks = new Map<ShardClerk, [Cluster, number][]>();
  private readonly lab = new LabRun();
  finished = false;

  private constructor(n: number, unreliable: boolean, maxraftstate: number, opts: ShardKvConfigOptions) {
    this.n = n;
    this.maxraftstate = maxraftstate;
    this.log = opts.log ?? ((s) => console.log(s));
    this.dataDir = mkdtempSync(join(tmpdir(), 'actor-raft-shardkv-'));
    const onPeerError = (what: string) => (peer: number, inc: number, err: Error) => this.fail(`${what} ${peer} (incarnation ${inc}) died: ${err.stack ?? String(err)}`);
    this.ctrler = new Cluster({
      peers: 3,
      seed: randomInt(2 ** 31),
      ...opts.timing,
      dataDir: join(this.dataDir, 'ctrler'),
      service: { module: controllerModule, maxRaftState: -1 },
      onPeerError: onPeerError('ctrler'),
    });
    this.groups = this.gids.map(
      (gid) =>
        new Cluster({
          peers: n,
          ...opts.timing,
          dataDir: join(this.dataDir, `group-${gid}`),
          service: { module: shardKvModule, maxRaftState: maxraftstate },
          onPeerError: onPeerError(`server-${gid}-`),
        }),
    );
    this.serverLinks = this.gids.map(() => Array.from({ length: n }, () => []));
    this.setunreliable(unreliable);
  }

  /** make_config: the controller, its clerk, and every server of every group started. */
  static async make(n: number, unreliable: boolean, maxraftstate: number, opts: ShardKvConfigOptions = {}): Promise<ShardKvConfig> {
    const cfg = new ShardKvConfig(n, unreliable, maxraftstate, opts);
    try {
      for (let i = 0; i < 3; i++) await cfg.ctrler.start(i);
      cfg.ctrler.connectAll();
      cfg.mck = new ControllerClerk(labEnds(cfg.ctrler.openClient().link));
      for (let gi = 0; gi < cfg.ngroups; gi++) await cfg.startGroup(gi);
    } catch (e) {
      await cfg.cleanup();
      throw e;
    }
    return cfg;
  }

  /** Run a test body, failing at once when any task fails, and always clean up. */
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

  setunreliable(unrel: boolean): void {
    this.ctrler.faults.reliable = !unrel;
    for (const g of this.groups) g.faults.reliable = !unrel;
  }

  // ---- servers -------------------------------------------------------------------

  /** StartServer(gi, i): a new worker on its file, with fresh links to its group, the controller and every group. */
  async startServer(gi: number, i: number): Promise<void> {
    const group = this.groups[gi]!;
    this.dropLinks(gi, i);
    const held: [Cluster, number][] = [];
    const transfer: Transferable[] = [];
    const open = (c: Cluster): LabClientLink => {
      const { id, link } = c.openClient();
      held.push([c, id]);
      transfer.push(link.control);
      return link;
    };
    const options: ShardKvOptions = {
      gid: this.gids[gi]!,
      me: i,
      links: {
        kind: 'lab',
        own: open(group),
        controller: open(this.ctrler),
        groups: this.gids.map((gid, gj) => [gid, open(this.groups[gj]!)]),
      },
    };
    this.serverLinks[gi]![i] = held;
    await group.startService(i, options, transfer);
    // Its endpoints to its group's servers are new and enabled; theirs to it work again now that it is back.
    for (let j = 0; j < this.n; j++) {
      group.faults.setEnabled(i, j, true);
      group.faults.setEnabled(j, i, true);
    }
  }

  /** ShutdownServer(gi, i): its outgoing links disabled, its worker killed. */
  async shutdownServer(gi: number, i: number): Promise<void> {
    const group = this.groups[gi]!;
    for (let j = 0; j < this.n; j++) group.faults.setEnabled(i, j, false);
    await group.crash(i);
    this.dropLinks(gi, i);
  }

  private dropLinks(gi: number, i: number): void {
    for (const [c, id] of this.serverLinks[gi]![i]!) c.closeClient(id);
    this.serverLinks[gi]![i] = [];
  }

  async startGroup(gi: number): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.startServer(gi, i);
  }

  async shutdownGroup(gi: number): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.shutdownServer(gi, i);
  }

  // ---- clients and the controller ------------------------------------------------

  /**
   * A sharded clerk: its own links to the controller (or to `controller`,
   * another controller cluster) and, on first use, to each group.
   */
  makeClient(controller: Cluster = this.ctrler): ShardClerk {
    const held: [Cluster, number][] = [];
    const open = (c: Cluster) => {
      const { id, link } = c.openClient();
      held.push([c, id]);
      return labEnds(link);
    };
    const ck = new ShardClerk(open(controller), (gid) => {
      const gi = this.gids.indexOf(gid);
      return gi < 0 ? undefined : open(this.groups[gi]!);
    });
    this.clerks.set(ck, held);
    return ck;
  }

  deleteClient(ck: ShardClerk): void {
    ck.close();
    for (const [c, id] of this.clerks.get(ck) ?? []) c.closeClient(id);
    this.clerks.delete(ck);
  }

  private servers(gi: number): string[] {
    const gid = this.gids[gi]!;
    return Array.from({ length: this.n }, (_, i) => `server-${gid}-${i}`);
  }

  async join(gi: number): Promise<void> {
    await this.joinm([gi]);
  }

  async joinm(gis: number[]): Promise<void> {
    await this.mck.join(new Map(gis.map((gi) => [this.gids[gi]!, this.servers(gi)])));
  }

  async leave(gi: number): Promise<void> {
    await this.leavem([gi]);
  }

  async leavem(gis: number[]): Promise<void> {
    await this.mck.leave(gis.map((gi) => this.gids[gi]!));
  }

  // ---- probes ---------------------------------------------------------------------

  private sizes(gi: number, i: number): { raft: number; snapshot: number } {
    const s = this.groups[gi]!.inspectStorage(i);
    return { raft: s?.raftStateSize ?? 0, snapshot: s?.snapshot?.data.length ?? 0 };
  }

  /** checklogs(): every server's Raft state within 8 x maxraftstate; no snapshot at all when maxraftstate is -1. */
  checklogs(): void {
    for (let gi = 0; gi < this.ngroups; gi++) {
      for (let i = 0; i < this.n; i++) {
        const { raft, snapshot } = this.sizes(gi, i);
        if (this.maxraftstate >= 0 && raft > 8 * this.maxraftstate) this.fatal(`persister.RaftStateSize() ${raft}, but maxraftstate ${this.maxraftstate}`);
        if (this.maxraftstate < 0 && snapshot > 0) this.fatal('maxraftstate is -1, but snapshot is non-empty!');
      }
    }
  }

  /** The persisted Raft state plus snapshot of every server of every group, in bytes. */
  totalStored(): number {
    let total = 0;
    for (let gi = 0; gi < this.ngroups; gi++) {
      for (let i = 0; i < this.n; i++) {
        const { raft, snapshot } = this.sizes(gi, i);
        total += raft + snapshot;
      }
    }
    return total;
  }

  private checkTimeout(): void {
    if (!this.lab.failedWith && Date.now() - this.created > TEST_LIMIT_MS) this.fatal('test took longer than 120 seconds');
  }

  /** The 120 s rule, for the tests' own Passed lines. */
  end(): void {
    this.checkTimeout();
    if (this.lab.failedWith) throw this.lab.failedWith;
    this.log('  ... Passed');
  }

  async cleanup(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    for (const ck of [...this.clerks.keys()]) this.deleteClient(ck);
    this.mck?.close();
    for (const g of this.groups) await g.close();
    await this.ctrler.close();
    rmSync(this.dataDir, { recursive: true, force: true });
    this.checkTimeout();
  }
}
