import type { MessagePort } from 'node:worker_threads';
import { RequestKind, decodeRequests, queueReply } from '../api/client-protocol.js';
import { PortBatches } from '../transport/port-batches.js';
import { Status, type Outcome, type OutcomeCallback } from './outcome.js';
import type { PeerHost } from './host.js';
import type { PeerMeter } from '../metrics/peer-meter.js';

/** Serves admin requests (status, leadership transfer) where a node process offers them. */
export type AdminHandler = (payload: Uint8Array, done: OutcomeCallback) => void;

export interface ServeExtras {
  admin?: AdminHandler;
  /** Counts proposals and their latency. */
  meter?: PeerMeter;
}

/**
 * Hand one received batch of client requests to the host (propose, read,
 * admin); each outcome goes to `reply` with its request's id. Returns how
 * many values in it were not requests at all (nothing to answer).
 */
export function serveRequests(host: PeerHost, bytes: unknown, reply: (id: number, o: Outcome) => void, extra: ServeExtras = {}): number {
  const { admin, meter } = extra;
  const { requests, garbage } = decodeRequests(bytes);
  for (const r of requests) {
    const done = (o: Outcome) => reply(r.id, o);
    if ('refused' in r) done({ status: Status.Rejected, message: `malformed request: ${r.refused}`, leader: -1 });
    else if (r.kind === RequestKind.Propose) host.propose(r.payload, { forward: r.forward, timeoutMs: r.timeoutMs }, meter ? meter.timeProposal(done) : done);
    else if (r.kind === RequestKind.Read) host.read(r.payload, { consistency: r.consistency, forward: r.forward, timeoutMs: r.timeoutMs }, done);
    else if (admin) admin(r.payload, done);
    else done({ status: Status.Rejected, message: 'admin requests are served by node processes (actor-raft serve), not on this channel', leader: -1 });
  }
  return garbage;
}

/**
 * The peer's end of its client channels: each request goes to the host
 * (propose or read) and its outcome back on the channel it came from.
 * Replies leave once per turn per channel, together, so clients sharing a
 * channel cost one post per turn, not one each.
 */
export class ClientService {
  private readonly ports: MessagePort[] = [];
  private readonly replies = new PortBatches();
  private closed = false;
  private dropped = 0;

  constructor(
    private readonly host: PeerHost,
    private readonly meter?: PeerMeter,
  ) {
    // Answers leave as soon as they exist, not after the write the host does next.
    host.afterApply = () => this.replies.flush();
  }

  attach(port: MessagePort): void {
    if (this.closed) {
      port.close();
      return;
    }
    this.ports.push(port);
    port.on('message', (bytes: unknown) => {
      if (!this.closed) this.dropped += serveRequests(this.host, bytes, (id, o) => queueReply(this.replies, port, id, o), { meter: this.meter });
    });
  }

  /** Values on client channels that were not requests at all (nothing to answer). */
  garbage(): number {
    return this.dropped;
  }

  /** Post what is queued and close every channel. */
  close(): void {
    if (this.closed) return;
    this.replies.flush();
    this.closed = true;
    for (const p of this.ports) p.close();
  }
}
