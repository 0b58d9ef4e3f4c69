import type { Entry, SnapshotMeta } from './types.js';

/**
 * The in-memory log of one peer: entries after the snapshot, plus the
 * boundary between what storage already holds (stable) and what it does not.
 */
export class RaftLog {
  /** entries[k] has index snapshotIndex + 1 + k */
  private entries: Entry[];
  private snap: SnapshotMeta;
  /** Highest index storage is known to hold. */
  stableIndex: number;
  commitIndex: number;
  appliedIndex: number;

  constructor(snapshot: SnapshotMeta | undefined, entries: Entry[]) {
    this.snap = snapshot ?? { index: 0, term: 0 };
    this.entries = entries.slice();
    for (let k = 0; k < this.entries.length; k++) {
      if (this.entries[k]!.index !== this.snap.index + 1 + k) {
        throw new Error(`log entries are not contiguous after snapshot ${this.snap.index}`);
      }
    }
    this.stableIndex = this.lastIndex();
    this.commitIndex = this.snap.index;
    this.appliedIndex = this.snap.index;
  }

  snapshotIndex(): number {
    return this.snap.index;
  }

  snapshotTerm(): number {
    return this.snap.term;
  }

  firstIndex(): number {
    return this.snap.index + 1;
  }

  lastIndex(): number {
    return this.snap.index + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.term : this.snap.term;
  }

  /** Term at index, or undefined when the index is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snap.index - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snap.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snap.index - 1];
  }

  /** Entries in [lo, hi], clipped to what is held; at most maxEntries of them. */
  slice(lo: number, hi: number, maxEntries = Infinity): Entry[] {
    const from = Math.max(lo, this.firstIndex());
    const to = Math.min(hi, this.lastIndex(), from + maxEntries - 1);
    if (to < from) return [];
    return this.entries.slice(from - this.snap.index - 1, to - this.snap.index);
  }

  /** First index holding `term`, searching back from `index` (fast backup hint). */
  firstIndexOfTerm(index: number, term: number): number {
    let i = index;
    while (i - 1 > this.snap.index && this.term(i - 1) === term) i--;
    return i;
  }

  /** Last index whose entry has `term`, or 0 if the log holds none. */
  lastIndexOfTerm(term: number): number {
    for (let i = this.lastIndex(); i > this.snap.index; i--) {
      const t = this.term(i)!;
      if (t === term) return i;
      if (t < term) break;
    }
    return 0;
  }

  append(entry: Entry): void {
    if (entry.index !== this.lastIndex() + 1) throw new Error(`append at ${entry.index} after ${this.lastIndex()}`);
    this.entries.push(entry);
  }

  /** Replace one entry in place (only the simulator's planted bug does this). */
  overwrite(entry: Entry): void {
    this.entries[entry.index - this.snap.index - 1] = entry;
    if (this.stableIndex >= entry.index) this.stableIndex = entry.index - 1;
  }

  /** Drop every entry at or after `index`; storage will have to forget them too. */
  truncateFrom(index: number): void {
    if (index <= this.commitIndex) throw new Error(`refusing to truncate committed index ${index}`);
    this.entries.length = Math.max(0, index - this.snap.index - 1);
    if (this.stableIndex >= index) this.stableIndex = index - 1;
  }

  unstableEntries(): Entry[] {
    return this.slice(this.stableIndex + 1, this.lastIndex());
  }

  /** Discard entries up to and including `index` (they are covered by a snapshot). */
  compactTo(index: number, term: number): void {
    if (index <= this.snap.index) return;
    if (index <= this.lastIndex() && this.term(index) === term) {
      this.entries = this.entries.slice(index - this.snap.index);
      if (this.stableIndex < index) this.stableIndex = index;
    } else {
      // The whole log goes; nothing after the snapshot may count as stored.
      this.entries = [];
      this.stableIndex = index;
    }
    this.snap = { index, term };
    if (this.commitIndex < index) this.commitIndex = index;
    if (this.appliedIndex < index) this.appliedIndex = index;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }
}
