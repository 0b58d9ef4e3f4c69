import type { MessagePort } from 'node:worker_threads';
import type { WireMessage } from '../node/messages.js';
import type { Transport } from '../node/seams.js';
import { BatchBuffer, decodeFrame, encodeFrame, unpackBatch, unpackBatchSized, type Frame } from './codec.js';

/** Messages and bytes by message type. */
export type TrafficCounts = Record<number, { messages: number; bytes: number }>;

/**
 * One peer's side of the in-process network: a MessagePort to each other
 * peer's worker, msgpack frames, and everything queued for one destination
 * in one turn posted as one buffer. A batch that cannot be decoded, a
 * frame that is malformed or misaddressed, or a message the host refuses
 * (its handler returns false: no valid peer could have sent it) is dropped
 * and counted; the peer carries on.
 */
export class PortTransport implements Transport {
  protected readonly ports = new Map<number, MessagePort>();
  private readonly mailboxes: MessagePort[] = [];
  private readonly out = new Map<number, BatchBuffer>();
  private handler: ((m: WireMessage) => boolean | void) | undefined;
  /** Told when a peer's channel goes away (its worker died). */
  onLost: ((peer: number) => void) | undefined;
  protected closed = false;
  private dropped = 0;
  /** Counted only when asked for (a group's metrics): the lab's CPU budget has no room for it. */
  private traffic: { sent: TrafficCounts; received: TrafficCounts } | undefined;

  /** Count messages and bytes sent and received by type from now on (see traffic()). */
  countTraffic(): void {
    this.traffic ??= { sent: {}, received: {} };
  }

  /** What countTraffic() counted, or undefined if it was not asked for. */
  trafficCounts(): { sent: TrafficCounts; received: TrafficCounts } | undefined {
    return this.traffic && structuredClone(this.traffic);
  }

  constructor(
    readonly id: number,
    readonly n: number,
    readonly inc: number,
  ) {}

  /**
   * Where delivered messages go (the host's receive). Until this is called
   * the ports hold what arrives (a MessagePort delivers nothing before it
   * has a listener), so a peer that is still loading loses no message.
   * A handler that returns false refused the message: it counts as garbage.
   */
  listen(handler: (m: WireMessage) => boolean | void): void {
    this.handler = handler;
    for (const port of this.ports.values()) this.hear(port);
    for (const port of this.mailboxes) this.hear(port);
  }

  private hear(port: MessagePort): void {
    port.on('message', (data: unknown) => this.receive(data));
  }

  setPort(peer: number, port: MessagePort): void {
    this.ports.get(peer)?.close();
    this.ports.set(peer, port);
    // The other end's worker died: nothing sent this way will arrive.
    port.once('close', () => {
      if (this.ports.get(peer) !== port) return;
      this.ports.delete(peer);
      if (!this.closed) this.onLost?.(peer);
    });
    if (this.handler) this.hear(port);
  }

  reachable(peer: number): boolean {
    return this.ports.has(peer);
  }

  /** An extra inbound port whose messages count as peer traffic (tests post arbitrary bytes to it). */
  addMailbox(port: MessagePort): void {
    this.mailboxes.push(port);
    if (this.handler) this.hear(port);
  }

  /** Messages dropped because they could not be decoded, were misaddressed or were refused by the handler. */
  garbage(): number {
    return this.dropped;
  }

  protected countGarbage(): void {
    this.dropped++;
  }

  close(): void {
    this.closed = true;
    for (const p of this.ports.values()) p.close();
    for (const p of this.mailboxes) p.close();
    this.ports.clear();
  }

  /** Should this well-formed frame reach the host? (The lab's network fences stale incarnations here.) */
  protected admit(frame: Frame): boolean {
    void frame;
    return true;
  }

  private receive(data: unknown): void {
    if (this.closed) return;
    if (!(data instanceof Uint8Array)) {
      this.countGarbage();
      return;
    }
    let raws: unknown[];
    let sizes: number[] | undefined;
    try {
      if (this.traffic) {
        const sized = unpackBatchSized(data);
        raws = sized.map((x) => x.raw);
        sizes = sized.map((x) => x.bytes);
      } else {
        raws = unpackBatch(data);
      }
    } catch {
      this.countGarbage();
      return;
    }
    for (let k = 0; k < raws.length; k++) {
      const raw = raws[k];
      let frame: Frame;
      try {
        frame = decodeFrame(raw, this.n);
      } catch {
        this.countGarbage();
        continue;
      }
      const m = frame.msg;
      if (m.to !== this.id || m.from < 0 || m.from >= this.n || m.from === this.id) {
        this.countGarbage();
        continue;
      }
      if (!this.admit(frame)) continue;
      if (this.traffic) tally(this.traffic.received, m.type, sizes![k]!);
      if (this.handler?.(m) === false) this.countGarbage();
    }
  }

  send(m: WireMessage): void {
    if (this.closed || m.to === this.id || m.to < 0 || m.to >= this.n) return;
    const frame = encodeFrame({ fromInc: this.inc, toInc: 0, msg: m });
    if (this.traffic) tally(this.traffic.sent, m.type, frame.length);
    this.enqueue(m.to, frame);
  }

  protected enqueue(to: number, frame: Uint8Array): void {
    let b = this.out.get(to);
    if (!b) {
      b = new BatchBuffer();
      this.out.set(to, b);
    }
    b.push(frame);
  }

  /** Post everything queued, one message per destination. */
  flush(): void {
    for (const [to, b] of this.out) {
      if (b.empty) continue;
      const batch = b.take();
      const port = this.ports.get(to);
      if (port && this.canPost()) port.postMessage(batch, [batch.buffer as ArrayBuffer]);
    }
  }

  protected canPost(): boolean {
    return !this.closed;
  }
}

function tally(table: TrafficCounts, type: number, bytes: number): void {
  const c = (table[type] ??= { messages: 0, bytes: 0 });
  c.messages++;
  c.bytes += bytes;
}
