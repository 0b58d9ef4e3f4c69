// The sharded key/value service's group state: ownership decided when an
// operation is applied, one configuration at a time, shards handed over
// with their duplicate tables merged, served at once when they arrive,
// deleted at the old owner only when released, and snapshots that carry a
// migration in flight. Two groups' states are driven by hand here, the way
// their coordinators drive them through their logs.
import t from 'tap';
import { NSHARDS, configToWire, key2shard, rebalance, type ShardConfig } from '../../lib/shard/index.js';
import { ShardKvState, ShardStatus } from '../../lib/shard/shardkv-state.js';
import { createStateMachine } from '../../lib/shard/shardkv-service.js';
import type { KvCommand } from '../../lib/kv/state-machine.js';

function config(num: number, shards: number[], gids: number[]): ShardConfig {
  return { num, shards, groups: new Map(gids.map((g) => [g, [`server-${g}-0`]])) };
}

/** A key in each shard: "2" is shard 0, "3" shard 1, ... ("0"/"1" are 8/9). */
const keyOf = (s: number) => String.fromCharCode(48 + ((s + 2) % 10));

let seq = 0;
const put = (key: string, value: string, clientId = 1): KvCommand => ({ op: 'put', key, value, clientId, seq: ++seq });
const append = (key: string, value: string, clientId: number, s: number): KvCommand => ({ op: 'append', key, value, clientId, seq: s });

t.test('key helper', async (t) => {
  for (let s = 0; s < NSHARDS; s++) t.equal(key2shard(keyOf(s)), s);
});

t.test('a shard moves from one group to another, served throughout where it may be', async (t) => {
  const a = new ShardKvState(100);
  const b = new ShardKvState(101);
  const c1 = config(1, rebalance(new Array(NSHARDS).fill(0), [100]), [100]);
  t.same(a.reconfigure(c1), ['OK']);
  t.same(b.reconfigure(c1), ['OK']);
  for (let s = 0; s < NSHARDS; s++) t.equal(a.apply(put(keyOf(s), `v${s}`)).err, 'OK');
  t.equal(b.apply(put(keyOf(0), 'x')).err, 'ErrWrongGroup', 'a group refuses a shard it does not serve');
  t.equal(b.read(keyOf(0)).err, 'ErrWrongGroup', 'reads too');
  // Client 7 appends to a key of a shard that will move; its retry must not apply twice after the move.
  const c2 = config(2, rebalance(c1.shards, [100, 101]), [100, 101]);
  const moving = [...Array(NSHARDS).keys()].filter((s) => c2.shards[s] === 101);
  const staying = [...Array(NSHARDS).keys()].filter((s) => c2.shards[s] === 100);
  t.equal(moving.length, 5);
  const m0 = moving[0]!;
  t.equal(a.apply(append(keyOf(m0), '+7', 7, 40)).err, 'OK');

  t.same(a.reconfigure(c2), ['OK']);
  t.same(b.reconfigure(c2), ['OK']);
  for (const s of moving) {
    t.equal(a.statusOf(s), ShardStatus.Sending);
    t.equal(b.statusOf(s), ShardStatus.Pulling);
    t.equal(a.read(keyOf(s)).err, 'ErrWrongGroup', 'the old owner stops serving a moving shard');
    t.equal(b.read(keyOf(s)).err, 'ErrWrongGroup', 'the new owner does not serve it before it arrives');
  }
  for (const s of staying) t.same(a.read(keyOf(s)), { err: 'OK', value: `v${s}` }, 'shards that stay keep being served');
  t.equal(a.apply(put(keyOf(staying[0]!), 'during')).err, 'OK');
  const c3 = config(3, c2.shards, [100, 101]);
  t.equal(a.reconfigure(c3)[0], 'ErrNotReady', 'no next configuration while shards are in flight');
  t.equal(b.reconfigure(config(4, c2.shards, [100, 101]))[0], 'ErrNotReady', 'nor one that skips');
  t.equal(b.reconfigure(c1)[0], 'ErrStale', 'an older one is stale');

  t.equal((a.handOver(3, m0) as string[])[0], 'ErrNotReady', 'nothing is handed over for a configuration not reached');
  const content = a.handOver(2, m0);
  t.ok(!Array.isArray(content), 'a Sending shard is handed over');
  t.same(b.install(2, m0, content as never), ['OK']);
  t.equal(b.statusOf(m0), ShardStatus.Arrived);
  t.same(b.read(keyOf(m0)), { err: 'OK', value: `v${m0}+7` }, 'an arrived shard is served at once, though others are still pulling');
  t.equal(b.read(keyOf(moving[1]!)).err, 'ErrWrongGroup');
  t.same(b.apply(append(keyOf(m0), '+7', 7, 40)), { err: 'OK', value: '' }, 'the retried Append is answered...');
  t.same(b.read(keyOf(m0)).value, `v${m0}+7`, '...and not applied twice: the duplicate table moved with the shard');
  t.equal(b.install(2, m0, content as never)[0], 'ErrStale', 'a second install is refused');
  t.equal(b.install(1, moving[1]!, content as never)[0], 'ErrStale', 'so is data from a stale configuration');

  t.same(a.release(2, m0), ['OK']);
  t.equal(a.statusOf(m0), ShardStatus.Absent);
  t.equal(a.keysPerShard()[m0], 0, 'the old owner deleted its copy');
  t.same(a.release(2, m0), ['OK'], 'a retried release is harmless');
  t.equal((a.handOver(2, m0) as string[])[0], 'ErrStale', 'and there is nothing left to hand over');
  t.same(b.released(2, m0), ['OK']);
  t.equal(b.statusOf(m0), ShardStatus.Serving);

  // A snapshot in the middle of the migration restores it exactly.
  const restored = new ShardKvState(101);
  restored.restore(b.snapshot());
  for (let s = 0; s < NSHARDS; s++) t.equal(restored.statusOf(s), b.statusOf(s), `shard ${s}'s status survives a snapshot`);
  t.same(Buffer.from(restored.snapshot()), Buffer.from(b.snapshot()), 'and everything else');
  t.throws(() => new ShardKvState(102).restore(b.snapshot()), /group 101's, not group 102's/);
  t.throws(() => new ShardKvState(101).restore(new Uint8Array([7, 7])), /not a sharded key\/value snapshot/);

  for (const s of moving.slice(1)) {
    t.same(restored.install(2, s, a.handOver(2, s) as never), ['OK']);
    t.same(a.release(2, s), ['OK']);
    t.same(restored.released(2, s), ['OK']);
  }
  t.ok(a.settled && restored.settled, 'both settled');
  t.same(a.reconfigure(c3), ['OK'], 'and the next configuration is taken');
  for (let s = 0; s < NSHARDS; s++) {
    const owner = c2.shards[s] === 100 ? a : restored;
    t.equal(owner.read(keyOf(s)).err, 'OK', `shard ${s} is served by its owner`);
  }
  t.same(a.keysPerShard().reduce((x, y) => x + y, 0) + restored.keysPerShard().reduce((x, y) => x + y, 0), NSHARDS, 'every key held once');
});

t.test('merging duplicate tables keeps the newer entry per client', async (t) => {
  const a = new ShardKvState(1);
  const b = new ShardKvState(2);
  const c1 = config(1, new Array(NSHARDS).fill(1), [1]);
  a.reconfigure(c1);
  b.reconfigure(c1);
  const c2shards = new Array(NSHARDS).fill(1);
  c2shards[0] = 2;
  const c2 = config(2, c2shards, [1, 2]);
  a.apply(append(keyOf(0), 'a', 5, 10));
  a.reconfigure(c2);
  b.reconfigure(c2);
  const content = a.handOver(2, 0) as { data: [string, string][]; sessions: [number, number, string, string][] };
  // The receiving side already knew client 5 at a later seq (from another shard's history): that entry wins.
  content.sessions.push([6, 3, 'OK', '']);
  b.install(2, 0, content as never);
  t.same(b.apply(append(keyOf(0), 'a', 5, 10)), { err: 'OK', value: '' }, 'seq 10 of client 5 is known');
  t.equal(b.read(keyOf(0)).value, 'a');
  t.equal(b.apply(append(keyOf(0), 'b', 6, 3)).err, 'OK');
  t.equal(b.read(keyOf(0)).value, 'a', "client 6's seq 3 came with the shard: not applied again");
  t.equal(b.apply(append(keyOf(0), 'c', 6, 4)).err, 'OK');
  t.equal(b.read(keyOf(0)).value, 'ac');
});

t.test('the service module: wire forms and bad input', async (t) => {
  const sm = createStateMachine({ gid: 100 });
  const meta = { index: 1, term: 1 };
  const c1 = config(1, new Array(NSHARDS).fill(100), [100]);
  t.same(sm.apply(['config', configToWire(c1)], meta), ['OK']);
  t.same(sm.apply([1, 'k', 'v', 3, 1], meta), ['OK', '']);
  t.same(sm.query('k'), ['OK', 'v']);
  const state = sm.query(['state']) as unknown[];
  t.equal(state[0], 100);
  t.same(state[3], new Array(NSHARDS).fill(ShardStatus.Serving));
  t.equal((sm.apply(['config', 'nope'], meta) as string[])[0], 'ErrBadRequest');
  t.equal((sm.apply(['install', 1, 11, [], []], meta) as string[])[0], 'ErrBadRequest', 'a shard out of range');
  t.equal((sm.apply(['install', 1, 0, [['k', 1]], []], meta) as string[])[0], 'ErrBadRequest', 'rows that are not strings');
  t.equal((sm.apply(['install', 1, 0, [], []], meta) as string[])[0], 'ErrStale', 'a shard not awaited');
  t.equal((sm.apply(['launch'], meta) as string[])[0], 'ErrBadRequest');
  t.equal((sm.query(['pull', -1, 0]) as string[])[0], 'ErrBadRequest');
  t.equal((sm.query(['pull', 1, 0]) as string[])[0], 'ErrStale', 'a shard this group serves is not handed over');
  t.equal((sm.query(42) as string[])[0], 'ErrBadRequest');
  t.throws(() => createStateMachine({ gid: 0 }), RangeError, 'GID 0 is no group');
  t.throws(() => createStateMachine(undefined), RangeError);
});

t.test('shards nobody owns are parked with their last group and handed to whoever gets them next', async (t) => {
  const a = new ShardKvState(100);
  const b = new ShardKvState(101);
  const none = new Array(NSHARDS).fill(0);
  const all = (g: number) => new Array(NSHARDS).fill(g);
  const c1 = config(1, all(100), [100]);
  const c2 = config(2, none, []);
  const c3 = config(3, all(101), [101]);
  const c4 = config(4, none, []);
  const c5 = config(5, all(101), [101]);
  for (const g of [a, b]) g.reconfigure(c1);
  t.equal(b.statusOf(0), ShardStatus.Absent);
  a.apply(put(keyOf(0), 'kept'));
  for (const g of [a, b]) t.same(g.reconfigure(c2), ['OK']);
  t.equal(a.statusOf(0), ShardStatus.Parked, 'every group left: the last owner parks its data');
  t.equal(a.read(keyOf(0)).err, 'ErrWrongGroup', 'and does not serve it');
  t.ok(a.settled, 'parked shards do not hold up the next configuration');
  for (const g of [a, b]) t.same(g.reconfigure(c3), ['OK']);
  t.equal(b.statusOf(0), ShardStatus.Pulling, 'the next owner pulls it...');
  t.equal(b.sourceOf(0), 100, '...from the group that parked it');
  t.equal(a.statusOf(0), ShardStatus.Sending);
  for (let s = 0; s < NSHARDS; s++) {
    t.same(b.install(3, s, a.handOver(3, s) as never), ['OK']);
    t.same(a.release(3, s), ['OK']);
    t.same(b.released(3, s), ['OK']);
  }
  t.same(b.read(keyOf(0)), { err: 'OK', value: 'kept' }, 'nothing was lost on the way through GID 0');
  t.equal(a.keysPerShard().reduce((x, y) => x + y, 0), 0);
  for (const g of [a, b]) t.same(g.reconfigure(c4), ['OK']);
  t.equal(b.statusOf(0), ShardStatus.Parked);
  for (const g of [a, b]) t.same(g.reconfigure(c5), ['OK']);
  t.equal(b.statusOf(0), ShardStatus.Serving, 'given back to the group that parked it: served at once');
  t.same(b.read(keyOf(0)), { err: 'OK', value: 'kept' });
  const restored = new ShardKvState(101);
  restored.restore(b.snapshot());
  t.same(Buffer.from(restored.snapshot()), Buffer.from(b.snapshot()), 'last owners and sources survive a snapshot');
});
