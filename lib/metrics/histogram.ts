/**
 * A latency histogram kept on a peer's thread and shipped to the main
 * thread as plain numbers (the main thread's registry formats it). Fixed
 * buckets, in seconds, from half a millisecond to five seconds: wide enough
 * for an fsync on a slow disk and a proposal through an election.
 */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

export interface HistogramFigures {
  /** Per bucket of LATENCY_BUCKETS, the observations at or below it (not cumulative); the last slot is past the largest. */
  counts: number[];
  sum: number;
  count: number;
}

export class LatencyHistogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  private sum = 0;
  private count = 0;

  observe(seconds: number): void {
    let k = 0;
    while (k < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[k]!) k++;
    this.counts[k]!++;
    this.sum += seconds;
    this.count++;
  }

  figures(): HistogramFigures {
    return { counts: this.counts.slice(), sum: this.sum, count: this.count };
  }
}
