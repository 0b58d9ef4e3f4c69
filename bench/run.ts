/**
 * npm run bench: raw Raft commit throughput and latency on a 3-peer cluster
 * in this process (64-byte commands, volatile storage), at several numbers
 * of concurrent proposers. Prints a table and writes bench/results/*.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { Cluster } from '../lib/cluster.js';
import { PeerNotRunningError } from '../lib/errors.js';

const PEERS = 3;
const SECONDS = 3;
const CONCURRENCY = [1, 16, 64, 256];
const COMMAND = 'x'.repeat(61); // msgpack: 64 bytes with its header

interface Row {
  concurrency: number;
  commits: number;
  seconds: number;
  commitsPerSecond: number;
  p50ms: number;
  p99ms: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function leaderOf(c: Cluster): Promise<number> {
  for (;;) {
    for (let i = 0; i < PEERS; i++) if ((await c.getState(i)).isLeader) return i;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function measure(concurrency: number): Promise<Row> {
  const c = new Cluster({ peers: PEERS });
  // index -> resolve, fired when the leader applies that index (it is committed)
  const waiting = new Map<number, () => void>();
  // The apply can arrive before Start's answer: remember how far the leader applied.
  let appliedUpTo = 0;
  let leader = -1;
  try {
    for (let i = 0; i < PEERS; i++) {
      await c.start(i, (peer, entries) => {
        if (peer !== leader) return;
        for (const e of entries) {
          appliedUpTo = Math.max(appliedUpTo, e.index);
          waiting.get(e.index)?.();
          waiting.delete(e.index);
        }
      });
    }
    c.connectAll();
    leader = await leaderOf(c);
    const latencies: number[] = [];
    let stop = false;
    const client = async () => {
      while (!stop) {
        const t0 = performance.now();
        let r;
        try {
          r = await c.startCommand(leader, COMMAND);
        } catch (e) {
          if (e instanceof PeerNotRunningError) return;
          throw e;
        }
        if (!r.isLeader) throw new Error('leadership moved during the benchmark');
        if (r.index > appliedUpTo) await new Promise<void>((resolve) => waiting.set(r.index, resolve));
        latencies.push(performance.now() - t0);
      }
    };
    const started = performance.now();
    const clients = Array.from({ length: concurrency }, client);
    const progress = setInterval(() => process.stdout.write(`\r  ${concurrency} clients: ${latencies.length} commits...`), 500);
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    stop = true;
    await Promise.all(clients);
    clearInterval(progress);
    process.stdout.write('\r'.padEnd(60) + '\r');
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      concurrency,
      commits: latencies.length,
      seconds: Number(seconds.toFixed(2)),
      commitsPerSecond: Math.round(latencies.length / seconds),
      p50ms: Number(percentile(latencies, 50).toFixed(3)),
      p99ms: Number(percentile(latencies, 99).toFixed(3)),
    };
  } finally {
    await c.close();
  }
}

const rows: Row[] = [];
console.log(`Raft commit benchmark: ${PEERS} peers in worker threads, 64-byte commands, volatile storage, ${SECONDS} s per row`);
for (const n of CONCURRENCY) rows.push(await measure(n));
console.log('| clients | commits | commits/s | p50 ms | p99 ms |');
console.log('|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.concurrency} | ${r.commits} | ${r.commitsPerSecond} | ${r.p50ms} | ${r.p99ms} |`);
const rss = process.resourceUsage().maxRSS;
console.log(`peak RSS ${(rss / 1024).toFixed(0)} MiB`);
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = new URL(`raft-commit-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(file, JSON.stringify({ benchmark: 'raft-commit', date: new Date().toISOString(), machine, peakRssKiB: rss, rows }, null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
