import type { MessagePort } from 'node:worker_threads';
import type { StartReply, StartRequest, StartResult } from '../node/boot.js';

/**
 * Figure 2's Start() on one peer incarnation, over a port of its own
 * (PeerControl.attachStarter). The lab's clients call Start() on every
 * server in loops (churn: three clients, five servers, for 16 s), and
 * through comlink each call cost the process 80-140 µs of CPU at a server
 * that does not lead: an id made of random hex, a listener added to the
 * worker's port and removed again, an object of call metadata cloned each
 * way. Here a call is an id and the command one way and four fields back.
 */
export class StartChannel {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(r: StartResult): void; reject(e: Error): void }>();
  private closed = false;

  /** `gone` makes the error for calls still waiting when the channel closes (the peer crashed or the cluster closed). */
  constructor(
    private readonly port: MessagePort,
    private readonly gone: () => Error,
  ) {
    port.on('message', (reply: StartReply) => this.settle(reply));
  }

  /** Start `command` (its buffer is transferred: the caller must not use it again). */
  start(command: Uint8Array): Promise<StartResult> {
    if (this.closed) return Promise.reject(this.gone());
    const id = this.nextId++;
    return new Promise<StartResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.port.postMessage([id, command] satisfies StartRequest, [command.buffer as ArrayBuffer]);
    });
  }

  private settle(reply: StartReply): void {
    const p = this.pending.get(reply[0]);
    if (!p) return;
    this.pending.delete(reply[0]);
    if (reply.length === 4) {
      p.resolve({ index: reply[1], term: reply[2], isLeader: reply[3] });
    } else {
      const err = new Error(reply[2]);
      err.name = reply[1];
      p.reject(err);
    }
  }

  /** Stop listening; calls still waiting are rejected with `gone()`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.close();
    for (const p of this.pending.values()) p.reject(this.gone());
    this.pending.clear();
  }
}
