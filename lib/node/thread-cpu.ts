import { readFileSync } from 'node:fs';

/**
 * CPU time (user + system, milliseconds) spent by the calling thread, read
 * from /proc/thread-self/stat (Linux; 10 ms resolution there). Undefined
 * where that file does not exist. Node 20 has no per-thread CPU clock of
 * its own (process.threadCpuUsage came in Node 23), and process.cpuUsage()
 * counts every thread of the process.
 */
export function threadCpuMs(): number | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/thread-self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name; clock ticks of 1/100 s.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return (utime + stime) * 10;
}
