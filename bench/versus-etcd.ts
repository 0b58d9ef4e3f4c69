/**
 * npm run bench:etcd (also the last part of npm run bench): our key/value
 * service side by side with a 3-member etcd on loopback, the same workload
 * driven by the same code (bench/workload.ts).
 *
 * Closed-loop Puts of 100-byte values, fsync on in both (etcd's default,
 * ours too); all concurrent clients share one client object (one etcd3
 * `Etcd3` on all three endpoints; for ours, Clerks on one group handle);
 * client k writes key-${k}-${n % keysPerClient}. Rows: 1, 16, 64 and 256
 * clients with 1,000 keys each, 8 s, and 256 clients with 4,000 keys each
 * (a 1,024,000-key space), 16 s. Row by row alternately, etcd then ours,
 * each on a fresh cluster in a fresh data directory, deleted afterwards.
 * After each row the floor is measured (bench/floor.ts): 4 thread hops and
 * one durable SQLite commit of that row's Puts with three writers, an
 * estimate of the fastest a closed-loop design of worker-thread peers on
 * SQLite could finish a Put here in that minute; its column is clients /
 * that time. Then the same floor measured whole: a skeleton of the design (a main thread,
 * a leader and two followers passing the row's requests and committing
 * them, nothing else) run closed-loop with the row's clients for 4 s.
 * Prints one markdown table line per row as it completes, a detailed table
 * at the end, and writes bench/results/versus-etcd-<time>.json.
 *
 * --ours nodes (npm run bench:nodes) runs ours as three `actor-raft serve`
 * processes instead, reached over loopback TCP with mutual TLS by Clerks
 * on one RemoteCluster; their CPU is read from /proc, as etcd's is.
 *
 * Both systems' data directories are under ./data/ (the same file system,
 * as kv.ts uses; a tmpfs /tmp would make fsync free); etcd's logs go to a
 * temporary directory, shown on failure and deleted after a clean run.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { RaftGroup } from '../lib/index.js';
import { Clerk, kvStateMachine } from '../lib/kv/index.js';
import { EtcdCluster, clockTicks, etcdVersion, findOnPath, tail } from './etcd-cluster.js';
import { NodeCluster } from './node-cluster.js';
import { closedLoop, round3, summarize, type LoopOptions, type LoopResult, type Summary } from './workload.js';
import { commit, machineInfo } from './run-info.js';
import { measureFloor, measureRoundFloor, type Floor, type RoundFloor } from './floor.js';

const PEERS = 3;
const VALUE = 'v'.repeat(100);
/** As in bench/kv.ts: snapshots past 1 MiB of Raft state. */
const SNAPSHOT_THRESHOLD = 1 << 20;
/** A Put's deadline in the etcd3 client (it retries on other members after a failure; the default is none). */
const ETCD_CALL_DEADLINE_MS = 10_000;

const USAGE = `usage: node dist/bench/versus-etcd.js [options]
  --seconds S           length of every row in seconds (default: 8, and 16 for the large-key row)
  --clients 1,16,...    run these client counts only (1,000 keys each unless --keys-per-client;
                        the large-key row is then not run)
  --keys-per-client N   keys each client cycles through in every row (the large-key row is then not run)
  --warm-up S           before every row, S seconds of the same workload on the same cluster
                        that are not measured (default 0: the row measures from the first Put)
  --only ours|etcd      run one system only
  --ours group|nodes    ours in this process (a RaftGroup; default) or as three node processes over TLS
  --help                this text
default rows: 1, 16, 64 and 256 clients x 1,000 keys (8 s), then 256 clients x 4,000 keys (16 s)`;

interface RowSpec {
  clients: number;
  keysPerClient: number;
  seconds: number;
}

type System = 'etcd' | 'ours';

interface SystemResult extends Summary {
  system: System;
  clients: number;
  keysPerClient: number;
  /** Distinct keys the clients wrote (counted by the clients). */
  keysWritten: number;
  /** etcd only: keys under the prefix key- in etcd after the row (a count-only range). */
  keysInStore?: number;
  /** Servers' CPU per Put: ours, the whole process (3 peers' workers, the Clerks, GC); etcd, its 3 processes. */
  cpuUsPerPut: number;
  /** etcd only: the bench process's CPU per Put (the etcd3 client, grpc-js and the loops). */
  clientCpuUsPerPut?: number;
  /** Ours in this process only: per peer, the snapshots it took and the ones it installed from the leader during the row. */
  snapshots?: { taken: number; installed: number }[];
  firstError?: string;
}

/** What both systems report for a row: the workload's summary and the servers' CPU per Put. */
function systemResult(system: System, spec: RowSpec, r: LoopResult, cpuUsPerPut: number): SystemResult {
  return {
    system,
    clients: spec.clients,
    keysPerClient: spec.keysPerClient,
    ...summarize(r),
    keysWritten: r.keysWritten,
    cpuUsPerPut: round3(cpuUsPerPut),
    firstError: r.firstError,
  };
}

interface RowResult {
  spec: RowSpec;
  etcd?: SystemResult;
  ours?: SystemResult;
  /** Measured right after the row: about the most a design of worker-thread peers on SQLite could do with these clients, summed from pieces measured apart (bench/floor.ts). */
  floor?: Floor & { putsPerSecond: number };
  /** The design's skeleton run closed-loop with these clients right after the row (bench/floor.ts measureRoundFloor). */
  skeleton?: RoundFloor;
}

class UsageError extends Error {}

function parseFlags(argv: string[]): { rows: RowSpec[]; only?: System; nodes: boolean; warmUp: number } {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        seconds: { type: 'string' },
        'warm-up': { type: 'string' },
        clients: { type: 'string' },
        'keys-per-client': { type: 'string' },
        only: { type: 'string' },
        ours: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (flag: string, s: string, min: number, max: number): number => {
    if (!/^\d+$/.test(s.trim())) throw new UsageError(`--${flag} wants whole numbers, got "${s}"`);
    const n = Number(s);
    if (n < min || n > max) throw new UsageError(`--${flag}: ${n} is outside [${min}, ${max}]`);
    return n;
  };
  let seconds: number | undefined;
  if (values.seconds !== undefined) {
    seconds = Number(values.seconds);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new UsageError(`--seconds wants a number of seconds in (0, 3600], got "${values.seconds}"`);
  }
  let warmUp = 0;
  if (values['warm-up'] !== undefined) {
    warmUp = Number(values['warm-up']);
    if (!Number.isFinite(warmUp) || warmUp < 0 || warmUp > 600) throw new UsageError(`--warm-up wants a number of seconds in [0, 600], got "${values['warm-up']}"`);
  }
  const clients = values.clients?.split(',').map((s) => int('clients', s, 1, 4096));
  const keys = values['keys-per-client'] === undefined ? undefined : int('keys-per-client', values['keys-per-client'], 1, 10_000_000);
  let only: System | undefined;
  if (values.only !== undefined) {
    if (values.only !== 'ours' && values.only !== 'etcd') throw new UsageError(`--only wants ours or etcd, got "${values.only}"`);
    only = values.only;
  }
  if (values.ours !== undefined && values.ours !== 'group' && values.ours !== 'nodes') throw new UsageError(`--ours wants group or nodes, got "${values.ours}"`);
  const nodes = values.ours === 'nodes';
  const rows: RowSpec[] = (clients ?? [1, 16, 64, 256]).map((c) => ({ clients: c, keysPerClient: keys ?? 1000, seconds: seconds ?? 8 }));
  // The large-key-space row belongs to the default set only: with --clients or --keys-per-client the rows are exactly the ones asked for.
  if (!clients && keys === undefined && !nodes) rows.push({ clients: 256, keysPerClient: 4000, seconds: seconds ?? 16 });
  return { rows, only, nodes, warmUp };
}

let flags: ReturnType<typeof parseFlags>;
try {
  flags = parseFlags(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  console.error(`versus-etcd: ${e.message}\n${USAGE}`);
  process.exit(2);
}

const etcdBin = flags.only === 'ours' ? undefined : findOnPath('etcd');
if (!etcdBin && flags.only !== 'ours') {
  const msg = 'etcd not found on PATH; install it with `apt-get install etcd-server`';
  if (flags.only === 'etcd') {
    console.error(`versus-etcd: ${msg}; --only etcd has nothing to run`);
    process.exit(1);
  }
  console.error(`${msg}; the etcd rows are skipped`);
}
const runEtcd = etcdBin !== undefined;
const runOurs = flags.only !== 'etcd';
const CLK_TCK = runEtcd || flags.nodes ? clockTicks() : 100;
const ETCD_VERSION = etcdBin ? etcdVersion(etcdBin) : undefined;

// ---- cleanup on every way out -------------------------------------------------

mkdirSync('data', { recursive: true });
const baseDir = mkdtempSync(join('data', 'versus-etcd-'));
const logDir = runEtcd ? mkdtempSync(join(tmpdir(), 'versus-etcd-logs-')) : undefined;
const abort = new AbortController();
let failed = false;

// Last resort, synchronous: whatever still runs is killed, the data removed.
process.on('exit', () => {
  EtcdCluster.killAll();
  NodeCluster.killAll();
  rmSync(baseDir, { recursive: true, force: true });
});

function onSignal(sig: NodeJS.Signals): void {
  if (abort.signal.aborted) {
    // A second Ctrl-C: no more waiting (the 'exit' handler kills etcd).
    process.exit(130);
  }
  process.stderr.write(`\n${sig}: stopping the row and the clusters...\n`);
  abort.abort();
  // Bounded: the row's clean-up has this long, then the 'exit' handler takes over.
  setTimeout(() => process.exit(130), 20_000).unref();
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

// ---- the rows -----------------------------------------------------------------

function progress(label: string, spec: RowSpec): LoopOptions['onProgress'] {
  return (puts, elapsed) => process.stderr.write(`\r  ${label}: ${elapsed.toFixed(1)} / ${spec.seconds} s, ${puts} puts (${Math.round(puts / Math.max(elapsed, 1e-3))}/s)   `);
}

function clearProgress(): void {
  process.stderr.write('\r'.padEnd(90) + '\r');
}

const cpuMicros = (u: NodeJS.CpuUsage) => u.user + u.system;

async function etcdRow(spec: RowSpec, index: number, label: string): Promise<SystemResult> {
  const token = `versus-etcd-${process.pid}-${index}-${randomBytes(4).toString('hex')}`;
  const cluster = await EtcdCluster.start({
    bin: etcdBin!,
    dataDir: join(baseDir, `etcd-${index}`),
    logDir: logDir!,
    token,
    // Start-up, the row, the drain and the stop with room to spare; the members die by then whatever happens here.
    lifetimeSeconds: spec.seconds + 300,
  });
  const client = new Etcd3({
    hosts: cluster.endpoints,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + ETCD_CALL_DEADLINE_MS }),
  });
  try {
    // grpc-js connects each member's channel on its first call, and the client picks a member at
    // random per call: enough reads that every channel is open before the clock starts.
    await Promise.all(Array.from({ length: 30 }, () => client.get('warm-up').string()));
    await warmUp(spec, label, (_k, key, value) => client.put(key).value(value).exec());
    const cpu0 = process.cpuUsage();
    const ticks0 = cluster.cpuTicks();
    const r = await closedLoop(
      { ...spec, value: VALUE, onProgress: progress(label, spec) },
      (_k, key, value) => client.put(key).value(value).exec(),
      abort.signal,
    );
    const ticks = cluster.cpuTicks() - ticks0;
    const clientCpu = cpuMicros(process.cpuUsage(cpu0));
    clearProgress();
    if (abort.signal.aborted) throw new Error('interrupted');
    const dead = cluster.members.find((m) => m.exited);
    if (dead) throw new Error(`etcd member ${dead.name} exited during the row`);
    const keysInStore = await client.getAll().prefix('key-').options({ deadline: Date.now() + 60_000 }).count();
    return {
      ...systemResult('etcd', spec, r, ((ticks / CLK_TCK) * 1e6) / r.puts),
      keysInStore,
      clientCpuUsPerPut: round3(clientCpu / r.puts),
    };
  } catch (e) {
    clearProgress();
    if (abort.signal.aborted) throw e;
    const logs = cluster.logs.map((l) => `--- ${l} (last lines)\n${tail(l)}`).join('\n');
    throw new Error(`etcd row failed: ${(e as Error).message}\n${logs}`);
  } finally {
    client.close();
    await cluster.stop();
  }
}

/**
 * --warm-up: the row's workload for that long on the row's cluster, not
 * measured (JIT compilation, connections, caches), so that the row
 * measures the steady state. Its Puts write the row's own keys.
 */
async function warmUp(spec: RowSpec, label: string, put: (client: number, key: string, value: string) => Promise<unknown>): Promise<void> {
  if (flags.warmUp <= 0) return;
  const r = await closedLoop({ ...spec, seconds: flags.warmUp, value: VALUE, onProgress: progress(`${label} (warm-up)`, { ...spec, seconds: flags.warmUp }) }, put, abort.signal);
  clearProgress();
  if (abort.signal.aborted) throw new Error('interrupted');
  if (r.errors > 0) throw new Error(`${r.errors} Puts failed in the warm-up: ${r.firstError}`);
}

async function oursRow(spec: RowSpec, index: number, label: string): Promise<SystemResult> {
  const dir = join(baseDir, `ours-${index}`);
  const g = await RaftGroup.open({ peers: PEERS, dataDir: dir, stateMachine: kvStateMachine, snapshotThreshold: SNAPSHOT_THRESHOLD });
  // One handle: every Clerk shares its channel to each peer (as bench/kv.ts).
  const handle = g.handle();
  const cks = Array.from({ length: spec.clients }, () => Clerk.connect(handle));
  try {
    // Until a leader serves, as bench/kv.ts does.
    await cks[0]!.get('warm-up');
    await warmUp(spec, label, (k, key, value) => cks[k]!.put(key, value));
    const cpu0 = process.cpuUsage();
    const r = await closedLoop({ ...spec, value: VALUE, onProgress: progress(label, spec) }, (k, key, value) => cks[k]!.put(key, value), abort.signal);
    const cpu = cpuMicros(process.cpuUsage(cpu0));
    clearProgress();
    if (abort.signal.aborted) throw new Error('interrupted');
    const snapshots = (await g.status()).peers.map((p) => (p.running ? { taken: p.snapshotsTaken, installed: p.snapshotsInstalled } : { taken: -1, installed: -1 }));
    return { ...systemResult('ours', spec, r, cpu / r.puts), snapshots };
  } catch (e) {
    clearProgress();
    throw e;
  } finally {
    for (const ck of cks) ck.close();
    await g.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function nodesRow(spec: RowSpec, index: number, label: string): Promise<SystemResult> {
  const dir = join(baseDir, `nodes-${index}`);
  const cluster = await NodeCluster.start(dir, PEERS, SNAPSHOT_THRESHOLD);
  const remote = cluster.remote();
  const cks = Array.from({ length: spec.clients }, () => remote.clerk());
  try {
    await cks[0]!.get('warm-up');
    await warmUp(spec, label, (k, key, value) => cks[k]!.put(key, value));
    const ticks0 = cluster.cpuTicks();
    const cpu0 = process.cpuUsage();
    const r = await closedLoop({ ...spec, value: VALUE, onProgress: progress(label, spec) }, (k, key, value) => cks[k]!.put(key, value), abort.signal);
    const ticks = cluster.cpuTicks() - ticks0;
    const clientCpu = cpuMicros(process.cpuUsage(cpu0));
    clearProgress();
    if (abort.signal.aborted) throw new Error('interrupted');
    if (cluster.exited()) throw new Error('a node exited during the row');
    return { ...systemResult('ours', spec, r, ((ticks / CLK_TCK) * 1e6) / r.puts), clientCpuUsPerPut: round3(clientCpu / r.puts) };
  } catch (e) {
    clearProgress();
    throw e;
  } finally {
    for (const ck of cks) ck.close();
    remote.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- output -------------------------------------------------------------------

const fmt = (x: number | undefined, digits: number) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));
const ratio = (ours: number | undefined, etcd: number | undefined) => (ours === undefined || etcd === undefined || !(etcd > 0) ? '—' : (ours / etcd).toFixed(2));

function tableLine(r: RowResult): string {
  const e = r.etcd;
  const o = r.ours;
  const f = r.floor;
  return `| ${r.spec.clients} | ${r.spec.keysPerClient} | ${fmt(e?.putsPerSecond, 0)} | ${fmt(o?.putsPerSecond, 0)} | ${ratio(o?.putsPerSecond, e?.putsPerSecond)} | ${fmt(e?.p50ms, 2)} | ${fmt(o?.p50ms, 2)} | ${ratio(o?.p50ms, e?.p50ms)} | ${fmt(e?.p99ms, 2)} | ${fmt(o?.p99ms, 2)} | ${ratio(o?.p99ms, e?.p99ms)} | ${fmt(e?.cpuUsPerPut, 1)} | ${fmt(o?.cpuUsPerPut, 1)} | ${fmt(f?.putsPerSecond, 0)} | ${ratio(f?.putsPerSecond, e?.putsPerSecond)} | ${fmt(r.skeleton?.putsPerSecond, 0)} | ${ratio(r.skeleton?.putsPerSecond, e?.putsPerSecond)} |`;
}

const machine = {
  ...machineInfo(),
  etcd: ETCD_VERSION ?? null,
  clockTicks: runEtcd ? CLK_TCK : null,
};

console.log(
  `Side by side with etcd${ETCD_VERSION ? ` ${ETCD_VERSION}` : ''}: ${PEERS} members/peers on 127.0.0.1, fsync on in both, closed-loop Puts of ${VALUE.length}-byte values; ` +
    `one etcd3 client on all ${PEERS} endpoints / Clerks on ${flags.nodes ? `one RemoteCluster (${PEERS} actor-raft serve processes, TCP with mutual TLS)` : 'one group handle'}; client k writes key-k-(n mod keys/client); ` +
    `a fresh cluster per row, etcd's row then ours. ratio = ours / etcd. CPU per Put: etcd, its ${PEERS} processes; ours, ${flags.nodes ? `its ${PEERS} node processes` : 'our whole process (peers, Clerks, GC)'}.`,
);
console.log(`machine: ${machine.cpus} CPUs (${machine.cpu}), ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}; commit ${commit() ?? 'unknown'}`);
console.log(`rows: ${flags.rows.map((r) => `${r.clients}x${r.keysPerClient} (${r.seconds} s)`).join(', ')}${flags.warmUp > 0 ? `, each after a ${flags.warmUp} s warm-up` : ''}${runEtcd ? '' : '; ours only'}${runOurs ? '' : '; etcd only'}`);
console.log('');
console.log('| clients | keys/client | etcd Puts/s | ours Puts/s | ratio | etcd p50 ms | ours p50 ms | p50 ratio | etcd p99 ms | ours p99 ms | p99 ratio | etcd µs CPU/Put | ours µs CPU/Put | floor Puts/s | floor / etcd | skeleton Puts/s | skeleton / etcd |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');

const results: RowResult[] = [];
let error: string | undefined;
try {
  for (const [i, spec] of flags.rows.entries()) {
    if (abort.signal.aborted) throw new Error('interrupted');
    const row: RowResult = { spec };
    results.push(row);
    const name = `row ${i + 1}/${flags.rows.length} ${spec.clients} clients x ${spec.keysPerClient} keys`;
    if (runEtcd) row.etcd = await etcdRow(spec, i, `${name}, etcd`);
    if (runOurs) row.ours = flags.nodes ? await nodesRow(spec, i, `${name}, ours (nodes)`) : await oursRow(spec, i, `${name}, ours`);
    process.stderr.write(`  ${name}: measuring the floor...`);
    const floor = await measureFloor(baseDir, spec.clients);
    clearProgress();
    row.floor = { ...floor, putsPerSecond: Math.floor((spec.clients * 1000) / floor.putMs) };
    process.stderr.write(`  ${name}: running the skeleton...`);
    row.skeleton = await measureRoundFloor(baseDir, spec.clients);
    clearProgress();
    console.log(tableLine(row));
  }
} catch (e) {
  failed = true;
  error = e instanceof Error ? e.message : String(e);
  console.error(`\nversus-etcd: ${error}`);
}

const all = results.flatMap((r) => [r.etcd, r.ours].filter((x): x is SystemResult => x !== undefined));
if (all.length) {
  console.log('');
  console.log('| system | clients | keys/client | puts | errors | s | Puts/s | p50 ms | p99 ms | max ms | µs CPU/Put (servers) | µs CPU/Put (bench process) | keys written | keys in etcd |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of all) {
    const server = s.system === 'etcd' || flags.nodes ? fmt(s.cpuUsPerPut, 1) : `${fmt(s.cpuUsPerPut, 1)} (whole process)`;
    console.log(
      `| ${s.system} | ${s.clients} | ${s.keysPerClient} | ${s.puts} | ${s.errors} | ${s.seconds} | ${s.putsPerSecond} | ${fmt(s.p50ms, 3)} | ${fmt(s.p99ms, 3)} | ${fmt(s.maxMs, 1)} | ${server} | ${s.system === 'etcd' || flags.nodes ? fmt(s.clientCpuUsPerPut, 1) : '(included)'} | ${s.keysWritten} | ${s.keysInStore ?? '—'} |`,
    );
  }
  for (const s of all) if (s.firstError) console.log(`${s.system} ${s.clients}x${s.keysPerClient}: ${s.errors} Puts failed, the first with ${s.firstError}`);
}

if (abort.signal.aborted) {
  // Interrupted: nothing worth keeping (the 'exit' handler removes the data).
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  process.exit(130);
}

if (all.length === 0) {
  if (logDir) console.error(`etcd logs kept in ${logDir}`);
  process.exit(1);
}

const date = new Date().toISOString();
const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = new URL(`${flags.nodes ? 'nodes-versus-etcd' : 'versus-etcd'}-${date.replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(
  file,
  JSON.stringify(
    {
      benchmark: 'versus-etcd',
      date,
      commit: commit() ?? null,
      complete: !failed,
      error: error ?? null,
      machine,
      etcdRows: runEtcd ? 'run' : flags.only === 'ours' ? 'not asked for (--only ours)' : 'skipped: etcd not found on PATH',
      workload: {
        peers: PEERS,
        valueBytes: VALUE.length,
        fsync: true,
        closedLoop: true,
        warmUpSeconds: flags.warmUp,
        keys: 'client k writes key-${k}-${n % keysPerClient}',
        etcdClient: 'etcd3 1.x, one Etcd3 on all endpoints (it picks a member at random per call)',
        oursClient: flags.nodes
          ? 'Clerks on one RemoteCluster: 3 actor-raft serve processes on loopback, TCP with mutual TLS (TLS 1.3), snapshotThreshold 1 MiB'
          : 'Clerks on one RaftGroup handle, snapshotThreshold 1 MiB',
        ratio: 'ours / etcd',
        cpu: flags.nodes
          ? 'etcd and ours: utime+stime of the 3 server processes from /proc/<pid>/stat; bench process: process.cpuUsage()'
          : 'etcd: utime+stime of its 3 processes from /proc/<pid>/stat; etcd bench process: process.cpuUsage(); ours: process.cpuUsage() of the whole process (all threads)',
        percentiles: 'nearest rank',
        floor:
          'per row, measured just after it (bench/floor.ts): 4 one-way hops between waiting worker threads + 1 SQLite commit (WAL, synchronous FULL) of `clients` 100-byte rows with 3 writers at once; floor putsPerSecond = clients / that time, an estimate (pieces measured apart) of the most a closed-loop design of worker-thread peers on SQLite could do here; the skeleton measures it whole',
        skeleton:
          'per row, after the floor (bench/floor.ts measureRoundFloor): the design with nothing but its messages and commits, run closed-loop with the row\'s clients for 4 s after 1 s unmeasured: each turn\'s requests (100 bytes each) in one message to a leader thread, posted on to two follower threads, committed by all three (WAL, synchronous FULL), answered once the leader\'s commit and one follower\'s are in; Puts/s, mean round, and µs of CPU per Put by thread (main, leader, followers, other threads) and of the whole process as user and system time, from /proc',
      },
      rows: results,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${file.pathname}`);
if (failed) {
  if (logDir) console.error(`etcd logs kept in ${logDir}`);
  process.exit(1);
}
if (logDir) rmSync(logDir, { recursive: true, force: true });
process.exit(0);
