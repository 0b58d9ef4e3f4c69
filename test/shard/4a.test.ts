// The shard controller lab's tests (part 4A), ported (../shared/spec/shardkv-tester.md §3-5, §11).
import { NSHARDS, emptyConfig, type ShardConfig } from '../../lib/shard/index.js';
import { sleep, type CtrlerConfig } from '../../lib/testing/index.js';
import type { ControllerClerk } from '../../lib/shard/index.js';
import { checkGroups, checkSameConfig } from './ctrler-checks.js';
import { ctrlerLabTest } from './lab.js';

/** check(groups, ck): Query(-1) through ck, then the checks of checkGroups. */
async function check(cfg: CtrlerConfig, groups: number[], ck: ControllerClerk): Promise<void> {
  checkGroups((m) => cfg.fatal(m), groups, await ck.query(-1));
}

function sameConfig(cfg: CtrlerConfig, c1: ShardConfig, c2: ShardConfig): void {
  checkSameConfig((m) => cfg.fatal(m), c1, c2);
}

async function checkServers(cfg: CtrlerConfig, ck: ControllerClerk, want: Record<number, string[]>): Promise<void> {
  const q = await ck.query(-1);
  for (const [g, servers] of Object.entries(want)) {
    const got = q.groups.get(Number(g));
    if (!got || got.length !== servers.length || got.some((s, i) => s !== servers[i])) cfg.fatal(`wrong servers for gid ${g}`);
  }
}

/** The (vacuous, as in the original) minimal-transfer check: GIDs 1..10 keep their shards from `before` to `after`. */
function checkMinimal(cfg: CtrlerConfig, before: ShardConfig, after: ShardConfig, what: string): void {
  for (let g = 1; g <= 10; g++) {
    for (let j = 0; j < NSHARDS; j++) {
      if (after.shards[j] === g && before.shards[j] !== g) cfg.fatal(`non-minimal transfer after ${what}`);
    }
  }
}

/** Run `body(i, clerk)` for i in 0..n-1 concurrently, each with its own clerk on every server. */
async function concurrently(cfg: CtrlerConfig, n: number, body: (i: number, ck: ControllerClerk) => Promise<void>): Promise<void> {
  const cka = Array.from({ length: n }, () => cfg.makeClient(cfg.all()));
  await Promise.all(cka.map((ck, i) => body(i, ck)));
}

ctrlerLabTest('TestBasic', 3, false, async (cfg) => {
  const ck = cfg.makeClient(cfg.all());
  const cfa: ShardConfig[] = Array.from({ length: 6 }, () => emptyConfig());

  cfg.log('Test: Basic leave/join ...');
  cfa[0] = await ck.query(-1);
  await check(cfg, [], ck);
  const gid1 = 1;
  await ck.join({ [gid1]: ['x', 'y', 'z'] });
  await check(cfg, [gid1], ck);
  cfa[1] = await ck.query(-1);
  const gid2 = 2;
  await ck.join({ [gid2]: ['a', 'b', 'c'] });
  await check(cfg, [gid1, gid2], ck);
  cfa[2] = await ck.query(-1);
  await checkServers(cfg, ck, { [gid1]: ['x', 'y', 'z'], [gid2]: ['a', 'b', 'c'] });
  await ck.leave([gid1]);
  await check(cfg, [gid2], ck);
  cfa[4] = await ck.query(-1);
  await ck.leave([gid2]);
  cfa[5] = await ck.query(-1);
  cfg.end();

  cfg.log('Test: Historical queries ...');
  for (let s = 0; s < cfg.n; s++) {
    await cfg.shutdownServer(s);
    for (let i = 0; i < cfa.length; i++) sameConfig(cfg, await ck.query(cfa[i]!.num), cfa[i]!);
    await cfg.startServer(s);
    cfg.connectAll();
  }
  cfg.end();

  cfg.log('Test: Move ...');
  {
    const gid3 = 503;
    await ck.join({ [gid3]: ['3a', '3b', '3c'] });
    const gid4 = 504;
    await ck.join({ [gid4]: ['4a', '4b', '4c'] });
    for (let i = 0; i < NSHARDS; i++) {
      const cf = await ck.query(-1);
      const target = i < NSHARDS / 2 ? gid3 : gid4;
      await ck.move(i, target);
      if (cf.shards[i] !== target) {
        const cf1 = await ck.query(-1);
        if (cf1.num <= cf.num) cfg.fatal('Move should increase Config.Num');
      }
    }
    const cf2 = await ck.query(-1);
    for (let i = 0; i < NSHARDS; i++) {
      const want = i < NSHARDS / 2 ? gid3 : gid4;
      if (cf2.shards[i] !== want) cfg.fatal(`expected shard ${i} on gid ${want} actually ${cf2.shards[i]}`);
    }
    await ck.leave([gid3]);
    await ck.leave([gid4]);
  }
  cfg.end();

  cfg.log('Test: Concurrent leave/join ...');
  const npara = 10;
  const gids = Array.from({ length: npara }, (_, i) => 100 + 10 * i);
  await concurrently(cfg, npara, async (i, cka) => {
    const gid = gids[i]!;
    await cka.join({ [gid + 1000]: [`s${gid}a`] });
    await cka.join({ [gid]: [`s${gid}b`] });
    await cka.leave([gid + 1000]);
  });
  await check(cfg, gids, ck);
  cfg.end();

  cfg.log('Test: Minimal transfers after joins ...');
  const c1 = await ck.query(-1);
  for (let i = 0; i < 5; i++) {
    const gid = npara + 1 + i;
    await ck.join({ [gid]: [`${gid}a`, `${gid}b`, `${gid}b`] });
  }
  const c2 = await ck.query(-1);
  checkMinimal(cfg, c1, c2, 'Join()s');
  cfg.end();

  cfg.log('Test: Minimal transfers after leaves ...');
  for (let i = 0; i < 5; i++) await ck.leave([npara + 1 + i]);
  const c3 = await ck.query(-1);
  checkMinimal(cfg, c2, c3, 'Leave()s');
  cfg.end();
});

ctrlerLabTest('TestMulti', 3, false, async (cfg) => {
  const ck = cfg.makeClient(cfg.all());
  const cfa: ShardConfig[] = Array.from({ length: 6 }, () => emptyConfig());

  cfg.log('Test: Multi-group join/leave ...');
  cfa[0] = await ck.query(-1);
  await check(cfg, [], ck);
  const gid1 = 1;
  const gid2 = 2;
  await ck.join({ [gid1]: ['x', 'y', 'z'], [gid2]: ['a', 'b', 'c'] });
  await check(cfg, [gid1, gid2], ck);
  cfa[1] = await ck.query(-1);
  const gid3 = 3;
  await ck.join({ [gid3]: ['j', 'k', 'l'] });
  await check(cfg, [gid1, gid2, gid3], ck);
  cfa[2] = await ck.query(-1);
  await checkServers(cfg, ck, { [gid1]: ['x', 'y', 'z'], [gid2]: ['a', 'b', 'c'], [gid3]: ['j', 'k', 'l'] });
  await ck.leave([gid1, gid3]);
  await check(cfg, [gid2], ck);
  cfa[3] = await ck.query(-1);
  await checkServers(cfg, ck, { [gid2]: ['a', 'b', 'c'] });
  await ck.leave([gid2]);
  cfg.end();

  cfg.log('Test: Concurrent multi leave/join ...');
  const npara = 10;
  const gids = Array.from({ length: npara }, (_, i) => 1000 + i);
  await concurrently(cfg, npara, async (i, cka) => {
    const gid = gids[i]!;
    await cka.join({ [gid]: [`${gid}a`, `${gid}b`, `${gid}c`], [gid + 1000]: [`${gid + 1000}a`], [gid + 2000]: [`${gid + 2000}a`] });
    await cka.leave([gid + 1000, gid + 2000]);
  });
  await check(cfg, gids, ck);
  cfg.end();

  cfg.log('Test: Minimal transfers after multijoins ...');
  const c1 = await ck.query(-1);
  const m: Record<number, string[]> = {};
  for (let i = 0; i < 5; i++) {
    const gid = npara + 1 + i;
    m[gid] = [`${gid}a`, `${gid}b`];
  }
  await ck.join(m);
  const c2 = await ck.query(-1);
  checkMinimal(cfg, c1, c2, 'Join()s');
  cfg.end();

  cfg.log('Test: Minimal transfers after multileaves ...');
  const l = Array.from({ length: 5 }, (_, i) => npara + 1 + i);
  await ck.leave(l);
  const c3 = await ck.query(-1);
  checkMinimal(cfg, c2, c3, 'Leave()s');
  cfg.end();

  cfg.log('Test: Check Same config on servers ...');
  const [isLeader, leader] = await cfg.leader();
  if (!isLeader) cfg.fatal('Leader not found');
  const c = await ck.query(-1);
  await cfg.shutdownServer(leader);
  // As in the original: Leader() is asked once, and its answer is not looked at again.
  const [stillLeader] = await cfg.leader();
  let attempts = 0;
  while (stillLeader) {
    attempts++;
    if (attempts >= 3) cfg.fatal('Leader not found');
    await sleep(1000);
  }
  const c1b = await ck.query(-1);
  sameConfig(cfg, c, c1b);
  cfg.end();
});

// A later edition's real minimal-movement check (§11): a Join moves only
// shards to the new group, a Leave only the departed group's shards, and
// neither more than NShards/3 + 1 of them.
ctrlerLabTest('TestMinimalAgain', 3, false, async (cfg) => {
  const ck = cfg.makeClient(cfg.all());
  cfg.log('Test: Minimal transfers after one join and one leave ...');
  await ck.join({ 1: ['x', 'y', 'z'] });
  await ck.join({ 2: ['a', 'b', 'c'] });
  const c1 = await ck.query(-1);
  await ck.join({ 3: ['d', 'e', 'f'] });
  const c2 = await ck.query(-1);
  const bound = Math.floor(NSHARDS / 3) + 1;
  let changed = 0;
  for (let i = 0; i < NSHARDS; i++) {
    if (c2.shards[i] !== 3 && c2.shards[i] !== c1.shards[i]) cfg.fatal('non-minimal transfer after Join()');
    if (c2.shards[i] !== c1.shards[i]) changed++;
  }
  if (changed > bound) cfg.fatal(`too many shards moved after Join(): ${changed} > ${bound}`);
  await ck.leave([1]);
  const c3 = await ck.query(-1);
  changed = 0;
  for (let i = 0; i < NSHARDS; i++) {
    if (c2.shards[i] !== 1 && c3.shards[i] !== c2.shards[i]) cfg.fatal('non-minimal transfer after Leave()');
    if (c3.shards[i] !== c2.shards[i]) changed++;
  }
  if (changed > bound) cfg.fatal(`too many shards moved after Leave(): ${changed} > ${bound}`);
  cfg.end();
});
