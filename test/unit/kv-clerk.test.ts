// The key/value service end to end on a small in-memory cluster: Clerks in
// this thread and in another worker, leader failover, and bad input.
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { OptionError } from '../../lib/index.js';
import { Cluster, ClusterClosedError, labEnds } from '../../lib/testing/index.js';
import { Clerk, KvRequestError, MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../../lib/kv/index.js';
import type { EndUpdate } from '../../lib/api/client.js';
import { encodeValue } from '../../lib/transport/codec.js';

async function leaderOf(c: Cluster): Promise<number> {
  for (let k = 0; k < 300; k++) {
    for (let i = 0; i < c.n; i++) if (c.isRunning(i) && (await c.getState(i)).isLeader) return i;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no leader');
}

t.test('Get/Put/Append from this thread and from another worker; a leader crash costs only time', async (t) => {
  const c = new Cluster({ peers: 3, kv: {} });
  t.teardown(() => c.close());
  for (let i = 0; i < 3; i++) await c.start(i);
  c.connectAll();
  const ck = c.clerk();
  t.teardown(() => ck.close());
  t.equal(await ck.get('missing'), '', 'a missing key reads as ""');
  await ck.put('shared', 'main');
  const { link } = c.openClient();
  const w = new Worker(new URL('./kv-clerk-worker.js', import.meta.url), { workerData: { link }, transferList: [link.control] });
  const res = await new Promise<{ before: string; after: string }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  t.same(res, { before: 'main', after: 'main+worker' }, 'the worker clerk sees and extends the same value');
  t.equal(await ck.get('shared'), 'main+worker', 'and this thread sees its write');

  const spare = c.openClient().link;
  new Clerk(labEnds(spare)).close();
  t.throws(() => new Clerk(labEnds(spare)), OptionError, 'a handle whose last clerk closed is not reused silently');

  await c.crash(await leaderOf(c));
  await ck.append('shared', '+after');
  t.equal(await ck.get('shared'), 'main+worker+after', 'served by the next leader');
});

t.test('bad input: clear refusals, no crashed peer; a closed cluster rejects', async (t) => {
  const c = new Cluster({ peers: 3, kv: { maxRaftState: -1 } });
  for (let i = 0; i < 3; i++) await c.start(i);
  c.connectAll();
  const ck = c.clerk();
  await t.rejects(ck.put('k'.repeat(MAX_KEY_BYTES + 1), 'v'), KvRequestError, 'an oversized key');
  await t.rejects(ck.put('k', 'v'.repeat(MAX_VALUE_BYTES + 1)), /ErrTooLarge: value longer than/, 'an oversized value');
  await t.rejects(ck.get(42 as unknown as string), /ErrBadRequest: key must be a string/, 'a wrongly typed key');

  // Raw garbage straight at every server's client port: no answer for what
  // has no request id, a reasoned refusal for the rest.
  const { link } = c.openClient();
  const ports: EndUpdate[] = [];
  link.control.on('message', (u: EndUpdate) => ports.push(u));
  for (let k = 0; k < 50 && ports.length < 3; k++) await new Promise((r) => setTimeout(r, 10));
  t.equal(ports.length, 3, 'a channel to each server');
  const replies: unknown[] = [];
  for (const u of ports) {
    u.port.on('message', (b) => replies.push(b));
    u.port.postMessage(new Uint8Array([0xc1]));
    u.port.postMessage('not bytes');
    u.port.postMessage(encodeValue([7, 9, 'k', '', 1, 1]));
  }
  await new Promise((r) => setTimeout(r, 200));
  t.equal(replies.length, 3, 'only the request with an id is answered');
  for (let i = 0; i < 3; i++) t.ok(c.isRunning(i), `peer ${i} still runs`);
  t.equal(await ck.get('missing'), '', 'and the service still works');
  for (const u of ports) u.port.close();
  link.control.close();

  t.throws(() => new Cluster({ peers: 3, kv: { maxRaftState: 0 } }), OptionError);
  await c.close();
  await t.rejects(ck.get('k'), ClusterClosedError, 'a call on a closed cluster');
  t.throws(() => c.openClient(), ClusterClosedError);
  ck.close();
});

t.test('Clerks sharing one link: concurrent calls each get their own answer, exactly once; closing one rejects only its call', async (t) => {
  const c = new Cluster({ peers: 3, kv: {} });
  t.teardown(() => c.close());
  for (let i = 0; i < 3; i++) await c.start(i);
  c.connectAll();
  t.throws(() => c.clerks(0), OptionError, 'a count below one is refused');
  const clerks = c.clerks(32);
  t.equal(new Set(clerks.map((ck) => ck.clientId)).size, 32, 'every Clerk is its own client');
  // Three rounds of 32 concurrent Appends, each to the clerk's own key and to one shared key.
  for (let round = 0; round < 3; round++) {
    await Promise.all(clerks.map((ck, k) => ck.append(`own-${k}`, `${round};`)));
    await Promise.all(clerks.map((ck, k) => ck.append('all', `${k}.${round};`)));
  }
  const reads = await Promise.all(clerks.map((ck, k) => ck.get(`own-${k}`)));
  t.ok(reads.every((v) => v === '0;1;2;'), 'each Clerk reads back exactly its own Appends, in order');
  const all = (await clerks[0]!.get('all')).split(';').filter(Boolean);
  t.equal(all.length, 96, 'every Append to the shared key applied once');
  t.equal(new Set(all).size, 96, 'none twice');

  // A crashed leader and its followers: the next leader's Clerks must fail over together.
  await c.crash(await leaderOf(c));
  await Promise.all(clerks.map((ck, k) => ck.put(`own-${k}`, 'after')));
  t.ok((await Promise.all(clerks.map((ck, k) => ck.get(`own-${k}`)))).every((v) => v === 'after'), 'all served by the next leader');

  // Close one Clerk while its call cannot be served (the link's ends are all
  // off; clerks() opened this cluster's first client, id 1): only it rejects.
  c.setClientEnds(1, [0, 1, 2], false);
  const pending = clerks[0]!.get('own-0');
  const other = clerks[1]!.get('own-1');
  await new Promise((r) => setTimeout(r, 50));
  clerks[0]!.close();
  await t.rejects(pending, /closed/, 'the closed Clerk\'s call rejects');
  c.setClientEnds(1, [0, 1, 2], true);
  t.equal(await other, 'after', 'the other Clerk on the link still gets its answer');
  await t.rejects(clerks[0]!.get('x'), /closed/, 'and later calls on the closed one reject');
  for (const ck of clerks.slice(1)) ck.close();
});
