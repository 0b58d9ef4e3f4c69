import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { CheckResult } from './history.js';
import { kvModel, type KvOperation } from './kv-model.js';
import { DEFAULT_MEMO_BYTES, type SearchOutcome } from './search.js';
import { dropUnobserved } from './unknown-outcomes.js';
import { checkKey } from './check-key.js';
import type { CheckTask } from '../../workers/check.js';

export interface CheckOptions {
  /** Give up after this long and answer "unknown" (default 1000 ms, the lab's limit). */
  timeoutMs?: number;
  /** Byte budget of each key's search memo (default 512 MiB); past it that key is "unknown". */
  memoBytes?: number;
}

export interface CheckerOptions {
  /** Pool threads (default: the machine's parallelism). */
  threads?: number;
  /**
   * Old-generation heap limit of each pool thread in MiB (default 2048): a
   * search that outgrows it kills only its thread, and its keys are answered
   * "unknown".
   */
  workerHeapMb?: number;
}

export interface CheckReport {
  result: CheckResult;
  /** Partitions (keys) in the history, and how many of them were decided. */
  partitions: number;
  decided: number;
  /** Keys whose sub-history has no linearization. */
  illegalKeys: string[];
  /** Keys left undecided because a search reached its memory budget or its thread ran out of heap. */
  memoryLimited: number;
  /** Operations whose outcome was unknown, and how many of them the check could set aside unsearched. */
  unknownOutcomes: number;
  unknownDropped: number;
  ms: number;
}

/** A task carries keys worth about this many operations at most, once there are several per thread. */
const OPS_PER_TASK = 2000;
/**
 * A key whose strings add up to more than this many characters is searched
 * in the calling thread: copying it to a pool thread would cost more than
 * the search (a key read after each of thousands of appends holds the
 * square of its length in output strings, a hundred megabytes and more).
 */
const LOCAL_CHARS = 4 << 20;

function charsOf(ops: readonly KvOperation[]): number {
  let n = 0;
  for (const op of ops) n += op.input.value.length + op.output.value.length;
  return n;
}

/**
 * Checks KV histories for linearizability: the history is split by key and
 * the keys are searched in parallel on a piscina pool. A non-linearizable key
 * stops every search at once. Past the time limit the answer is "unknown",
 * never "ok".
 */
export class LinearizabilityChecker {
  private pool: Piscina | undefined;
  private readonly threads: number;
  private readonly workerHeapMb: number;

  constructor(opts: CheckerOptions = {}) {
    const threads = opts.threads ?? Math.max(1, availableParallelism());
    if (!Number.isSafeInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${String(opts.threads)}`);
    const heap = opts.workerHeapMb ?? 2048;
    if (!Number.isSafeInteger(heap) || heap < 16) throw new RangeError(`workerHeapMb must be an integer of at least 16, got ${String(opts.workerHeapMb)}`);
    this.threads = threads;
    this.workerHeapMb = heap;
  }

  async checkKv(history: readonly KvOperation[], opts: CheckOptions = {}): Promise<CheckReport> {
    const timeoutMs = opts.timeoutMs ?? 1000;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${String(timeoutMs)}`);
    const memoBytes = opts.memoBytes ?? DEFAULT_MEMO_BYTES;
    if (!(memoBytes > 0)) throw new RangeError(`memoBytes must be positive, got ${String(opts.memoBytes)}`);
    validate(history);
    const t0 = performance.now();
    const unknownOutcomes = history.filter((op) => op.ret === Infinity).length;
    const parts = kvModel
      .partition!(history.slice())
      .map(dropUnobserved)
      .filter((p) => p.length > 0);
    const unknownDropped = unknownOutcomes - parts.reduce((n, p) => n + p.filter((op) => op.ret === Infinity).length, 0);
    const stop = new SharedArrayBuffer(4);
    const flag = new Int32Array(stop);
    const deadline = Date.now() + timeoutMs;
    const timer = setTimeout(() => Atomics.store(flag, 0, 1), timeoutMs);

    const local: number[] = [];
    const pooled: number[] = [];
    parts.forEach((p, i) => (charsOf(p) > LOCAL_CHARS ? local : pooled).push(i));
    // Spread the pooled keys over several tasks per thread, biggest first into
    // the lightest task, so one slow key does not hold up the others.
    const total = history.length;
    const nTasks = Math.min(pooled.length, Math.max(this.threads * 4, Math.ceil(total / OPS_PER_TASK)));
    const batches = Array.from({ length: nTasks }, () => ({ idx: [] as number[], ops: 0 }));
    const bySize = pooled.slice().sort((a, b) => parts[b]!.length - parts[a]!.length);
    for (const i of bySize) {
      let lightest = batches[0]!;
      for (const b of batches) if (b.ops < lightest.ops) lightest = b;
      lightest.idx.push(i);
      lightest.ops += parts[i]!.length;
    }

    const pool = (this.pool ??= new Piscina({
      filename: new URL('../../workers/check-pool.cjs', import.meta.url).href,
      maxThreads: this.threads,
      minThreads: Math.min(this.threads, 1),
      idleTimeout: 5000,
      resourceLimits: { maxOldGenerationSizeMb: this.workerHeapMb },
    }));
    const outcomes: SearchOutcome[] = new Array(parts.length).fill('stopped');
    try {
      const running = Promise.all(
        batches.map(async ({ idx }) => {
          const task: CheckTask = { partitions: idx.map((i) => parts[i]!), stop, deadline, memoBytes };
          let res: SearchOutcome[];
          try {
            res = (await pool.run(task)) as SearchOutcome[];
          } catch (err) {
            // A thread that ran out of heap answers nothing for its keys: unknown, not a crash.
            if ((err as { code?: string }).code !== 'ERR_WORKER_OUT_OF_MEMORY') throw err;
            res = idx.map(() => 'memory');
          }
          idx.forEach((i, k) => (outcomes[i] = res[k]!));
        }),
      );
      // While the pool works, the big keys here (this thread waits on nothing meanwhile).
      const shouldStop = () => Atomics.load(flag, 0) !== 0 || Date.now() > deadline;
      for (const i of local) {
        outcomes[i] = shouldStop() ? 'stopped' : checkKey(parts[i]!, shouldStop, { memoBytes });
        if (outcomes[i] === 'illegal') Atomics.store(flag, 0, 1);
      }
      await running;
    } finally {
      clearTimeout(timer);
    }
    const illegalKeys = parts.filter((_, i) => outcomes[i] === 'illegal').map((p) => p[0]!.input.key);
    const decided = outcomes.filter((o) => o === 'ok' || o === 'illegal').length;
    const memoryLimited = outcomes.filter((o) => o === 'memory').length;
    const result: CheckResult = illegalKeys.length > 0 ? 'illegal' : decided === parts.length ? 'ok' : 'unknown';
    return { result, partitions: parts.length, decided, illegalKeys, memoryLimited, unknownOutcomes, unknownDropped, ms: performance.now() - t0 };
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }
}

/** Check one KV history on a pool of its own. */
export async function checkKvHistory(history: readonly KvOperation[], opts: CheckOptions & CheckerOptions = {}): Promise<CheckReport> {
  const checker = new LinearizabilityChecker(opts);
  try {
    return await checker.checkKv(history, opts);
  } finally {
    await checker.close();
  }
}

function validate(history: readonly KvOperation[]): void {
  if (!Array.isArray(history)) throw new TypeError('history must be an array of operations');
  history.forEach((op, i) => {
    const bad = (what: string) => new TypeError(`history[${i}]: ${what}`);
    if (typeof op !== 'object' || op === null) throw bad('not an operation');
    if (!Number.isFinite(op.call) || !(Number.isFinite(op.ret) || op.ret === Infinity)) throw bad('call must be a finite number, ret a finite number or Infinity (outcome unknown)');
    if (op.ret < op.call) throw bad(`returns (${op.ret}) before it is called (${op.call})`);
    const inp = op.input;
    if (typeof inp !== 'object' || inp === null || typeof inp.key !== 'string' || typeof inp.value !== 'string' || ![0, 1, 2].includes(inp.op)) {
      throw bad('input must be { op: 0 | 1 | 2, key: string, value: string }');
    }
    if (typeof op.output !== 'object' || op.output === null || typeof op.output.value !== 'string') throw bad('output must be { value: string }');
  });
}
