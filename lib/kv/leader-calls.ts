import type { ClientReply, RequestKind } from '../api/client-protocol.js';
import { BusyBackoff } from '../api/busy-backoff.js';
import { GroupClosedError } from '../api/errors.js';
import { Status } from '../node/outcome.js';
import type { KvEnds } from './clerk.js';

/** How long a server may take with one request before the caller tries the next. */
export const REQUEST_TIMEOUT_MS = 1000;

/** A closed clerk's calls reject with this (`what` names the clerk). */
/** A service answer that ends the call: done (Ok), or refused for what it is (Rejected, ApplyError). */
export type FinalReply = ClientReply & { status: typeof Status.Ok | typeof Status.Rejected | typeof Status.ApplyError };

export class CallerClosedError extends Error {
  override name = 'CallerClosedError';
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One request at a time to whichever of a group's servers leads, shared by
 * the service clerks: it starts at the server that answered last, moves on
 * past servers that do not lead, do not answer in time or are down, waits
 * 10 ms after each full round without an answer, and asks a Busy leader
 * again after a pause (nothing was done). `rounds` bounds the rounds (the
 * sharded clerk gives up on a group after one); without it, it tries until
 * it gets an answer or is closed.
 */
export class LeaderCalls {
  private leader = 0;
  private closed = false;
  private cancel: (() => void) | undefined;

  constructor(
    readonly ends: KvEnds,
    private readonly what: string,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The answer, or undefined when `rounds` full rounds passed without one. */
  async call(kind: RequestKind, flags: number, payload: Uint8Array, rounds = Infinity): Promise<FinalReply | undefined> {
    let backoff: BusyBackoff | undefined; // made at the first Busy answer: most calls never see one
    for (let tried = 0; tried < rounds * this.ends.size; tried++) {
      if (this.closed) throw new CallerClosedError(this.what);
      if (this.ends.closed()) throw new GroupClosedError(this.what);
      const r = await this.ends.call(this.leader, kind, flags, REQUEST_TIMEOUT_MS, payload, (cancel) => (this.cancel = cancel));
      this.cancel = undefined;
      if (this.closed) throw new CallerClosedError(this.what);
      if (typeof r === 'object') {
        if (r.status === Status.Ok || r.status === Status.Rejected || r.status === Status.ApplyError) return r as FinalReply;
        if (r.status === Status.Busy) {
          await sleep((backoff ??= new BusyBackoff()).next());
          tried--;
          continue;
        }
      }
      // Not the leader, no answer in time, or the server went away: try the next one.
      this.leader = (this.leader + 1) % this.ends.size;
      if ((tried + 1) % this.ends.size === 0) await sleep(10);
    }
    return undefined;
  }

  /** Abandon the call in flight (it rejects with CallerClosedError) and release the ends. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancel?.();
    this.ends.release();
  }
}
