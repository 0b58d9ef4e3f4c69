import t from 'tap';
import { existsSync } from 'node:fs';
import { spent, threadTimes } from '../../bench/thread-times.js';

t.test('threadTimes reads each thread of this process, user and system time apart', async (t) => {
  if (!existsSync('/proc/self/task')) {
    t.equal(threadTimes().size, 0, 'no /proc: no threads, rather than made-up times');
    return;
  }
  const main = String(process.pid); // the main thread's id is the process id
  const before = threadTimes();
  t.ok(before.has(main), 'the main thread is listed');
  const b = before.get(main)!;
  t.ok(Number.isFinite(b.user) && b.user >= 0 && Number.isFinite(b.system) && b.system >= 0, 'its times are numbers of milliseconds');
  // Compute for 200 ms of CPU (not of wall time: a busy machine may run something else meanwhile).
  const start = process.cpuUsage();
  let x = 0;
  while (process.cpuUsage(start).user < 200_000) for (let i = 0; i < 10_000; i++) x += Math.sqrt(i);
  t.ok(x > 0);
  const after = threadTimes();
  const used = spent(before, after, main);
  t.ok(used.user >= 150, `a compute loop counts as the main thread's user time (${used.user} ms of about 200)`);
  t.ok(used.system < used.user / 2, `and little of it as system time (${used.system} ms)`);
  t.same(spent(before, after, 'no-such-thread'), { user: 0, system: 0 }, 'a thread in neither sample spent nothing');
});
