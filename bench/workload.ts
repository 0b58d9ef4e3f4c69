/**
 * The closed-loop Put workload of bench/versus-etcd.ts, one driver for both
 * systems so that they are measured by the same code: `clients` loops in
 * this thread, each issuing its next Put only when the previous one has
 * returned, client k writing `key-${k}-${n % keysPerClient}` for its n-th
 * Put. The system under test only supplies `put`.
 */

export interface LoopOptions {
  clients: number;
  keysPerClient: number;
  seconds: number;
  /** The value of every Put. */
  value: string;
  /** Once every progress interval: Puts so far and seconds elapsed (for a live line). */
  onProgress?: (puts: number, elapsed: number) => void;
  /** How long the clients may take to finish their Puts in flight once the time is up. */
  drainMs?: number;
}

export interface LoopResult {
  puts: number;
  /** Puts that threw; they are not in `puts` or the latencies. */
  errors: number;
  firstError?: string;
  /** Wall time from the first Put to the last one's return. */
  seconds: number;
  /** Sorted, milliseconds. */
  latencies: Float64Array;
  /** Distinct keys written: per client, min(Puts that succeeded, keysPerClient) (each client cycles through its own keys). */
  keysWritten: number;
}

export interface Summary {
  puts: number;
  errors: number;
  seconds: number;
  putsPerSecond: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round3 = (x: number): number => Number(x.toFixed(3));

/** Growable Float64Array: a million latencies as plain numbers in a JS array cost the GC more than this does. */
class Samples {
  private buf = new Float64Array(1 << 16);
  length = 0;
  push(x: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = x;
  }
  sorted(): Float64Array {
    return this.buf.slice(0, this.length).sort();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Run the loops for `seconds`, then wait (at most drainMs) for the Puts in
 * flight. A Put that throws is counted as an error and its client pauses
 * 10 ms before the next, so a failing system is not spun against; errors
 * are reported, never hidden. `abort` ends the loops early (Ctrl-C).
 */
export async function closedLoop(opts: LoopOptions, put: (client: number, key: string, value: string) => Promise<unknown>, abort?: AbortSignal): Promise<LoopResult> {
  const samples = new Samples();
  const done = new Array<number>(opts.clients).fill(0);
  let errors = 0;
  let firstError: string | undefined;
  let stop = false;
  const started = performance.now();
  const progress = opts.onProgress ? setInterval(() => opts.onProgress!(samples.length, (performance.now() - started) / 1000), 500) : undefined;
  const onAbort = () => (stop = true);
  abort?.addEventListener('abort', onAbort);
  if (abort?.aborted) stop = true;
  const loops = Array.from({ length: opts.clients }, async (_, k) => {
    let n = 0;
    while (!stop) {
      const key = `key-${k}-${n++ % opts.keysPerClient}`;
      const t0 = performance.now();
      try {
        await put(k, key, opts.value);
      } catch (e) {
        errors++;
        firstError ??= e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        await sleep(10);
        continue;
      }
      samples.push(performance.now() - t0);
      done[k]!++;
    }
  });
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  try {
    // The wake-up listener goes when the row ends, aborted or not (one per row would pile up on a long run's signal).
    if (!abort?.aborted) await Promise.race([sleep(opts.seconds * 1000), new Promise<void>((r) => abort?.addEventListener('abort', (wake = () => r()), { once: true }))]);
    stop = true;
    const drainMs = opts.drainMs ?? 30_000;
    const drained = await Promise.race([Promise.all(loops).then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), drainMs)))]);
    if (!drained) throw new Error(`the clients' last Puts did not return within ${drainMs} ms of the row's end`);
  } finally {
    clearTimeout(timer);
    clearInterval(progress);
    abort?.removeEventListener('abort', onAbort);
    if (wake) abort?.removeEventListener('abort', wake);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    puts: samples.length,
    errors,
    firstError,
    seconds,
    latencies: samples.sorted(),
    keysWritten: done.reduce((s, n) => s + Math.min(n, opts.keysPerClient), 0),
  };
}

export function summarize(r: LoopResult): Summary {
  const l = r.latencies;
  return {
    puts: r.puts,
    errors: r.errors,
    seconds: round3(r.seconds),
    putsPerSecond: Math.round(r.puts / r.seconds),
    p50ms: round3(percentile(l, 50)),
    p99ms: round3(percentile(l, 99)),
    maxMs: round3(l.length ? l[l.length - 1]! : NaN),
  };
}
