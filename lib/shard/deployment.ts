import { join } from 'node:path';
import { RaftGroup } from '../api/group.js';
import type { GroupHandle } from '../api/client.js';
import { plainEnds, type KvEnds } from '../kv/clerk.js';
import { ControllerClerk } from './controller-clerk.js';
import { GroupDirectory } from './directory.js';
import { ShardClerk } from './shard-clerk.js';
import type { ShardKvOptions } from './shardkv-service.js';

export interface ShardedOptions {
  /** The replica groups' GIDs (each a Raft group of `peers` peers). */
  gids: number[];
  /** Peers per group and in the controller (default 3). */
  peers?: number;
  /** Files go to <dataDir>/controller and <dataDir>/group-<gid>; in memory without it. */
  dataDir?: string;
  /** The groups' snapshot threshold (default 1 MiB). */
  snapshotThreshold?: number;
  onPeerError?: (what: string, peer: number, incarnation: number, err: Error) => void;
}

const controllerModule = new URL('./controller.js', import.meta.url).href;
const shardKvModule = new URL('./shardkv-service.js', import.meta.url).href;

/**
 * The sharded key/value service in one process: a controller group and one
 * Raft group per GID, every peer in its own worker, the groups' coordinators
 * finding each other through a GroupDirectory. No group serves anything
 * until the controller's configuration gives it shards (`controllerClerk()`
 * joins them).
 */
export class ShardedService {
  private constructor(
    readonly controller: RaftGroup,
    readonly groups: Map<number, RaftGroup>,
    private readonly directory: GroupDirectory,
  ) {}

  static async open(opts: ShardedOptions): Promise<ShardedService> {
    const peers = opts.peers ?? 3;
    const directory = new GroupDirectory();
    const opened: RaftGroup[] = [];
    const onPeerError = (what: string) => (peer: number, inc: number, err: Error) =>
      (opts.onPeerError ?? ((w, p, i, e) => console.error(`${w} peer ${p} (incarnation ${i}) failed:`, e)))(what, peer, inc, err);
    try {
      const controller = await RaftGroup.open({
        peers,
        stateMachine: { module: controllerModule },
        ...(opts.dataDir ? { dataDir: join(opts.dataDir, 'controller') } : {}),
        onPeerError: onPeerError('controller'),
      });
      opened.push(controller);
      directory.register('controller', controller);
      const groups = new Map<number, RaftGroup>();
      for (const gid of opts.gids) {
        const group = await RaftGroup.open({
          peers,
          stateMachine: { module: shardKvModule },
          peerOptions: (me) => {
            const port = directory.port();
            const options: ShardKvOptions = { gid, me, directory: port };
            return { options, transfer: [port] };
          },
          snapshotThreshold: opts.snapshotThreshold ?? 1 << 20,
          ...(opts.dataDir ? { dataDir: join(opts.dataDir, `group-${gid}`) } : {}),
          onPeerError: onPeerError(`group ${gid}`),
        });
        opened.push(group);
        directory.register(`group-${gid}`, group);
        groups.set(gid, group);
      }
      return new ShardedService(controller, groups, directory);
    } catch (e) {
      directory.close();
      for (const g of opened) await g.close();
      throw e;
    }
  }

  controllerClerk(): ControllerClerk {
    return ControllerClerk.connect(this.controller.handle());
  }

  /** This thread's handles, one per group: clerks on the same handle share its channels, so their requests travel together. */
  private readonly handles = new Map<number | 'controller', GroupHandle>();
  private readonly held: KvEnds[] = [];

  private handleOf(key: number | 'controller'): GroupHandle | undefined {
    let h = this.handles.get(key);
    if (!h) {
      const g = key === 'controller' ? this.controller : this.groups.get(key);
      if (!g) return undefined;
      this.handles.set(key, (h = g.handle()));
      // One use held by the service itself, so that the channels outlive any one clerk.
      this.held.push(plainEnds(h));
    }
    return h;
  }

  /** A sharded clerk in this thread (one operation at a time; make one per concurrent client). */
  clerk(): ShardClerk {
    return new ShardClerk(plainEnds(this.handleOf('controller')!), (gid) => {
      const h = this.handleOf(gid);
      return h ? plainEnds(h) : undefined;
    });
  }

  async close(): Promise<void> {
    for (const e of this.held) e.release();
    this.held.length = 0;
    this.directory.close();
    for (const g of this.groups.values()) await g.close();
    await this.controller.close();
  }
}
