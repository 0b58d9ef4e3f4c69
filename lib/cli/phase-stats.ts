/** One completed operation as the start job records it: call and return times in ns, and its phase. */
export interface TimedOp {
  call: number;
  ret: number;
  phase: number;
}

export interface PhaseStats {
  operations: number;
  /** Operations over the phase's span (first call to last return); 0 for an empty phase. */
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const percentile = (sorted: Float64Array, p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

/**
 * Operations, throughput and latency percentiles of each phase
 * (0..phases-1). A history runs to millions of operations, so everything
 * here is a loop: spreading an array into Math.max or Math.min, or into
 * push, passes every element as an argument and throws a RangeError past
 * about 120,000 of them.
 */
export function phaseStats(history: readonly TimedOp[], phases: number): PhaseStats[] {
  const counts = new Array<number>(phases).fill(0);
  for (const op of history) if (op.phase >= 0 && op.phase < phases) counts[op.phase]!++;
  const lat = counts.map((n) => new Float64Array(n));
  const first = new Array<number>(phases).fill(Infinity);
  const last = new Array<number>(phases).fill(-Infinity);
  const filled = new Array<number>(phases).fill(0);
  for (const op of history) {
    const p = op.phase;
    if (!(p >= 0 && p < phases)) continue;
    lat[p]![filled[p]!++] = (op.ret - op.call) / 1e6;
    if (op.call < first[p]!) first[p] = op.call;
    if (op.ret > last[p]!) last[p] = op.ret;
  }
  return lat.map((l, p) => {
    l.sort();
    const span = l.length > 0 ? (last[p]! - first[p]!) / 1e9 : 0;
    return { operations: l.length, opsPerSecond: span > 0 ? Math.round(l.length / span) : 0, p50Ms: percentile(l, 50), p99Ms: percentile(l, 99) };
  });
}
