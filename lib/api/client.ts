import type { MessagePort } from 'node:worker_threads';
import { Status } from '../node/outcome.js';
import { PortBatches } from '../transport/port-batches.js';
import {
  RequestKind,
  decodeReplies,
  queueRequest,
  readFlags,
  FLAG_FORWARD,
  type ClientReply,
  type Consistency,
} from './client-protocol.js';
import {
  ApplyError,
  BusyError,
  GroupClosedError,
  NotLeaderError,
  OptionError,
  OutcomeUnknownError,
  RequestRejectedError,
  TimeoutError,
} from './errors.js';
import { BusyBackoff } from './busy-backoff.js';
import { decodeValue, encodePayload } from './state-machine.js';

/**
 * Everything a client needs to reach a group's peers, in a form that can be
 * posted to another thread (transfer `control`): the group hands a channel
 * to each peer incarnation over `control`, so restarts need no help from
 * the client's thread.
 */
export interface ClientLink {
  n: number;
  control: MessagePort;
  /** The client's list position k talks to peer order[k]. */
  order: number[];
}

/** A channel to one peer incarnation, sent on a link's control port. */
export interface EndUpdate {
  peer: number;
  incarnation: number;
  port: MessagePort;
}

/** What a call on an end came to: the reply; 'down' (no channel: nothing was sent); 'lost' (the channel went away after sending). */
export type CallResult = ClientReply | 'down' | 'lost';

/** A call waiting on an end for its answer; `owner` when it was made by callFor. */
interface Waiting {
  resolve: (r: CallResult) => void;
  owner: object | undefined;
}

/** Requests leave once per turn per channel, together (one queue per thread). */
const outgoing = new PortBatches();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The client's channel to one peer, following it across restarts. */
export class PeerEnd {
  private port: MessagePort | undefined;
  incarnation = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  constructor(readonly peer: number) {}

  get up(): boolean {
    return this.port !== undefined;
  }

  attach(u: EndUpdate): void {
    this.detach();
    this.port = u.port;
    this.incarnation = u.incarnation;
    u.port.on('message', (bytes: unknown) => {
      for (const r of decodeReplies(bytes)) this.settle(r.id, r);
    });
    // The peer's worker died (or the group closed): nothing will answer on this channel.
    u.port.on('close', () => {
      if (this.port === u.port) this.detach();
    });
  }

  detach(): void {
    this.port?.close();
    this.port = undefined;
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.resolve('lost');
  }

  /** `onWait` receives a function that abandons the call (it then resolves 'lost'). */
  call(kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array, onWait?: (cancel: () => void) => void): Promise<CallResult> {
    return this.request(undefined, kind, flags, timeoutMs, payload, onWait);
  }

  /**
   * A call on behalf of `owner`, which abandon(owner) ends: the way for a
   * caller with many calls in flight to give them all up at once, without
   * a function per call to do it with (a GroupClient makes one call per
   * proposal).
   */
  callFor(owner: object, kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array): Promise<CallResult> {
    return this.request(owner, kind, flags, timeoutMs, payload, undefined);
  }

  private request(owner: object | undefined, kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array, onWait: ((cancel: () => void) => void) | undefined): Promise<CallResult> {
    const port = this.port;
    if (!port) return Promise.resolve('down');
    const id = this.nextId++;
    return new Promise<CallResult>((resolve) => {
      this.waiting.set(id, { resolve, owner });
      onWait?.(() => this.settle(id, 'lost'));
      queueRequest(outgoing, port, id, kind, flags, Math.max(1, Math.ceil(timeoutMs)), payload);
    });
  }

  /** Every call of `owner` waiting here resolves 'lost' (their answers, if any come, are dropped). */
  abandon(owner: object): void {
    for (const [id, w] of this.waiting) if (w.owner === owner) this.settle(id, 'lost');
  }

  private settle(id: number, r: ClientReply | 'lost'): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    w.resolve(r);
  }
}

/** A link's ends in this thread, shared by every client made from the same link object until the last one closes. */
export class LinkEnds {
  readonly ends: PeerEnd[];
  private readonly byPeer = new Map<number, PeerEnd>();
  users = 0;
  /** The group said it closed: calls fail with GroupClosedError. */
  groupClosed = false;
  private readonly control: MessagePort;

  constructor(link: ClientLink) {
    this.ends = link.order.map((peer) => {
      const e = new PeerEnd(peer);
      this.byPeer.set(peer, e);
      return e;
    });
    this.control = link.control;
    this.control.on('message', (u: EndUpdate | { closed: true }) => {
      if ('closed' in u) {
        this.groupClosed = true;
        for (const e of this.ends) e.detach();
        return;
      }
      let end = this.byPeer.get(u.peer);
      if (!end) {
        // A peer that joined the group after this link was made.
        end = new PeerEnd(u.peer);
        this.byPeer.set(u.peer, end);
        this.ends.push(end);
      }
      end.attach(u);
    });
  }

  end(peer: number): PeerEnd | undefined {
    return this.byPeer.get(peer);
  }

  /** Its last user released it: its control port is closed for good. */
  private released = false;

  close(): void {
    this.released = true;
    this.control.close();
    for (const e of this.ends) e.detach();
  }

  private static readonly shared = new WeakMap<ClientLink, LinkEnds>();

  /** The ends of `link` in this thread (made on first use), counted as one more user. */
  static acquire(link: ClientLink): LinkEnds {
    let ends = LinkEnds.shared.get(link);
    if (ends?.released) {
      // Its channels went with its last client; a handle is not reusable after that.
      throw new OptionError('handle', 'this handle was closed when its last client closed: take a new one (group.handle())');
    }
    if (!ends) LinkEnds.shared.set(link, (ends = new LinkEnds(link)));
    ends.users++;
    return ends;
  }

  release(): void {
    if (--this.users === 0) this.close();
  }
}

/** A handle on a group that any thread can use: post it (transfer `handle.control`), then `GroupClient.connect(handle)` there. */
export type GroupHandle = ClientLink;

export interface ProposeOptions {
  /** How long to wait for the result (default 5000 ms). Past it the outcome is unknown. */
  timeoutMs?: number;
  /** Send it through this peer, which forwards it to its leader (default: the peer believed to lead). */
  peer?: number;
}

export interface ReadOptions {
  /**
   * 'linearizable' (default): ReadIndex (thesis 6.4); the answer reflects
   * every write acknowledged before the read began. 'lease': the leader
   * skips the confirming round while it holds a lease (thesis 6.4.1): as
   * safe as long as clocks drift less than the group's lease margin.
   * 'stale': the peer's own state, at once, with no guarantee of freshness.
   */
  consistency?: Consistency;
  /** How long to keep trying (default 5000 ms). */
  timeoutMs?: number;
  /** For 'stale': which peer answers (default: the one believed to lead). */
  peer?: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;
/** The longest one try of a read may wait before the client asks again. */
const READ_TRY_MS = 1000;

function timeoutOf(opts: { timeoutMs?: number } | undefined, what: string): number {
  const t = opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new OptionError('timeoutMs', `${what}: must be a positive number of milliseconds, got ${String(t)}`);
  return t;
}

/**
 * Proposals and reads from any thread. A proposal goes to the peer believed
 * to lead; a follower forwards it to its leader and relays the answer, and
 * a NotLeader answer (nothing was done) moves the client to the leader it
 * names. Calls may run concurrently; each waits for its own answer.
 */
export class GroupClient<Command = unknown, Result = unknown, Query = unknown, Answer = unknown> {
  private readonly shared: LinkEnds;
  private readonly ends: PeerEnd[];
  private hint = -1;
  private rotation = 0;
  private closed = false;

  constructor(link: ClientLink) {
    this.shared = LinkEnds.acquire(link);
    this.ends = this.shared.ends;
  }

  /** A client on a handle posted from another thread. */
  static connect<C = unknown, R = unknown, Q = unknown, A = unknown>(handle: GroupHandle): GroupClient<C, R, Q, A> {
    return new GroupClient<C, R, Q, A>(handle);
  }

  /** The peer this client believes leads, -1 if it knows none. */
  get leader(): number {
    return this.hint;
  }

  /**
   * Propose a command; resolves with the result the state machine returned
   * for it once it is committed and applied. Rejects with NotLeaderError
   * (no leader could take it; nothing was done), OutcomeUnknownError (it
   * may or may not be applied), ApplyError (the state machine threw),
   * RequestRejectedError (empty or over the size limit), BusyError (the
   * leader stayed at its flow-control bound, `maxPending`/`maxPendingBytes`,
   * for the whole timeout: the call waits while it is busy, and nothing
   * was done) or GroupClosedError.
   */
  async propose(command: Command, opts?: ProposeOptions): Promise<Result> {
    const timeoutMs = timeoutOf(opts, 'propose');
    this.checkPeer(opts?.peer);
    const bytes = encodePayload(command);
    return decodeValue(await this.proposeBytes(bytes, timeoutMs, opts?.peer)) as Result;
  }

  /** Answer a query from the state machine (see ReadOptions for the consistency levels). */
  async read(query: Query, opts?: ReadOptions): Promise<Answer> {
    const timeoutMs = timeoutOf(opts, 'read');
    const consistency = opts?.consistency ?? 'linearizable';
    if (consistency !== 'linearizable' && consistency !== 'lease' && consistency !== 'stale') {
      throw new OptionError('consistency', `must be 'linearizable', 'lease' or 'stale', got ${String(consistency)}`);
    }
    this.checkPeer(opts?.peer);
    return decodeValue(await this.readBytes(encodePayload(query), consistency, timeoutMs, opts?.peer)) as Answer;
  }

  private checkPeer(peer: number | undefined): void {
    if (peer !== undefined && (!Number.isInteger(peer) || peer < 0 || peer >= this.ends.length)) {
      throw new OptionError('peer', `must be a peer in [0, ${this.ends.length - 1}], got ${String(peer)}`);
    }
  }

  /** Stop this client: its calls in flight reject with GroupClosedError. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const e of this.ends) e.abandon(this);
    this.shared.release();
  }

  /** The end to try next: the believed leader if reachable, else the next reachable one. */
  private pick(): PeerEnd | undefined {
    const byHint = this.hint >= 0 ? this.shared.end(this.hint) : undefined;
    if (byHint?.up) return byHint;
    for (let k = 0; k < this.ends.length; k++) {
      const e = this.ends[(this.rotation + k) % this.ends.length]!;
      if (e.up) {
        this.rotation = (this.rotation + k) % this.ends.length;
        return e;
      }
    }
    return undefined;
  }

  private moveOn(from: PeerEnd, leader: number): void {
    if (leader >= 0 && leader !== from.peer) this.hint = leader;
    else {
      this.hint = -1;
      this.rotation = (this.ends.indexOf(from) + 1) % this.ends.length;
    }
  }

  /** Propose encoded bytes; resolves with the encoded result. */
  async proposeBytes(payload: Uint8Array, timeoutMs: number, peer?: number): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    let why = 'no peer is reachable';
    let busy: string | undefined;
    let backoff: BusyBackoff | undefined; // made at the first Busy answer: most calls never see one
    for (;;) {
      if (this.closed || this.shared.groupClosed) throw new GroupClosedError('propose');
      const remaining = deadline - performance.now();
      if (remaining <= 0 && busy !== undefined) throw new BusyError(`propose: still busy after ${timeoutMs} ms (${busy})`);
      if (remaining <= 0) throw new NotLeaderError(`propose: no leader took the proposal within ${timeoutMs} ms (${why}); nothing was done`, this.hint);
      const chosen = peer !== undefined ? this.shared.end(peer) : this.pick();
      const end = chosen?.up ? chosen : undefined;
      if (!end) {
        await sleep(Math.min(20, remaining));
        continue;
      }
      const r = await end.callFor(this, RequestKind.Propose, FLAG_FORWARD, remaining, payload);
      if (this.closed || this.shared.groupClosed) throw new GroupClosedError('propose');
      if (r === 'down') continue;
      if (r === 'lost') throw new OutcomeUnknownError(`propose: peer ${end.peer} went away while the proposal was in flight; it may or may not be applied`);
      this.hint = r.leader;
      if (r.status !== Status.Busy) busy = undefined;
      switch (r.status) {
        case Status.Ok:
          return r.payload ?? new Uint8Array(0);
        case Status.Busy:
          // Backpressure: wait while the leader works off what it has, then ask it again.
          busy = r.message ?? 'busy';
          await sleep((backoff ??= new BusyBackoff()).next(deadline - performance.now()));
          continue;
        case Status.NotLeader:
          why = r.message ?? `peer ${end.peer} is not the leader`;
          if (peer === undefined) this.moveOn(end, r.leader);
          // No leader known (or this peer must be asked again): give an election a moment.
          if (r.leader < 0 || peer !== undefined) await sleep(Math.min(20, Math.max(0, deadline - performance.now())));
          continue;
        case Status.ApplyError:
          throw new ApplyError(r.message ?? 'the state machine threw');
        case Status.Rejected:
          throw new RequestRejectedError(`propose: ${r.message ?? 'refused'}`);
        default:
          throw new OutcomeUnknownError(`propose: ${r.message ?? 'no outcome'}`);
      }
    }
  }

  /** Read with encoded bytes; resolves with the encoded answer. */
  async readBytes(query: Uint8Array, consistency: Consistency, timeoutMs: number, peer?: number): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    let why = 'no peer is reachable';
    let busy: string | undefined;
    let backoff: BusyBackoff | undefined; // made at the first Busy answer: most calls never see one
    for (;;) {
      if (this.closed || this.shared.groupClosed) throw new GroupClosedError('read');
      const remaining = deadline - performance.now();
      if (remaining <= 0 && busy !== undefined) throw new BusyError(`read: still busy after ${timeoutMs} ms (${busy})`);
      if (remaining <= 0) throw new TimeoutError(`read: not answered within ${timeoutMs} ms (${why})`);
      const end = peer !== undefined ? this.shared.end(peer) : this.pick();
      if (!end || !end.up) {
        await sleep(Math.min(20, remaining));
        continue;
      }
      // A read may be tried again, so no one try may take the whole time (a lost
      // request to a leader that died would).
      const r = await end.callFor(this, RequestKind.Read, readFlags(consistency, true), Math.min(remaining, READ_TRY_MS), query);
      if (this.closed || this.shared.groupClosed) throw new GroupClosedError('read');
      if (r === 'down' || r === 'lost') {
        why = `peer ${end.peer} went away`;
        continue;
      }
      if (r.status !== Status.Busy) busy = undefined;
      switch (r.status) {
        case Status.Ok:
          if (peer === undefined && consistency !== 'stale') this.hint = r.leader;
          return r.payload ?? new Uint8Array(0);
        case Status.Busy:
          busy = r.message ?? 'busy';
          await sleep((backoff ??= new BusyBackoff()).next(deadline - performance.now()));
          continue;
        case Status.ApplyError:
          throw new ApplyError(`read: ${r.message ?? 'the state machine threw'}`);
        case Status.Rejected:
          throw new RequestRejectedError(`read: ${r.message ?? 'refused'}`);
        default:
          // Nothing happened (not leader, not confirmed in time, peer stopping): try again.
          why = r.message ?? 'no answer';
          if (peer === undefined) this.moveOn(end, r.leader);
          await sleep(Math.min(r.leader < 0 ? 20 : 0, Math.max(0, deadline - performance.now())));
      }
    }
  }
}
