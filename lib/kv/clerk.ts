import { randomInt } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { ClusterClosedError } from '../errors.js';
import { FaultState } from '../net/faults.js';
import { PortBatches } from './port-batches.js';
import { decodeReplies, encodeRequest } from './protocol.js';
import type { KvCommand, KvErr, KvResult } from './state-machine.js';

/**
 * Everything a Clerk needs, in a form that can be posted to another worker
 * (transfer `control`): the cluster's shared fault state, this client's
 * per-server end switches, and the port on which the cluster hands over a
 * channel to each server incarnation.
 */
export interface ClientLink {
  n: number;
  faults: SharedArrayBuffer;
  /** Int32 per server: 1 if this client's end to that server is enabled. */
  ends: SharedArrayBuffer;
  control: MessagePort;
  /** The clerk's list position k talks to server order[k] (the lab shuffles them). */
  order: number[];
}

/** A channel to one server incarnation, sent on a link's control port. */
export interface EndUpdate {
  server: number;
  incarnation: number;
  port: MessagePort;
}

/** A request the service refused for what it is (not where it was sent): it is never retried. */
export class KvRequestError extends Error {
  override name = 'KvRequestError';
  constructor(readonly err: KvErr, detail: string) {
    super(`${err}: ${detail}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
const chance = (k: number) => Math.floor(Math.random() * 1000) < k;
const uniform = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** Requests leave once per turn per channel, together (one per thread). */
const outgoing = new PortBatches();

interface Waiter {
  inc: number;
  finish: (r: KvResult | undefined) => void;
}

/**
 * The client's end to one server, obeying the simulated network's rules
 * for RPCs: a disabled end or a server that is down fails after 0-99 ms;
 * unreliable: the request waits 0-26 ms and 10% are lost, and 10% of the
 * replies are lost after the server acted; while waiting, the end and the
 * server are re-checked every 100 ms, and a reply is accepted only if both
 * are still as they were. Every Clerk made from one link shares its ends.
 */
class ServerEnd {
  private port: MessagePort | undefined;
  private incarnation = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private check: NodeJS.Timeout | undefined;

  constructor(
    readonly server: number,
    private readonly faults: FaultState,
    private readonly enabledFlags: Int32Array,
  ) {}

  attach(u: EndUpdate): void {
    this.detach();
    this.port = u.port;
    this.incarnation = u.incarnation;
    u.port.on('message', (bytes: unknown) => {
      for (const r of decodeReplies(bytes)) this.waiting.get(r.id)?.finish(r.result);
    });
  }

  detach(): void {
    this.port?.close();
    this.port = undefined;
    for (const w of [...this.waiting.values()]) w.finish(undefined);
  }

  private up(inc: number): boolean {
    return Atomics.load(this.enabledFlags, this.server) === 1 && this.faults.incarnation(this.server) === inc && inc !== 0;
  }

  /** One timer for all waiting calls: fail those whose end or server went away. */
  private recheck(): void {
    for (const w of [...this.waiting.values()]) if (!this.up(w.inc) || this.faults.shutdown) w.finish(undefined);
    if (this.waiting.size === 0) {
      clearInterval(this.check);
      this.check = undefined;
    }
  }

  /** `onWait` receives a function that abandons the call while it waits for its answer. */
  async call(cmd: KvCommand, onWait: (cancel: () => void) => void): Promise<KvResult | undefined> {
    const inc = this.incarnation;
    const port = this.port;
    this.faults.countRpc();
    if (!port || !this.up(inc)) {
      await sleep(uniform(0, 99));
      return undefined;
    }
    if (!this.faults.reliable) {
      await sleep(uniform(0, 26));
      if (chance(100)) return undefined;
    }
    const id = this.nextId++;
    const result = await new Promise<KvResult | undefined>((resolve) => {
      const finish = (r: KvResult | undefined) => {
        this.waiting.delete(id);
        resolve(r);
      };
      this.waiting.set(id, { inc, finish });
      onWait(() => finish(undefined));
      this.check ??= setInterval(() => this.recheck(), 100);
      outgoing.push(port, encodeRequest(id, cmd));
    });
    if (result === undefined || !this.up(inc)) return undefined;
    if (!this.faults.reliable && chance(100)) return undefined;
    return result;
  }
}

/** A link's ends in this thread, shared by the Clerks made from it until the last one closes. */
class LinkEnds {
  readonly ends: ServerEnd[];
  users = 0;
  private readonly control: MessagePort;

  constructor(link: ClientLink, faults: FaultState) {
    const flags = new Int32Array(link.ends);
    const byServer = new Map<number, ServerEnd>();
    this.ends = link.order.map((server) => {
      const e = new ServerEnd(server, faults, flags);
      byServer.set(server, e);
      return e;
    });
    this.control = link.control;
    this.control.on('message', (u: EndUpdate) => byServer.get(u.server)?.attach(u));
  }

  close(): void {
    this.control.close();
    for (const e of this.ends) e.detach();
  }
}

const linkEnds = new WeakMap<ClientLink, LinkEnds>();

/**
 * A client of the key/value service. One operation at a time per clerk
 * (start many clerks for concurrency); each retries across the servers
 * until one that leads answers, and remembers which list position did.
 * Exactly-once across retries comes from its client id and sequence number.
 * Works in any thread that has its ClientLink.
 */
export class Clerk {
  readonly clientId = randomInt(2 ** 48 - 1);
  private seq = 0;
  private leader = 0;
  private readonly faults: FaultState;
  private readonly shared: LinkEnds;
  private readonly ends: ServerEnd[];
  private busy = false;
  private closed = false;
  /** Abandons the call in flight, so that close() rejects it at once. */
  private cancel: (() => void) | undefined;

  /**
   * Clerks made from the same link object share its channels (and its end
   * switches): their requests to a server leave together, once per turn.
   * Give each Clerk its own link where clients must be partitioned apart.
   */
  constructor(link: ClientLink) {
    this.faults = new FaultState(link.n, link.faults);
    let shared = linkEnds.get(link);
    if (!shared) linkEnds.set(link, (shared = new LinkEnds(link, this.faults)));
    shared.users++;
    this.shared = shared;
    this.ends = shared.ends;
  }

  /** The value of `key`, "" if it has none. */
  async get(key: string): Promise<string> {
    return (await this.run({ op: 'get', key })).value;
  }

  async put(key: string, value: string): Promise<void> {
    await this.run({ op: 'put', key, value });
  }

  async append(key: string, value: string): Promise<void> {
    await this.run({ op: 'append', key, value });
  }

  /** Stop: pending and later calls reject. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancel?.();
    if (--this.shared.users === 0) this.shared.close();
  }

  private async run(op: { op: KvCommand['op']; key: string; value?: string }): Promise<KvResult> {
    if (this.busy) throw new Error('a Clerk runs one operation at a time; use one Clerk per concurrent client');
    this.busy = true;
    try {
      const cmd: KvCommand = { ...op, clientId: this.clientId, seq: ++this.seq } as KvCommand;
      for (let tried = 0; ; tried++) {
        if (this.closed) throw new Error('the Clerk is closed');
        if (this.faults.shutdown) throw new ClusterClosedError(`kv ${op.op}`);
        const r = await this.ends[this.leader]!.call(cmd, (cancel) => (this.cancel = cancel));
        this.cancel = undefined;
        if (this.closed) throw new Error('the Clerk is closed');
        if (r && (r.err === 'OK' || r.err === 'ErrNoKey')) return r;
        if (r && (r.err === 'ErrBadRequest' || r.err === 'ErrTooLarge')) throw new KvRequestError(r.err, r.detail ?? '');
        this.leader = (this.leader + 1) % this.ends.length;
        // A whole round without a leader: give an election a moment.
        if ((tried + 1) % this.ends.length === 0) await sleep(10);
      }
    } finally {
      this.busy = false;
    }
  }
}
