/**
 * The size of a peer's persisted Raft state as the lab counts it: the
 * msgpack size of term, vote, snapshot metadata and the retained log
 * entries, the snapshot's own bytes excluded. Pure arithmetic, shared by
 * SQLite storage (which measures its file's rows) and the peer host (which
 * keeps a running count to decide when to snapshot).
 */

/** Bytes msgpack needs for a non-negative integer. */
export function intSize(v: number): number {
  if (v < 128) return 1;
  if (v < 256) return 2;
  if (v < 65536) return 3;
  if (v < 2 ** 32) return 5;
  return 9;
}

export function binSize(n: number): number {
  return (n < 256 ? 2 : n < 65536 ? 3 : 5) + n;
}

/** What one log entry adds to the persisted Raft state's size. */
export function logEntryStateSize(term: number, dataBytes: number): number {
  return 1 + intSize(term) + binSize(dataBytes);
}

/** An upper bound on the size of the persisted Raft state without its log (term, vote, snapshot metadata). */
export const RAFT_STATE_HEADER_BYTES = 1 + 9 + 9 + 9 + 9;
