import type { MessagePort } from 'node:worker_threads';

/**
 * Encoded messages queued per port and posted once per event-loop turn as
 * one buffer (the messages concatenated; msgpack values need no framing).
 * A message between threads costs far more than encoding one more value,
 * so 256 clients sharing a channel pay for one post per turn, not 256.
 */
export class PortBatches {
  private readonly queued = new Map<MessagePort, Uint8Array[]>();
  private scheduled = false;

  push(port: MessagePort, bytes: Uint8Array): void {
    let q = this.queued.get(port);
    if (!q) this.queued.set(port, (q = []));
    q.push(bytes);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Post everything queued now (also runs by itself at the end of the turn). */
  flush(): void {
    this.scheduled = false;
    if (this.queued.size === 0) return;
    for (const [port, q] of this.queued) {
      const batch = q.length === 1 ? q[0]! : concat(q);
      try {
        port.postMessage(batch, [batch.buffer as ArrayBuffer]);
      } catch {
        // A closed port: its receiver is gone, and so is any use for these.
      }
    }
    this.queued.clear();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
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
