import { frameSize, writeFrameInto } from '../api/frame-writer.js';
import { withRoom } from './with-room.js';

/**
 * Encoded messages queued per destination and sent once per event-loop
 * turn as one buffer (the messages concatenated; msgpack values need no
 * framing). A post between threads, or a socket write, costs far more than
 * encoding one more value, so 256 clients sharing a channel pay for one
 * send per turn, not 256. `send` gets each destination's batch.
 */
export class TurnBatches<K> {
  private readonly queued = new Map<K, Batch>();
  private scheduled = false;
  /** The largest batch of the last flush: where the next turn's buffers start, so a steady wave is written without growing. */
  private sizeHint = MIN_BATCH_BYTES;

  constructor(private readonly send: (to: K, batch: Uint8Array) => void) {}

  /** Queue encoded bytes (copied now: `bytes` may be reused once this returns). */
  push(to: K, bytes: Uint8Array): void {
    const b = this.batch(to, bytes.length);
    b.buf.set(bytes, b.len);
    b.len += bytes.length;
  }

  /** Queue a client frame (frame-writer's writeFrame), written straight into the batch. */
  pushFrame(to: K, ints: readonly number[], payload: Uint8Array | undefined, tail = 0): void {
    const b = this.batch(to, frameSize(ints, payload, tail));
    b.len = writeFrameInto(b.buf, b.len, ints, payload, tail);
  }

  /** Send everything queued now (also runs by itself at the end of the turn). */
  flush(): void {
    this.scheduled = false;
    if (this.queued.size === 0) return;
    let largest = 0;
    for (const [to, b] of this.queued) {
      if (b.len > largest) largest = b.len;
      // Each batch has a buffer of its own, never written again: safe to transfer or to leave with a socket.
      this.send(to, b.buf.subarray(0, b.len));
    }
    this.queued.clear();
    this.sizeHint = Math.min(MAX_HINT_BYTES, Math.max(MIN_BATCH_BYTES, largest));
  }

  /** Forget what is queued for `to` (its channel closed). */
  drop(to: K): void {
    this.queued.delete(to);
  }

  /** `to`'s batch with room for `n` more bytes. */
  private batch(to: K, n: number): Batch {
    let b = this.queued.get(to);
    if (!b) {
      b = { buf: new Uint8Array(Math.max(this.sizeHint, n)), len: 0 };
      this.queued.set(to, b);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    } else {
      b.buf = withRoom(b.buf, b.len, n);
    }
    return b;
  }
}

/** One destination's frames of one turn, end to end. */
interface Batch {
  buf: Uint8Array<ArrayBuffer>;
  len: number;
}

const MIN_BATCH_BYTES = 1024;
/** A burst's size is not kept as every later turn's starting point. */
const MAX_HINT_BYTES = 256 * 1024;
