import t from 'tap';
import { Config } from '../../lib/testing/index.js';

export interface LabFlags {
  unreliable?: boolean;
  snapshot?: boolean;
}

/**
 * One ported lab test: make_config, begin(description), the body, end(),
 * cleanup. The tap test carries the description as its name; begin and
 * Passed lines go to the TAP stream as comments.
 */
export function labTest(description: string, n: number, flags: LabFlags, body: (cfg: Config) => Promise<void>): void {
  t.test(description, async (tt) => {
    const cfg = await Config.make(n, flags.unreliable ?? false, flags.snapshot ?? false, {
      log: (line) => tt.comment(line),
    });
    tt.comment(`seed ${cfg.seed}`);
    const cpu0 = process.cpuUsage();
    await cfg.run(async () => {
      cfg.begin(description);
      await body(cfg);
      cfg.end();
    });
    const cpu = process.cpuUsage(cpu0);
    // CPU of the whole process, peer workers included (the suite's budget is CPU time).
    tt.comment(`cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
    tt.pass('Passed');
  });
}
