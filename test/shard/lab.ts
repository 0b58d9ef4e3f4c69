import t from 'tap';
import { CtrlerConfig } from '../../lib/testing/index.js';

// Each lab file reports its process's total CPU at exit (see test/raft/lab.ts).
process.on('exit', () => {
  const cpu = process.cpuUsage();
  process.stdout.write(`# process cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s\n`);
});

/**
 * One ported shard controller test: make_config, the body (which prints
 * its own "Test:" lines and calls end() for each "Passed"), cleanup. The
 * TAP test carries the original test's name.
 */
export function ctrlerLabTest(name: string, n: number, unreliable: boolean, body: (cfg: CtrlerConfig) => Promise<void>): void {
  t.test(name, async (tt) => {
    const cfg = await CtrlerConfig.make(n, unreliable, { log: (line) => tt.comment(line) });
    tt.comment(`seed ${cfg.seed}`);
    const cpu0 = process.cpuUsage();
    await cfg.run(body);
    const cpu = process.cpuUsage(cpu0);
    tt.comment(`cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
    tt.pass('Passed');
  });
}
