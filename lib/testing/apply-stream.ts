import type { MessagePort } from 'node:worker_threads';
import type { ByteStateMachine, EntryMeta } from '../node/seams.js';

/**
 * The Raft lab's service as a state machine: it keeps no state in the peer
 * and posts what the peer applies to the main thread, where the lab's
 * tester checks it and decides when to snapshot (Cluster.snapshot, the
 * lab's Snapshot(index, data)). One batch per turn:
 *   { snapshot?: { index, term, data }, entries: [index, term, command bytes][] }
 * with the snapshot to restore before the entries.
 */
export interface ApplyBatch {
  snapshot?: { index: number; term: number; data: Uint8Array };
  entries: [number, number, Uint8Array][];
}

const EMPTY = new Uint8Array(0);

export function createStateMachine(options: { port: MessagePort }): ByteStateMachine & { codec: 'bytes' } {
  const port = options.port;
  let batch: ApplyBatch = { entries: [] };
  let scheduled = false;
  let closed = false;
  const flush = () => {
    scheduled = false;
    if (closed || (batch.entries.length === 0 && !batch.snapshot)) return;
    port.postMessage(batch);
    batch = { entries: [] };
  };
  const later = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  return {
    // Commands stay the bytes the tester encoded; the tester decodes them.
    codec: 'bytes',
    apply(command: Uint8Array, e: EntryMeta): Uint8Array {
      batch.entries.push([e.index, e.term, command]);
      later();
      return EMPTY;
    },
    restore(data: Uint8Array, e: EntryMeta): void {
      // Entries before the snapshot go first, so the tester sees them in order.
      if (batch.entries.length > 0) flush();
      batch.snapshot = { index: e.index, term: e.term, data };
      later();
    },
    // The tester takes its snapshots itself (Cluster.snapshot); the engine's policy is off.
    snapshot: () => EMPTY,
    query: () => EMPTY,
    close(): void {
      flush();
      closed = true;
      port.close();
    },
  };
}
