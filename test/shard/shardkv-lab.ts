import t from 'tap';
import { ShardKvConfig, randstring } from '../../lib/testing/index.js';

export { randstring };
import type { ShardClerk } from '../../lib/shard/index.js';

// Each lab file reports its process's total CPU at exit (see test/raft/lab.ts).
process.on('exit', () => {
  const cpu = process.cpuUsage();
  process.stdout.write(`# process cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s\n`);
});

/** One ported sharded key/value test: make_config, the body (which prints its own lines), cleanup. */
export function shardKvLabTest(name: string, n: number, unreliable: boolean, maxraftstate: number, body: (cfg: ShardKvConfig) => Promise<void>): void {
  t.test(name, async (tt) => {
    const cpu0 = process.cpuUsage();
    const cfg = await ShardKvConfig.make(n, unreliable, maxraftstate, { log: (line) => tt.comment(line) });
    await cfg.run(body);
    const cpu = process.cpuUsage(cpu0);
    tt.comment(`cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
    tt.pass('Passed');
  });
}

/** check(ck, key, expected): a Get that must return `expected`. */
export async function check(cfg: ShardKvConfig, ck: ShardClerk, key: string, expected: string): Promise<void> {
  const v = await ck.get(key);
  if (v !== expected) cfg.fatal(`Get(${key}): expected:\n${expected}\nreceived:\n${v}`);
}

/** "check all": every key against its expected value, in index order. */
export async function checkAll(cfg: ShardKvConfig, ck: ShardClerk, ka: string[], va: string[]): Promise<void> {
  for (let i = 0; i < ka.length; i++) await check(cfg, ck, ka[i]!, va[i]!);
}

/** "append round": check each key, append a fresh random string of length l, track it. */
export async function appendRound(cfg: ShardKvConfig, ck: ShardClerk, ka: string[], va: string[], l: number): Promise<void> {
  for (let i = 0; i < ka.length; i++) {
    await check(cfg, ck, ka[i]!, va[i]!);
    const x = randstring(l);
    await ck.append(ka[i]!, x);
    va[i] += x;
  }
}

/** n keys "0".."n-1", Put each with a random value of length l. */
export async function putKeys(ck: ShardClerk, n: number, l: number): Promise<{ ka: string[]; va: string[] }> {
  const ka: string[] = [];
  const va: string[] = [];
  for (let i = 0; i < n; i++) {
    ka.push(String(i));
    va.push(randstring(l));
    await ck.put(ka[i]!, va[i]!);
  }
  return { ka, va };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
