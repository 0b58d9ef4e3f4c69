import { LinkEnds, type CallResult, type ClientLink, type PeerEnd } from '../api/client.js';
import type { RequestKind } from '../api/client-protocol.js';
import type { KvEnds } from '../kv/clerk.js';
import { FaultState } from './faults.js';

/** A lab client's link: a group link plus the lab network's shared state and this client's end switches. */
export interface LabClientLink extends ClientLink {
  faults: SharedArrayBuffer;
  /** Int32 per server: 1 if this client's end to that server is enabled. */
  ends: SharedArrayBuffer;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const chance = (k: number) => Math.floor(Math.random() * 1000) < k;
const uniform = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/**
 * A client's end to one server under the lab network's rules for RPCs: a
 * disabled end or a server that is down fails after 0-99 ms; unreliable:
 * the request waits 0-26 ms and 10% are lost, and 10% of the replies are
 * lost after the server acted; while waiting, the end and the server are
 * re-checked every 100 ms, and a reply is accepted only if both are still
 * as they were.
 */
class FaultyEnd {
  private readonly waiting = new Set<{ inc: number; cancel: () => void }>();
  private check: NodeJS.Timeout | undefined;

  constructor(
    private readonly end: PeerEnd,
    private readonly faults: FaultState,
    private readonly enabledFlags: Int32Array,
  ) {}

  private up(inc: number): boolean {
    return Atomics.load(this.enabledFlags, this.end.peer) === 1 && this.faults.incarnation(this.end.peer) === inc && inc !== 0;
  }

  /** One timer for all waiting calls: abandon those whose end or server went away. */
  private recheck(): void {
    for (const w of [...this.waiting]) if (!this.up(w.inc) || this.faults.shutdown) w.cancel();
    if (this.waiting.size === 0) {
      clearInterval(this.check);
      this.check = undefined;
    }
  }

  async call(kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array, onWait: (cancel: () => void) => void): Promise<CallResult> {
    const inc = this.end.incarnation;
    this.faults.countRpc();
    if (!this.end.up || !this.up(inc)) {
      await sleep(uniform(0, 99));
      return 'down';
    }
    if (!this.faults.reliable) {
      await sleep(uniform(0, 26));
      if (chance(100)) return 'lost';
    }
    let w: { inc: number; cancel: () => void } | undefined;
    const r = await this.end.call(kind, flags, timeoutMs, payload, (cancel) => {
      w = { inc, cancel };
      this.waiting.add(w);
      onWait(cancel);
      this.check ??= setInterval(() => this.recheck(), 100);
    });
    if (w) this.waiting.delete(w);
    if (typeof r !== 'object' || !this.up(inc)) return 'lost';
    if (!this.faults.reliable && chance(100)) return 'lost';
    return r;
  }
}

class SharedLabEnds {
  readonly ends: FaultyEnd[];
  readonly faults: FaultState;
  users = 0;

  constructor(
    link: LabClientLink,
    readonly plain: LinkEnds,
  ) {
    this.faults = new FaultState(link.n, link.faults);
    const flags = new Int32Array(link.ends);
    this.ends = plain.ends.map((e) => new FaultyEnd(e, this.faults, flags));
  }
}

const shared = new WeakMap<LabClientLink, SharedLabEnds>();

/**
 * A Clerk's ends on a lab link. Clerks made from the same link object share
 * its channels and its end switches: their requests to a server leave
 * together, once per turn. Give each Clerk its own link where clients must
 * be partitioned apart.
 */
export function labEnds(link: LabClientLink): KvEnds {
  let s = shared.get(link);
  if (!s) shared.set(link, (s = new SharedLabEnds(link, LinkEnds.acquire(link))));
  s.users++;
  const ends = s;
  let released = false;
  return {
    size: ends.ends.length,
    call: (k, kind, flags, timeoutMs, payload, onWait) => ends.ends[k]!.call(kind, flags, timeoutMs, payload, onWait),
    closed: () => ends.faults.shutdown,
    release: () => {
      if (released) return;
      released = true;
      if (--ends.users === 0) {
        ends.plain.release();
        shared.delete(link);
      }
    },
  };
}
