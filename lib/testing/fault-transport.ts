import { PortTransport } from '../transport/port-transport.js';
import { encodeFrame, isWireRequest, type Frame } from '../transport/codec.js';
import type { WireMessage } from '../node/messages.js';
import type { FaultState } from './faults.js';

/** Probability k/1000, drawn the way the original network draws it. */
function chance(k: number, of = 1000): boolean {
  return Math.floor(Math.random() * of) < k;
}

function uniform(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

/**
 * One peer's side of the lab's fault-injecting network. Requests
 * (AppendEntries, RequestVote, InstallSnapshot, ReadIndex, TimeoutNow, a
 * forwarded proposal) play the part of RPC calls and responses the part of
 * their replies; both obey the original network's rules, read from the
 * shared FaultState:
 *  - every request counts as an RPC and its bytes on entry, whatever its fate;
 *  - a request over a disabled end or to a crashed peer is lost;
 *  - unreliable: requests wait U[0,26] ms and 10% are dropped; 10% of replies
 *    are dropped after the handler ran;
 *  - long reordering: 600/900 of replies are held 200 + U[0, U[0,1999]] ms;
 *  - a reply is delivered only if the requester's end is still enabled and
 *    both incarnations are unchanged (a crash fences its peer's answers).
 */
export class FaultTransport extends PortTransport {
  /** Incarnation of each peer as of its latest request: where replies go. */
  private readonly requesterInc: number[];
  private flushScheduled = false;

  constructor(
    id: number,
    inc: number,
    private readonly faults: FaultState,
  ) {
    super(id, faults.n, inc);
    this.requesterInc = new Array(faults.n).fill(0);
  }

  override garbage(): number {
    return this.faults.garbage(this.id);
  }

  protected override countGarbage(): void {
    this.faults.countGarbage(this.id);
  }

  protected override admit(frame: Frame): boolean {
    const m = frame.msg;
    if (this.faults.shutdown || frame.toInc !== this.inc) return false;
    if (isWireRequest(m)) {
      this.faults.countHandled(this.id);
      this.requesterInc[m.from] = frame.fromInc;
    }
    return true;
  }

  protected override canPost(): boolean {
    return !this.closed && !this.faults.shutdown && this.faults.incarnation(this.id) === this.inc;
  }

  override send(m: WireMessage): void {
    const to = m.to;
    if (to === this.id || to < 0 || to >= this.faults.n) return;
    const f = this.faults;
    if (isWireRequest(m)) {
      const toInc = f.incarnation(to);
      const frame = encodeFrame({ fromInc: this.inc, toInc, msg: m });
      f.countRpc();
      f.addBytes(frame.length);
      if (!this.canPost() || !f.enabled(this.id, to) || toInc === 0) return;
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
    if (!this.canPost() || !f.enabled(to, this.id) || f.incarnation(to) !== toInc) return;
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

  private enqueueLater(to: number, frame: Uint8Array): void {
    if (!this.canPost()) return;
    this.enqueue(to, frame);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }
}
