// The product API (actor-raft): a group with a user's state machine in every
// peer's worker, proposals that return results, reads without log entries,
// forwarding, handles in other threads, leadership transfer, status, events,
// crash and restart, close, and the typed errors of bad input.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  ApplyError,
  GroupClient,
  GroupClosedError,
  OptionError,
  OutcomeUnknownError,
  PeerNotRunningError,
  RaftGroup,
  RequestRejectedError,
  StateMachineError,
  type GroupOptions,
} from '../../lib/index.js';
import type { CounterCommand, CounterQuery } from '../fixtures/counter-sm.js';

const fixture = (name: string) => new URL(`../fixtures/${name}.js`, import.meta.url);
const counter = { module: fixture('counter-sm') };
type Counter = RaftGroup<CounterCommand, unknown, CounterQuery, unknown>;

const dirs: string[] = [];
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'actor-raft-api-'));
  dirs.push(d);
  return d;
}

async function open(opts: Partial<GroupOptions> = {}): Promise<Counter> {
  return RaftGroup.open<CounterCommand, unknown, CounterQuery, unknown>({ peers: 3, dataDir: dataDir(), stateMachine: counter, ...opts });
}

async function leaderOf(g: Counter): Promise<number> {
  for (let k = 0; k < 300; k++) {
    const s = await g.status();
    if (s.leader >= 0) return s.leader;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no leader');
}

t.test('propose returns the state machine\'s result; reads answer from it without a log entry', async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  t.same(await g.propose({ op: 'add', n: 5 }), { value: 5, index: 1 }, 'the result apply returned, with its index');
  t.same(await g.propose({ op: 'add', n: 2 }), { value: 7, index: 2 });
  const leader = await leaderOf(g);
  const last = (await g.status()).peers.find((p) => p.running && p.id === leader)!;
  for (const consistency of ['linearizable', 'lease', 'stale'] as const) {
    t.equal(await g.read('value', { consistency, peer: consistency === 'stale' ? leader : undefined }), 7, `a ${consistency} read`);
  }
  for (let k = 0; k < 20; k++) await g.read('value');
  const after = (await g.status()).peers.find((p) => p.running && p.id === leader)!;
  t.equal(after.running && after.lastIndex, last.running && last.lastIndex, 'twenty-three reads wrote no log entry');
  t.same(await g.read({ echo: { a: [1, 'x'] } }), { a: [1, 'x'] }, 'queries and answers are plain values');
});

t.test('every peer takes proposals: a follower forwards them to its leader and relays the result; each applies once', async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  const leader = await leaderOf(g);
  const results: unknown[] = [];
  for (let p = 0; p < 3; p++) results.push(await g.propose({ op: 'add', n: 1, tag: `via-${p}` }, { peer: p }));
  t.same(results.map((r) => (r as { value: number }).value), [1, 2, 3], 'each result is the state after that command');
  t.same(await g.read('tags'), ['via-0', 'via-1', 'via-2'], 'applied once each, in order');
  // A follower's linearizable read goes through the leader's read index and is served by the follower.
  const follower = [0, 1, 2].find((p) => p !== leader)!;
  await g.propose({ op: 'add', n: 10 }, { peer: follower });
  t.equal(await g.read('value', { peer: follower }), 13, "a follower's linearizable read sees the write just acknowledged");
  // Many concurrent proposals through all peers.
  const many = await Promise.all(Array.from({ length: 60 }, (_, k) => g.propose({ op: 'add', n: 1 }, { peer: k % 3 })));
  t.equal(new Set(many.map((r) => (r as { index: number }).index)).size, 60, '60 distinct entries');
  t.equal(await g.read('value'), 73);
});

t.test('a handle posted to another worker thread proposes and reads there', async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  await g.propose({ op: 'add', n: 100 });
  const handle = g.handle();
  const w = new Worker(new URL('./group-client-worker.js', import.meta.url), { workerData: { handle }, transferList: [handle.control] });
  const res = await new Promise<{ before: unknown; result: unknown; after: unknown; error?: string }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  t.equal(res.error, undefined, 'no error in the worker');
  t.equal(res.before, 100, 'the worker reads what this thread wrote');
  t.same(res.result, { value: 101, index: 2 }, 'its proposal returns the result');
  t.equal(res.after, 101);
  t.equal(await g.read('value'), 101, 'and this thread reads what the worker wrote');
});

t.test('leadership transfer: the target leads, onLeaderChange reports it; bad targets are refused with typed errors', async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  const changes: { term: number; leader: number }[] = [];
  g.onLeaderChange((c) => changes.push(c));
  const leader = await leaderOf(g);
  await g.propose({ op: 'add', n: 1 });
  const target = (leader + 1) % 3;
  const before = (await g.status()).term;
  await g.transferLeadership(target);
  const st = await g.status();
  t.equal(st.leader, target, 'the target leads');
  t.ok(st.term > before, 'in a later term');
  for (let k = 0; k < 50 && !changes.some((c) => c.leader === target); k++) await new Promise((r) => setTimeout(r, 10));
  t.ok(changes.some((c) => c.leader === target && c.term === st.term), 'onLeaderChange reported it');
  t.same(await g.propose({ op: 'add', n: 1 }), { value: 2, index: 2 }, 'and proposals go on under it');
  await t.rejects(g.transferLeadership(3), OptionError, 'a peer that does not exist');
  await t.rejects(g.transferLeadership(1.5), OptionError);
  const other = (target + 1) % 3;
  await g.crash(other);
  await t.rejects(g.transferLeadership(other), PeerNotRunningError, 'a crashed peer');
  await g.transferLeadership(target);
  t.equal((await g.status()).leader, target, 'to the leader itself: nothing to do');
});

t.test('status, crash and restart: a peer comes back from its file with its state', async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  for (let k = 0; k < 5; k++) await g.propose({ op: 'add', n: 1 });
  const leader = await leaderOf(g);
  await g.crash(leader);
  t.equal(g.isRunning(leader), false);
  const st = await g.status();
  t.same(st.peers[leader], { running: false, id: leader }, 'status shows the peer down');
  t.same(await g.propose({ op: 'add', n: 1 }), { value: 6, index: 6 }, 'the others elect a leader and carry on');
  await g.restart(leader);
  for (let k = 0; k < 200; k++) {
    const p = (await g.status()).peers[leader]!;
    if (p.running && p.stateMachineIndex >= 6) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  t.equal(await g.read('value', { consistency: 'stale', peer: leader }), 6, 'the restarted peer has every command, stale-read from its own state');
  await t.rejects(g.snapshot(9), OptionError);
  t.equal(await g.snapshot(leader), true, 'a snapshot on demand');
});

t.test('close: calls in flight reject with GroupClosedError, later calls too; the files keep the state', async (t) => {
  const dir = dataDir();
  const g = await RaftGroup.open<CounterCommand, unknown, CounterQuery, unknown>({ peers: 3, dataDir: dir, stateMachine: counter });
  await g.propose({ op: 'add', n: 41 });
  const inFlight = g.propose({ op: 'hold', ms: 300 }).then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await new Promise((r) => setTimeout(r, 50));
  await g.close();
  t.ok((await inFlight) instanceof GroupClosedError, 'in flight');
  await t.rejects(g.propose({ op: 'add', n: 1 }), GroupClosedError, 'after close');
  await t.rejects(g.read('value'), GroupClosedError);
  await t.rejects(g.status(), GroupClosedError);
  t.throws(() => g.handle(), GroupClosedError);
  const again = await RaftGroup.open<CounterCommand, unknown, CounterQuery, unknown>({ peers: 3, dataDir: dir, stateMachine: counter });
  t.teardown(() => again.close());
  t.ok((await again.read('value')) as number >= 41, 'reopened on the same files, the state is there');
});

t.test("a client's close ends its own calls in flight at once, not those of other clients on the same handle", async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  await g.propose({ op: 'add', n: 1 });
  const handle = g.handle();
  const a = GroupClient.connect<CounterCommand, unknown, CounterQuery, unknown>(handle);
  const b = GroupClient.connect<CounterCommand, unknown, CounterQuery, unknown>(handle);
  t.teardown(() => b.close());
  const order: string[] = [];
  // b's hold is applied first; a's command waits behind it on the leader.
  const bDone = b.propose({ op: 'hold', ms: 300 }).then(
    (v) => (order.push('b resolved'), v),
    (e: unknown) => (order.push('b rejected'), e),
  );
  await new Promise((r) => setTimeout(r, 20));
  const aDone = a.propose({ op: 'add', n: 1 }).then(
    () => (order.push('a resolved'), undefined),
    (e: unknown) => (order.push('a rejected'), e),
  );
  await new Promise((r) => setTimeout(r, 50));
  a.close();
  t.ok((await aDone) instanceof GroupClosedError, "a's call rejects with GroupClosedError");
  t.notOk((await bDone) instanceof Error, "b's call on the same channel still gets its result");
  t.same(order, ['a rejected', 'b resolved'], "a's call ended at its close, before b's answer came (it did not wait for its own)");
});

t.test('apply that throws: the proposal rejects with ApplyError carrying the message; every replica records the same; the peers carry on', async (t) => {
  const g = await open();
  t.teardown(() => g.close());
  const err = await g.propose({ op: 'fail', message: 'insufficient funds' }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof ApplyError, 'an ApplyError');
  t.match((err as Error).message, /insufficient funds/, 'with the message apply threw');
  t.same(await g.propose({ op: 'add', n: 1 }), { value: 1, index: 2 }, 'the next command is applied');
  const s = await g.status();
  for (let k = 0; k < 100 && s.peers.some((p) => !p.running || p.stateMachineIndex < 2 || p.commitIndex < 2); k++) {
    await new Promise((r) => setTimeout(r, 10));
    Object.assign(s, await g.status());
  }
  for (let p = 0; p < 3; p++) t.equal(await g.read('errors', { consistency: 'stale', peer: p }), 1, `peer ${p} recorded the failure once`);
  t.ok(s.peers.every((p) => p.running && p.applyErrors === 1), 'and counts one apply error');
  const aerr = await g.propose({ op: 'async' }).then(() => undefined, (e: unknown) => e);
  t.ok(aerr instanceof ApplyError && /returned a promise/.test(aerr.message), 'an apply that returns a promise is refused, saying why');
  const qerr = await g.read('throw').then(() => undefined, (e: unknown) => e);
  t.ok(qerr instanceof ApplyError && /queries can fail too/.test(qerr.message), 'a query that throws rejects with ApplyError');
});

t.test('bad input: sizes, options and state machine modules are refused with typed errors naming what is wrong', async (t) => {
  const g = await open({ maxCommandBytes: 1000, maxQueryBytes: 100 });
  t.teardown(() => g.close());
  await t.rejects(g.propose({ op: 'blob', bytes: new Uint8Array(2000) }), RequestRejectedError, 'a command over the limit');
  await t.rejects(g.propose({ op: 'blob', bytes: new Uint8Array(2000) }), /the limit is 1000/);
  await t.rejects(g.read({ echo: 'x'.repeat(200) }), RequestRejectedError, 'a query over the limit');
  t.equal(await g.propose({ op: 'blob', bytes: new Uint8Array(500) }), 500, 'one within it is fine');
  await t.rejects(g.propose({ op: 'add', n: 1 }, { timeoutMs: -1 }), OptionError);
  await t.rejects(g.read('value', { consistency: 'eventual' as never }), OptionError);
  await t.rejects(g.propose({ op: 'add', n: 1 }, { peer: 7 }), OptionError);

  const cases: [Partial<GroupOptions>, string][] = [
    [{ peers: 0 }, 'peers'],
    [{ peers: 2.5 }, 'peers'],
    [{ stateMachine: undefined as never }, 'stateMachine'],
    [{ snapshotThreshold: 0 }, 'snapshotThreshold'],
    [{ tickMs: 0 }, 'tickMs'],
    [{ electionTicks: 10, heartbeatTicks: 10 }, 'heartbeatTicks'],
    [{ leaseMarginMs: 10_000 }, 'leaseMarginMs'],
    [{ preVote: 'yes' as never }, 'preVote'],
    [{ dataDir: '' }, 'dataDir'],
  ];
  for (const [opts, option] of cases) {
    const e = await open(opts).then(() => undefined, (x: unknown) => x);
    t.ok(e instanceof OptionError && (e as OptionError).option === option, `${JSON.stringify(opts)}: OptionError naming ${option}`);
  }

  const missing = await open({ stateMachine: { module: '/nonexistent/state-machine.js' } }).then(() => undefined, (x: unknown) => x);
  t.ok(missing instanceof StateMachineError, 'a missing module: StateMachineError');
  t.equal((missing as StateMachineError).module, 'file:///nonexistent/state-machine.js', 'naming the module');
  t.match((missing as Error).message, /could not be imported/);
  const noFactory = await open({ stateMachine: { module: fixture('broken-sms') } }).then(() => undefined, (x: unknown) => x);
  t.ok(noFactory instanceof StateMachineError && (noFactory as StateMachineError).method === 'createStateMachine', 'no factory: names createStateMachine');
  const noQuery = await open({ stateMachine: { module: fixture('sm-no-query') } }).then(() => undefined, (x: unknown) => x);
  t.ok(noQuery instanceof StateMachineError && (noQuery as StateMachineError).method === 'query', 'a missing method: names query');
  t.match((noQuery as Error).message, /sm-no-query\.js: the state machine has no query\(\) method/);
  const throws = await open({ stateMachine: { module: fixture('sm-throws') } }).then(() => undefined, (x: unknown) => x);
  t.ok(throws instanceof StateMachineError, 'a factory that throws');
  t.match((throws as Error).message, /createStateMachine threw: cannot build: the options are wrong/);
});

t.test('a forwarded proposal whose leader dies mid-flight: outcome unknown, never a silent success, never applied twice', async (t) => {
  const holding = new Int32Array(new SharedArrayBuffer(4 * 3));
  const g = await open({ stateMachine: { ...counter, options: { holding: holding.buffer } } });
  t.teardown(() => g.close());
  const leader = await leaderOf(g);
  const follower = (leader + 1) % 3;
  await g.propose({ op: 'add', n: 1, tag: 'warm' });
  // The command holds each peer's thread for 400 ms while it applies; the
  // leader dies while the follower waits for its answer.
  const p = g.propose({ op: 'hold', ms: 400, tag: 'once' }, { peer: follower, timeoutMs: 3000 }).then(
    (v) => ({ ok: v }),
    (e: unknown) => ({ err: e }),
  );
  // Mid-flight: the leader is applying it (a fixed wait is too short on a
  // busy machine, and a leader that dies before the proposal reaches it
  // only sends it to the next one, where it succeeds).
  const applying = Date.now() + 5000;
  while (Atomics.load(holding, leader) === 0 && Date.now() < applying) await new Promise((r) => setTimeout(r, 2));
  t.equal(Atomics.load(holding, leader), 1, 'the leader was applying the proposal when it died');
  await g.crash(leader);
  const outcome = await p;
  if ('err' in outcome) t.ok(outcome.err instanceof OutcomeUnknownError, `rejected with OutcomeUnknownError: ${(outcome.err as Error).message}`);
  else t.fail(`a proposal whose leader died resolved: ${JSON.stringify(outcome.ok)}`);
  const tags = (await g.read('tags', { timeoutMs: 10_000 })) as string[];
  t.ok(tags.filter((x) => x === 'once').length <= 1, `applied at most once (${tags.filter((x) => x === 'once').length})`);
});
