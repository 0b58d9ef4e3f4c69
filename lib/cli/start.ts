/**
 * npm start: a 3-peer cluster in this process, each peer's state in its own
 * SQLite file under data/. Elect a leader, propose commands with a live
 * count, kill the leader's worker, watch a new leader take over and commits
 * continue, restart the dead peer from its file, and report commits per
 * second for each phase.
 */
import { join } from 'node:path';
import { Cluster } from '../cluster.js';
import { PeerNotRunningError } from '../errors.js';

const PEERS = 3;
const PHASE_MS = 3000;
const WINDOW = 256; // proposals kept in flight

const dataDir = join('data', `run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
const cluster = new Cluster({ peers: PEERS, dataDir });
const tty = process.stdout.isTTY;
const committed = new Set<number>();
let nextValue = 0;

function onApply(_peer: number, entries: { command: unknown }[]): void {
  for (const e of entries) if (typeof e.command === 'number') committed.add(e.command);
}

async function findLeader(timeoutMs = 10_000): Promise<{ leader: number; term: number; ms: number }> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    for (let i = 0; i < PEERS; i++) {
      if (!cluster.isRunning(i)) continue;
      const s = await cluster.getState(i).catch(() => undefined);
      if (s?.isLeader) return { leader: i, term: s.term, ms: Date.now() - t0 };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no leader elected within ${timeoutMs} ms`);
}

/** Keep WINDOW proposals in flight against whoever leads, for `ms` milliseconds. */
async function propose(label: string, ms: number): Promise<number> {
  const before = committed.size;
  const t0 = Date.now();
  let leader = (await findLeader()).leader;
  let stop = false;
  let ticks = 0;
  const progress = setInterval(() => {
    const line = `  ${label}: ${committed.size - before} commits, leader ${leader}, ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    if (tty) process.stdout.write(`\r${line}   `);
    else if (++ticks % 5 === 0) console.log(line);
  }, 200);
  const worker = async () => {
    while (!stop) {
      try {
        const r = await cluster.startCommand(leader, nextValue++);
        if (!r.isLeader) leader = (await findLeader()).leader;
      } catch (e) {
        if (!(e instanceof PeerNotRunningError)) throw e;
        leader = (await findLeader()).leader;
      }
    }
  };
  const workers = Array.from({ length: WINDOW }, worker);
  await new Promise((r) => setTimeout(r, ms));
  stop = true;
  await Promise.all(workers);
  clearInterval(progress);
  const n = committed.size - before;
  const secs = (Date.now() - t0) / 1000;
  if (tty) process.stdout.write('\r');
  console.log(`  ${label}: ${n} commits in ${secs.toFixed(1)} s = ${Math.round(n / secs)} commits/s`.padEnd(70));
  return n;
}

async function main(): Promise<void> {
  console.log(`Starting ${PEERS} Raft peers, each in its own worker thread, storing to ${dataDir}/ (SQLite, fsync on)...`);
  for (let i = 0; i < PEERS; i++) await cluster.start(i, onApply);
  cluster.connectAll();
  const first = await findLeader();
  console.log(`Leader elected: peer ${first.leader} in term ${first.term} after ${first.ms} ms`);

  await propose('phase 1 (all peers up)', PHASE_MS);

  const victim = (await findLeader()).leader;
  console.log(`Killing the leader's worker (peer ${victim})...`);
  const killedAt = Date.now();
  await cluster.crash(victim);
  const next = await findLeader();
  console.log(`New leader: peer ${next.leader} in term ${next.term}, ${Date.now() - killedAt} ms after the kill`);

  await propose('phase 2 (one peer down)', PHASE_MS);

  console.log(`Restarting peer ${victim} in a new worker from its SQLite file (it recovers, then catches up)...`);
  await cluster.start(victim, onApply);
  cluster.connectAll();
  await propose('phase 3 (all peers up again)', PHASE_MS);

  // Every peer must end with the same applied prefix: read their status.
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < PEERS; i++) {
    const s = await cluster.status(i);
    console.log(`  peer ${i}: term ${s.term}, ${s.role}, commit ${s.commitIndex}, applied ${s.appliedIndex}`);
  }
  console.log(`Done: ${committed.size} distinct commands committed.`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cluster.close());
