import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unpack } from 'msgpackr';
import t, { type Test } from 'tap';
import { decodeValue } from '../../lib/transport/codec.js';
import { SqliteStorage } from '../../storage/sqlite.js';

/**
 * A real process crash: a child process runs a 3-peer cluster on SQLite and
 * reports every command the moment it is committed; we SIGKILL it at a random
 * moment and check the files and the next process against every report.
 */
const KILLS = 24;
const PEERS = 3;
const childFile = fileURLToPath(new URL('./child.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'actor-raft-sigkill-'));
// The files of a failed run stay for inspection.
t.teardown(() => (t.passing() ? rmSync(dir, { recursive: true, force: true }) : console.error(`kept ${dir}`)));

/** index -> command, from every C line of every child. */
const committed = new Map<number, string>();

interface Recovery {
  barrier: number;
  logs: string[][];
  /** The commands reported committed (by this and earlier processes) when the recovery was reported. */
  known: Map<number, string>;
}

interface ChildRun {
  exit: { code: number | null; signal: NodeJS.Signals | null };
  recoveries: Recovery[];
  done: boolean;
  stderr: string;
  killedAfterLoad: boolean;
  /** The child neither reached its kill point nor finished within the watchdog time. */
  hung: boolean;
}

/** A child that has not been killed or finished by then is stuck. */
const WATCHDOG_MS = 30_000;

/** Run one child; `killAt` decides when to SIGKILL it (or never, in final mode). */
function runChild(round: number, mode: 'load' | 'final', killAt: 'recovery' | 'load' | 'never', rand: () => number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childFile, dir, String(round), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run: ChildRun = { exit: { code: null, signal: null }, recoveries: [], done: false, stderr: '', killedAfterLoad: false, hung: false };
    const kill = () => child.kill('SIGKILL');
    const watchdog = setTimeout(() => {
      run.hung = true;
      kill();
    }, WATCHDOG_MS);
    let killTimer: NodeJS.Timeout | undefined;
    // Recovery kills land anywhere from process start to well into the load.
    if (killAt === 'recovery') killTimer = setTimeout(kill, Math.floor(rand() * 1500));
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('C ')) {
          const sp = line.indexOf(' ', 2);
          const index = Number(line.slice(2, sp));
          const cmd = line.slice(sp + 1);
          const prior = committed.get(index);
          if (prior !== undefined && prior !== cmd) {
            reject(new Error(`index ${index} reported committed as ${prior} and later as ${cmd}`));
            kill();
          }
          committed.set(index, cmd);
        } else if (line.startsWith('R ')) {
          run.recoveries.push({ ...(JSON.parse(line.slice(2)) as Omit<Recovery, 'known'>), known: new Map(committed) });
        } else if (line === 'L' && killAt === 'load') {
          run.killedAfterLoad = true;
          killTimer = setTimeout(kill, Math.floor(rand() * 800));
        } else if (line === 'DONE') {
          run.done = true;
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (run.stderr += s));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(killTimer);
      clearTimeout(watchdog);
      run.exit = { code, signal };
      resolve(run);
    });
  });
}

/** Every reported command at its index, and all peers alike up to the barrier. */
function checkRecovery(tt: Test, r: Recovery, label: string): void {
  const [first, ...rest] = r.logs;
  const lengths = r.logs.map((l) => l.length);
  tt.ok(lengths.every((n) => n === r.barrier), `${label}: every peer applied 1..${r.barrier}`, { lengths });
  const diverged = rest.findIndex((l) => l.some((c, k) => c !== first![k]));
  tt.equal(diverged, -1, `${label}: the peers applied the same commands`);
  const missing: string[] = [];
  for (const [index, cmd] of r.known) {
    if (index > r.barrier) missing.push(`${index}: beyond the barrier ${r.barrier}`);
    else if (first![index - 1] !== cmd) missing.push(`${index}: expected ${cmd}, found ${String(first![index - 1])}`);
  }
  tt.same(missing.slice(0, 5), [], `${label}: all ${r.known.size} reported commands are at their index`);
}

/**
 * Straight from the files of the killed process: each reported command is
 * durable on a majority, and stored logs obey Log Matching.
 */
function checkFiles(tt: Test, label: string): void {
  const stored = Array.from({ length: PEERS }, (_, p) => {
    const file = join(dir, `peer-${p}.sqlite`);
    if (!existsSync(file)) return { snapshot: [] as string[], log: new Map<number, { term: number; cmd: unknown }>() };
    const snap = SqliteStorage.inspect(file).snapshot;
    const log = new Map(SqliteStorage.inspectLog(file).map((e) => [e.index, { term: e.term, cmd: decodeValue(e.data) }]));
    return { snapshot: snap ? (unpack(snap.data) as string[]) : [], log };
  });
  const holds = (p: number, index: number) => stored[p]!.log.get(index)?.cmd ?? stored[p]!.snapshot[index - 1];
  const short: string[] = [];
  for (const [index, cmd] of committed) {
    const copies = stored.filter((_, p) => holds(p, index) === cmd).length;
    if (copies * 2 <= PEERS) short.push(`${index} (${cmd}) on ${copies} peers`);
  }
  tt.same(short.slice(0, 5), [], `${label}: every reported command is durable on a majority of the files`);
  const mismatches: string[] = [];
  for (let a = 0; a < PEERS; a++) {
    for (let b = a + 1; b < PEERS; b++) {
      // Log Matching: where two logs hold an entry of the same index and
      // term, they hold the same entries at every index up to it.
      const la = stored[a]!.log;
      const lb = stored[b]!.log;
      const common = [...la.keys()].filter((i) => lb.has(i));
      // A loop: a long log spread into Math.max would pass too many arguments.
      let top = 0;
      for (const i of common) if (la.get(i)!.term === lb.get(i)!.term && i > top) top = i;
      for (const i of common) {
        if (i > top) continue;
        const ea = la.get(i)!;
        const eb = lb.get(i)!;
        if (ea.term !== eb.term || ea.cmd !== eb.cmd) mismatches.push(`peers ${a},${b} differ at ${i}, below their common entry at ${top}`);
      }
    }
  }
  tt.same(mismatches.slice(0, 5), [], `${label}: stored logs obey Log Matching`);
}

t.test(`SIGKILL a process running a 3-peer cluster ${KILLS} times; committed commands survive`, async (tt) => {
  const seed = Number(process.env.SIGKILL_SEED ?? Date.now() % 1_000_000);
  tt.comment(`seed ${seed}`);
  let state = seed >>> 0;
  const rand = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  let kills = 0;
  let verified = 0;
  for (let round = 0; round < KILLS; round++) {
    // Every fourth kill strikes at a random moment from process start (often mid-recovery).
    const killAt = round % 4 === 3 ? 'recovery' : 'load';
    const run = await runChild(round, 'load', killAt, rand);
    if (run.hung) {
      tt.fail(`round ${round}: the child made no progress for ${WATCHDOG_MS} ms`, { stderr: run.stderr, recoveries: run.recoveries.length });
      return;
    }
    if (run.exit.signal !== 'SIGKILL') {
      tt.fail(`round ${round}: the child exited by itself (code ${run.exit.code})`, { stderr: run.stderr });
      return;
    }
    kills++;
    for (const r of run.recoveries) {
      checkRecovery(tt, r, `round ${round} recovery`);
      verified++;
    }
    checkFiles(tt, `after kill ${kills}`);
  }
  const last = await runChild(KILLS, 'final', 'never', rand);
  tt.notOk(last.hung, 'the final process finishes in time', { stderr: last.stderr });
  tt.equal(last.exit.code, 0, 'the final process exits cleanly', { stderr: last.stderr });
  tt.ok(last.done, 'the final process elected a leader, committed new commands and shut down');
  tt.equal(last.recoveries.length, 1, 'the final process reported its recovery');
  for (const r of last.recoveries) checkRecovery(tt, r, 'final recovery');
  tt.ok(kills >= 20, `${kills} SIGKILLs at random moments`);
  tt.ok(committed.size > 0, 'commands were committed and checked');
  tt.comment(`${kills} kills; ${committed.size} committed commands checked; ${verified + 1} recoveries verified`);
});
