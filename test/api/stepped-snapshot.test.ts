// Snapshots written a step at a time (StateMachine.beginSnapshot): the
// snapshot policy uses the writer instead of snapshot(), the peers go on
// applying and answering between its steps, and the snapshot is stored at
// the index where it began, so a peer restarted from it (and the log after
// it) has every command exactly once.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftGroup, type PeerStatus } from '../../lib/index.js';
import { STATS_PER_PEER, STAT_AHEAD, STAT_BEGUN, STAT_LAST_OVERLAPPED, STAT_STEPS, STAT_WHOLE } from '../fixtures/stepped-sm.js';

const module = new URL('../fixtures/stepped-sm.js', import.meta.url);
const STEPS = 200;
const PROPOSALS = 2000;

interface Run {
  stats: Int32Array;
  /** Status of every peer once the proposals are done. */
  peers: PeerStatus[];
  /** The two followers crashed and restarted while proposals went on. */
  restartedPeers: number[];
  /** Per restarted follower: was its latest finished snapshot, as it crashed, written while commands were applied? */
  overlappedAtCrash: boolean[];
  /** Every peer's total once all proposals are applied everywhere. */
  totals: number[];
}

async function run(t: { teardown(fn: () => void): void }, stateAtEnd: boolean): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'stepped-snapshot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stats = new SharedArrayBuffer(3 * STATS_PER_PEER * 4);
  const view = new Int32Array(stats);
  const g = await RaftGroup.open<number, number, 'total', number>({
    peers: 3,
    dataDir: dir,
    stateMachine: { module, options: { steps: STEPS, stepMicros: 100, stats, stateAtEnd } },
    snapshotThreshold: 1024,
    snapshotRatio: 0,
  });
  try {
    // Sixteen proposers at a time: commands keep arriving while snapshots are written.
    let next = 0;
    const proposers = Promise.all(Array.from({ length: 16 }, async () => {
      while (next < PROPOSALS) {
        next++;
        await g.propose(1);
      }
    }));
    const until = async (n: number) => {
      while (next < n) await new Promise((r) => setTimeout(r, 5));
    };
    // Each follower in turn comes back from its own file (its latest snapshot, then the log after it) while the leader goes on.
    await until(PROPOSALS / 2);
    const leader = (await g.status()).leader;
    const restartedPeers = [0, 1, 2].filter((p) => p !== leader);
    const overlappedAtCrash: boolean[] = [];
    for (const p of restartedPeers) {
      overlappedAtCrash.push(Atomics.load(view, p * STATS_PER_PEER + STAT_LAST_OVERLAPPED) === 1);
      await g.crash(p);
      await g.restart(p);
      await until(Math.min(PROPOSALS, next + PROPOSALS / 8));
    }
    await proposers;
    const peers = (await g.status()).peers.filter((p) => p.running) as PeerStatus[];
    const totals: number[] = [];
    for (let p = 0; p < 3; p++) {
      const deadline = Date.now() + 10_000;
      let total = -1;
      while (Date.now() < deadline) {
        total = await g.read('total', { consistency: 'stale', peer: p });
        if (total >= PROPOSALS) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      totals.push(total);
    }
    return { stats: view, peers, restartedPeers, overlappedAtCrash, totals };
  } finally {
    await g.close();
  }
}

const stat = (r: Run, peer: number, what: number) => r.stats[peer * STATS_PER_PEER + what]!;

t.test('the policy writes snapshots in steps while the group keeps serving, and each is stored where it began', async (t) => {
  const r = await run(t, false);
  t.equal(r.peers.length, 3);
  for (const p of r.peers) {
    const s = (what: number) => stat(r, p.id, what);
    // (A restarted follower may have been sent the leader's snapshot since, and taken none of its own.)
    if (!r.restartedPeers.includes(p.id)) t.ok(p.snapshotsTaken >= 2, `peer ${p.id} stored ${p.snapshotsTaken} snapshots`);
    t.ok(s(STAT_BEGUN) >= p.snapshotsTaken, `peer ${p.id} began ${s(STAT_BEGUN)} snapshots in steps`);
    t.ok(s(STAT_STEPS) >= STEPS * p.snapshotsTaken, `peer ${p.id}: ${s(STAT_STEPS)} steps, ${STEPS} for each snapshot`);
  }
  // A restarted follower may be sent the leader's snapshot, which the engine tries out on a whole copy of its own state first.
  const leader = [0, 1, 2].find((p) => !r.restartedPeers.includes(p))!;
  t.equal(stat(r, leader, STAT_WHOLE), 0, `the leader (peer ${leader}) never took a whole snapshot at once`);
  // The case that matters: commands were applied while a restarted follower's latest snapshot was written.
  t.ok(r.overlappedAtCrash.some((x) => x), `followers ${r.restartedPeers.join(' and ')}: latest snapshot written while commands were applied: ${r.overlappedAtCrash.join(', ')}`);
  for (const p of r.restartedPeers) t.equal(stat(r, p, STAT_AHEAD), 0, `peer ${p} restored no snapshot holding commands from after its index`);
  t.same(r.totals, [PROPOSALS, PROPOSALS, PROPOSALS], 'every peer, the restarted ones too, has every command exactly once');
});

t.test('a snapshot stored with the state as of its end instead is caught (planted bug)', async (t) => {
  const r = await run(t, true);
  const hit = r.restartedPeers.filter((_, k) => r.overlappedAtCrash[k]);
  t.ok(hit.length >= 1, `followers whose latest snapshot was written while commands were applied: ${hit.join(', ')}`);
  for (const p of hit) t.ok(stat(r, p, STAT_AHEAD) >= 1, `peer ${p} restored a snapshot holding commands from after its index`);
});
