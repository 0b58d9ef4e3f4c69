import { randomInt } from 'node:crypto';
import { RequestKind, readFlags } from '../api/client-protocol.js';
import { decodeValue, encodePayload } from '../api/state-machine.js';
import { Status } from '../node/outcome.js';
import { KvRequestError, type KvEnds } from '../kv/clerk.js';
import { CallerClosedError, LeaderCalls } from '../kv/leader-calls.js';
import { fromReply, wireOf } from '../kv/protocol.js';
import { refusal, type KvOpName } from '../kv/state-machine.js';
import { emptyConfig, key2shard, type ShardConfig } from './config.js';
import { ControllerClerk } from './controller-clerk.js';

const GET_FLAGS = readFlags('linearizable', false);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A client of the sharded key/value service. It keeps a configuration
 * (at first the empty one), sends each operation to the group that owns
 * the key's shard (key2shard), trying that group's servers once each, and
 * on ErrWrongGroup or no answer waits 100 ms, asks the controller for the
 * latest configuration and tries again, with the same sequence number, so
 * a write retried across groups is applied once (the duplicate table moves
 * with the shard). One operation at a time; works in any thread that has
 * the ends. `groupEnds(gid)` gives ends to a group's servers (undefined:
 * unknown group).
 */
export class ShardClerk {
  readonly clientId = randomInt(2 ** 48 - 1);
  private seq = 0;
  private busy = false;
  private closed = false;
  private config: ShardConfig = emptyConfig();
  private readonly ctrl: ControllerClerk;
  private readonly calls = new Map<number, LeaderCalls>();

  constructor(
    controller: KvEnds,
    private readonly groupEnds: (gid: number) => KvEnds | undefined,
  ) {
    this.ctrl = new ControllerClerk(controller);
  }

  async get(key: string): Promise<string> {
    return this.run('get', key, undefined);
  }

  async put(key: string, value: string): Promise<void> {
    await this.run('put', key, value);
  }

  async append(key: string, value: string): Promise<void> {
    await this.run('append', key, value);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctrl.close();
    for (const c of this.calls.values()) c.close();
  }

  private group(gid: number): LeaderCalls | undefined {
    let c = this.calls.get(gid);
    if (!c) {
      const ends = this.groupEnds(gid);
      if (!ends) return undefined;
      this.calls.set(gid, (c = new LeaderCalls(ends, `the shard clerk's link to group ${gid}`)));
    }
    return c;
  }

  private async run(op: KvOpName, key: string, value: string | undefined): Promise<string> {
    if (this.busy) throw new Error('a ShardClerk runs one operation at a time; use one per concurrent client');
    if (this.closed) throw new CallerClosedError('the shard clerk');
    this.busy = true;
    try {
      const refused = refusal(op, key, value, this.clientId, this.seq + 1);
      if (refused) throw new KvRequestError(refused.err, refused.detail ?? '');
      this.seq++;
      const isGet = op === 'get';
      const payload = encodePayload(isGet ? key : wireOf(op, key, value, this.clientId, this.seq));
      const shard = key2shard(key);
      for (;;) {
        const calls = this.config.num > 0 ? this.group(this.config.shards[shard]!) : undefined;
        if (calls) {
          const r = await calls.call(isGet ? RequestKind.Read : RequestKind.Propose, isGet ? GET_FLAGS : 0, payload, 1);
          if (this.closed) throw new CallerClosedError('the shard clerk');
          if (r && r.status === Status.Ok) {
            const res = r.payload ? fromReply(decodeValue(r.payload)) : undefined;
            if (res && (res.err === 'OK' || res.err === 'ErrNoKey')) return res.value;
            if (!res || res.err !== 'ErrWrongGroup') throw new KvRequestError(res?.err ?? 'ErrBadRequest', res?.detail ?? 'not a key/value reply');
          } else if (r) throw new KvRequestError('ErrBadRequest', r.message ?? 'refused');
        }
        await sleep(100);
        if (this.closed) throw new CallerClosedError('the shard clerk');
        this.config = await this.ctrl.query(-1);
      }
    } finally {
      this.busy = false;
    }
  }
}
