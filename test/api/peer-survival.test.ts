// No input kills a peer: a leader's snapshot the state machine cannot
// restore is refused before it is stored, and the peer runs on; a peer that
// dies anyway is reported at once, with its error intact, and clients move
// on to the others.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutcomeUnknownError, RaftGroup, type GroupOptions, type PeerStatus } from '../../lib/index.js';
import type { CounterCommand, CounterOptions, CounterQuery } from '../fixtures/counter-sm.js';

const counter = (options: CounterOptions) => ({ module: new URL('../fixtures/counter-sm.js', import.meta.url), options });
type Counter = RaftGroup<CounterCommand, unknown, CounterQuery, unknown>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dirs: string[] = [];
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'actor-raft-survival-'));
  dirs.push(d);
  return d;
}

async function peerStatus(g: Counter, i: number): Promise<(PeerStatus & { running: true }) | undefined> {
  const p = (await g.status()).peers[i]!;
  return p.running ? (p as PeerStatus & { running: true }) : undefined;
}

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test('a snapshot the state machine cannot restore is refused before it is stored; the peer runs on', async (t) => {
  const errors: Error[] = [];
  const opts: GroupOptions = {
    peers: 3,
    dataDir: dataDir(),
    stateMachine: counter({ pickyPeer: 2 }),
    snapshotThreshold: 4096,
    onPeerError: (_p, _i, e) => errors.push(e),
  };
  const g = (await RaftGroup.open(opts)) as Counter;
  try {
    await g.propose({ op: 'add', n: 1 });
    await g.crash(2);
    // Enough for the others to snapshot and drop the log peer 2 would need.
    for (let k = 0; k < 300; k++) await g.propose({ op: 'add', n: 1, tag: `tag-${k}-${'x'.repeat(40)}` });
    const snapped = await until('the leader to snapshot', async () => {
      const st = await peerStatus(g, (await g.status()).leader);
      return st && st.snapshotIndex > 10 ? st : undefined;
    });
    t.ok(snapped.snapshotIndex > 10, `the leader compacted its log through ${snapped.snapshotIndex}`);
    await g.restart(2);
    const refused = await until('peer 2 to refuse the snapshot', async () => {
      const st = await peerStatus(g, 2);
      return st && st.refusedSnapshots > 0 ? st : undefined;
    });
    t.match(refused.lastRefusedSnapshot, /could not be restored: peer 2 cannot read a snapshot taken on peer/, 'the refusal says why');
    t.equal(refused.snapshotIndex, 0, 'nothing of it was stored');
    await sleep(300);
    const later = await peerStatus(g, 2);
    t.ok(later, 'peer 2 is still running');
    t.equal(later!.stateMachineIndex, refused.stateMachineIndex, 'its state machine kept its old state');
    t.match(await g.propose({ op: 'add', n: 1 }), { value: 302 }, 'the group commits on');
    t.same(errors, [], 'no peer died');
    await g.restart(2);
    t.ok(await peerStatus(g, 2), 'peer 2 starts again from its file');
  } finally {
    await g.close();
  }
});

t.test('a peer that dies anyway is reported at once, with its error, and clients move on', async (t) => {
  const died: { peer: number; err: Error; runningThen: boolean }[] = [];
  let g: Counter | undefined;
  const opts: GroupOptions = {
    peers: 3,
    dataDir: dataDir(),
    stateMachine: counter({ poisonPeer: 1 }),
    snapshotThreshold: 4096,
    onPeerError: (peer, _inc, err) => {
      const running = g!.status().then(
        (s) => s.peers[peer]!.running,
        () => undefined,
      );
      void running.then((runningThen) => died.push({ peer, err, runningThen: runningThen ?? false }));
    },
  };
  g = (await RaftGroup.open(opts)) as Counter;
  try {
    await g.propose({ op: 'poison' });
    // The policy snapshot that follows, on peer 1, throws where no caller waits: peer 1 dies.
    const started = Date.now();
    let k = 0;
    while (died.length === 0 && Date.now() - started < 20_000) {
      // A proposal in flight on peer 1 when it dies has an unknown outcome; that is the contract.
      await g.propose({ op: 'add', n: 1, tag: `t${k++}-${'y'.repeat(60)}` }).catch((e: unknown) => {
        if (!(e instanceof OutcomeUnknownError)) throw e;
      });
    }
    await until('the death report', async () => died.length > 0);
    const d = died[0]!;
    t.equal(d.peer, 1, 'peer 1 is the one reported');
    t.ok(d.err instanceof Error, 'the report is an Error');
    t.equal(d.err.name, 'FixtureFailure', 'of the class the worker threw');
    t.equal((d.err as Error & { code?: string }).code, 'EFIXTURE', 'with its code');
    t.match(d.err.message, /peer 1 cannot take a snapshot/, 'and its message');
    t.equal(d.runningThen, false, 'the group already lists it as not running when it reports');
    const t0 = Date.now();
    for (let j = 0; j < 20; j++) await g.propose({ op: 'add', n: 1 }, { timeoutMs: 5000 });
    t.ok(Date.now() - t0 < 5000, `proposals go on through the other peers (20 in ${Date.now() - t0} ms)`);
    t.same(died.map((x) => x.peer), [1], 'no other peer died');
  } finally {
    await g.close();
  }
});
