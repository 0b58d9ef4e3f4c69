import { randomInt } from 'node:crypto';
import { LinkEnds, type CallResult, type GroupHandle } from '../api/client.js';
import { RequestKind, readFlags } from '../api/client-protocol.js';
import { decodeValue, encodePayload } from '../api/state-machine.js';
import { Status } from '../node/outcome.js';
import { CallerClosedError, LeaderCalls } from './leader-calls.js';
import { fromReply, wireOf } from './protocol.js';
import { refusal, type KvCommand, type KvErr, type KvResult } from './state-machine.js';

/** A request the service refused for what it is (not where it was sent): it is never retried. */
export class KvRequestError extends Error {
  override name = 'KvRequestError';
  constructor(
    readonly err: KvErr,
    detail: string,
  ) {
    super(`${err}: ${detail}`);
  }
}

/**
 * The Clerk's view of the servers: one end per list position. The product
 * gives plain channels (Clerk.connect); the lab gives ends that obey its
 * fault-injecting network (actor-raft/testing).
 */
export interface KvEnds {
  readonly size: number;
  /** One request to the server at list position `k`; `onWait` receives a function that abandons it. */
  call(k: number, kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array, onWait: (cancel: () => void) => void): Promise<CallResult>;
  /** The group or cluster behind the ends was closed. */
  closed(): boolean;
  /** This Clerk is done with the ends. */
  release(): void;
}

/** Plain ends on a group handle: Clerks made from the same handle object share its channels. */
export function plainEnds(handle: GroupHandle): KvEnds {
  const shared = LinkEnds.acquire(handle);
  return {
    // Peers that join the group later add ends.
    get size() {
      return shared.ends.length;
    },
    call: (k, kind, flags, timeoutMs, payload, onWait) => shared.ends[k]!.call(kind, flags, timeoutMs, payload, onWait),
    closed: () => shared.groupClosed,
    release: () => shared.release(),
  };
}

const GET_FLAGS = readFlags('linearizable', false);

/**
 * A client of the key/value service. One operation at a time per clerk
 * (start many clerks for concurrency); each retries across the servers
 * until one that leads answers, and remembers which list position did.
 * Puts and Appends go through the log, exactly once across retries (client
 * id and sequence number); a Get is a linearizable read (ReadIndex) on the
 * leader. A leader at its flow-control bound answers Busy (nothing was
 * done); the Clerk then waits (1 ms, doubling to 32 ms) and asks it again.
 * Works in any thread that has a handle.
 */
export class Clerk {
  readonly clientId = randomInt(2 ** 48 - 1);
  private seq = 0;
  private busy = false;
  private readonly calls: LeaderCalls;

  constructor(ends: KvEnds) {
    this.calls = new LeaderCalls(ends, 'the Clerk');
  }

  /** A Clerk on a group handle (RaftGroup.handle(), posted to any thread). */
  static connect(handle: GroupHandle): Clerk {
    return new Clerk(plainEnds(handle));
  }

  /** The value of `key`, "" if it has none. */
  async get(key: string): Promise<string> {
    return (await this.run('get', key, undefined)).value;
  }

  async put(key: string, value: string): Promise<void> {
    await this.run('put', key, value);
  }

  async append(key: string, value: string): Promise<void> {
    await this.run('append', key, value);
  }

  /** Stop: pending and later calls reject. */
  close(): void {
    this.calls.close();
  }

  private async run(op: KvCommand['op'], key: string, value: string | undefined): Promise<KvResult> {
    if (this.busy) throw new Error('a Clerk runs one operation at a time; use one Clerk per concurrent client');
    if (this.calls.isClosed) throw new CallerClosedError('the Clerk');
    this.busy = true;
    try {
      const refused = refusal(op, key, value, this.clientId, this.seq + 1);
      if (refused) throw new KvRequestError(refused.err, refused.detail ?? '');
      this.seq++;
      const isGet = op === 'get';
      const payload = encodePayload(isGet ? key : wireOf(op, key, value, this.clientId, this.seq));
      const r = (await this.calls.call(isGet ? RequestKind.Read : RequestKind.Propose, isGet ? GET_FLAGS : 0, payload))!;
      if (r.status === Status.Ok) {
        const res = r.payload ? fromReply(decodeValue(r.payload)) : undefined;
        if (res && (res.err === 'OK' || res.err === 'ErrNoKey')) return res;
        if (res) throw new KvRequestError(res.err, res.detail ?? '');
        throw new KvRequestError('ErrBadRequest', 'the service answered something that is not a key/value reply');
      }
      throw new KvRequestError('ErrBadRequest', r.message ?? (r.status === Status.Rejected ? 'refused' : 'the service failed'));
    } finally {
      this.busy = false;
    }
  }
}
