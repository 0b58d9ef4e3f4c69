/**
 * npm run bench:profile: where the CPU goes, thread by thread. The
 * workload of the side-by-side benchmark (closed-loop Puts of 100-byte
 * values, each client cycling through 1,000 keys of its own, Clerks on one
 * handle, 3 peers on SQLite with fsync) at 64 and 256 clients, and for each
 * row the CPU per Put of the main thread (the clients), the leader, each
 * follower and the process's other threads (V8's platform workers: garbage
 * collection and compilation), read from /proc; with the batching figures
 * (Readies, log writes and entries per write, per peer and second).
 * Flags: --clients 64,256, --seconds 8, --keys-per-client 1000.
 * Prints a table, writes bench/results/profile-*.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { RaftGroup, type PeerStatus } from '../lib/index.js';
import { Clerk, kvStateMachine } from '../lib/kv/index.js';
import { closedLoop, percentile, round3 } from './workload.js';

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
const VALUE = 'v'.repeat(100);

/** CPU time (ms) of every thread of this process, by thread id, from /proc/self/task. */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(tid, (Number(rest[11]) + Number(rest[12])) * 10);
  }
  return out;
}

interface Row {
  clients: number;
  keysPerClient: number;
  puts: number;
  putsPerSecond: number;
  p50ms: number;
  p99ms: number;
  /** Microseconds of CPU per Put. */
  cpu: { total: number; main: number; leader: number; followers: number[]; otherThreads: number; otherThreadCount: number };
  /** Per peer and second of the row: Readies handled, log writes, and entries per write. */
  batching: { role: 'leader' | 'follower'; readiesPerSecond: number; writesPerSecond: number; entriesPerWrite: number }[];
}

async function row(clients: number): Promise<Row> {
  mkdirSync('data', { recursive: true });
  const dir = mkdtempSync(join('data', 'bench-profile-'));
  const g = await RaftGroup.open({ peers: 3, dataDir: dir, stateMachine: kvStateMachine, snapshotThreshold: 1 << 20 });
  try {
    const handle = g.handle();
    const clerks = Array.from({ length: clients }, () => Clerk.connect(handle));
    await clerks[0]!.get('warm-up');
    const peers = async () => (await g.status()).peers.map((p) => (p.running ? (p as PeerStatus) : undefined));
    const before = { peers: await peers(), threads: threadCpu(), usage: process.cpuUsage() };
    const result = await closedLoop(
      { clients, keysPerClient: KEYS_PER_CLIENT, seconds: SECONDS, value: VALUE, onProgress: (n, s) => process.stderr.write(`\r  ${clients} clients: ${n} puts, ${s.toFixed(0)} s`) },
      (k, key, value) => clerks[k]!.put(key, value),
    );
    process.stderr.write('\r'.padEnd(50) + '\r');
    const after = { peers: await peers(), threads: threadCpu(), usage: process.cpuUsage(before.usage) };
    for (const ck of clerks) ck.close();
    const leader = (await g.status()).leader;
    const us = (ms: number) => round3((ms * 1000) / result.puts);
    const peerMs = after.peers.map((p, i) => (p?.cpuMs ?? NaN) - (before.peers[i]?.cpuMs ?? NaN));
    const mainTid = String(process.pid);
    const mainMs = (after.threads.get(mainTid) ?? NaN) - (before.threads.get(mainTid) ?? NaN);
    const total = (after.usage.user + after.usage.system) / 1000;
    const peerSum = peerMs.reduce((a, b) => a + b, 0);
    // Threads other than main and the peers: those that ran in both samples and are not a peer's (peers' own numbers match theirs).
    let others = 0;
    for (const [tid, ms] of after.threads) if (tid !== mainTid && before.threads.has(tid) && ms - before.threads.get(tid)! > 0) others++;
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

console.log(
  `CPU per Put by thread: 3 peers on SQLite with fsync, closed-loop Puts of 100-byte values, ${KEYS_PER_CLIENT} keys per client, Clerks in the main thread on one handle, ${SECONDS} s per row`,
);
const rows: Row[] = [];
for (const n of CLIENTS) rows.push(await row(n));
console.log('| clients | Puts/s | p50 ms | p99 ms | main µs | leader µs | followers µs | other threads µs | total µs |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const c = r.cpu;
  console.log(`| ${r.clients} | ${r.putsPerSecond} | ${r.p50ms} | ${r.p99ms} | ${c.main} | ${c.leader} | ${c.followers.join(' / ')} | ${c.otherThreads} (${c.otherThreadCount} threads) | ${c.total} |`);
}
for (const r of rows) {
  const b = r.batching.map((x) => `${x.role} ${x.readiesPerSecond} Readies/s, ${x.writesPerSecond} writes/s, ${x.entriesPerWrite} entries/write`).join('; ');
  console.log(`${r.clients} clients: ${b}`);
}
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const out = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(out, { recursive: true });
const file = new URL(`profile-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, out);
writeFileSync(file, JSON.stringify({ benchmark: 'profile', date: new Date().toISOString(), machine, rows }, null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
