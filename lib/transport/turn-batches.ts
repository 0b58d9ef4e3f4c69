/**
 * Encoded messages queued per destination and sent once per event-loop
 * turn as one buffer (the messages concatenated; msgpack values need no
 * framing). A post between threads, or a socket write, costs far more than
 * encoding one more value, so 256 clients sharing a channel pay for one
 * send per turn, not 256. `send` gets each destination's batch.
 */
export class TurnBatches<K> {
  private readonly queued = new Map<K, Uint8Array[]>();
  private scheduled = false;

  constructor(private readonly send: (to: K, batch: Uint8Array) => void) {}

  push(to: K, bytes: Uint8Array): void {
    let q = this.queued.get(to);
    if (!q) this.queued.set(to, (q = []));
    q.push(bytes);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Send everything queued now (also runs by itself at the end of the turn). */
  flush(): void {
    this.scheduled = false;
    if (this.queued.size === 0) return;
    for (const [to, q] of this.queued) this.send(to, q.length === 1 ? q[0]! : concat(q));
    this.queued.clear();
  }

  /** Forget what is queued for `to` (its channel closed). */
  drop(to: K): void {
    this.queued.delete(to);
  }
}

export function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
