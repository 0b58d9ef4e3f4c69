/**
 * npm run bench:api (part of npm run bench): the product API on a durable
 * three-peer group (SQLite, fsync on), the counter state machine
 * (bench/state-machines/counter.ts) in every peer's worker.
 *  1. Proposals through RaftGroup.propose at 1, 16, 64 and 256 concurrent
 *     proposers: results per second, p50 and p99 latency.
 *  2. Reads: linearizable reads by ReadIndex and lease reads, against reads
 *     through the log (a 'get' command), at 1 and 64 concurrent readers.
 *  3. Where the CPU goes: 64 proposers on a counter whose apply spends
 *     20 us of CPU per command, and on a plain one; the CPU each thread
 *     used (main, each peer's worker, the rest of the process).
 * Every row is measured after --warmup seconds of the same loops in the
 * same group, not counted: a fresh group's first second runs through the
 * interpreter and the compiler in four threads (main and three peers).
 * Prints tables; writes bench/results/api-<time>.json.
 *   options: --seconds S (measured per row, default 3), --warmup S (default 1)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RaftGroup } from '../lib/index.js';
import { threadCpuMs } from '../lib/node/thread-cpu.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, warmup: { type: 'string', default: '1' } } });
const SECONDS = Number(values.seconds);
if (!(SECONDS > 0)) throw new Error(`--seconds must be positive, got ${values.seconds}`);
const WARMUP_SECONDS = Number(values.warmup);
if (!(WARMUP_SECONDS >= 0)) throw new Error(`--warmup must be 0 or more, got ${values.warmup}`);
const PEERS = 3;
const CONCURRENCY = [1, 16, 64, 256];
const READERS = [1, 64];
const SPIN_MICROS = 20;
const counterModule = new URL('./state-machines/counter.js', import.meta.url);

type Counter = RaftGroup<number | 'get', number, unknown, number>;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const round3 = (x: number) => Number(x.toFixed(3));

async function withGroup<T>(spinMicros: number, fn: (g: Counter) => Promise<T>): Promise<T> {
  mkdirSync('data', { recursive: true });
  const dir = mkdtempSync(join('data', 'bench-api-'));
  const g = await RaftGroup.open<number | 'get', number, unknown, number>({ peers: PEERS, dataDir: dir, stateMachine: { module: counterModule, options: { spinMicros } } });
  try {
    await g.propose(0); // a leader exists and has committed in its term
    return await fn(g);
  } finally {
    await g.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Row {
  concurrency: number;
  done: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

/**
 * `concurrency` loops of `op` for WARMUP_SECONDS, then SECONDS measured;
 * each loop awaits its own call. Counted: the calls that started once the
 * measured part had begun (all of them run to their end).
 */
async function drive(label: string, concurrency: number, op: () => Promise<unknown>, warmupSeconds = WARMUP_SECONDS): Promise<Row> {
  const latencies: number[] = [];
  let stop = false;
  let started = Infinity;
  const progress = setInterval(() => process.stdout.write(`\r  ${label}, ${concurrency}: ${started === Infinity ? 'warming up' : latencies.length}...`), 500);
  const measure = new Promise<void>((r) =>
    setTimeout(() => {
      started = performance.now();
      setTimeout(() => ((stop = true), r()), SECONDS * 1000);
    }, warmupSeconds * 1000),
  );
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop) {
        const t0 = performance.now();
        await op();
        if (t0 >= started) latencies.push(performance.now() - t0);
      }
    }).concat([measure]),
  );
  const seconds = (performance.now() - started) / 1000;
  clearInterval(progress);
  process.stdout.write('\r'.padEnd(70) + '\r');
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    done: latencies.length,
    perSecond: Math.round(latencies.length / seconds),
    p50ms: round3(percentile(latencies, 50)),
    p99ms: round3(percentile(latencies, 99)),
  };
}

interface ThreadRow {
  stateMachine: string;
  commandsPerSecond: number;
  /** CPU per command, in microseconds, by thread. */
  mainUs: number;
  leaderUs: number;
  followersUs: number[];
  otherUs: number;
  totalUs: number;
  /** CPU per second of wall time, in ms, by thread. */
  mainMsPerS: number;
  leaderMsPerS: number;
  followersMsPerS: number[];
  otherMsPerS: number;
}

async function perThread(spinMicros: number): Promise<ThreadRow> {
  return withGroup(spinMicros, async (g) => {
    const cpuOf = async () => {
      const st = await g.status();
      const proc = process.cpuUsage();
      return { leader: st.leader, peers: st.peers.map((p) => (p.running ? p.cpuMs ?? NaN : NaN)), main: threadCpuMs() ?? NaN, total: (proc.user + proc.system) / 1000 };
    };
    await drive('warm-up', 64, () => g.propose(1));
    const before = await cpuOf();
    const t0 = performance.now();
    // Warmed up just before: the CPU counted here is the measured part's alone.
    const row = await drive(`apply ${spinMicros} us`, 64, () => g.propose(1), 0);
    const wall = (performance.now() - t0) / 1000;
    const after = await cpuOf();
    const leader = after.leader;
    const peerMs = after.peers.map((v, i) => v - before.peers[i]!);
    const mainMs = after.main - before.main;
    const totalMs = after.total - before.total;
    const otherMs = totalMs - mainMs - peerMs.reduce((a, b) => a + b, 0);
    const n = row.done;
    const us = (ms: number) => round3((ms * 1000) / n);
    const perS = (ms: number) => Math.round(ms / wall);
    const followers = peerMs.filter((_, i) => i !== leader);
    return {
      stateMachine: spinMicros > 0 ? `apply spends ${spinMicros} us` : 'plain counter',
      commandsPerSecond: row.perSecond,
      mainUs: us(mainMs),
      leaderUs: us(peerMs[leader]!),
      followersUs: followers.map(us),
      otherUs: us(otherMs),
      totalUs: us(totalMs),
      mainMsPerS: perS(mainMs),
      leaderMsPerS: perS(peerMs[leader]!),
      followersMsPerS: followers.map(perS),
      otherMsPerS: perS(otherMs),
    };
  });
}

console.log(`Product API benchmark: ${PEERS} peers in worker threads, SQLite with fsync, the counter state machine, proposers and readers in the main thread, ${SECONDS} s per row after ${WARMUP_SECONDS} s of warm-up`);

const proposals: Row[] = [];
for (const c of CONCURRENCY) proposals.push(await withGroup(0, (g) => drive('propose', c, () => g.propose(1))));
console.log('\nProposals (RaftGroup.propose, each resolves with the state machine\'s result):');
console.log('| proposers | results | results/s | p50 ms | p99 ms |');
console.log('|---:|---:|---:|---:|---:|');
for (const r of proposals) console.log(`| ${r.concurrency} | ${r.done} | ${r.perSecond} | ${r.p50ms} | ${r.p99ms} |`);

const reads: { readers: number; readIndex: Row; lease: Row; log: Row }[] = [];
for (const c of READERS) {
  reads.push(
    await withGroup(0, async (g) => ({
      readers: c,
      readIndex: await drive('ReadIndex reads', c, () => g.read(null)),
      lease: await drive('lease reads', c, () => g.read(null, { consistency: 'lease' })),
      log: await drive('reads through the log', c, () => g.propose('get')),
    })),
  );
}
console.log('\nReads (reads/s, p50 / p99 ms):');
console.log('| readers | ReadIndex | lease | through the log |');
console.log('|---:|---:|---:|---:|');
const cell = (r: Row) => `${r.perSecond} (${r.p50ms} / ${r.p99ms})`;
for (const r of reads) console.log(`| ${r.readers} | ${cell(r.readIndex)} | ${cell(r.lease)} | ${cell(r.log)} |`);

const threads = [await perThread(0), await perThread(SPIN_MICROS)];
console.log('\nCPU by thread, 64 proposers (us per command, and ms per second of wall time):');
console.log('| state machine | commands/s | main | leader | follower | follower | rest of the process | total |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const t of threads) {
  console.log(
    `| ${t.stateMachine} | ${t.commandsPerSecond} | ${t.mainUs} (${t.mainMsPerS}) | ${t.leaderUs} (${t.leaderMsPerS}) | ${t.followersUs
      .map((u, i) => `${u} (${t.followersMsPerS[i]})`)
      .join(' | ')} | ${t.otherUs} (${t.otherMsPerS}) | ${t.totalUs} |`,
  );
}

const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = new URL(`api-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(file, JSON.stringify({ benchmark: 'api', date: new Date().toISOString(), machine, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, proposals, reads, threads }, null, 2) + '\n');
console.log(`\nwrote ${file.pathname}`);
