import { RequestKind, readFlags } from '../api/client-protocol.js';
import { decodeValue, encodeValue } from '../api/state-machine.js';
import { Status } from '../node/outcome.js';
import type { KvEnds } from '../kv/clerk.js';
import { LeaderCalls } from '../kv/leader-calls.js';
import { NSHARDS, configFromWire, configToWire, type ShardConfig } from './config.js';
import { ControllerClerk, ShardCtrlerError } from './controller-clerk.js';
import { ShardStatus } from './shardkv-state.js';
import type { GroupStateWire } from './shardkv-service.js';

/** How often a group's leader looks at the controller and at its shards in flight (the lab asks for about 100 ms). */
export const POLL_MS = 100;
const STEP_TIMEOUT_MS = 1000;
const LINEARIZABLE = readFlags('linearizable', false);

/** How a coordinator reaches its own group, the controller and the other groups (each asked for once). */
export interface CoordinatorLinks {
  /** This peer's position among its own group's ends. */
  me: number;
  own(): Promise<KvEnds>;
  controller(): Promise<KvEnds>;
  /** Ends to a group a shard comes from or goes to; undefined for a group it cannot reach. */
  group(gid: number): Promise<KvEnds | undefined>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Drives one replica group through its configurations. It runs in every
 * peer's worker, and acts only while its own peer leads: each round begins
 * with a linearizable read of the group's state from this very peer, which
 * only a leader answers. Everything it does is a log entry of some group,
 * checked when applied, so a round repeated by a new leader (or a deposed
 * one) changes nothing twice:
 *  - settled: ask the controller for configuration N+1, propose it;
 *  - a shard Pulling: read it from its source (its owner in N-1, or the
 *    group that parked it when no group owned it), propose its install;
 *  - a shard Arrived: tell its source to release it (a log entry there),
 *    then propose that it was released.
 * Pulls and releases of different shards run at once, and a pull is a
 * read, so two groups exchanging shards in one step never wait on each
 * other.
 */
export class GroupCoordinator {
  private stopped = false;
  private own: KvEnds | undefined;
  private ctrl: ControllerClerk | undefined;
  private readonly remote = new Map<number, Promise<LeaderCalls | undefined>>();
  private readonly loop: Promise<void>;

  constructor(private readonly links: CoordinatorLinks) {
    this.loop = this.run();
    this.loop.catch(() => {});
  }

  private group(gid: number): Promise<LeaderCalls | undefined> {
    let c = this.remote.get(gid);
    if (!c) {
      c = this.links.group(gid).then((e) => (e ? new LeaderCalls(e, `group ${gid}`) : undefined));
      this.remote.set(gid, c);
    }
    return c;
  }

  private async run(): Promise<void> {
    const own = await this.links.own();
    const ctrl = new ControllerClerk(await this.links.controller());
    if (this.stopped) {
      own.release();
      ctrl.close();
      return;
    }
    this.own = own;
    this.ctrl = ctrl;
    while (!this.stopped) {
      const t0 = Date.now();
      try {
        await this.round();
      } catch {
        // A closed link or a peer going away: the next round starts over from the group's state.
      }
      await sleep(Math.max(0, POLL_MS - (Date.now() - t0)));
    }
  }

  /** One request to this peer alone: its answer when it leads, undefined otherwise. */
  private async self(kind: RequestKind, value: unknown): Promise<unknown> {
    const r = await this.own!.call(this.links.me, kind, kind === RequestKind.Read ? LINEARIZABLE : 0, STEP_TIMEOUT_MS, encodeValue(value), () => {});
    if (typeof r !== 'object' || r.status !== Status.Ok || !r.payload) return undefined;
    return decodeValue(r.payload);
  }

  private async round(): Promise<void> {
    const st = (await this.self(RequestKind.Read, ['state'])) as GroupStateWire | undefined;
    if (!Array.isArray(st) || this.stopped) return;
    const cur = configFromWire(st[1]);
    const prev = configFromWire(st[2]);
    const [, , , status, source] = st;
    if (!cur || !prev || !Array.isArray(status) || !Array.isArray(source)) return;
    const work: Promise<void>[] = [];
    for (let s = 0; s < NSHARDS; s++) {
      if (status[s] === ShardStatus.Pulling) work.push(this.pull(cur.num, s, source[s]!));
      else if (status[s] === ShardStatus.Arrived) work.push(this.release(cur.num, s, source[s]!));
    }
    if (work.length > 0) {
      await Promise.all(work);
      return;
    }
    if (status.every((x) => x === ShardStatus.Absent || x === ShardStatus.Serving || x === ShardStatus.Parked)) await this.advance(cur);
  }

  private async advance(cur: ShardConfig): Promise<void> {
    let next: ShardConfig;
    try {
      next = await this.ctrl!.query(cur.num + 1);
    } catch (e) {
      if (e instanceof ShardCtrlerError && e.err === 'ErrNoConfig') return;
      throw e;
    }
    if (this.stopped) return;
    await this.self(RequestKind.Propose, ['config', configToWire(next)]);
  }

  private async pull(num: number, shard: number, source: number): Promise<void> {
    const from = await this.group(source);
    if (!from) return;
    const r = await from.call(RequestKind.Read, LINEARIZABLE, encodeValue(['pull', num, shard]), 1);
    if (!r || r.status !== Status.Ok || !r.payload || this.stopped) return;
    const answer = decodeValue(r.payload) as unknown[];
    if (!Array.isArray(answer) || answer[0] !== 'OK') return;
    await this.self(RequestKind.Propose, ['install', num, shard, answer[1], answer[2]]);
  }

  private async release(num: number, shard: number, source: number): Promise<void> {
    const to = await this.group(source);
    if (!to) return;
    const r = await to.call(RequestKind.Propose, 0, encodeValue(['release', num, shard]), 1);
    if (!r || r.status !== Status.Ok || !r.payload || this.stopped) return;
    const answer = decodeValue(r.payload) as unknown[];
    if (!Array.isArray(answer) || answer[0] !== 'OK') return;
    await this.self(RequestKind.Propose, ['released', num, shard]);
  }

  /** Stop: the loop ends and every end is released. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.ctrl?.close();
    for (const c of this.remote.values()) void c.then((x) => x?.close());
    this.own?.release();
  }
}
