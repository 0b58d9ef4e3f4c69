import t from 'tap';
import { KvConfig } from '../../lib/testing/index.js';

/**
 * One ported KV lab test: make_config, the body (which calls begin/end
 * itself, some tests have several), cleanup. The TAP test carries the
 * original test's name; begin and Passed lines go out as comments.
 */
export function kvLabTest(name: string, n: number, unreliable: boolean, maxraftstate: number, body: (cfg: KvConfig) => Promise<void>): void {
  t.test(name, async (tt) => {
    const cfg = await KvConfig.make(n, unreliable, maxraftstate, { log: (line) => tt.comment(line) });
    tt.comment(`seed ${cfg.seed}`);
    const cpu0 = process.cpuUsage();
    await cfg.run(body);
    const cpu = process.cpuUsage(cpu0);
    tt.comment(`cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
    tt.pass('Passed');
  });
}
