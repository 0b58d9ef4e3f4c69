import type { MessagePort } from 'node:worker_threads';
import { TurnBatches } from './turn-batches.js';

/** Turn batches posted on MessagePorts, each batch transferred (not cloned). */
export class PortBatches extends TurnBatches<MessagePort> {
  constructor() {
    super((port, batch) => {
      try {
        port.postMessage(batch, [batch.buffer as ArrayBuffer]);
      } catch {
        // A closed port: its receiver is gone, and so is any use for these.
      }
    });
  }
}
