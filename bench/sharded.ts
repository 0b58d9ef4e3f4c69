/**
 * npm run bench:sharded: the sharded key/value service on this machine.
 * Put throughput at 64 clients with 1, 2 and 3 replica groups (3 peers
 * each, SQLite, fsync on, 100-byte values, keys spread over all ten
 * shards), with the process's CPU per Put; then the time one shard holding
 * 10,000 keys of 100 bytes takes to move, from the Join that gives it to a
 * new group until that group serves it. Prints tables, writes
 * bench/results/sharded-*.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NSHARDS, key2shard } from '../lib/shard/config.js';
import { ShardedService } from '../lib/shard/deployment.js';
import { ShardStatus } from '../lib/shard/shardkv-state.js';
import type { GroupStateWire } from '../lib/shard/shardkv-service.js';
import { closedLoop, summarize, type Summary } from './workload.js';
import { commit, machineInfo } from './run-info.js';

const CLIENTS = 64;
const SECONDS = 8;
const VALUE = 'v'.repeat(100);
const MIGRATION_KEYS = 10_000;
const servers = (gid: number) => Array.from({ length: 3 }, (_, i) => `server-${gid}-${i}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function withService<T>(gids: number[], fn: (svc: ShardedService) => Promise<T>): Promise<T> {
  mkdirSync('data', { recursive: true });
  const dir = mkdtempSync(join('data', 'bench-sharded-'));
  const svc = await ShardedService.open({ gids, dataDir: dir, snapshotThreshold: 1 << 20 });
  try {
    return await fn(svc);
  } finally {
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Wait until every group has taken configuration `num` and nothing is in flight. */
async function settledAt(svc: ShardedService, num: number): Promise<void> {
  for (;;) {
    let done = true;
    for (const g of svc.groups.values()) {
      const st = (await g.read(['state'])) as GroupStateWire;
      const cur = st[1] as [number];
      if (cur[0] < num || !st[3].every((s) => s === ShardStatus.Absent || s === ShardStatus.Serving)) done = false;
    }
    if (done) return;
    await sleep(20);
  }
}

/** The workload's key with a digit in front, so that the keys spread over all ten shards. */
function spread(key: string): string {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return `${h % 10}${key}`;
}

interface ThroughputRow extends Summary {
  groups: number;
  clients: number;
  cpuUsPerPut: number;
}

async function throughput(groups: number): Promise<ThroughputRow> {
  const gids = Array.from({ length: groups }, (_, i) => 100 + i);
  return withService(gids, async (svc) => {
    const mck = svc.controllerClerk();
    await mck.join(new Map(gids.map((g) => [g, servers(g)])));
    await settledAt(svc, 1);
    mck.close();
    const clerks = Array.from({ length: CLIENTS }, () => svc.clerk());
    const cpu0 = process.cpuUsage();
    const r = await closedLoop({ clients: CLIENTS, keysPerClient: 100, seconds: SECONDS, value: VALUE }, (k, key, value) => clerks[k]!.put(spread(key), value));
    const cpu = process.cpuUsage(cpu0);
    for (const c of clerks) c.close();
    const s = summarize(r);
    if (r.errors > 0) throw new Error(`${r.errors} Puts failed: ${r.firstError}`);
    return { groups, clients: CLIENTS, ...s, cpuUsPerPut: Number(((cpu.user + cpu.system) / r.puts).toFixed(1)) };
  });
}

interface MigrationResult {
  keys: number;
  valueBytes: number;
  shard: number;
  msToInstalled: number;
  msToServedRead: number;
}

async function migration(): Promise<MigrationResult> {
  return withService([100, 101], async (svc) => {
    const mck = svc.controllerClerk();
    await mck.join({ 100: servers(100) });
    await settledAt(svc, 1);
    // Keys starting with "1" are in shard 9, the first a Join of 101 takes from 100 (its highest-numbered shards go).
    const shard = key2shard('1');
    const clerks = Array.from({ length: 64 }, () => svc.clerk());
    let next = 0;
    await Promise.all(
      clerks.map(async (ck) => {
        for (let i = next++; i < MIGRATION_KEYS; i = next++) await ck.put(`1-${i}`, VALUE);
      }),
    );
    for (const c of clerks) c.close();
    const g101 = svc.groups.get(101)!;
    const reader = svc.clerk();
    const t0 = performance.now();
    await mck.join({ 101: servers(101) });
    let installed = NaN;
    for (;;) {
      const st = (await g101.read(['state'])) as GroupStateWire;
      if (st[3][shard] === ShardStatus.Arrived || st[3][shard] === ShardStatus.Serving) {
        installed = performance.now() - t0;
        break;
      }
      await sleep(2);
    }
    const got = await reader.get(`1-${MIGRATION_KEYS - 1}`);
    const served = performance.now() - t0;
    reader.close();
    mck.close();
    if (got !== VALUE) throw new Error('the moved shard lost a key');
    const conf = await svc.controllerClerk().query();
    if (conf.shards[shard] !== 101) throw new Error(`shard ${shard} went to ${conf.shards[shard]}, not 101`);
    return { keys: MIGRATION_KEYS, valueBytes: VALUE.length, shard, msToInstalled: Math.round(installed), msToServedRead: Math.round(served) };
  });
}

const machine = machineInfo();
console.log(`Sharded key/value service: 3 peers per group on SQLite (fsync on), ${CLIENTS} clients, ${VALUE.length}-byte Puts over all ${NSHARDS} shards, ${SECONDS} s per row.`);
console.log(`machine: ${machine.cpus} CPUs (${machine.cpu}), ${machine.memGiB} GiB, Node ${machine.node}; commit ${commit() ?? 'unknown'}`);
const rows: ThroughputRow[] = [];
console.log('\n| groups | peer workers | Puts/s | p50 ms | p99 ms | CPU µs per Put |');
console.log('|---:|---:|---:|---:|---:|---:|');
for (const g of [1, 2, 3]) {
  const r = await throughput(g);
  rows.push(r);
  console.log(`| ${g} | ${3 * (g + 1)} | ${r.putsPerSecond} | ${r.p50ms} | ${r.p99ms} | ${r.cpuUsPerPut} |`);
}
const m = await migration();
console.log(`\nMoving shard ${m.shard} (${m.keys} keys of ${m.valueBytes} bytes) from group 100 to a joining group 101: installed ${m.msToInstalled} ms after the Join was sent, a read served there ${m.msToServedRead} ms after it.`);
const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
console.log(`Peak RSS of the process (at most 12 peer workers at once): ${peakRssMiB} MiB.`);
const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = new URL(`sharded-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(file, JSON.stringify({ benchmark: 'sharded', date: new Date().toISOString(), commit: commit() ?? null, machine, rows, migration: m, peakRssMiB }, null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
