import { readFileSync, readdirSync } from 'node:fs';

/** One thread's CPU time so far, milliseconds (clock ticks of 1/100 s, so 10 ms resolution). */
export interface ThreadTime {
  user: number;
  system: number;
}

/** CPU time of every thread of this process, by thread id, from /proc/self/task (Linux; empty elsewhere). */
export function threadTimes(): Map<string, ThreadTime> {
  const out = new Map<string, ThreadTime>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(tid, { user: Number(rest[11]) * 10, system: Number(rest[12]) * 10 });
  }
  return out;
}

/** What a thread spent between two samples (zero for a thread missing from either). */
export function spent(before: Map<string, ThreadTime>, after: Map<string, ThreadTime>, tid: string): ThreadTime {
  const a = before.get(tid);
  const b = after.get(tid);
  if (!a || !b) return { user: 0, system: 0 };
  return { user: b.user - a.user, system: b.system - a.system };
}
