// npm run start:sharded (lib/cli/start-sharded.ts): the sharded service's
// main job, run as the README says (a shorter workload, a temporary data
// directory): groups join and leave under load, a group's leader is killed
// mid-migration, and the job must end with every acknowledged write found,
// a linearizable history and migrations seen, and exit 0.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

t.test('the sharded main job migrates shards under load, survives a kill mid-migration and checks its history', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'actor-raft-sharded-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = fileURLToPath(new URL('../../lib/cli/start-sharded.js', import.meta.url));
  const child = spawn(process.execPath, [script, '--seconds', '14', '--data', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 170_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  t.equal(signal, null, 'not killed');
  t.equal(code, 0, `exit code 0${code === 0 ? '' : `; stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`}`);
  const moves = [...out.matchAll(/^ {2}shard (\d) moved from group (10[012]) to group (10[012]) \(configuration (\d+)\), served there within \d+ ms$/gm)];
  t.ok(moves.length >= 5, `migrations printed as they happened (${moves.length})`);
  t.ok(moves.every((m) => m[2] !== m[3]), 'each between two different groups');
  t.match(out, /killed group 101's leader \(peer \d\) while it pulls group 100's shards/, 'a leader killed mid-migration');
  t.match(out, /^ {2}restarted group 101 peer \d from its SQLite file/m, 'and restarted');
  const seen = Number(/; (\d+) shard migrations seen$/m.exec(out)?.[1] ?? NaN);
  t.equal(seen, moves.length, 'the summary counts the migrations printed');
  t.match(out, /^Final configuration 6: shards( 10[012]){10}\.$/m, 'six configurations, every shard on a group');
  t.match(out, /^No acknowledged write lost: yes \(\d+ acknowledged Appends on \d+ keys read back\)\.$/m, 'the read-back check passed');
  t.match(out, /^History: linearizable \(\d+ ms\)\.$/m, 'the linearizability check passed');
  t.match(out, /^Peak RSS of the process \(12 peer workers\): \d+ MiB\.$/m);
});
