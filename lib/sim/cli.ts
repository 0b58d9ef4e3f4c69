/**
 * npm run sim -- --seeds 10000        run seeds 1..10000 (spread over the cores)
 * npm run sim -- --seed 42            replay one seed exactly, with its trace
 * Options: --from S (first seed, default 1), --peers N (3 or 5 by seed otherwise),
 *          --fault-ms MS (simulated fault phase, default 8000), --jobs J,
 *          --bug NAME (test only: plant a known bug), --trace (print the trace of a passing replay too)
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { PlantedBugs } from '../raft/core.js';
import { addCounts, emptyBatch, runBatch, type BatchResult, type BatchTask } from './batch.js';
import { simulate, type SimResult } from './simulator.js';

const BUGS = ['voteWithoutLogCheck', 'commitPreviousTerm', 'keepConflictingSuffix', 'forgetVote', 'everythingEarly', 'readWithoutRound', 'transferWithoutCatchUp', 'leaseWithoutExpiry', 'concurrentConfigChanges', 'snapshotAtFinish'] as const;

class UsageError extends Error {}

interface Args {
  seeds?: number;
  seed?: number;
  from: number;
  peers?: number;
  faultMs?: number;
  jobs: number;
  bug?: (typeof BUGS)[number];
  trace: boolean;
}

function intArg(flag: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} needs an integer >= ${min}, got ${v ?? 'nothing'}`);
  return n;
}

function parse(argv: string[]): Args {
  const a: Args = { from: 1, jobs: availableParallelism(), trace: false };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    const val = () => argv[++k];
    switch (flag) {
      case '--seeds': a.seeds = intArg(flag, val(), 1); break;
      case '--seed': a.seed = intArg(flag, val(), 0); break;
      case '--from': a.from = intArg(flag, val(), 0); break;
      case '--peers': a.peers = intArg(flag, val(), 1); break;
      case '--fault-ms': a.faultMs = intArg(flag, val(), 0); break;
      case '--jobs': a.jobs = intArg(flag, val(), 1); break;
      case '--trace': a.trace = true; break;
      case '--bug': {
        const b = val();
        if (!BUGS.includes(b as never)) throw new UsageError(`--bug must be one of ${BUGS.join(', ')}, got ${b ?? 'nothing'}`);
        a.bug = b as Args['bug'];
        break;
      }
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  if (a.seeds === undefined && a.seed === undefined) throw new UsageError('give --seeds N or --seed S');
  return a;
}

function replayCommand(seed: number, a: Args): string {
  const extra = [
    a.peers !== undefined ? `--peers ${a.peers}` : '',
    a.faultMs !== undefined ? `--fault-ms ${a.faultMs}` : '',
    a.bug ? `--bug ${a.bug}` : '',
  ].filter(Boolean);
  return `npm run sim -- --seed ${seed}${extra.length ? ' ' + extra.join(' ') : ''}`;
}

function printFailure(r: SimResult, a: Args): void {
  console.log(`VIOLATION seed ${r.seed} (${r.peers} peers, at ${r.simulatedMs} simulated ms): ${r.violation}`);
  console.log('  last steps:');
  for (const line of r.trace) console.log(`    ${line}`);
  console.log(`  replay: ${replayCommand(r.seed, a)}`);
}

function bugs(a: Args): PlantedBugs | undefined {
  return a.bug ? { [a.bug]: true } : undefined;
}

async function runMany(a: Args): Promise<number> {
  const total = a.seeds!;
  const chunk = Math.max(1, Math.min(500, Math.ceil(total / (a.jobs * 8))));
  const tasks: BatchTask[] = [];
  for (let s = a.from; s < a.from + total; s += chunk) {
    tasks.push({ from: s, count: Math.min(chunk, a.from + total - s), peers: a.peers, faultMs: a.faultMs, bugs: bugs(a) });
  }
  const sum = emptyBatch();
  const t0 = Date.now();
  const progress = setInterval(() => {
    const secs = (Date.now() - t0) / 1000;
    console.log(`  ${sum.seeds}/${total} seeds, ${sum.failures.length} violations, ${secs.toFixed(0)} s, ${(sum.simulatedMs / 1000 / secs).toFixed(0)} simulated s per s`);
  }, 5000);
  const add = (r: BatchResult) => {
    sum.seeds += r.seeds;
    addCounts(sum, r);
    sum.failures.push(...r.failures);
  };
  if (a.jobs === 1) {
    for (const t of tasks) add(runBatch(t));
  } else {
    const pool = new Piscina({ filename: new URL('./batch.js', import.meta.url).href, maxThreads: a.jobs, minThreads: a.jobs });
    await Promise.all(tasks.map((t) => pool.run(t).then(add)));
    await pool.destroy();
  }
  clearInterval(progress);
  const secs = (Date.now() - t0) / 1000;
  sum.failures.sort((x, y) => x.seed - y.seed);
  for (const f of sum.failures.slice(0, 3)) printFailure(f, a);
  if (sum.failures.length > 3) console.log(`... and ${sum.failures.length - 3} more failing seeds: ${sum.failures.slice(3, 40).map((f) => f.seed).join(' ')}`);
  console.log(
    `${sum.seeds} seeds (${a.from}..${a.from + total - 1}${a.bug ? `, planted bug ${a.bug}` : ''}): ${sum.failures.length} violations; ` +
      `${sum.events} events, ${(sum.simulatedMs / 1000).toFixed(0)} simulated s in ${secs.toFixed(1)} s wall ` +
      `= ${(sum.simulatedMs / 1000 / secs).toFixed(0)} simulated s per wall s (${a.jobs} jobs); ` +
      `${sum.committed} commits, ${sum.reads} checked reads, ${sum.transfers} leadership transfers, ${sum.configChanges} membership changes, ${sum.crashes} crashes, ${sum.installs} snapshot installs, ${sum.steppedSnapshots} snapshots written in steps (${sum.cancelledWriters} writers cancelled)`,
  );
  return sum.failures.length;
}

async function main(): Promise<void> {
  let a: Args;
  try {
    a = parse(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`sim: ${e.message}\nusage: npm run sim -- --seeds N [--from S] [--jobs J] | --seed S [--trace]; also --peers N, --fault-ms MS, --bug ${BUGS.join('|')}`);
    process.exitCode = 2;
    return;
  }
  if (a.seed !== undefined) {
    const t0 = Date.now();
    const r = simulate({ seed: a.seed, peers: a.peers, faultMs: a.faultMs, bugs: bugs(a) });
    if (!r.ok) printFailure(r, a);
    else {
      if (a.trace) for (const line of r.trace) console.log(`    ${line}`);
      console.log(`seed ${r.seed} (${r.peers} peers): ok; ${r.events} events, ${r.simulatedMs} simulated ms in ${Date.now() - t0} ms, ${r.committed} commits, ${r.reads} checked reads, ${r.transfers} transfers, ${r.configChanges} membership changes, ${r.crashes} crashes, ${r.installs} snapshot installs, ${r.steppedSnapshots} snapshots written in steps (${r.cancelledWriters} writers cancelled)`);
    }
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  process.exitCode = (await runMany(a)) === 0 ? 0 : 1;
}

await main();
