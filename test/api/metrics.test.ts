// RaftGroup.metrics(): the peers' figures from their threads in a
// prom-client registry, labelled by peer.
import t from 'tap';
import { Registry } from 'prom-client';
import { RaftGroup } from '../../lib/index.js';
import { Clerk, kvStateMachine } from '../../lib/kv/index.js';

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

t.test('the group\'s registry: roles, proposals by outcome with their latency, durable writes, per peer', async (t) => {
  const g = await RaftGroup.open({ peers: 3, stateMachine: kvStateMachine });
  t.teardown(() => g.close());
  const mine = new Registry();
  const registry = await g.metrics(mine);
  t.equal(registry, mine, 'the metrics go into the registry given');
  const ck = Clerk.connect(g.handle());
  for (let i = 0; i < 30; i++) await ck.put(`k${i}`, 'v');
  ck.close();
  // A follower outside the quorum may still be catching up (one that booted
  // after the election is contacted at the pace for silent peers): look once
  // every peer has applied what committed.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const peers = (await g.status()).peers.filter((p) => p.running) as { appliedIndex: number; commitIndex: number }[];
    const committed = Math.max(...peers.map((p) => p.commitIndex));
    if ((peers.length === 3 && peers.every((p) => p.appliedIndex >= committed)) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const { leader } = await g.status();
  const text = await registry.metrics();
  const leaders = [0, 1, 2].filter((p) => sample(text, 'actor_raft_role', { peer: String(p), role: 'leader' }) === 1);
  t.same(leaders, [leader], 'exactly the leader reports role leader');
  const ok = [0, 1, 2].reduce((n, p) => n + (sample(text, 'actor_raft_proposals_total', { peer: String(p), outcome: 'Ok' }) ?? 0), 0);
  t.equal(ok, 30, 'the 30 Puts are counted once, as Ok');
  t.ok((sample(text, 'actor_raft_proposal_duration_seconds_count', { peer: String(leader) }) ?? 0) >= 30, 'with their latency');
  t.ok((sample(text, 'actor_raft_messages_sent_total', { peer: String(leader), type: 'Append' }) ?? 0) > 0, 'the leader\'s Append messages are counted');
  t.ok((sample(text, 'actor_raft_message_bytes_received_total', { peer: String(leader), type: 'AppendResponse' }) ?? 0) > 0, 'and the bytes of the answers it received');
  for (const p of [0, 1, 2]) {
    t.ok((sample(text, 'actor_raft_storage_save_duration_seconds_count', { peer: String(p) }) ?? 0) > 0, `peer ${p}: durable writes timed`);
    t.ok((sample(text, 'actor_raft_leader_changes_total', { peer: String(p) }) ?? 0) >= 1, `peer ${p}: saw a leader`);
  }
  t.equal(sample(text, 'actor_raft_commit_index', { peer: String(leader) }), (await g.status()).peers[leader]!.running ? ((await g.status()).peers[leader] as { commitIndex: number }).commitIndex : -1, 'the commit index is the peer\'s');
});
