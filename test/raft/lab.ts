import t from 'tap';
import { Config } from '../../lib/testing/index.js';

// The suite's CPU budget is for the whole run, so each lab file also reports
// its process's total user+sys at exit: node and tap start-up, every peer
// worker's boot and teardown, and the harness, not only the tests' bodies.
process.on('exit', () => {
  const cpu = process.cpuUsage();
  process.stdout.write(`# process cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s\n`);
});

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
    // CPU of the whole process, peer workers included, from make_config to cleanup.
    const cpu0 = process.cpuUsage();
    const cfg = await Config.make(n, flags.unreliable ?? false, flags.snapshot ?? false, {
      log: (line) => tt.comment(line),
    });
    tt.comment(`seed ${cfg.seed}`);
    await cfg.run(async () => {
      cfg.begin(description);
      await body(cfg);
      cfg.end();
    });
    const cpu = process.cpuUsage(cpu0);
    tt.comment(`cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
    tt.pass('Passed');
  });
}
