/**
 * npm run start:sharded: the sharded key/value service in this process: a
 * shard controller and three replica groups (GIDs 100, 101, 102), three
 * peers each, every peer in its own worker thread on its own SQLite file
 * under data/ (fsync on). Clients run Append, Put and Get on keys spread
 * over all ten shards while groups join and leave, so shards migrate; one
 * group's leader is killed in the middle of a migration and restarted
 * later. A live progress line shows the configuration and where the shards
 * are; every completed migration is printed as it happens. Then every
 * acknowledged Append is looked for, and the history is checked for
 * linearizability. Exit code 0 only if both hold.
 */
import { jobOptions } from './job-options.js';
import { LinearizabilityChecker } from '../check/checker.js';
import { KvOp, type KvOperation } from '../check/kv-model.js';
import { NSHARDS, configFromWire } from '../shard/config.js';
import { ShardedService } from '../shard/deployment.js';
import type { ShardClerk } from '../shard/shard-clerk.js';
import { ShardStatus } from '../shard/shardkv-state.js';
import type { GroupStateWire } from '../shard/shardkv-service.js';

const GIDS = [100, 101, 102];
const PEERS = 3;
const SNAPSHOT_THRESHOLD = 64 * 1024;

const USAGE = `usage: npm run start:sharded [-- --clients N] [--seconds S] [--data DIR]
  --clients N   concurrent clients (1..256, default 16)
  --seconds S   length of the workload (6..3600, default 20)
  --data DIR    where the peers' SQLite files go (default data/sharded-<time>)`;



const nowNs = () => Number(process.hrtime.bigint());
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const opts = jobOptions(USAGE, [16, 1, 256], [20, 6, 3600], 'sharded');
  const svc = await ShardedService.open({
    gids: GIDS,
    peers: PEERS,
    dataDir: opts.dataDir,
    snapshotThreshold: SNAPSHOT_THRESHOLD,
    onPeerError: (what, peer, inc, err) => console.error(`\n${what} peer ${peer} (incarnation ${inc}) failed:`, err),
  });
  const checker = new LinearizabilityChecker();
  const onSignal = () => {
    console.log('\ninterrupted: stopping the service');
    void svc.close().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  const mck = svc.controllerClerk();
  try {
    console.log(`Sharded key/value service: a controller and groups ${GIDS.join(', ')}, ${PEERS} Raft peers each (${PEERS * (GIDS.length + 1)} worker threads), stored in ${opts.dataDir}/ (SQLite, fsync on).`);
    const servers = (gid: number) => Array.from({ length: PEERS }, (_, i) => `server-${gid}-${i}`);
    await mck.join({ 100: servers(100) });
    console.log(`Group 100 joined: it serves all ${NSHARDS} shards. Running ${opts.clients} clients for ${opts.seconds} s.`);

    const history: KvOperation[] = [];
    const expected: Map<string, string>[] = [];
    let stop = false;
    const clerks: ShardClerk[] = Array.from({ length: opts.clients }, () => svc.clerk());
    const record = async (client: number, op: KvOperation['input']['op'], key: string, value: string, ck: ShardClerk) => {
      const call = nowNs();
      let out = '';
      if (op === KvOp.Get) out = await ck.get(key);
      else if (op === KvOp.Put) await ck.put(key, value);
      else await ck.append(key, value);
      history.push({ clientId: client, input: { op, key, value }, output: { value: out }, call, ret: nowNs() });
    };
    // Keys start with a digit, so that they spread over all ten shards (key2shard reads the first byte).
    const runs = clerks.map(async (ck, c) => {
      const own = new Map<string, string>();
      expected.push(own);
      for (let n = 0; !stop; n++) {
        const r = Math.random();
        if (r < 0.5) {
          const key = `${n % 10}c${c}`;
          const token = `${c}.${n};`;
          await record(c, KvOp.Append, key, token, ck);
          own.set(key, (own.get(key) ?? '') + token);
        } else if (r < 0.7) await record(c, KvOp.Put, `${Math.floor(Math.random() * 10)}s`, `${c}.${n}`, ck);
        else await record(c, KvOp.Get, `${Math.floor(Math.random() * 10)}s`, '', ck);
      }
    });

    // Where the shards are: each group's state, read every 100 ms. When a
    // group takes configuration N, each shard N gives it from another group
    // is a migration, printed once that group serves the shard.
    const t0 = Date.now();
    const tty = process.stdout.isTTY;
    const say = (msg: string) => {
      if (tty) process.stdout.write('\r'.padEnd(110) + '\r');
      console.log(msg);
    };
    const pending = new Map<string, { since: number; from: number; num: number }>();
    const seenConfig = new Map<number, number>();
    let migrations = 0;
    let configNum = 1;
    let placement = '';
    let inFlight = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const owned: string[] = [];
        let flight = 0;
        for (const [gid, g] of svc.groups) {
          const st = (await g.read(['state']).catch(() => undefined)) as GroupStateWire | undefined;
          if (!Array.isArray(st)) {
            owned.push(`${gid}:?`);
            continue;
          }
          const cur = configFromWire(st[1]);
          const prev = configFromWire(st[2]);
          const status = st[3];
          if (!cur || !prev) continue;
          configNum = Math.max(configNum, cur.num);
          if ((seenConfig.get(gid) ?? 0) < cur.num) {
            seenConfig.set(gid, cur.num);
            for (let s = 0; s < NSHARDS; s++) {
              const from = prev.shards[s]!;
              if (cur.shards[s] === gid && from !== gid && from !== 0) pending.set(`${gid}/${s}`, { since: Date.now(), from, num: cur.num });
            }
          }
          let serving = 0;
          for (let s = 0; s < NSHARDS; s++) {
            const served = status[s] === ShardStatus.Serving || status[s] === ShardStatus.Arrived;
            if (served) serving++;
            if (status[s] === ShardStatus.Pulling || status[s] === ShardStatus.Sending || status[s] === ShardStatus.Arrived) flight++;
            const p = pending.get(`${gid}/${s}`);
            if (p && served) {
              migrations++;
              pending.delete(`${gid}/${s}`);
              say(`  shard ${s} moved from group ${p.from} to group ${gid} (configuration ${p.num}), served there within ${Date.now() - p.since} ms`);
            }
          }
          owned.push(`${gid}:${serving}`);
        }
        placement = owned.join(' ');
        inFlight = flight;
        await sleep(100);
      }
    })();
    let lastCount = 0;
    let lastAt = t0;
    let lines = 0;
    let down = '';
    const progress = setInterval(() => {
      const now = Date.now();
      const rate = Math.round(((history.length - lastCount) * 1000) / Math.max(1, now - lastAt));
      lastCount = history.length;
      lastAt = now;
      const line = `  ${((now - t0) / 1000).toFixed(1).padStart(5)} s ${String(history.length).padStart(8)} ops ${String(rate).padStart(6)} ops/s  config ${configNum}  shards served ${placement}  in flight ${inFlight}  migrations ${migrations}${down}`;
      if (tty) process.stdout.write(`\r${line}   `);
      else if (++lines % 4 === 0) console.log(line);
    }, 250);

    const step = (opts.seconds * 1000) / 7;
    const at = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    await sleep(step);
    await mck.join({ 101: servers(101) });
    say(`  group 101 joined at ${at()}`);
    await sleep(step);
    await mck.join({ 102: servers(102) });
    say(`  group 102 joined at ${at()}`);
    await sleep(step);
    await mck.leave([100]);
    // Mid-migration: 101 and 102 are pulling 100's shards now.
    const g101 = svc.groups.get(101)!;
    const victim = Math.max(0, (await g101.status()).leader);
    await g101.crash(victim);
    down = `  (group 101 peer ${victim} down)`;
    say(`  group 100 left at ${at()}; killed group 101's leader (peer ${victim}) while it pulls group 100's shards`);
    await sleep(step);
    await g101.restart(victim);
    down = '';
    say(`  restarted group 101 peer ${victim} from its SQLite file at ${at()}`);
    await sleep(step);
    await mck.join({ 100: servers(100) });
    say(`  group 100 joined again at ${at()}`);
    await sleep(step);
    await mck.leave([102]);
    say(`  group 102 left at ${at()}`);
    await sleep(step);
    stop = true;
    await Promise.all(runs);
    const seconds = (Date.now() - t0) / 1000;
    clearInterval(progress);
    watching = false;
    await watch;
    say(`  ${history.length} operations by ${opts.clients} clients in ${seconds.toFixed(1)} s (${Math.round(history.length / seconds)} ops/s); ${migrations} shard migrations seen`);

    const reader = clerks[0]!;
    let lost = 0;
    let appends = 0;
    for (const own of expected) {
      for (const [key, want] of own) {
        const call = nowNs();
        const got = await reader.get(key);
        history.push({ clientId: 0, input: { op: KvOp.Get, key, value: '' }, output: { value: got }, call, ret: nowNs() });
        appends += want.split(';').length - 1;
        if (got !== want) {
          lost++;
          console.log(`  key ${key}: expected ${JSON.stringify(want.slice(-60))}, read ${JSON.stringify(got.slice(-60))}`);
        }
      }
    }
    for (const ck of clerks) ck.close();
    const final = await mck.query();
    console.log(`Final configuration ${final.num}: shards ${final.shards.join(' ')}.`);
    console.log(`Peak RSS of the process (${PEERS * (GIDS.length + 1)} peer workers): ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB.`);
    console.log(`\nNo acknowledged write lost: ${lost === 0 ? 'yes' : 'NO'} (${appends} acknowledged Appends on ${expected.reduce((k, m) => k + m.size, 0)} keys read back${lost ? `, ${lost} keys wrong` : ''}).`);
    const keys = new Set(history.map((op) => op.input.key)).size;
    console.log(`Checking ${history.length} operations on ${keys} keys for linearizability...`);
    const report = await checker.checkKv(history, { timeoutMs: 120_000 });
    const verdict = report.result === 'ok' ? 'linearizable' : report.result === 'illegal' ? `NOT linearizable (keys ${report.illegalKeys.join(', ')})` : `unknown: ${report.decided} of ${report.partitions} keys decided`;
    console.log(`History: ${verdict} (${report.ms.toFixed(0)} ms).`);
    console.log(`The peers' SQLite files are in ${opts.dataDir}/.`);
    return lost === 0 && report.result === 'ok' && migrations > 0 ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    mck.close();
    await checker.close();
    await svc.close();
  }
}

process.exitCode = await main().catch((e) => {
  console.error(e);
  return 1;
});
