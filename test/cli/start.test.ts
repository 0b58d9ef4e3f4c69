// npm start (lib/cli/start.ts) with a history of hundreds of thousands of
// operations: its end-of-run report once spread each phase's operations
// into Math.max/Math.min and died with "RangeError: Maximum call stack size
// exceeded" once a phase passed V8's argument limit (about 123,000 here).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { phaseStats, type TimedOp } from '../../lib/cli/phase-stats.js';

/** The largest array this process can spread into Math.max (measured, not assumed). */
function spreadLimit(): number {
  const fits = (n: number) => {
    try {
      Math.max(...new Array<number>(n).fill(0));
      return true;
    } catch {
      return false;
    }
  };
  let lo = 1000;
  let hi = 1 << 24;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

const LIMIT = spreadLimit();
t.comment(`Math.max(...array) fits up to ${LIMIT} elements in this process`);

t.test('phaseStats: a million operations, well past what a spread can take', async (t) => {
  const n = 1_000_000;
  t.ok(n > 4 * LIMIT, 'the history is far above the spread limit');
  const history: TimedOp[] = [];
  // Phase p: calls 1 µs apart from p seconds on, each operation taking 1 to 100 ms.
  for (let i = 0; i < n; i++) {
    const phase = i % 3;
    const call = phase * 1e9 + Math.floor(i / 3) * 1000;
    history.push({ call, ret: call + ((i * 7) % 100 + 1) * 1e6, phase });
  }
  history.push({ call: 0, ret: 1, phase: 7 }); // outside the phases: ignored
  const stats = phaseStats(history, 4);
  t.equal(stats.length, 4);
  const per = [333_334, 333_333, 333_333];
  for (let p = 0; p < 3; p++) {
    const s = stats[p]!;
    t.equal(s.operations, per[p], `phase ${p}: every operation counted`);
    // The reference, computed plainly.
    let first = Infinity;
    let last = -Infinity;
    const lat: number[] = [];
    for (const op of history) {
      if (op.phase !== p) continue;
      first = Math.min(first, op.call);
      last = Math.max(last, op.ret);
      lat.push((op.ret - op.call) / 1e6);
    }
    lat.sort((a, b) => a - b);
    t.equal(s.opsPerSecond, Math.round(lat.length / ((last - first) / 1e9)), `phase ${p}: ${s.opsPerSecond} ops/s, first call to last return`);
    t.equal(s.p50Ms, lat[Math.floor(lat.length / 2)], `phase ${p}: p50 ${s.p50Ms} ms`);
    t.equal(s.p99Ms, lat[Math.floor(0.99 * lat.length)], `phase ${p}: p99 ${s.p99Ms} ms`);
  }
  t.same(stats[3], { operations: 0, opsPerSecond: 0, p50Ms: NaN, p99Ms: NaN }, 'an empty phase');
});

t.test('the start job with a history above the spread limit exits 0 and prints its checks', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'actor-raft-start-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = fileURLToPath(new URL('../../lib/cli/start.js', import.meta.url));
  // 64 clients (the README's example) reach about 25,000 operations per
  // second here, so each third of 24 s holds about 200,000: well past the
  // limit even at half that speed.
  const args = [script, '--clients', '64', '--seconds', '24', '--data', join(dir, 'data')];
  const started = Date.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 170_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  t.comment(`the job took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.notMatch(err, /RangeError|Maximum call stack/, 'no RangeError');
  t.equal(signal, null, 'not killed');
  t.equal(code, 0, `exit code 0${code === 0 ? '' : `; stderr: ${err.slice(-2000)}`}`);

  const rows = [...out.matchAll(/^\| (all peers up|leader killed|peer restarted) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$/gm)];
  t.same(
    rows.map((r) => r[1]),
    ['all peers up', 'leader killed', 'peer restarted'],
    'a table row for each phase',
  );
  const counts = rows.map((r) => Number(r[2]));
  const largest = counts.reduce((a, b) => Math.max(a, b), 0);
  const total = Number(/^ {2}(\d+) operations by 64 clients in [\d.]+ s$/m.exec(out)?.[1] ?? NaN);
  t.comment(`phases of ${counts.join(', ')} operations (${total} in all)`);
  // How big the phases get depends on this machine's speed; the report's arithmetic on a
  // history past the limit is asserted above, in-process, with a million operations.
  t.comment(`largest phase ${largest} operations; a spread takes at most ${LIMIT}${largest > LIMIT ? ' (the old report would have thrown)' : ''}`);
  t.ok(counts.reduce((a, b) => a + b, 0) >= total, 'the table counts every operation (and the final read-back)');
  for (const r of rows) t.ok(Number(r[3]) > 0 && Number(r[5]) >= Number(r[4]), `${r[1]}: ops/s ${r[3]}, p50 ${r[4]} ms <= p99 ${r[5]} ms`);
  t.match(out, /^The cluster served again \d+ ms after the leader was killed\.$/m, 'the time to serve again');
  t.equal([...out.matchAll(/^ {2}peer \d: term \d+, (leader|follower|candidate), commit \d+, applied \d+, snapshot \d+$/gm)].length, 3, 'a status line for each peer');
  t.match(out, /^No acknowledged write lost: yes \(\d+ acknowledged Appends on \d+ keys read back\)\.$/m, 'the read-back check passed');
  t.match(out, /^Checking \d+ operations on \d+ keys for linearizability\.\.\.$/m);
  t.match(out, /^History: linearizable \(\d+ ms\)\.$/m, 'the linearizability check passed');
});
