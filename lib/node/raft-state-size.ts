import type { RaftLog } from '../raft/log.js';
import type { Ready } from '../raft/types.js';
import { RAFT_STATE_HEADER_BYTES, logEntryStateSize } from '../../storage/size.js';

/**
 * The persisted Raft state's size (what a snapshot policy compares with its
 * threshold), kept up to date from the log as entries become stable rather
 * than recounted: counted afresh only when a snapshot or a truncation
 * changed what is stored.
 */
export class RaftStateSize {
  private logBytes = 0;
  private countedSnapshot = -1;
  private countedStable = -1;

  /** A Ready was written: entries that replaced stored ones make the count start over. */
  saved(rd: Ready): void {
    if (rd.entries.length > 0 && rd.entries[0]!.index <= this.countedStable) this.countedSnapshot = -1;
  }

  bytes(log: RaftLog): number {
    const snap = log.snapshotIndex();
    const stable = log.stableIndex;
    if (snap !== this.countedSnapshot || stable < this.countedStable) {
      this.logBytes = 0;
      this.countedStable = snap;
    }
    for (const e of log.slice(this.countedStable + 1, stable)) this.logBytes += logEntryStateSize(e.term, e.data.length);
    this.countedSnapshot = snap;
    this.countedStable = stable;
    return RAFT_STATE_HEADER_BYTES + this.logBytes;
  }
}
