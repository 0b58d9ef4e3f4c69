// Membership changes through the in-process API: a group grows from 3 to 5
// and shrinks back to 3 (the leader among those removed) under client
// load, with no acknowledged write lost and the history linearizable;
// refused changes are typed errors with the configuration unchanged.
import t from 'tap';
import { LinearizabilityChecker } from '../../lib/check/checker.js';
import { readBack, startKvLoad } from '../fixtures/kv-load.js';
import { MembershipError, RaftGroup } from '../../lib/index.js';
import { Clerk, kvStateMachine } from '../../lib/kv/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('grow 3 -> 5 and shrink 5 -> 3 under load, the leader removed too: nothing lost, linearizable', async (t) => {
  // A small snapshot threshold: the new peers catch up from a snapshot.
  const g = await RaftGroup.open({ peers: 3, stateMachine: kvStateMachine, snapshotThreshold: 16 * 1024 });
  t.teardown(() => g.close());
  const handle = g.handle();
  const clerks = Array.from({ length: 6 }, () => Clerk.connect(handle));
  const load = startKvLoad(clerks, { appendShare: 1 / 3, ownKeys: 2, sharedKeys: 5 });
  const history = load.history;
  await sleep(500);
  const a = await g.addMember();
  const b = await g.addMember();
  t.same([a, b], [3, 4], 'the new peers get new ids');
  let m = await g.members();
  t.same(m.voters, [0, 1, 2, 3, 4], 'five voters');
  const st = await g.status();
  for (const id of [a, b]) {
    const p = st.peers[id]!;
    t.ok(p.running && p.appliedIndex > 0, `peer ${id} runs and has applied the log`);
  }
  await sleep(300);
  const leader = (await g.status()).leader;
  await g.removeMember(leader);
  const other = [0, 1, 2, 3, 4].find((p) => p !== leader && p !== a)!;
  await g.removeMember(other);
  m = await g.members();
  t.equal(m.voters.length, 3, `three voters again (${m.voters.join(', ')})`);
  t.notOk(m.voters.includes(leader), `the old leader ${leader} is out`);
  t.not((await g.status()).leader, leader, 'and someone else leads');
  await sleep(300);
  await load.stop();
  const { wrong } = await readBack(clerks[0]!, load);
  for (const ck of clerks) ck.close();
  t.equal(wrong, 0, 'every acknowledged Append is there, in order, once');
  t.ok(history.length > 100, `${history.length} operations while the membership changed`);
  const checker = new LinearizabilityChecker();
  try {
    const r = await checker.checkKv(history, { timeoutMs: 60_000 });
    t.equal(r.result, 'ok', 'the history is linearizable');
  } finally {
    await checker.close();
  }
});

t.test('refused changes are MembershipErrors and leave the configuration as it was', async (t) => {
  const g = await RaftGroup.open({ peers: 1, stateMachine: kvStateMachine });
  t.teardown(() => g.close());
  await g.propose(['put', 'k', 'v', 1, 1] as never).catch(() => undefined);
  const before = await g.members();
  await t.rejects(g.removeMember(0), MembershipError, 'removing the last voter');
  try {
    await g.removeMember(0);
  } catch (e) {
    t.equal((e as MembershipError).reason, 'last-voter', 'with its reason');
  }
  t.same(await g.members(), before, 'the configuration is unchanged');
  const id = await g.addMember({ voter: false });
  t.same((await g.members()).learners, [id], 'a learner');
  await t.rejects(g.removeMember(7), /peer index must be/, 'a peer that never existed');
  await g.removeMember(id);
  t.same((await g.members()).learners, [], 'removed again');
  t.notOk((await g.status()).peers[id]!.running, 'and its worker stopped');
});
