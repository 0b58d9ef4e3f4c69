import type { InitialState, Ready, Snapshot } from '../lib/raft/types.js';

/** Writes a snapshot's bytes a piece per step (Storage.stageSnapshot). */
export interface SnapshotStager {
  /** Write the next piece, durably; true once every piece is written. */
  step(): boolean;
  /** Give it up: what it wrote is never used, and goes as later writes tidy up. */
  cancel(): void;
}

/**
 * Where a peer keeps what Figure 2 calls persistent state. `save` writes one
 * Ready atomically (hard state, snapshot, entries; entries at or after the
 * first given index replace what was stored there) and returns only once it
 * is durable, because the peer sends the Ready's messages right after.
 */
export interface Storage {
  load(): InitialState;
  save(rd: Ready): void;
  close(): void;
  /**
   * Optional. Begin writing `snap`'s bytes ahead of the Ready that records
   * it, a piece per step, so that no one write holds the peer (and, on a
   * leader, its group) for as long as the whole state takes to write.
   * Undefined: the snapshot is small enough to go with its Ready (or this
   * storage cannot). Once every step is done, a save() of a Ready carrying
   * this very snapshot (the same data object, index, term and
   * configuration) writes only its small record; a save of any other
   * snapshot gives the staged one up.
   */
  stageSnapshot?(snap: Snapshot): SnapshotStager | undefined;
}

/** Volatile storage: state lives as long as the worker. A restart starts empty. */
export class MemoryStorage implements Storage {
  private state: InitialState = { hardState: { term: 0, vote: -1 }, entries: [] };

  load(): InitialState {
    return { hardState: { ...this.state.hardState }, snapshot: this.state.snapshot, entries: this.state.entries.slice() };
  }

  save(rd: Ready): void {
    const st = this.state;
    if (rd.hardState) st.hardState = { ...rd.hardState };
    if (rd.snapshot) {
      const s = rd.snapshot;
      st.snapshot = s;
      st.entries = st.entries.filter((e) => e.index > s.index);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      st.entries = st.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    const last = st.entries[st.entries.length - 1];
    if (last && last.index > rd.lastIndex) st.entries = st.entries.filter((e) => e.index <= rd.lastIndex);
  }

  close(): void {}
}
