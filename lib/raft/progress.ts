/**
 * What a leader knows about one follower (etcd's tracker.Progress, reduced).
 *
 * probe:     the leader does not know where the follower's log matches; it
 *            sends one AppendEntries at a time and waits for the answer or the
 *            next heartbeat before sending another.
 * replicate: the follower is known to match at `match`; the leader streams
 *            entries optimistically (next runs ahead of match), with at most
 *            `maxInflight` unacknowledged AppendEntries outstanding.
 * snapshot:  the follower needs a snapshot; one InstallSnapshot is outstanding.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an AppendEntries is outstanding, wait before sending another. */
  paused = false;
  /** Highest commit index sent to this follower. */
  sentCommit = 0;
  /** Any answer from the follower since the last heartbeat round. */
  heardFrom = false;
  /** The leader's tick of the follower's latest answer (see refuseWithoutQuorum). */
  heardAt: number;
  /** Consecutive heartbeat rounds without any answer. */
  silentRounds = 0;
  /** Each unacknowledged AppendEntries, oldest first: its last index and the leader's tick when sent. */
  private inflight: { last: number; at: number }[] = [];
  /** The leader's tick when it last sent this follower anything. */
  lastSentAt = -Infinity;
  /** Snapshot index being sent, in snapshot state. */
  pendingSnapshot = 0;
  /** Heartbeat rounds spent in snapshot state (paces retransmission). */
  snapshotRounds = 0;
  /** The leader's round number on the latest message sent to this follower. */
  sentSeq = 0;
  /** The highest round number this follower has echoed: it followed the leader after that round began. */
  ackedSeq = 0;

  constructor(next: number, readonly maxInflight: number, now: number) {
    this.next = next;
    this.heardAt = now;
  }

  heard(now: number): void {
    this.heardFrom = true;
    this.heardAt = now;
  }

  becomeProbe(): void {
    this.state = 'probe';
    this.paused = false;
    this.inflight = [];
    this.next = Math.max(this.next, this.match + 1);
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.paused = false;
    this.inflight = [];
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.paused = false;
    this.inflight = [];
    this.pendingSnapshot = index;
    this.snapshotRounds = 0;
  }

  /** Record an acknowledged match; returns true if it moved forward. */
  maybeUpdate(index: number): boolean {
    let moved = false;
    if (index > this.match) {
      this.match = index;
      moved = true;
    }
    if (this.next < index + 1) this.next = index + 1;
    while (this.inflight.length > 0 && this.inflight[0]!.last <= index) this.inflight.shift();
    return moved;
  }

  /** Sent entries up to `last` (replicate state streams ahead). */
  sentEntries(last: number, now: number): void {
    if (this.state === 'replicate') {
      this.next = last + 1;
      this.inflight.push({ last, at: now });
    } else if (this.state === 'probe') {
      this.paused = true;
    }
  }

  /** When the oldest unacknowledged AppendEntries was sent (leader ticks), if any is. */
  oldestInflightAt(): number | undefined {
    return this.inflight[0]?.at;
  }

  /** When the newest unacknowledged AppendEntries was sent (leader ticks), if any is. */
  newestInflightAt(): number | undefined {
    return this.inflight[this.inflight.length - 1]?.at;
  }

  /** AppendEntries sent in replicate state and not yet acknowledged. */
  inflightCount(): number {
    return this.inflight.length;
  }

  inflightFull(): boolean {
    return this.inflight.length >= this.maxInflight;
  }

  /** May the leader send entries to this follower now? */
  canSend(): boolean {
    switch (this.state) {
      case 'probe':
        return !this.paused;
      case 'replicate':
        return !this.inflightFull();
      case 'snapshot':
        return false;
    }
  }
}
