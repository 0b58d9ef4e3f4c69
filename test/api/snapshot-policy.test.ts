// The snapshot policy: with snapshotRatio r a peer snapshots only once its
// Raft state has passed the threshold and r times its latest snapshot, so
// a table that keeps growing is not written out again every few thousand
// commands; with r = 0 (the lab's rule) the threshold alone decides.
import t from 'tap';
import { OptionError, RaftGroup, type PeerStatus } from '../../lib/index.js';
import { Clerk, kvStateMachine } from '../../lib/kv/index.js';

const THRESHOLD = 8192;
const KEYS = 2000;

async function fill(ratio: number): Promise<PeerStatus[]> {
  const g = await RaftGroup.open({ peers: 3, stateMachine: kvStateMachine, snapshotThreshold: THRESHOLD, snapshotRatio: ratio });
  try {
    const handle = g.handle();
    const clerks = Array.from({ length: 16 }, () => Clerk.connect(handle));
    // Distinct keys: the table (and so every snapshot) grows with every Put.
    await Promise.all(clerks.map(async (ck, k) => {
      for (let n = k; n < KEYS; n += clerks.length) await ck.put(`key-${n}`, 'v'.repeat(100));
    }));
    for (const ck of clerks) ck.close();
    // A follower need not be caught up when the last Put returns (two peers
    // make a quorum): look once every peer has applied all that committed.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const peers = (await g.status()).peers.filter((p) => p.running) as PeerStatus[];
      const committed = Math.max(...peers.map((p) => p.commitIndex));
      if (peers.every((p) => p.appliedIndex >= committed) || Date.now() > deadline) return peers;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await g.close();
  }
}

t.test('snapshotRatio 1: few snapshots of a growing table, and the log stays within the bound', async (t) => {
  const plain = await fill(0);
  const ratio = await fill(1);
  for (const peers of [plain, ratio]) t.equal(peers.length, 3, 'three peers ran');
  const taken = (ps: PeerStatus[]) => Math.max(...ps.map((p) => p.snapshotsTaken));
  t.ok(taken(plain) >= 20, `threshold alone: ${taken(plain)} snapshots`);
  t.ok(taken(ratio) >= 2, `ratio 1: ${taken(ratio)} snapshots`);
  t.ok(taken(ratio) * 4 <= taken(plain), `ratio 1 took at most a quarter as many (${taken(ratio)} vs ${taken(plain)})`);
  for (const p of ratio) {
    t.ok(p.snapshotBytes > 100 * KEYS / 4, `peer ${p.id}: its latest snapshot holds much of the table (${p.snapshotBytes} bytes)`);
    // One drain's worth of entries may pass the bound before the policy looks again.
    t.ok(p.raftStateBytes <= Math.max(THRESHOLD, p.snapshotBytes) + 64 * 1024, `peer ${p.id}: Raft state ${p.raftStateBytes} bytes, within the snapshot's size plus a drain`);
  }
});

t.test('snapshotRatio must be a number from 0 to 1000', async (t) => {
  for (const bad of [-1, 1001, Number.NaN, '1' as unknown as number]) {
    await t.rejects(RaftGroup.open({ peers: 3, stateMachine: kvStateMachine, snapshotRatio: bad }), OptionError, `${String(bad)} is refused`);
  }
});
