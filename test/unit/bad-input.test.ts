import t from 'tap';
import { encode } from 'msgpackr';
import { OptionError, PeerNotRunningError } from '../../lib/index.js';
import { Cluster, ClusterClosedError, Config, sleep } from '../../lib/testing/index.js';

t.test('invalid cluster options throw an OptionError naming the option', async (t) => {
  const cases: [Record<string, unknown>, string][] = [
    [{ peers: 0 }, 'peers'],
    [{ peers: 2.5 }, 'peers'],
    [{ peers: 3, tickMs: 0 }, 'tickMs'],
    [{ peers: 3, tickMs: 1.5 }, 'tickMs'],
    [{ peers: 3, electionTicks: 12.5 }, 'electionTicks'],
    [{ peers: 3, heartbeatTicks: '10' }, 'heartbeatTicks'],
    [{ peers: 3, electionTicks: 10, heartbeatTicks: 10 }, 'heartbeatTicks'],
    [{ peers: 3, maxInflight: 0 }, 'maxInflight'],
    [{ peers: 3, maxInflight: 2.5 }, 'maxInflight'],
    [{ peers: 3, preVote: 'yes' }, 'preVote'],
    [{ peers: 3, refuseWithoutQuorum: 1 }, 'refuseWithoutQuorum'],
  ];
  for (const [opts, option] of cases) {
    let thrown: unknown;
    try {
      new Cluster(opts as never);
    } catch (e) {
      thrown = e;
    }
    t.ok(thrown instanceof OptionError, `${JSON.stringify(opts)} throws an OptionError`);
    t.equal((thrown as OptionError).option, option, `${JSON.stringify(opts)} names ${option}`);
    t.match((thrown as Error).message, new RegExp(`^${option}: must be`), 'the message says what is expected');
  }
});

t.test('a peer index out of range throws an OptionError naming the peer', async (t) => {
  const c = new Cluster({ peers: 3 });
  try {
    for (const bad of [-1, 3, 1.5]) {
      await t.rejects(c.start(bad), { name: 'RaftOptionError', option: 'peer' }, `start(${bad})`);
      await t.rejects(c.getState(bad), { name: 'RaftOptionError', option: 'peer' }, `getState(${bad})`);
    }
  } finally {
    await c.close();
  }
});

t.test('Start() on a killed peer rejects with PeerNotRunningError', async (t) => {
  const c = new Cluster({ peers: 3 });
  try {
    await c.start(0);
    await c.crash(0);
    const err = await c.startCommand(0, 42).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof PeerNotRunningError, 'rejects with PeerNotRunningError');
    t.equal((err as PeerNotRunningError).peer, 0, 'naming the peer');
    t.match((err as Error).message, /peer 0 is not running/, 'with a message a user can act on');
    await t.rejects(c.startCommand(1, 42), PeerNotRunningError, 'a peer never started is not running either');
  } finally {
    await c.close();
  }
  await t.rejects(c.startCommand(0, 1), ClusterClosedError, 'a closed cluster refuses calls');
});

t.test('a call in flight when its peer is crashed rejects instead of hanging', async (t) => {
  const c = new Cluster({ peers: 1 });
  try {
    await c.start(0);
    const calls = Array.from({ length: 50 }, (_, k) => c.startCommand(0, k).then(() => 'done', (e: unknown) => e));
    await c.crash(0);
    const outcomes = await Promise.all(calls);
    t.ok(
      outcomes.every((o) => o === 'done' || o instanceof PeerNotRunningError),
      'every call either finished or was rejected with PeerNotRunningError',
    );
  } finally {
    await c.close();
  }
});

/** `p`, or a rejection naming `what` once `ms` pass (a lost call fails the test instead of hanging it). */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

t.test("Start() answers on each incarnation's own channel, calls made while it opens included", async (t) => {
  const c = new Cluster({ peers: 1 });
  try {
    for (const incarnation of [1, 2]) {
      await c.start(0);
      // The first calls of an incarnation open its channel; those made meanwhile wait in it.
      const first = await within(10_000, 'the first calls', Promise.all(Array.from({ length: 20 }, (_, k) => c.startCommand(0, k))));
      t.equal(first.length, 20, `incarnation ${incarnation}: all 20 calls made at once on a fresh channel are answered`);
      // A lone peer elects itself; until then Start() answers isLeader false.
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && !(await within(10_000, 'a probe', c.startCommand(0, 'probe'))).isLeader) await sleep(10);
      const led = await within(10_000, 'the calls to the leader', Promise.all(Array.from({ length: 20 }, (_, k) => c.startCommand(0, k))));
      t.ok(led.every((r) => r.isLeader), 'a leader accepts them all');
      t.same(
        led.map((r) => r.index),
        led.map((_, k) => led[0]!.index + k),
        'at consecutive indices, in the order they were made',
      );
      await c.crash(0);
    }
  } finally {
    await c.close();
  }
});

t.test('garbage in a mailbox is dropped and counted, and the cluster still commits', async (t) => {
  const cfg = await Config.make(3, false, false, { log: (l) => t.comment(l) });
  await cfg.run(async () => {
    await cfg.one(1, 3, false);
    const ports = await Promise.all([0, 1, 2].map((i) => cfg.cluster.openMailbox(i)));
    for (const port of ports) {
      port.postMessage(new Uint8Array([0x93, 0x01])); // truncated: an array of 3 holding one item
      port.postMessage('not even bytes');
      port.postMessage(encode([1, 1, 99, 1, 0, 1])); // well-formed frame, unknown message type
      port.postMessage(encode([1, 1, 3, 'term', 0, 1, 0, 0, 0, []])); // Append with a string term
      port.postMessage(encode({ hello: 'world' }));
    }
    // The drops happen asynchronously in the workers; wait until all are counted.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && [0, 1, 2].some((i) => cfg.cluster.faults.garbage(i) < 5)) await sleep(20);
    for (let i = 0; i < 3; i++) {
      t.equal(cfg.cluster.faults.garbage(i), 5, `peer ${i} dropped and counted all five bad messages`);
      t.equal((await cfg.cluster.status(i)).garbage, 5, `peer ${i} reports the count in its status`);
    }
    const index = await cfg.one(2, 3, false);
    t.equal(index, 2, 'the cluster still commits on all three peers');
    for (const p of ports) p.close();
  });
});
