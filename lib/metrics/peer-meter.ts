import type { Storage } from '../../storage/storage.js';
import type { Outcome, OutcomeCallback } from '../node/outcome.js';
import { LatencyHistogram, type HistogramFigures } from './histogram.js';

/** What a peer's thread measures beyond its host's status: shipped with every status. */
export interface MeterFigures {
  leaderChanges: number;
  /** Client proposals answered, by outcome status code. */
  proposals: Record<number, number>;
  proposalSeconds: HistogramFigures;
  /** Durable writes of one Ready each (SQLite write and fsync). */
  saveSeconds: HistogramFigures;
}

/**
 * The figures a peer's thread keeps for metrics: leader changes, client
 * proposals by outcome with their latency, and the time of each durable
 * write. Counting costs a clock read per proposal and per write.
 */
export class PeerMeter {
  private leaderChanges = 0;
  private lastLeader = -2;
  private readonly proposals: Record<number, number> = {};
  private readonly proposalSeconds = new LatencyHistogram();
  private readonly saveSeconds = new LatencyHistogram();

  /** The host's leaderChanged event: counts changes to a known leader. */
  leaderChanged(_term: number, leader: number): void {
    if (leader >= 0 && leader !== this.lastLeader) this.leaderChanges++;
    this.lastLeader = leader;
  }

  /** Wrap a proposal's callback so that its outcome and latency are counted. */
  timeProposal(done: OutcomeCallback): OutcomeCallback {
    const t0 = performance.now();
    return (o: Outcome) => {
      this.proposals[o.status] = (this.proposals[o.status] ?? 0) + 1;
      this.proposalSeconds.observe((performance.now() - t0) / 1000);
      done(o);
    };
  }

  /** `storage` with every save timed. */
  timeStorage(storage: Storage): Storage {
    return {
      load: () => storage.load(),
      save: (rd) => {
        const t0 = performance.now();
        storage.save(rd);
        this.saveSeconds.observe((performance.now() - t0) / 1000);
      },
      close: () => storage.close(),
      // A large snapshot's pieces are written between Readies (not timed: they are not saves of a Ready).
      ...(storage.stageSnapshot ? { stageSnapshot: (snap) => storage.stageSnapshot!(snap) } : {}),
    };
  }

  figures(): MeterFigures {
    return { leaderChanges: this.leaderChanges, proposals: { ...this.proposals }, proposalSeconds: this.proposalSeconds.figures(), saveSeconds: this.saveSeconds.figures() };
  }
}
