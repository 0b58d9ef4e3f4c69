// The sharded key/value lab's tests (part 4B), ported (../shared/spec/shardkv-tester.md §7-9).
import { randomInt } from 'node:crypto';
import { checkKvHistory } from '../../lib/check/checker.js';
import { KvOp, type KvOperation } from '../../lib/check/kv-model.js';
import { ControllerClerk, key2shard, shardControllerStateMachine, type ShardClerk } from '../../lib/shard/index.js';
import { Cluster, labEnds } from '../../lib/testing/index.js';
import { linearizabilityCheckTimeout, nowNs, type ShardKvConfig } from '../../lib/testing/index.js';
import { appendRound, check, checkAll, putKeys, randstring, shardKvLabTest, sleep } from './shardkv-lab.js';

shardKvLabTest('TestStaticShards', 3, false, -1, async (cfg) => {
  cfg.log('Test: static shards ...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  await cfg.join(1);
  const { ka, va } = await putKeys(ck, 10, 20);
  await checkAll(cfg, ck, ka, va);

  // Make sure that the data really is sharded by shutting down one group
  // and checking that some Get()s don't succeed.
  await cfg.shutdownGroup(1);
  cfg.checklogs(); // forbid snapshots

  const completions = await countCompletions(cfg, ka.map(() => cfg.makeClient()), ka, va);
  if (completions !== 5) cfg.fatal(`expected 5 completions with one shard dead; got ${completions}`);

  // Bring the crashed shard/group back to life.
  await cfg.startGroup(1);
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

shardKvLabTest('TestJoinLeave', 3, false, -1, async (cfg) => {
  cfg.log('Test: join then leave ...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 10, 5);
  await checkAll(cfg, ck, ka, va);
  await cfg.join(1);
  await appendRound(cfg, ck, ka, va, 5);
  await cfg.leave(0);
  await appendRound(cfg, ck, ka, va, 5);
  // Allow time for shards to transfer.
  await sleep(1000);
  cfg.checklogs();
  await cfg.shutdownGroup(0);
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

shardKvLabTest('TestSnapshot', 3, false, 1000, async (cfg) => {
  cfg.log('Test: snapshots, join, and leave ...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 30, 20);
  await checkAll(cfg, ck, ka, va);
  await cfg.join(1);
  await cfg.join(2);
  await cfg.leave(0);
  await appendRound(cfg, ck, ka, va, 20);
  await cfg.leave(1);
  await cfg.join(0);
  await appendRound(cfg, ck, ka, va, 20);
  await sleep(1000);
  await checkAll(cfg, ck, ka, va);
  await sleep(1000);
  cfg.checklogs();
  await cfg.shutdownGroup(0);
  await cfg.shutdownGroup(1);
  await cfg.shutdownGroup(2);
  await cfg.startGroup(0);
  await cfg.startGroup(1);
  await cfg.startGroup(2);
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});


shardKvLabTest('TestMissChange', 3, false, 1000, async (cfg) => {
  cfg.log('Test: servers miss configuration changes...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 10, 20);
  await checkAll(cfg, ck, ka, va);
  await cfg.join(1);
  await cfg.shutdownServer(0, 0);
  await cfg.shutdownServer(1, 0);
  await cfg.shutdownServer(2, 0);
  await cfg.join(2);
  await cfg.leave(1);
  await cfg.leave(0);
  await appendRound(cfg, ck, ka, va, 20);
  await cfg.join(1);
  await appendRound(cfg, ck, ka, va, 20);
  await cfg.startServer(0, 0);
  await cfg.startServer(1, 0);
  await cfg.startServer(2, 0);
  await appendRound(cfg, ck, ka, va, 20);
  await sleep(2000);
  await cfg.shutdownServer(0, 1);
  await cfg.shutdownServer(1, 1);
  await cfg.shutdownServer(2, 1);
  await cfg.join(0);
  await cfg.leave(2);
  await appendRound(cfg, ck, ka, va, 20);
  await cfg.startServer(0, 1);
  await cfg.startServer(1, 1);
  await cfg.startServer(2, 1);
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

/**
 * Start appending workers; worker i appends randstring(l) to ka[i] until
 * stopped (with clerks[i], or a clerk it makes itself), sleeping `pauseMs`
 * between appends. stop() tells them to stop; wait() waits for each to
 * finish its current Append.
 */
function appenders(cfg: ShardKvConfig, ka: string[], va: string[], l: number, pauseMs: number, clerks?: ShardClerk[]): { stop(): void; wait(): Promise<void> } {
  let done = false;
  const workers = ka.map(async (key, i) => {
    const ck1 = clerks?.[i] ?? cfg.makeClient();
    while (!done) {
      const x = randstring(l);
      await ck1.append(key, x);
      va[i] += x;
      if (pauseMs > 0) await sleep(pauseMs);
    }
  });
  for (const w of workers) w.catch((e: unknown) => cfg.fail(`an appender failed: ${e instanceof Error ? e.stack : String(e)}`));
  return {
    stop: () => {
      done = true;
    },
    wait: async () => {
      await Promise.all(workers);
    },
  };
}

shardKvLabTest('TestConcurrent1', 3, false, 100, async (cfg) => {
  cfg.log('Test: concurrent puts and configuration changes...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 10, 5);
  const w = appenders(cfg, ka, va, 5, 10);
  await sleep(150);
  await cfg.join(1);
  await sleep(500);
  await cfg.join(2);
  await sleep(500);
  await cfg.leave(0);
  await cfg.shutdownGroup(0);
  await sleep(100);
  await cfg.shutdownGroup(1);
  await sleep(100);
  await cfg.shutdownGroup(2);
  await cfg.leave(2);
  await sleep(100);
  await cfg.startGroup(0);
  await cfg.startGroup(1);
  await cfg.startGroup(2);
  await sleep(100);
  await cfg.join(0);
  await cfg.leave(1);
  await sleep(500);
  await cfg.join(1);
  await sleep(1000);
  w.stop();
  await w.wait();
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

// This tests the various sources from which a re-starting group might
// fetch shard contents.
shardKvLabTest('TestConcurrent2', 3, false, -1, async (cfg) => {
  cfg.log('Test: more concurrent puts and configuration changes...');
  const ck = cfg.makeClient();
  await cfg.join(1);
  await cfg.join(0);
  await cfg.join(2);
  const { ka, va } = await putKeys(ck, 10, 1);
  const clerks = ka.map(() => cfg.makeClient());
  const w = appenders(cfg, ka, va, 1, 50, clerks);
  await cfg.leave(0);
  await cfg.leave(2);
  await sleep(3000);
  await cfg.join(0);
  await cfg.join(2);
  await cfg.leave(1);
  await sleep(3000);
  await cfg.join(1);
  await cfg.leave(0);
  await cfg.leave(2);
  await sleep(3000);
  await cfg.shutdownGroup(1);
  await cfg.shutdownGroup(2);
  await sleep(1000);
  await cfg.startGroup(1);
  await cfg.startGroup(2);
  await sleep(2000);
  w.stop();
  await w.wait();
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

shardKvLabTest('TestConcurrent3', 3, false, 300, async (cfg) => {
  cfg.log('Test: concurrent configuration change and restart...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 10, 1);
  const clerks = ka.map(() => cfg.makeClient());
  const w = appenders(cfg, ka, va, 1, 0, clerks);
  const t0 = Date.now();
  while (Date.now() - t0 < 12_000) {
    await cfg.join(2);
    await cfg.join(1);
    await sleep(randomInt(900));
    await cfg.shutdownGroup(0);
    await cfg.shutdownGroup(1);
    await cfg.shutdownGroup(2);
    await cfg.startGroup(0);
    await cfg.startGroup(1);
    await cfg.startGroup(2);
    await sleep(randomInt(900));
    await cfg.leave(1);
    await cfg.leave(2);
    await sleep(randomInt(900));
  }
  await sleep(2000);
  w.stop();
  await w.wait();
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

shardKvLabTest('TestUnreliable1', 3, true, 100, async (cfg) => {
  cfg.log('Test: unreliable 1...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 10, 5);
  await cfg.join(1);
  await cfg.join(2);
  await cfg.leave(0);
  for (let ii = 0; ii < ka.length * 2; ii++) {
    const i = ii % ka.length;
    await check(cfg, ck, ka[i]!, va[i]!);
    const x = randstring(5);
    await ck.append(ka[i]!, x);
    va[i] += x;
  }
  await cfg.join(0);
  await cfg.leave(1);
  for (let ii = 0; ii < ka.length * 2; ii++) {
    const i = ii % ka.length;
    await check(cfg, ck, ka[i]!, va[i]!);
  }
  cfg.end();
});

/** The timeline of TestUnreliable2 and TestUnreliable3. */
async function unreliableTimeline(cfg: ShardKvConfig): Promise<void> {
  await sleep(150);
  await cfg.join(1);
  await sleep(500);
  await cfg.join(2);
  await sleep(500);
  await cfg.leave(0);
  await sleep(500);
  await cfg.leave(1);
  await sleep(500);
  await cfg.join(1);
  await cfg.join(0);
  await sleep(2000);
}

shardKvLabTest('TestUnreliable2', 3, true, 100, async (cfg) => {
  cfg.log('Test: unreliable 2...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  const { ka, va } = await putKeys(ck, 10, 5);
  const w = appenders(cfg, ka, va, 5, 0);
  await unreliableTimeline(cfg);
  w.stop();
  cfg.setunreliable(false);
  await w.wait();
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

shardKvLabTest('TestUnreliable3', 3, true, 100, async (cfg) => {
  cfg.log('Test: unreliable 3...');
  const begin = nowNs();
  const history: KvOperation[] = [];
  const ck = cfg.makeClient();
  await cfg.join(0);
  const n = 10;
  const ka: string[] = [];
  for (let i = 0; i < n; i++) {
    ka.push(String(i));
    const v = randstring(5);
    const call = nowNs() - begin;
    await ck.put(ka[i]!, v);
    history.push({ clientId: 0, input: { op: KvOp.Put, key: ka[i]!, value: v }, output: { value: '' }, call, ret: nowNs() - begin });
  }
  let done = false;
  const workers = ka.map(async (_, i) => {
    const ck1 = cfg.makeClient();
    while (!done) {
      const k = randomInt(n);
      const nv = randstring(5);
      const call = nowNs() - begin;
      let input: KvOperation['input'];
      let out = '';
      if (randomInt(1000) < 500) {
        await ck1.append(ka[k]!, nv);
        input = { op: KvOp.Append, key: ka[k]!, value: nv };
      } else if (randomInt(1000) < 100) {
        await ck1.put(ka[k]!, nv);
        input = { op: KvOp.Put, key: ka[k]!, value: nv };
      } else {
        out = await ck1.get(ka[k]!);
        input = { op: KvOp.Get, key: ka[k]!, value: '' };
      }
      history.push({ clientId: i + 1, input, output: { value: out }, call, ret: nowNs() - begin });
    }
  });
  for (const w of workers) w.catch((e: unknown) => cfg.fail(`a client failed: ${e instanceof Error ? e.stack : String(e)}`));
  await unreliableTimeline(cfg);
  done = true;
  cfg.setunreliable(false);
  await Promise.all(workers);
  const r = await checkKvHistory(history, { timeoutMs: linearizabilityCheckTimeout });
  cfg.log(`linearizability check: ${r.result}, ${history.length} operations over ${r.partitions} keys (${r.decided} decided) in ${r.ms.toFixed(0)} ms`);
  if (r.result === 'illegal') cfg.fatal('history is not linearizable');
  if (r.result === 'unknown') cfg.log('info: linearizability check timed out, assuming history is ok');
  cfg.end();
});

// Optional test to see whether servers are deleting shards after they have
// been handed over, in order to keep memory use bounded.
shardKvLabTest('TestChallenge1Delete', 3, false, 1, async (cfg) => {
  cfg.log('Test: shard deletion (challenge 1) ...');
  // "1": every applied entry pushes the Raft state over the limit, so every server snapshots all the time.
  const ck = cfg.makeClient();
  await cfg.join(0);
  // 30,000 bytes of total values.
  const { ka, va } = await putKeys(ck, 30, 1000);
  for (let i = 0; i < 3; i++) await check(cfg, ck, ka[i]!, va[i]!);
  for (let iters = 0; iters < 2; iters++) {
    await cfg.join(1);
    await cfg.leave(0);
    await cfg.join(2);
    await sleep(3000);
    for (let i = 0; i < 3; i++) await check(cfg, ck, ka[i]!, va[i]!);
    await cfg.leave(1);
    await cfg.join(0);
    await cfg.leave(2);
    await sleep(3000);
    for (let i = 0; i < 3; i++) await check(cfg, ck, ka[i]!, va[i]!);
  }
  await cfg.join(1);
  await cfg.join(2);
  for (let k = 0; k < 3; k++) {
    await sleep(1000);
    for (let i = 0; i < 3; i++) await check(cfg, ck, ka[i]!, va[i]!);
  }
  const total = cfg.totalStored();
  // 27 keys should be stored once, 3 keys should also be stored in client dup tables, plus slack; times 3 replicas.
  const expected = 3 * ((ka.length - 3) * 1000 + 2 * 3 * 1000 + 6000);
  cfg.log(`stored: ${total} bytes of Raft state and snapshots (bound ${expected})`);
  if (total > expected) cfg.fatal(`snapshot + persisted Raft state are too big: ${total} > ${expected}`);
  await checkAll(cfg, ck, ka, va);
  cfg.end();
});

// Optional test to see whether servers can handle shards that are not
// affected by a config change while the config change is underway.
shardKvLabTest('TestChallenge2Unaffected', 3, true, 100, async (cfg) => {
  cfg.log('Test: unaffected shard access (challenge 2) ...');
  const ck = cfg.makeClient();
  // JOIN 100
  await cfg.join(0);
  // Do a bunch of puts to keys in all shards.
  const n = 10;
  const ka: string[] = [];
  const va: string[] = [];
  for (let i = 0; i < n; i++) {
    ka.push(String(i));
    va.push('100');
    await ck.put(ka[i]!, va[i]!);
  }
  // JOIN 101
  await cfg.join(1);
  // QUERY to find shards now owned by 101.
  const c = await cfg.mck.query(-1);
  const owned = c.shards.map((g) => g === cfg.gids[1]);
  // Wait for migration to new config to complete, and for clients to learn about it.
  await sleep(1000);
  // Do a bunch of puts to keys in the shards owned by 101 (indexed by key number, as in the original).
  for (let i = 0; i < n; i++) {
    if (owned[i]) {
      va[i] = '101';
      await ck.put(ka[i]!, va[i]!);
    }
  }
  // KILL 100
  await cfg.shutdownGroup(0);
  // LEAVE 100: 101 will start migrating shards from 100, which it will never receive.
  await cfg.leave(0);
  // Wait to make sure clients see the change.
  await sleep(1000);
  // And finally: check that gets/puts for 101-owned keys still complete.
  for (let i = 0; i < n; i++) {
    if (owned[key2shard(ka[i]!)]) {
      await check(cfg, ck, ka[i]!, va[i]!);
      await ck.put(ka[i]!, va[i] + '-1');
      await check(cfg, ck, ka[i]!, va[i] + '-1');
    }
  }
  cfg.end();
});

// Optional test to see whether servers can handle operations on shards
// that have been received as a part of a config migration when the entire
// migration has not yet completed.
shardKvLabTest('TestChallenge2Partial', 3, true, 100, async (cfg) => {
  cfg.log('Test: partial migration shard access (challenge 2) ...');
  const ck = cfg.makeClient();
  // JOIN 100 + 101 + 102
  await cfg.joinm([0, 1, 2]);
  // Give the implementation some time to reconfigure.
  await sleep(1000);
  // Do a bunch of puts to keys in all shards.
  const n = 10;
  const ka: string[] = [];
  for (let i = 0; i < n; i++) {
    ka.push(String(i));
    await ck.put(ka[i]!, '100');
  }
  // QUERY to find shards owned by 102.
  const c = await cfg.mck.query(-1);
  const owned = c.shards.map((g) => g === cfg.gids[2]);
  // KILL 100
  await cfg.shutdownGroup(0);
  // LEAVE 100 + 102: 101 can get old shards from 102, but not from 100.
  await cfg.leavem([0, 2]);
  // Wait to make sure clients see the change.
  await sleep(1000);
  // And finally: check that gets/puts for 101-owned keys now complete.
  for (let i = 0; i < n; i++) {
    if (owned[key2shard(ka[i]!)]) {
      await check(cfg, ck, ka[i]!, '100');
      await ck.put(ka[i]!, '100-2');
      await check(cfg, ck, ka[i]!, '100-2');
    }
  }
  cfg.end();
});

/**
 * Count the Gets that complete, each wrong value failing the test: wait
 * for the next completion for at most 2 s each time, stop at the first gap.
 */
async function countCompletions(cfg: ShardKvConfig, clerks: ShardClerk[], ka: string[], va: string[]): Promise<number> {
  let completions = 0;
  let wake: (() => void) | undefined;
  clerks.forEach((ck1, i) => {
    void ck1.get(ka[i]!).then(
      (v) => {
        if (v !== va[i]) cfg.fail(`Get(${ka[i]}): expected:\n${va[i]}\nreceived:\n${v}`);
        completions++;
        wake?.();
      },
      () => {},
    );
  });
  for (;;) {
    const before = completions;
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 2000);
    });
    if (completions === before) return completions;
  }
}

// A later edition's test (§11): a second, independent controller believes
// group 100 owns every shard; clerks that follow it send every key to 100,
// which must refuse the keys of shards it does not own, even asked directly.
shardKvLabTest('TestRejection', 3, false, -1, async (cfg) => {
  cfg.log('Test: servers reject operations on shards they do not own ...');
  const ck = cfg.makeClient();
  await cfg.join(0);
  await cfg.join(1);
  const { ka, va } = await putKeys(ck, 10, 20);
  await checkAll(cfg, ck, ka, va);

  const fake = new Cluster({ peers: 3, service: { module: shardControllerStateMachine.module }, onPeerError: (p, _inc, e) => cfg.fail(`second controller ${p} died: ${e.stack ?? String(e)}`) });
  try {
    for (let i = 0; i < 3; i++) await fake.start(i);
    fake.connectAll();
    const fck = new ControllerClerk(labEnds(fake.openClient().link));
    await fck.join({ [cfg.gids[0]!]: Array.from({ length: cfg.n }, (_, i) => `server-${cfg.gids[0]}-${i}`) });
    fck.close();
    const clerks = ka.map(() => cfg.makeClient(fake));
    const completions = await countCompletions(cfg, clerks, ka, va);
    if (completions !== ka.length / 2) cfg.fatal(`expected ${ka.length / 2} completions; got ${completions}`);
    for (const c of clerks) cfg.deleteClient(c);
  } finally {
    await fake.close();
  }
  cfg.end();
});
