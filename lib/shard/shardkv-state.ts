import { Packr, Unpackr } from 'msgpackr';
import { KvStateMachine, type KvCommand, type KvResult, type SessionRow } from '../kv/state-machine.js';
import { NSHARDS, configFromWire, configToWire, emptyConfig, key2shard, type ConfigWire, type ShardConfig } from './config.js';

/**
 * Where one shard stands in a group, for the group's current configuration N:
 *  - Absent:  not this group's in N, and no data held.
 *  - Serving: this group's in N, data here; client operations are served.
 *  - Pulling: this group's in N, but its data is still with the group that
 *             owned it in N-1; not served until it arrives.
 *  - Sending: this group's in N-1 and not in N; the data is kept (frozen,
 *             not served) until the new owner has installed it.
 *  - Arrived: pulled and installed in N, and served; the old owner has not
 *             yet been told it may delete its copy.
 *  - Parked:  no group owns it in N (every group left); this group held it
 *             last and keeps the data, frozen, for whichever group gets it
 *             next (possibly this one).
 */
export const ShardStatus = { Absent: 0, Serving: 1, Pulling: 2, Sending: 3, Arrived: 4, Parked: 5 } as const;
export type ShardStatus = (typeof ShardStatus)[keyof typeof ShardStatus];

const STATUS_NAMES = ['absent', 'serving', 'pulling', 'sending', 'arrived', 'parked'] as const;
export const statusName = (s: ShardStatus) => STATUS_NAMES[s];

/** A shard's content as it moves between groups: its table rows and its duplicate table. */
export interface ShardData {
  data: [string, string][];
  sessions: SessionRow[];
}

/** The outcome of a reconfiguration step, for the group member that proposed it. */
export type StepReply = ['OK'] | ['ErrStale', string] | ['ErrNotReady', string] | ['ErrBadRequest', string];

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false });
const SNAPSHOT_VERSION = 1;

const servable = (s: ShardStatus) => s === ShardStatus.Serving || s === ShardStatus.Arrived;

/**
 * One replica group's state in the sharded key/value service: the current
 * and previous configuration, and per shard its status, table and
 * duplicate table. Everything arrives through the group's log, so every
 * replica moves from configuration N to N+1 at the same point among the
 * client operations, and decides ownership when an operation is applied.
 *
 * A group takes configuration N+1 only once nothing of N is in flight (no
 * shard Pulling, Sending or Arrived): one configuration at a time, in
 * order. Shards whose owner does not change keep being served throughout;
 * a shard that arrives is served at once (both of the lab's challenge 2).
 * The old owner deletes its copy only when the new owner, having installed
 * it in its own log, tells it to (challenge 1); the new owner then marks it
 * Serving.
 */
export class ShardKvState {
  private config: ShardConfig = emptyConfig();
  private prev: ShardConfig = emptyConfig();
  private readonly status: ShardStatus[] = new Array<ShardStatus>(NSHARDS).fill(ShardStatus.Absent);
  private readonly shards: KvStateMachine[] = Array.from({ length: NSHARDS }, () => new KvStateMachine());
  /** Per shard, the last group any configuration so far gave it to (0: none ever). */
  private readonly lastOwner: number[] = new Array<number>(NSHARDS).fill(0);
  /** Per shard Pulling or Arrived, the group its data comes from (its owner in N-1, or the group that parked it). */
  private readonly source: number[] = new Array<number>(NSHARDS).fill(0);

  constructor(readonly gid: number) {
    if (!Number.isSafeInteger(gid) || gid <= 0) throw new RangeError(`a shard group's GID must be a positive integer, got ${String(gid)}`);
  }

  get configNum(): number {
    return this.config.num;
  }

  /** The current configuration (a copy). */
  currentConfig(): ShardConfig {
    return configFromWire(configToWire(this.config))!;
  }

  /** The configuration before the current one (a copy): where Pulling shards come from. */
  previousConfig(): ShardConfig {
    return configFromWire(configToWire(this.prev))!;
  }

  statusOf(shard: number): ShardStatus {
    return this.status[shard]!;
  }

  /** Where a Pulling or Arrived shard comes from (0 for any other). */
  sourceOf(shard: number): number {
    return this.source[shard]!;
  }

  /** Is every shard settled (nothing of the current configuration in flight)? */
  get settled(): boolean {
    return this.status.every((s) => s === ShardStatus.Absent || s === ShardStatus.Serving || s === ShardStatus.Parked);
  }

  /** Keys held per shard (Sending shards included). */
  keysPerShard(): number[] {
    return this.shards.map((s) => s.size);
  }

  /** A client's Put or Append, or ErrWrongGroup when its shard is not served here now. */
  apply(cmd: KvCommand): KvResult {
    const shard = key2shard(cmd.key);
    if (!servable(this.status[shard]!)) return { err: 'ErrWrongGroup', value: '', detail: `shard ${shard} is not served by group ${this.gid} in configuration ${this.config.num}` };
    return this.shards[shard]!.apply(cmd);
  }

  /** A Get outside the log (a ReadIndex read), with the same ownership rule. */
  read(key: string): KvResult {
    const shard = key2shard(key);
    if (!servable(this.status[shard]!)) return { err: 'ErrWrongGroup', value: '', detail: `shard ${shard} is not served by group ${this.gid} in configuration ${this.config.num}` };
    return this.shards[shard]!.read(key);
  }

  /** Take configuration `next`; only N+1, and only when the group is settled. */
  reconfigure(next: ShardConfig): StepReply {
    if (next.num <= this.config.num) return ['ErrStale', `configuration ${next.num} is not after ${this.config.num}`];
    if (next.num !== this.config.num + 1) return ['ErrNotReady', `configuration ${next.num} skips ${this.config.num + 1}`];
    if (!this.settled) return ['ErrNotReady', `configuration ${this.config.num} still has shards in flight`];
    for (let s = 0; s < NSHARDS; s++) {
      const owner = this.config.shards[s]!;
      const next_ = next.shards[s]!;
      const st = this.status[s]!;
      if (st === ShardStatus.Parked) {
        // This group holds the copy nobody owned: it serves it again, or hands it to its next owner.
        if (next_ === this.gid) this.status[s] = ShardStatus.Serving;
        else if (next_ !== 0) this.status[s] = ShardStatus.Sending;
      } else if (owner === this.gid && next_ !== this.gid) {
        this.status[s] = next_ === 0 ? ShardStatus.Parked : ShardStatus.Sending;
      } else if (owner !== this.gid && next_ === this.gid) {
        // From its owner in N, or, when no group owned it in N, from the group that parked it;
        // a shard no configuration ever gave to a group starts empty, here.
        const from = owner !== 0 ? owner : this.lastOwner[s]!;
        if (from === 0) this.status[s] = ShardStatus.Serving;
        else {
          this.status[s] = ShardStatus.Pulling;
          this.source[s] = from;
        }
      }
      if (next_ !== 0) this.lastOwner[s] = next_;
    }
    this.prev = this.config;
    this.config = next;
    return ['OK'];
  }

  /** A Sending shard's content, for its new owner in configuration `num`. */
  handOver(num: number, shard: number): ShardData | StepReply {
    if (this.config.num < num) return ['ErrNotReady', `group ${this.gid} is at configuration ${this.config.num}, not yet ${num}`];
    if (this.config.num > num || this.status[shard] !== ShardStatus.Sending) return ['ErrStale', `shard ${shard} of configuration ${num} was handed over already`];
    const sm = this.shards[shard]!;
    return { data: sm.dataRows(), sessions: sm.sessionRows() };
  }

  /** Install a pulled shard in configuration `num`: served at once, duplicate tables merged. */
  install(num: number, shard: number, content: ShardData): StepReply {
    if (num !== this.config.num || this.status[shard] !== ShardStatus.Pulling) {
      return ['ErrStale', `shard ${shard} from configuration ${num} is not awaited (group ${this.gid} is at ${this.config.num}, shard ${statusName(this.status[shard]!)})`];
    }
    this.shards[shard]!.merge(content.data, content.sessions);
    this.status[shard] = ShardStatus.Arrived;
    return ['OK'];
  }

  /** The new owner of `shard` in configuration `num` has installed it: drop this group's copy. */
  release(num: number, shard: number): StepReply {
    if (this.config.num < num) return ['ErrNotReady', `group ${this.gid} is at configuration ${this.config.num}, not yet ${num}`];
    if (this.config.num === num && this.status[shard] === ShardStatus.Sending) {
      this.shards[shard]!.clear();
      this.status[shard] = ShardStatus.Absent;
    }
    // Already released (a retried request), or long ago: the copy is gone either way.
    return ['OK'];
  }

  /** The old owner has dropped its copy of an Arrived shard: nothing of it is in flight any more. */
  released(num: number, shard: number): StepReply {
    if (num === this.config.num && this.status[shard] === ShardStatus.Arrived) {
      this.status[shard] = ShardStatus.Serving;
      this.source[shard] = 0;
    }
    return ['OK'];
  }

  snapshot(): Uint8Array {
    return packr.pack([
      SNAPSHOT_VERSION,
      this.gid,
      configToWire(this.config),
      configToWire(this.prev),
      this.status.slice(),
      this.shards.map((sm) => [sm.dataRows(), sm.sessionRows()]),
      this.lastOwner.slice(),
      this.source.slice(),
    ]);
  }

  restore(bytes: Uint8Array): void {
    this.config = emptyConfig();
    this.prev = emptyConfig();
    this.status.fill(ShardStatus.Absent);
    this.lastOwner.fill(0);
    this.source.fill(0);
    for (const sm of this.shards) sm.clear();
    if (bytes.length === 0) return;
    let d: unknown;
    try {
      d = unpackr.unpack(bytes);
    } catch {
      d = undefined;
    }
    if (!Array.isArray(d) || d[0] !== SNAPSHOT_VERSION || d.length !== 8) throw new Error('not a sharded key/value snapshot of a known version');
    const [, gid, cur, prev, status, shards, lastOwner, source] = d as [number, number, ConfigWire, ConfigWire, number[], [[string, string][], SessionRow[]][], number[], number[]];
    if (gid !== this.gid) throw new Error(`this snapshot is group ${String(gid)}'s, not group ${this.gid}'s`);
    const c = configFromWire(cur);
    const p = configFromWire(prev);
    const perShard = (a: unknown) => Array.isArray(a) && a.length === NSHARDS;
    if (!c || !p || !perShard(status) || !perShard(shards) || !perShard(lastOwner) || !perShard(source)) {
      throw new Error('sharded key/value snapshot: malformed');
    }
    this.config = c;
    this.prev = p;
    for (let s = 0; s < NSHARDS; s++) {
      this.status[s] = status[s] as ShardStatus;
      this.lastOwner[s] = lastOwner[s]!;
      this.source[s] = source[s]!;
      this.shards[s]!.merge(shards[s]![0], shards[s]![1]);
    }
  }
}


