/**
 * npm start: the key/value service on a 3-peer cluster in this process, each
 * peer's Raft state in its own SQLite file under data/ (fsync on). Concurrent
 * clients run Put, Append and Get with a live progress line; a third of the
 * way in, the leader's worker is killed, and two thirds in it is restarted
 * from its file. Then the recorded history is checked for linearizability,
 * every acknowledged Append is looked for in the final values, and the
 * throughput and latency are printed. Exit code 0 only if all of that holds.
 */
import { jobOptions } from './job-options.js';
import { LinearizabilityChecker } from '../check/checker.js';
import { KvOp, type KvOperation } from '../check/kv-model.js';
import { RaftGroup } from '../api/group.js';
import { Clerk } from '../kv/clerk.js';
import { kvStateMachine } from '../kv/index.js';
import { phaseStats } from './phase-stats.js';

const PEERS = 3;
const SHARED_KEYS = 10;
/** Small enough that the run takes snapshots and the restarted peer may need one. */
const MAX_RAFT_STATE = 64 * 1024;

const USAGE = `usage: npm start [-- --clients N] [--seconds S] [--data DIR]
  --clients N   concurrent clients (1..1024, default 16)
  --seconds S   length of the workload (3..3600, default 12)
  --data DIR    where the peers' SQLite files go (default data/run-<time>)`;



const nowNs = () => Number(process.hrtime.bigint());

interface Recorded extends KvOperation {
  phase: number;
}

const PHASES = ['all peers up', 'leader killed', 'peer restarted'];

async function leaderOf(group: RaftGroup): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < 10_000) {
    const leader = (await group.status()).leader;
    if (leader >= 0) return leader;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no leader within 10 s');
}

async function main(): Promise<number> {
  const opts = jobOptions(USAGE, [16, 1, 1024], [12, 3, 3600], 'run');
  const group = await RaftGroup.open({ peers: PEERS, dataDir: opts.dataDir, stateMachine: kvStateMachine, snapshotThreshold: MAX_RAFT_STATE });
  const checker = new LinearizabilityChecker();
  const onSignal = () => {
    console.log('\ninterrupted: stopping the cluster');
    void group.close().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  try {
    console.log(`Key/value service on ${PEERS} Raft peers, each in its own worker thread, stored in ${opts.dataDir}/ (SQLite, fsync on, snapshots past ${MAX_RAFT_STATE / 1024} KiB).`);
    console.log(`Leader elected: peer ${await leaderOf(group)}. Running ${opts.clients} clients for ${opts.seconds} s (Put and Get on ${SHARED_KEYS} shared keys, Append to each client's own keys).`);

    const history: Recorded[] = [];
    /** Per client: its own keys' values as its acknowledged Appends made them. */
    const expected: Map<string, string>[] = [];
    let phase = 0;
    let stop = false;
    // Clerks on one handle share its channel to each peer: their requests travel together.
    const handle = group.handle();
    const clerks: Clerk[] = Array.from({ length: opts.clients }, () => Clerk.connect(handle));

    const record = async (client: number, op: KvOperation['input']['op'], key: string, value: string, ck: Clerk) => {
      const call = nowNs();
      const at = phase;
      let out = '';
      if (op === KvOp.Get) out = await ck.get(key);
      else if (op === KvOp.Put) await ck.put(key, value);
      else await ck.append(key, value);
      history.push({ clientId: client, input: { op, key, value }, output: { value: out }, call, ret: nowNs(), phase: at });
    };

    const runs = clerks.map(async (ck, c) => {
      const own = new Map<string, string>();
      expected.push(own);
      for (let n = 0; !stop; n++) {
        const r = Math.random();
        if (r < 0.4) {
          const key = `c${c}-${n % 4}`;
          const token = `${c}.${n};`;
          await record(c, KvOp.Append, key, token, ck);
          own.set(key, (own.get(key) ?? '') + token);
        } else if (r < 0.7) {
          await record(c, KvOp.Put, `s${Math.floor(Math.random() * SHARED_KEYS)}`, `${c}.${n}`, ck);
        } else {
          await record(c, KvOp.Get, `s${Math.floor(Math.random() * SHARED_KEYS)}`, '', ck);
        }
      }
    });

    const t0 = Date.now();
    const tty = process.stdout.isTTY;
    let lastCount = 0;
    let lastAt = t0;
    let lines = 0;
    let leaderNow = await leaderOf(group);
    let down = -1;
    const progress = setInterval(() => {
      const now = Date.now();
      const rate = Math.round(((history.length - lastCount) * 1000) / Math.max(1, now - lastAt));
      lastCount = history.length;
      lastAt = now;
      const line = `  ${((now - t0) / 1000).toFixed(1).padStart(5)} s  ${PHASES[phase]!.padEnd(14)} ${String(history.length).padStart(8)} ops  ${String(rate).padStart(6)} ops/s  leader ${leaderNow}${down >= 0 ? `, peer ${down} down` : ''}`;
      if (tty) process.stdout.write(`\r${line}   `);
      else if (++lines % 4 === 0) console.log(line);
    }, 250);
    const say = (msg: string) => {
      if (tty) process.stdout.write('\r'.padEnd(90) + '\r');
      console.log(msg);
    };
    const refreshLeader = setInterval(() => {
      void leaderOf(group).then((l) => (leaderNow = l), () => {});
    }, 500);

    const third = (opts.seconds * 1000) / 3;
    await new Promise((r) => setTimeout(r, third));
    const victim = await leaderOf(group);
    const before = history.length;
    const killedAt = nowNs();
    await group.crash(victim);
    down = victim;
    phase = 1;
    say(`  killed the leader's worker (peer ${victim}) at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await new Promise((r) => setTimeout(r, third));
    const afterKill = history.slice(before).find((op) => op.call >= killedAt);
    const servedAgainMs = afterKill ? (afterKill.ret - killedAt) / 1e6 : NaN;
    await group.restart(victim);
    phase = 2;
    down = -1;
    say(`  restarted peer ${victim} in a new worker from its SQLite file at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await new Promise((r) => setTimeout(r, third));
    stop = true;
    await Promise.all(runs);
    const seconds = (Date.now() - t0) / 1000;
    clearInterval(progress);
    clearInterval(refreshLeader);
    say(`  ${history.length} operations by ${opts.clients} clients in ${seconds.toFixed(1)} s`);

    // Read every client's own keys back: each acknowledged Append must be
    // there exactly once and in order, and nothing else.
    const reader = clerks[0]!;
    let lost = 0;
    let checkedAppends = 0;
    for (const own of expected) {
      for (const [key, want] of own) {
        const call = nowNs();
        const got = await reader.get(key);
        history.push({ clientId: 0, input: { op: KvOp.Get, key, value: '' }, output: { value: got }, call, ret: nowNs(), phase: 2 });
        checkedAppends += want.split(';').length - 1;
        if (got !== want) {
          lost++;
          console.log(`  key ${key}: expected ${JSON.stringify(want.slice(-60))}, read ${JSON.stringify(got.slice(-60))}`);
        }
      }
    }
    for (const ck of clerks) ck.close();

    // The peers must agree on what they applied once the restarted one caught up.
    const peerStatus = async (i: number) => {
      const p = (await group.status()).peers[i]!;
      if (!p.running) throw new Error(`peer ${i} is not running`);
      return p;
    };
    const target = (await peerStatus(await leaderOf(group))).commitIndex;
    const caughtUpBy = Date.now() + 10_000;
    while ((await peerStatus(victim)).appliedIndex < target && Date.now() < caughtUpBy) await new Promise((r) => setTimeout(r, 20));

    console.log('');
    console.log('| phase | operations | ops/s | p50 ms | p99 ms |');
    console.log('|---|---:|---:|---:|---:|');
    const stats = phaseStats(history, PHASES.length);
    for (let p = 0; p < PHASES.length; p++) {
      const st = stats[p]!;
      console.log(`| ${PHASES[p]} | ${st.operations} | ${st.opsPerSecond} | ${st.p50Ms.toFixed(2)} | ${st.p99Ms.toFixed(2)} |`);
    }
    console.log(`The cluster served again ${servedAgainMs.toFixed(0)} ms after the leader was killed.`);
    for (let i = 0; i < PEERS; i++) {
      const s = await peerStatus(i);
      console.log(`  peer ${i}: term ${s.term}, ${s.role}, commit ${s.commitIndex}, applied ${s.appliedIndex}, snapshot ${s.snapshotIndex}`);
    }

    console.log(`\nNo acknowledged write lost: ${lost === 0 ? 'yes' : 'NO'} (${checkedAppends} acknowledged Appends on ${expected.reduce((k, m) => k + m.size, 0)} keys read back${lost ? `, ${lost} keys wrong` : ''}).`);
    const keys = new Set(history.map((op) => op.input.key)).size;
    console.log(`Checking ${history.length} operations on ${keys} keys for linearizability...`);
    const report = await checker.checkKv(history, { timeoutMs: 120_000 });
    const verdict = report.result === 'ok' ? 'linearizable' : report.result === 'illegal' ? `NOT linearizable (keys ${report.illegalKeys.join(', ')})` : `unknown: ${report.decided} of ${report.partitions} keys decided${report.memoryLimited > 0 ? ` (${report.memoryLimited} stopped at the memory budget)` : ' before the time limit'}`;
    console.log(`History: ${verdict} (${report.ms.toFixed(0)} ms).`);
    console.log(`Peers' SQLite files are in ${opts.dataDir}/.`);
    return lost === 0 && report.result === 'ok' ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    await checker.close();
    await group.close();
  }
}

process.exitCode = await main().catch((e) => {
  console.error(e);
  return 1;
});
