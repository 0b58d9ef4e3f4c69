import type { MessagePort } from 'node:worker_threads';
import { RequestKind, decodeRequests, encodeReply } from '../api/client-protocol.js';
import { PortBatches } from '../transport/port-batches.js';
import { Status } from './outcome.js';
import type { PeerHost } from './host.js';

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

  constructor(private readonly host: PeerHost) {
    // Answers leave as soon as they exist, not after the write the host does next.
    host.afterApply = () => this.replies.flush();
  }

  attach(port: MessagePort): void {
    if (this.closed) {
      port.close();
      return;
    }
    this.ports.push(port);
    port.on('message', (bytes: unknown) => this.handle(port, bytes));
  }

  /** Values on client channels that were not requests at all (nothing to answer). */
  garbage(): number {
    return this.dropped;
  }

  private handle(port: MessagePort, bytes: unknown): void {
    if (this.closed) return;
    const { requests, garbage } = decodeRequests(bytes);
    this.dropped += garbage;
    for (const r of requests) {
      const reply = (o: Parameters<typeof encodeReply>[1]) => this.replies.push(port, encodeReply(r.id, o));
      if ('refused' in r) reply({ status: Status.Rejected, message: `malformed request: ${r.refused}`, leader: -1 });
      else if (r.kind === RequestKind.Propose) this.host.propose(r.payload, { forward: r.forward, timeoutMs: r.timeoutMs }, reply);
      else this.host.read(r.payload, { consistency: r.consistency, forward: r.forward, timeoutMs: r.timeoutMs }, reply);
    }
  }

  /** Post what is queued and close every channel. */
  close(): void {
    if (this.closed) return;
    this.replies.flush();
    this.closed = true;
    for (const p of this.ports) p.close();
  }
}
