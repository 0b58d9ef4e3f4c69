// Flow control: a leader keeps at most maxPending proposals waiting; past
// that it answers Busy with nothing done. A GroupClient waits while the
// leader is busy (so a burst queues in the callers and every proposal is
// applied once), and gives up with BusyError when its timeout passes first.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BusyError, RaftGroup, type PeerStatus } from '../../lib/index.js';
import { Clerk, kvStateMachine } from '../../lib/kv/index.js';
import type { CounterCommand, CounterQuery } from '../fixtures/counter-sm.js';

const counter = { module: new URL('../fixtures/counter-sm.js', import.meta.url) };
type Counter = RaftGroup<CounterCommand, unknown, CounterQuery, unknown>;

async function leaderStatus(g: Counter): Promise<PeerStatus> {
  const st = await g.status();
  const p = st.peers[st.leader];
  if (!p || !p.running) throw new Error('no running leader');
  return p as PeerStatus;
}

t.test('a burst past maxPending waits in the clients: every proposal is applied once', async (t) => {
  const g = (await RaftGroup.open({ peers: 3, stateMachine: counter, maxPending: 4 })) as Counter;
  try {
    await g.propose({ op: 'add', n: 0 });
    // The hold keeps every peer's thread busy while 60 proposals arrive, so they reach the leader together.
    const held = g.propose({ op: 'hold', ms: 300 });
    const burst = Array.from({ length: 60 }, (_, k) => g.propose({ op: 'add', n: 1, tag: `b${k}` }, { timeoutMs: 20_000 }));
    const maxSeen = { pending: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const st = await leaderStatus(g).catch(() => undefined);
        if (st) maxSeen.pending = Math.max(maxSeen.pending, st.pendingProposals);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await held;
    const results = await Promise.all(burst);
    sampling = false;
    await sampler;
    t.equal(results.length, 60, 'all 60 proposals succeeded');
    const st = await leaderStatus(g);
    t.ok(st.busyAnswers > 0, `the leader answered Busy ${st.busyAnswers} times`);
    t.ok(maxSeen.pending <= 4, `at most 4 proposals waited on the leader (most seen: ${maxSeen.pending})`);
    t.equal(await g.read('value'), 60, 'each was applied exactly once');
    const tags = (await g.read('tags')) as string[];
    t.equal(new Set(tags).size, 60, 'no tag twice');
  } finally {
    await g.close();
  }
});

t.test('a client that stays past the bound for its whole timeout gets BusyError, and nothing was done', async (t) => {
  // Without the quorum check, the leader cut off below keeps leading (and answering) for the whole test.
  // Files, so that the followers restart with what they had.
  const dataDir = mkdtempSync(join(tmpdir(), 'actor-raft-flow-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const g = (await RaftGroup.open({ peers: 3, dataDir, stateMachine: counter, maxPending: 1, refuseWithoutQuorum: false })) as Counter;
  try {
    await g.propose({ op: 'add', n: 1 });
    const leader = (await g.status()).leader;
    const followers = [0, 1, 2].filter((p) => p !== leader);
    for (const f of followers) await g.crash(f);
    // This one cannot commit without a follower: it fills the leader's one slot.
    const stuck = g.propose({ op: 'add', n: 10 }, { timeoutMs: 30_000, peer: leader });
    stuck.catch(() => {});
    const t0 = performance.now();
    const err = await g.propose({ op: 'add', n: 100 }, { timeoutMs: 300, peer: leader }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const waited = performance.now() - t0;
    t.ok(err instanceof BusyError, `BusyError (${String(err)})`);
    t.equal((err as BusyError).code, 'busy');
    t.match((err as Error).message, /busy/);
    t.ok(waited >= 290, `it waited out its timeout first (${waited.toFixed(0)} ms)`);
    const st = await leaderStatus(g);
    t.ok(st.busyAnswers >= 2, `the leader was asked again while busy (${st.busyAnswers} Busy answers)`);
    for (const f of followers) await g.restart(f);
    await stuck;
    t.equal(await g.read('value'), 11, 'the stuck proposal was applied, the refused one was not');
  } finally {
    await g.close();
  }
});

t.test('key/value Clerks wait while the leader is busy: every Put lands once', async (t) => {
  const g = await RaftGroup.open({ peers: 3, stateMachine: kvStateMachine, maxPending: 2 });
  try {
    const handle = g.handle();
    const clerks = Array.from({ length: 40 }, () => Clerk.connect(handle));
    await Promise.all(clerks.map(async (ck, k) => {
      for (let n = 0; n < 5; n++) await ck.append(`key-${k % 4}`, `[${k}.${n}]`);
    }));
    const st = (await g.status()).peers.filter((p) => p.running) as PeerStatus[];
    const busy = st.reduce((a, p) => a + p.busyAnswers, 0);
    t.ok(busy > 0, `the leader answered Busy ${busy} times`);
    for (let key = 0; key < 4; key++) {
      const v = await clerks[0]!.get(`key-${key}`);
      for (let k = key; k < 40; k += 4) {
        for (let n = 0; n < 5; n++) t.equal(v.split(`[${k}.${n}]`).length - 1, 1, `key-${key} holds [${k}.${n}] once`);
      }
    }
    for (const ck of clerks) ck.close();
  } finally {
    await g.close();
  }
});
