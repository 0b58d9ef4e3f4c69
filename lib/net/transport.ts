import type { MessagePort } from 'node:worker_threads';
import { isRequest, type Message } from '../raft/types.js';
import { BatchBuffer, decodeFrame, encodeFrame, unpackBatch } from './codec.js';
import type { FaultState } from './faults.js';

/** Probability k/1000, drawn the way the original network draws it. */
function chance(k: number, of = 1000): boolean {
  return Math.floor(Math.random() * of) < k;
}

function uniform(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

/**
 * One peer's side of the fault-injecting network. Requests (AppendEntries,
 * RequestVote, InstallSnapshot) play the part of RPC calls and responses the
 * part of their replies; both obey the original network's rules, read from
 * the shared FaultState:
 *  - every request counts as an RPC and its bytes on entry, whatever its fate;
 *  - a request over a disabled end or to a crashed peer is lost;
 *  - unreliable: requests wait U[0,26] ms and 10% are dropped; 10% of replies
 *    are dropped after the handler ran;
 *  - long reordering: 600/900 of replies are held 200 + U[0, U[0,1999]] ms;
 *  - a reply is delivered only if the requester's end is still enabled and
 *    both incarnations are unchanged (a crash fences its peer's answers).
 * Frames queued for one destination in one turn travel in one postMessage.
 */
export class PeerTransport {
  private readonly ports = new Map<number, MessagePort>();
  private readonly extra: MessagePort[] = [];
  private readonly out = new Map<number, BatchBuffer>();
  /** Incarnation of each peer as of its latest request: where replies go. */
  private readonly requesterInc: number[];
  private flushScheduled = false;
  private closed = false;

  constructor(
    readonly id: number,
    readonly inc: number,
    private readonly faults: FaultState,
    private readonly deliver: (m: Message) => void,
    private readonly afterDelivery: () => void,
  ) {
    this.requesterInc = new Array(faults.n).fill(0);
  }

  setPort(peer: number, port: MessagePort): void {
    this.ports.get(peer)?.close();
    this.ports.set(peer, port);
    port.on('message', (data: unknown) => this.receive(data));
  }

  /** An additional inbound mailbox (tests use it to post arbitrary bytes). */
  addMailbox(port: MessagePort): void {
    this.extra.push(port);
    port.on('message', (data: unknown) => this.receive(data));
  }

  close(): void {
    this.closed = true;
    for (const p of this.ports.values()) p.close();
    for (const p of this.extra) p.close();
    this.ports.clear();
  }

  private receive(data: unknown): void {
    if (this.closed) return;
    if (!(data instanceof Uint8Array)) {
      this.faults.countGarbage(this.id);
      return;
    }
    let raws: unknown[];
    try {
      raws = unpackBatch(data);
    } catch {
      this.faults.countGarbage(this.id);
      return;
    }
    for (const raw of raws) {
      let frame;
      try {
        frame = decodeFrame(raw);
      } catch {
        this.faults.countGarbage(this.id);
        continue;
      }
      const m = frame.msg;
      if (this.faults.shutdown || frame.toInc !== this.inc || m.to !== this.id) continue;
      if (m.from < 0 || m.from >= this.faults.n || m.from === this.id) {
        this.faults.countGarbage(this.id);
        continue;
      }
      if (isRequest(m)) {
        this.faults.countHandled(this.id);
        this.requesterInc[m.from] = frame.fromInc;
      }
      this.deliver(m);
    }
    this.afterDelivery();
  }

  private alive(): boolean {
    return !this.closed && !this.faults.shutdown && this.faults.incarnation(this.id) === this.inc;
  }

  send(m: Message): void {
    const to = m.to;
    if (to === this.id || to < 0 || to >= this.faults.n) return;
    const f = this.faults;
    if (isRequest(m)) {
      const toInc = f.incarnation(to);
      const frame = encodeFrame({ fromInc: this.inc, toInc, msg: m });
      f.countRpc();
      f.addBytes(frame.length);
      if (!this.alive() || !f.enabled(this.id, to) || toInc === 0) return;
      if (!f.reliable) {
        const delay = uniform(0, 26);
        if (chance(100)) return;
        setTimeout(() => this.enqueueLater(to, frame), delay);
        return;
      }
      this.enqueue(to, frame);
      return;
    }
    const toInc = this.requesterInc[to]!;
    if (!this.alive() || !f.enabled(to, this.id) || f.incarnation(to) !== toInc) return;
    if (!f.reliable && chance(100)) return;
    const frame = encodeFrame({ fromInc: this.inc, toInc, msg: m });
    if (f.longReordering && chance(600, 900)) {
      const delay = 200 + uniform(0, uniform(0, 1999));
      setTimeout(() => {
        f.addBytes(frame.length);
        this.enqueueLater(to, frame);
      }, delay);
      return;
    }
    f.addBytes(frame.length);
    this.enqueue(to, frame);
  }

  private enqueue(to: number, frame: Uint8Array): void {
    let b = this.out.get(to);
    if (!b) {
      b = new BatchBuffer();
      this.out.set(to, b);
    }
    b.push(frame);
  }

  private enqueueLater(to: number, frame: Uint8Array): void {
    if (!this.alive()) return;
    this.enqueue(to, frame);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Post everything queued, one message per destination. */
  flush(): void {
    this.flushScheduled = false;
    for (const [to, b] of this.out) {
      if (b.empty) continue;
      const batch = b.take();
      const port = this.ports.get(to);
      if (port && this.alive()) port.postMessage(batch, [batch.buffer as ArrayBuffer]);
    }
  }
}
