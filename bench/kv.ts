/**
 * npm run bench:kv: the key/value service on a 3-peer cluster with
 * durable storage (SQLite, fsync on), Clerks in this thread. Put throughput
 * and latency at 1, 16, 64 and 256 concurrent clients; the time a killed
 * leader's cluster takes to serve again and a restarted peer takes to catch
 * up; with --memory, 1,000,000 Puts over 10,000 keys with maxRaftState set
 * and the process's peak RSS. Prints tables, writes bench/results/kv-*.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RaftGroup, type GroupOptions } from '../lib/index.js';
import { Clerk, kvStateMachine } from '../lib/kv/index.js';

const PEERS = 3;
const SECONDS = 3;
const CONCURRENCY = [1, 16, 64, 256];
const VALUE = 'v'.repeat(64);
const MAX_RAFT_STATE = 1 << 20;
/**
 * The memory run's peers get a heap limit (peerHeapMb): V8 paces its
 * collections by the limit, and with its default (a sixth of this
 * machine's 24 GiB) each peer lets garbage pile up to tens of MiB before
 * collecting. The live state here is a few MiB per peer.
 */
const MEMORY_RUN_PEER_HEAP_MB = 1024;

interface Row {
  clients: number;
  puts: number;
  seconds: number;
  putsPerSecond: number;
  p50ms: number;
  p99ms: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const round3 = (x: number) => Number(x.toFixed(3));

async function withCluster<T>(fn: (c: RaftGroup) => Promise<T>, extra: Partial<GroupOptions> = {}): Promise<T> {
  mkdirSync('data', { recursive: true });
  const dir = mkdtempSync(join('data', 'bench-kv-'));
  const c = await RaftGroup.open({ peers: PEERS, dataDir: dir, stateMachine: kvStateMachine, snapshotThreshold: MAX_RAFT_STATE, ...extra });
  try {
    return await fn(c);
  } finally {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function leaderOf(c: RaftGroup): Promise<number> {
  for (;;) {
    const leader = (await c.status()).leader;
    if (leader >= 0) return leader;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `count` Clerks on one handle: one channel per peer for all of them, so their requests travel together. */
function clerks(c: RaftGroup, count: number): Clerk[] {
  const handle = c.handle();
  return Array.from({ length: count }, () => Clerk.connect(handle));
}

async function peerStatus(c: RaftGroup, i: number) {
  const p = (await c.status()).peers[i]!;
  if (!p.running) throw new Error(`peer ${i} is not running`);
  return p;
}

async function throughput(c: RaftGroup, clients: number): Promise<Row> {
  const cks: Clerk[] = clerks(c, clients);
  await cks[0]!.get('warm-up');
  const latencies: number[] = [];
  let stop = false;
  const started = performance.now();
  const progress = setInterval(() => process.stdout.write(`\r  ${clients} clients: ${latencies.length} puts...`), 500);
  const runs = cks.map(async (ck, k) => {
    let n = 0;
    while (!stop) {
      const t0 = performance.now();
      await ck.put(`key-${k}-${n++ % 100}`, VALUE);
      latencies.push(performance.now() - t0);
    }
  });
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  stop = true;
  await Promise.all(runs);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(progress);
  process.stdout.write('\r'.padEnd(60) + '\r');
  for (const ck of cks) ck.close();
  latencies.sort((a, b) => a - b);
  return {
    clients,
    puts: latencies.length,
    seconds: round3(seconds),
    putsPerSecond: Math.round(latencies.length / seconds),
    p50ms: round3(percentile(latencies, 50)),
    p99ms: round3(percentile(latencies, 99)),
  };
}

async function restart(c: RaftGroup): Promise<{ serveAgainMs: number; catchUpMs: number }> {
  const ck = clerks(c, 1)[0]!;
  for (let i = 0; i < 2000; i++) await ck.put(`r${i % 50}`, VALUE);
  const leader = await leaderOf(c);
  const t0 = performance.now();
  await c.crash(leader);
  await ck.put('after-crash', 'x');
  const serveAgainMs = performance.now() - t0;
  const t1 = performance.now();
  await c.restart(leader);
  const target = (await peerStatus(c, await leaderOf(c))).commitIndex;
  while ((await peerStatus(c, leader)).appliedIndex < target) await new Promise((r) => setTimeout(r, 2));
  const catchUpMs = performance.now() - t1;
  ck.close();
  return { serveAgainMs: round3(serveAgainMs), catchUpMs: round3(catchUpMs) };
}

async function memory(c: RaftGroup): Promise<{ puts: number; seconds: number; peakRssMiB: number }> {
  const total = 1_000_000;
  const clients = 64;
  const cks = clerks(c, clients);
  let next = 0;
  const t0 = performance.now();
  const progress = setInterval(() => process.stderr.write(`\r  memory: ${next} / ${total} puts, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`), 1000);
  await Promise.all(
    cks.map(async (ck) => {
      while (next < total) {
        const i = next++;
        await ck.put(`k${i % 10_000}`, VALUE);
      }
    }),
  );
  clearInterval(progress);
  process.stderr.write('\r'.padEnd(70) + '\r');
  for (const ck of cks) ck.close();
  return { puts: total, seconds: round3((performance.now() - t0) / 1000), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
}

const args = process.argv.slice(2);
if (args.includes('--memory-child')) {
  // The memory run's own process: its peak RSS is this cluster's alone.
  const mem = await withCluster(memory, { peerHeapMb: MEMORY_RUN_PEER_HEAP_MB });
  process.stdout.write(JSON.stringify(mem) + '\n');
  process.exit(0);
}

/** The memory run in a child process, so the peak RSS is not the earlier rows'. */
function memoryInChild(): Promise<{ puts: number; seconds: number; peakRssMiB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--memory-child'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`the memory run exited with code ${String(code)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch (e) {
        reject(e);
      }
    });
  });
}

console.log(`Key/value benchmark: RaftGroup of ${PEERS} peers in worker threads running the key/value state machine, SQLite with fsync, 64-byte values, Clerks in the main thread sharing one channel per peer, ${SECONDS} s per row`);
const rows: Row[] = [];
for (const n of CONCURRENCY) rows.push(await withCluster((c) => throughput(c, n)));
console.log('| clients | puts | puts/s | p50 ms | p99 ms |');
console.log('|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.clients} | ${r.puts} | ${r.putsPerSecond} | ${r.p50ms} | ${r.p99ms} |`);
const rs = await withCluster(restart);
console.log(`leader killed: serving again after ${rs.serveAgainMs.toFixed(0)} ms; the restarted peer caught up in ${rs.catchUpMs.toFixed(0)} ms`);
const mem = args.includes('--memory') ? await memoryInChild() : undefined;
if (mem) console.log(`memory: ${mem.puts} puts over 10,000 keys in ${mem.seconds} s (peerHeapMb ${MEMORY_RUN_PEER_HEAP_MB}), peak RSS of that run's process ${mem.peakRssMiB} MiB`);
const rss = process.resourceUsage().maxRSS;
console.log(`peak RSS ${(rss / 1024).toFixed(0)} MiB`);
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = new URL(`kv-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(file, JSON.stringify({ benchmark: 'kv', date: new Date().toISOString(), machine, peakRssKiB: rss, rows, restart: rs, memory: mem }, null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
