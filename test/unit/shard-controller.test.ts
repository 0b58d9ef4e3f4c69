// The shard controller: rebalancing (even, minimal, deterministic), the
// replicated state's exactly-once and bad-input rules, snapshots, and the
// clerk end to end with its typed errors. Also shows the lab's config
// checks failing on configurations they must refuse.
import t from 'tap';
import { Cluster } from '../../lib/testing/index.js';
import { RaftGroup } from '../../lib/index.js';
import {
  ControllerClerk,
  ControllerState,
  NSHARDS,
  ShardCtrlerError,
  key2shard,
  parseCtrlerCommand,
  rebalance,
  shardControllerStateMachine,
  type CtrlerCommand,
  type ShardConfig,
} from '../../lib/shard/index.js';
import { CallerClosedError } from '../../lib/kv/leader-calls.js';
import { labEnds } from '../../lib/testing/lab-ends.js';
import { GroupClosedError, OptionError } from '../../lib/api/errors.js';
import { seededRng, randInt } from '../../lib/raft/prng.js';
import { checkGroups, checkSameConfig } from '../shard/ctrler-checks.js';

/** The fewest shards any even assignment over `gids` must move from `shards` (counted independently of rebalance). */
function fewestMoves(shards: number[], gids: number[]): number {
  if (gids.length === 0) return shards.filter((g) => g !== 0).length;
  const base = Math.floor(NSHARDS / gids.length);
  const extra = NSHARDS % gids.length;
  const counts = gids.map((g) => shards.filter((x) => x === g).length);
  // Each group keeps up to its target; the `extra` groups allowed one more are best given to those holding more than base.
  const kept = counts.reduce((n, c) => n + Math.min(c, base), 0) + Math.min(extra, counts.filter((c) => c > base).length);
  return NSHARDS - kept;
}

const moved = (a: number[], b: number[]) => a.filter((g, i) => g !== b[i]).length;
const fatal = (m: string): never => {
  throw new Error(m);
};

t.test('rebalance: even, every shard on a present group, and no more moves than needed, over random joins and leaves', async (t) => {
  const rng = seededRng(7);
  let shards = new Array<number>(NSHARDS).fill(0);
  let gids: number[] = [];
  let checked = 0;
  for (let step = 0; step < 3000; step++) {
    const next = gids.slice();
    if (next.length === 0 || (next.length < 14 && randInt(rng, 0, 1) === 0)) {
      for (let k = randInt(rng, 1, 3); k > 0; k--) {
        const g = randInt(rng, 1, 40);
        if (!next.includes(g)) next.push(g);
      }
    } else {
      for (let k = randInt(rng, 1, Math.min(3, next.length)); k > 0; k--) next.splice(randInt(rng, 0, next.length - 1), 1);
    }
    const out = rebalance(shards, next);
    const config: ShardConfig = { num: step + 1, shards: out, groups: new Map(next.map((g) => [g, ['s']])) };
    checkGroups(fatal, next, config);
    const need = fewestMoves(shards, next);
    if (moved(shards, out) !== need) t.fail(`step ${step}: moved ${moved(shards, out)} shards, ${need} would do (${shards} -> ${out} for ${next})`);
    // Determinism: the same groups in another order give the same answer.
    if (rebalance(shards, next.slice().reverse()).join() !== out.join()) t.fail(`step ${step}: the answer depends on the order of the GIDs`);
    shards = out;
    gids = next;
    checked++;
  }
  t.equal(checked, 3000, 'every step balanced and minimal');
  t.same(rebalance(shards, []), new Array(NSHARDS).fill(0), 'no groups: every shard back to GID 0');
  t.throws(() => rebalance(shards, [1, 1]), RangeError, 'repeated GIDs are refused');
});

t.test('the lab checks fail on configurations they must refuse', async (t) => {
  const groups = new Map([
    [1, ['a']],
    [2, ['b']],
  ]);
  const good: ShardConfig = { num: 3, shards: [1, 1, 1, 1, 1, 2, 2, 2, 2, 2], groups };
  checkGroups(fatal, [1, 2], good);
  t.throws(() => checkGroups(fatal, [1, 2], { ...good, shards: [1, 1, 1, 1, 1, 1, 1, 2, 2, 2] }), /max 7 too much larger than min 3/);
  t.throws(() => checkGroups(fatal, [1, 2], { ...good, shards: [1, 1, 1, 1, 1, 2, 2, 2, 2, 0] }), /shard 9 -> invalid group 0/);
  t.throws(() => checkGroups(fatal, [1, 2, 3], good), /wanted 3 groups, got 2/);
  t.throws(() => checkGroups(fatal, [1, 3], good), /missing group 3/);
  checkSameConfig(fatal, good, { ...good, groups: new Map(groups) });
  t.throws(() => checkSameConfig(fatal, good, { ...good, num: 4 }), /Num wrong/);
  t.throws(() => checkSameConfig(fatal, good, { ...good, shards: [2, 1, 1, 1, 1, 2, 2, 2, 2, 1] }), /Shards wrong/);
  t.throws(() => checkSameConfig(fatal, good, { ...good, groups: new Map([[1, ['a']]]) }), /number of Groups is wrong/);
  t.throws(() => checkSameConfig(fatal, good, { ...good, groups: new Map([[1, ['a']], [2, ['b', 'c']]]) }), /len\(Groups\) wrong/);
  t.throws(() => checkSameConfig(fatal, good, { ...good, groups: new Map([[1, ['a']], [2, ['c']]]) }), /Groups wrong/);
  // A planted bug: a rebalance that moves a shard it need not is caught by the minimal-move count.
  const before = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2];
  const wasteful = [3, 3, 3, 1, 1, 2, 2, 2, 1, 2]; // balanced, but 4 moves where 3 do
  t.not(moved(before, wasteful), fewestMoves(before, [1, 2, 3]), 'a wasteful but balanced answer is told apart');
  t.equal(moved(before, rebalance(before, [1, 2, 3])), 3, 'while rebalance moves 3');
});

function cmd(op: string, arg: unknown, clientId: number, seq: number): CtrlerCommand {
  const c = parseCtrlerCommand([op, arg, clientId, seq]);
  if (!('op' in c)) throw new Error(`${c.err}: ${c.detail}`);
  return c;
}

t.test('the replicated state: exactly once, bad input refused with the history untouched, snapshots', async (t) => {
  const s = new ControllerState();
  t.same(s.apply(cmd('join', [[1, ['x', 'y']]], 9, 1)), ['OK']);
  t.same(s.apply(cmd('join', [[1, ['x', 'y']]], 9, 1)), ['OK'], 'a retried Join answers as before');
  t.equal(s.latest.num, 1, 'and makes no second configuration');
  const before = s.snapshot();
  const refused: [string, unknown, string][] = [
    ['join', [[1, ['z']]], 'ErrGidInUse'],
    ['leave', [5], 'ErrUnknownGid'],
    ['move', [3, 5], 'ErrUnknownGid'],
  ];
  let seq = 2;
  for (const [op, arg, err] of refused) {
    const r = s.apply(cmd(op, arg, 9, seq++));
    t.equal(r[0], err, `${op} ${JSON.stringify(arg)}: ${err}`);
    t.equal(s.latest.num, 1, 'the history is untouched');
  }
  const shapes: [unknown, string][] = [
    [['join', [[0, ['a']]], 9, 1], 'ErrBadGid'],
    [['join', [], 9, 1], 'ErrBadRequest'],
    [['join', [[2, []]], 9, 1], 'ErrBadRequest'],
    [['join', [[2, ['a']], [2, ['b']]], 9, 1], 'ErrBadRequest'],
    [['leave', [1, 1], 9, 1], 'ErrBadRequest'],
    [['leave', [-3], 9, 1], 'ErrBadGid'],
    [['move', [10, 1], 9, 1], 'ErrBadShard'],
    [['move', [-1, 1], 9, 1], 'ErrBadShard'],
    [['move', [1.5, 1], 9, 1], 'ErrBadShard'],
    [['drop', [], 9, 1], 'ErrBadRequest'],
    [['join', [[2, ['a']]], -1, 1], 'ErrBadRequest'],
  ];
  for (const [raw, err] of shapes) {
    const c = parseCtrlerCommand(raw);
    t.equal('err' in c ? c.err : 'parsed', err, `${JSON.stringify(raw)}: ${err}`);
  }
  const q = (n: number) => {
    const r = s.query(n);
    return 'err' in r ? r.err : r.num;
  };
  t.equal(q(-1), 1);
  t.equal(q(0), 0);
  t.equal(q(-2), 'ErrNoConfig', 'a negative number other than -1');
  t.equal(q(2), 'ErrNoConfig', 'beyond the latest');
  t.same(s.latest.groups.get(1), ['x', 'y']);
  t.ok(Buffer.from(before).length > 0);

  // Snapshots: a replica restored midway ends where one that applied everything does.
  const a = new ControllerState();
  const b = new ControllerState();
  const script: CtrlerCommand[] = [
    cmd('join', [[3, ['c']], [1, ['a']]], 1, 1),
    cmd('join', [[2, ['b']]], 1, 2),
    cmd('move', [0, 3], 2, 1),
    cmd('leave', [1], 1, 3),
    cmd('join', [[7, ['g']], [5, ['e']]], 2, 2),
  ];
  script.slice(0, 3).forEach((c) => (a.apply(c), b.apply(c)));
  const c2 = new ControllerState();
  c2.restore(b.snapshot());
  script.slice(3).forEach((c) => (a.apply(c), c2.apply(c)));
  t.same(Buffer.from(c2.snapshot()), Buffer.from(a.snapshot()), 'identical state after restore and the same commands');
  t.same(c2.apply(script[4]!), ['OK'], 'the restored duplicate table still knows the last command');
  t.equal(c2.latest.num, 5);
  t.throws(() => new ControllerState().restore(new Uint8Array([1, 2, 3])), /not a shard controller snapshot/);
});

t.test('key2shard: the first UTF-8 byte modulo 10', async (t) => {
  t.equal(key2shard(''), 0);
  t.same(['0', '1', '9', 'a'].map(key2shard), [8, 9, 7, 7]);
  t.equal(key2shard('é'), 0xc3 % 10, 'a non-ASCII first character: its lead byte');
  t.equal(key2shard('😀x'), 0xf0 % 10);
});

t.test('the clerk end to end: typed errors, and closed clerks and groups reject', async (t) => {
  t.throws(() => new Cluster({ peers: 3, kv: {}, service: { module: shardControllerStateMachine.module } }), OptionError, 'kv and service together are refused');
  t.throws(() => new Cluster({ peers: 3, service: { module: '' } }), OptionError, 'a service needs a module');
  t.throws(() => new Cluster({ peers: 3, service: { module: shardControllerStateMachine.module, maxRaftState: 0 } }), OptionError, 'and a valid maxRaftState');
  t.throws(() => new Cluster({ peers: 3 }).openClient(), OptionError, 'no service: no clients');
  await t.rejects(RaftGroup.open({ peers: 3, stateMachine: shardControllerStateMachine, peerOptions: 5 as never }), OptionError, 'peerOptions must be a function');
  const c = new Cluster({ peers: 3, service: { module: shardControllerStateMachine.module } });
  t.teardown(() => c.close());
  for (let i = 0; i < 3; i++) await c.start(i);
  c.connectAll();
  const ck = new ControllerClerk(labEnds(c.openClient().link));
  await ck.join(new Map([[4, ['p', 'q']]]));
  await ck.join({ 8: ['r'] });
  const latest = await ck.query();
  t.equal(latest.num, 2);
  t.same([...latest.groups.keys()], [4, 8]);
  const code = async (p: Promise<unknown>) => p.then(() => 'OK', (e: unknown) => (e instanceof ShardCtrlerError ? e.err : String(e)));
  t.equal(await code(ck.join({ 4: ['again'] })), 'ErrGidInUse');
  t.equal(await code(ck.join({ 0: ['zero'] })), 'ErrBadGid');
  t.equal(await code(ck.leave([99])), 'ErrUnknownGid');
  t.equal(await code(ck.move(10, 4)), 'ErrBadShard');
  t.equal(await code(ck.move(1, 99)), 'ErrUnknownGid');
  t.equal(await code(ck.query(-5)), 'ErrNoConfig');
  t.equal(await code(ck.query(3)), 'ErrNoConfig');
  t.equal((await ck.query(-1)).num, 2, 'every refusal left the history as it was');
  await ck.move(1, 8);
  t.equal((await ck.query(3)).shards[1], 8);
  ck.close();
  await t.rejects(ck.query(), CallerClosedError, 'a closed clerk rejects');
  const ck2 = new ControllerClerk(labEnds(c.openClient().link));
  await c.close();
  await t.rejects(ck2.query(), GroupClosedError, 'a clerk on a closed group rejects with GroupClosedError');
  ck2.close();
});
