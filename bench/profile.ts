/**
 * npm run bench:profile: where the CPU goes, thread by thread. The
 * workload of the side-by-side benchmark (closed-loop Puts of 100-byte
 * values, each client cycling through 1,000 keys of its own, Clerks on one
 * handle, 3 peers on SQLite with fsync) at 64 and 256 clients, and for each
 * row the CPU per Put of the main thread (the clients), the leader, each
 * follower and the process's other threads (V8's platform workers: garbage
 * collection and compilation), read from /proc; with the batching figures
 * (Readies, log writes and entries per write, per peer and second). Each
 * row is measured after a warm-up of the same workload (JIT compilation,
 * the first checkpoints), then the design's skeleton (bench/floor.ts:
 * messages and durable commits, nothing else) runs with the same clients
 * and is measured the same way, thread by thread, as the floor to read
 * each thread's number against.
 * Flags: --clients 64,256, --seconds 8, --keys-per-client 1000,
 * --warm-up 2 (seconds, not measured, before every row).
 * Prints two tables, writes bench/results/profile-*.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { RaftGroup, type PeerStatus } from '../lib/index.js';
import { Clerk, kvStateMachine } from '../lib/kv/index.js';
import { closedLoop, percentile, round3 } from './workload.js';
import { measureRoundFloor, type SkeletonCpu } from './floor.js';
import { spent, threadTimes } from './thread-times.js';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}
function positiveInts(name: string, def: string): number[] {
  const v = flag(name, def)
    .split(',')
    .map((x) => Number(x));
  if (v.length === 0 || v.some((x) => !Number.isSafeInteger(x) || x < 1)) {
    console.error(`--${name} must be positive integers separated by commas, got ${flag(name, def)}`);
    process.exit(2);
  }
  return v;
}

const CLIENTS = positiveInts('clients', '64,256');
const [SECONDS] = positiveInts('seconds', '8');
const [KEYS_PER_CLIENT] = positiveInts('keys-per-client', '1000');
const WARM_UP = Number(flag('warm-up', '2'));
if (!Number.isFinite(WARM_UP) || WARM_UP < 0 || WARM_UP > 600) {
  console.error(`--warm-up must be a number of seconds in [0, 600], got ${flag('warm-up', '2')}`);
  process.exit(2);
}
const VALUE = 'v'.repeat(100);

interface Row {
  clients: number;
  keysPerClient: number;
  puts: number;
  putsPerSecond: number;
  p50ms: number;
  p99ms: number;
  /** Microseconds of CPU per Put (the whole process also split into user and system time). */
  cpu: { total: number; user: number; system: number; main: number; leader: number; followers: number[]; otherThreads: number; otherThreadCount: number };
  /** The design's skeleton with the same clients right after (bench/floor.ts measureRoundFloor): Puts/s and CPU per Put by thread. */
  skeleton: { putsPerSecond: number; cpu?: SkeletonCpu };
  /** Per peer and second of the row: Readies handled, log writes, and entries per write. */
  batching: { role: 'leader' | 'follower'; readiesPerSecond: number; writesPerSecond: number; entriesPerWrite: number }[];
}

async function row(clients: number): Promise<Omit<Row, 'skeleton'>> {
  mkdirSync('data', { recursive: true });
  const dir = mkdtempSync(join('data', 'bench-profile-'));
  const g = await RaftGroup.open({ peers: 3, dataDir: dir, stateMachine: kvStateMachine, snapshotThreshold: 1 << 20 });
  try {
    const handle = g.handle();
    const clerks = Array.from({ length: clients }, () => Clerk.connect(handle));
    await clerks[0]!.get('warm-up');
    const load = (seconds: number, label: string) =>
      closedLoop(
        { clients, keysPerClient: KEYS_PER_CLIENT, seconds, value: VALUE, onProgress: (n, s) => process.stderr.write(`\r  ${clients} clients${label}: ${n} puts, ${s.toFixed(0)} s`) },
        (k, key, value) => clerks[k]!.put(key, value),
      );
    if (WARM_UP > 0) await load(WARM_UP, ' (warm-up)');
    const peers = async () => (await g.status()).peers.map((p) => (p.running ? (p as PeerStatus) : undefined));
    const before = { peers: await peers(), threads: threadTimes(), usage: process.cpuUsage() };
    const result = await load(SECONDS, '');
    process.stderr.write('\r'.padEnd(50) + '\r');
    const after = { peers: await peers(), threads: threadTimes(), usage: process.cpuUsage(before.usage) };
    for (const ck of clerks) ck.close();
    const leader = (await g.status()).leader;
    const us = (ms: number) => round3((ms * 1000) / result.puts);
    const peerMs = after.peers.map((p, i) => (p?.cpuMs ?? NaN) - (before.peers[i]?.cpuMs ?? NaN));
    const mainTid = String(process.pid);
    const mainTime = after.threads.has(mainTid) ? spent(before.threads, after.threads, mainTid) : { user: NaN, system: NaN };
    const mainMs = mainTime.user + mainTime.system;
    const total = (after.usage.user + after.usage.system) / 1000;
    const peerSum = peerMs.reduce((a, b) => a + b, 0);
    // Threads other than main and the peers: those that ran in both samples and are not a peer's (peers' own numbers match theirs).
    let others = 0;
    for (const tid of after.threads.keys()) {
      const t = spent(before.threads, after.threads, tid);
      if (tid !== mainTid && t.user + t.system > 0) others++;
    }
    others = Math.max(0, others - 3);
    return {
      clients,
      keysPerClient: KEYS_PER_CLIENT,
      puts: result.puts,
      putsPerSecond: Math.round(result.puts / result.seconds),
      p50ms: round3(percentile(result.latencies, 50)),
      p99ms: round3(percentile(result.latencies, 99)),
      cpu: {
        total: us(total),
        user: us(after.usage.user / 1000),
        system: us(after.usage.system / 1000),
        main: us(mainMs),
        leader: us(peerMs[leader] ?? NaN),
        followers: peerMs.filter((_, i) => i !== leader).map(us),
        otherThreads: us(total - mainMs - peerSum),
        otherThreadCount: others,
      },
      batching: after.peers.map((p, i) => {
        const q = before.peers[i];
        const writes = (p?.entryWrites ?? NaN) - (q?.entryWrites ?? NaN);
        return {
          role: i === leader ? 'leader' : 'follower',
          readiesPerSecond: Math.round(((p?.readies ?? NaN) - (q?.readies ?? NaN)) / result.seconds),
          writesPerSecond: Math.round(writes / result.seconds),
          entriesPerWrite: round3(((p?.entriesWritten ?? NaN) - (q?.entriesWritten ?? NaN)) / writes),
        };
      }),
    };
  } finally {
    await g.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The skeleton with `clients`, after the same warm-up (at least its own 1 s), for as long as a row. */
async function skeleton(clients: number): Promise<Row['skeleton']> {
  process.stderr.write(`\r  ${clients} clients: the skeleton...`);
  const r = await measureRoundFloor('data', clients, SECONDS * 1000, Math.max(1, WARM_UP) * 1000);
  process.stderr.write('\r'.padEnd(50) + '\r');
  return { putsPerSecond: r.putsPerSecond, ...(r.cpu ? { cpu: r.cpu } : {}) };
}

console.log(
  `CPU per Put by thread: 3 peers on SQLite with fsync, closed-loop Puts of 100-byte values, ${KEYS_PER_CLIENT} keys per client, Clerks in the main thread on one handle, ${SECONDS} s per row`,
);
const rows: Row[] = [];
for (const n of CLIENTS) {
  const ours = await row(n);
  rows.push({ ...ours, skeleton: await skeleton(n) });
}
console.log('| clients | Puts/s | p50 ms | p99 ms | main µs | leader µs | followers µs | other threads µs | total µs (user + system) |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const c = r.cpu;
  console.log(
    `| ${r.clients} | ${r.putsPerSecond} | ${r.p50ms} | ${r.p99ms} | ${c.main} | ${c.leader} | ${c.followers.join(' / ')} | ${c.otherThreads} (${c.otherThreadCount} threads) | ${c.total} (${c.user} + ${c.system}) |`,
  );
}
console.log('The same clients on the design\'s skeleton (bench/floor.ts: messages and durable commits only), CPU per Put by thread:');
console.log('| clients | Puts/s | main µs | leader µs | followers µs | other threads µs | total µs (user + system) |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const c = r.skeleton.cpu;
  if (!c) console.log(`| ${r.clients} | ${r.skeleton.putsPerSecond} | (no per-thread times on this system) | | | | |`);
  else {
    const total = round3(c.total.user + c.total.system);
    console.log(`| ${r.clients} | ${r.skeleton.putsPerSecond} | ${c.main} | ${c.leader} | ${c.followers.join(' / ')} | ${c.otherThreads} | ${total} (${c.total.user} + ${c.total.system}) |`);
  }
}
for (const r of rows) {
  const b = r.batching.map((x) => `${x.role} ${x.readiesPerSecond} Readies/s, ${x.writesPerSecond} writes/s, ${x.entriesPerWrite} entries/write`).join('; ');
  console.log(`${r.clients} clients: ${b}`);
}
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const out = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(out, { recursive: true });
const file = new URL(`profile-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, out);
writeFileSync(file, JSON.stringify({ benchmark: 'profile', date: new Date().toISOString(), machine, warmUpSeconds: WARM_UP, rows }, null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
