import { randomInt } from 'node:crypto';
import type { GroupHandle } from '../api/client.js';
import { RequestKind, readFlags } from '../api/client-protocol.js';
import { decodeValue, encodeValue } from '../api/state-machine.js';
import { Status } from '../node/outcome.js';
import { plainEnds, type KvEnds } from '../kv/clerk.js';
import { CallerClosedError, LeaderCalls } from '../kv/leader-calls.js';
import { configFromWire, type ShardConfig } from './config.js';
import { CtrlerRefusal, ctrlerCommandToWire, parseCtrlerCommand, type CtrlerErr } from './controller-protocol.js';

/** The controller refused a request for what it is (bad GID, unknown group, no such configuration...): never retried. */
export class ShardCtrlerError extends Error {
  override name = 'ShardCtrlerError';
  constructor(
    readonly err: CtrlerErr,
    detail: string,
  ) {
    super(`${err}: ${detail}`);
  }
}

const QUERY_FLAGS = readFlags('linearizable', false);

/** Groups to join, as a Map or an object keyed by GID. */
export type JoinGroups = Map<number, string[]> | Record<number, string[]>;

/**
 * A client of the shard controller: Join, Leave and Move go through its
 * log exactly once across retries; Query is a linearizable read. One call
 * at a time per clerk; each retries across the controller's servers until
 * one that leads answers. Works in any thread that has a handle.
 */
export class ControllerClerk {
  readonly clientId = randomInt(2 ** 48 - 1);
  private seq = 0;
  private busy = false;
  private readonly calls: LeaderCalls;

  constructor(ends: KvEnds) {
    this.calls = new LeaderCalls(ends, 'the controller clerk');
  }

  static connect(handle: GroupHandle): ControllerClerk {
    return new ControllerClerk(plainEnds(handle));
  }

  async join(groups: JoinGroups): Promise<void> {
    const rows = groups instanceof Map ? [...groups] : Object.entries(groups).map(([g, s]): [number, string[]] => [Number(g), s]);
    await this.command('join', rows);
  }

  async leave(gids: number[]): Promise<void> {
    await this.command('leave', gids);
  }

  async move(shard: number, gid: number): Promise<void> {
    await this.command('move', [shard, gid]);
  }

  /** Configuration `num`, or the latest for -1 (the default). */
  async query(num = -1): Promise<ShardConfig> {
    if (!Number.isSafeInteger(num) || num < -1) throw new ShardCtrlerError('ErrNoConfig', `Query: ${String(num)} is not a configuration number (use -1 for the latest)`);
    const answer = await this.run(RequestKind.Read, QUERY_FLAGS, encodeValue(num));
    const config = configFromWire(answer);
    if (!config) throw new ShardCtrlerError('ErrBadRequest', 'the controller answered something that is not a configuration');
    return config;
  }

  close(): void {
    this.calls.close();
  }

  private async command(op: string, arg: unknown): Promise<void> {
    const parsed = parseCtrlerCommand([op, arg, this.clientId, this.seq + 1]);
    if (parsed instanceof CtrlerRefusal) throw new ShardCtrlerError(parsed.err, parsed.detail);
    this.seq++;
    await this.run(RequestKind.Propose, 0, encodeValue(ctrlerCommandToWire(parsed)));
  }

  private async run(kind: RequestKind, flags: number, payload: Uint8Array): Promise<unknown> {
    if (this.busy) throw new Error('a ControllerClerk runs one call at a time; use one per concurrent client');
    if (this.calls.isClosed) throw new CallerClosedError('the controller clerk');
    this.busy = true;
    try {
      const r = (await this.calls.call(kind, flags, payload))!;
      if (r.status !== Status.Ok) throw new ShardCtrlerError('ErrBadRequest', r.message ?? 'refused');
      const reply = r.payload ? decodeValue(r.payload) : undefined;
      if (!Array.isArray(reply) || typeof reply[0] !== 'string') throw new ShardCtrlerError('ErrBadRequest', 'the controller answered something that is not a controller reply');
      if (reply[0] !== 'OK') throw new ShardCtrlerError(reply[0] as CtrlerErr, String(reply[1] ?? ''));
      return reply[1];
    } finally {
      this.busy = false;
    }
  }
}
