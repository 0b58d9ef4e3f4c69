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
    await cfg.run(async () => {
      cfg.begin(description);
      await body(cfg);
      cfg.end();
    });
    tt.pass('Passed');
  });
}
