// Membership changes across processes: three `actor-raft serve` nodes grow
// to five (each new node added as a learner, started with what `member add`
// printed, promoted) and shrink back to three, the leader among those
// removed, all under client load; no acknowledged write is lost and the
// history is linearizable. Refused changes name the problem.
import t from 'tap';
import { LinearizabilityChecker } from '../../lib/check/checker.js';
import { readBack, startKvLoad } from '../fixtures/kv-load.js';
import { ProcessCluster, sleep, within } from './node-processes.js';


const cluster = await ProcessCluster.create(['a', 'b', 'c', 'd', 'e'], 3);
t.teardown(() => cluster.close());
await cluster.startAll();
// Every client reaches all five client ports; the ones not running yet are skipped.
const remote = cluster.remote();
t.teardown(() => remote.close());

t.test('grow 3 -> 5 and shrink 5 -> 3 under load, the leader removed too: nothing lost, linearizable', async (t) => {
  const clerks = Array.from({ length: 6 }, () => remote.clerk());
  const load = startKvLoad(clerks, { appendShare: 1 / 3, ownKeys: 2, sharedKeys: 4 });
  const history = load.history;
  await sleep(800);
  for (const name of ['d', 'e']) {
    const added = await remote.addMember(name, cluster.peerAddress(name));
    t.ok(added.id >= 1 << 20, `${name} got a new id (${added.id})`);
    t.match(added.members, new RegExp(`${added.id}:${name}=`), 'and the members list a joining node starts with');
    cluster.setJoined(name, added);
    await cluster.start(name);
    await remote.promoteMember(name);
  }
  let r = await remote.status();
  t.same(r.members.map((m) => [m.name, m.role]), [['a', 'voter'], ['b', 'voter'], ['c', 'voter'], ['d', 'voter'], ['e', 'voter']].sort(), 'five voters');
  const grownAt = history.length;
  await sleep(800);
  const leader = await cluster.leader(remote);
  await remote.removeMember(leader);
  await cluster.stop(leader);
  const other = ['a', 'b', 'c'].find((n) => n !== leader)!;
  await remote.removeMember(other);
  await cluster.stop(other);
  r = await remote.status();
  t.equal(r.members.filter((m) => m.role === 'voter').length, 3, `three voters again (${r.members.map((m) => m.name).join(', ')})`);
  t.notOk(r.members.some((m) => m.name === leader), `the old leader ${leader} is out`);
  t.not(await cluster.leader(remote), leader, 'and another node leads');
  const shrunkAt = history.length;
  await sleep(800);
  await within(load.stop(), 'the clients to finish', 30_000);
  t.ok(grownAt > 0 && shrunkAt > grownAt && history.length > shrunkAt, `operations throughout (${grownAt} before the removals, ${history.length} in all)`);

  const { wrong } = await readBack(clerks[0]!, load);
  for (const ck of clerks) ck.close();
  t.equal(wrong, 0, 'every acknowledged Append is there, in order, once');
  const checker = new LinearizabilityChecker();
  try {
    const report = await checker.checkKv(history, { timeoutMs: 60_000 });
    t.equal(report.result, 'ok', `${history.length} operations linearizable`);
  } finally {
    await checker.close();
  }
});

t.test('refused membership changes name the problem and change nothing', async (t) => {
  const c = cluster.clientArgs();
  const before = (await remote.status()).members;
  let out = await cluster.run(['member', 'remove', 'nobody', ...c]);
  t.equal(out.code, 1, 'removing a name that is not a member: exit 1');
  t.match(out.stderr, /not-member/, 'says so');
  const voter = before[0]!.name;
  out = await cluster.run(['member', 'add', voter, '127.0.0.1:1', ...c]);
  t.equal(out.code, 1, 'adding a member that is already there: exit 1');
  t.match(out.stderr, /already-member/, 'says so');
  out = await cluster.run(['member', 'promote', voter, ...c]);
  t.match(out.stderr, /already-member|not-learner/, 'promoting a voter is refused');
  out = await cluster.run(['member', 'frobnicate', 'x', ...c]);
  t.equal(out.code, 2, 'an unknown subcommand is a usage error');
  t.same((await remote.status()).members, before, 'the configuration is unchanged');
});
