#!/usr/bin/env node
// npm run check:pack: the package as a user gets it. Packs the project,
// installs the tarball into a new empty project (better-sqlite3 builds
// there from source, as on a user's machine), copies the bank example out
// of the installed package into that project and runs it. Exit code 0 only
// if the tarball carries the LICENSE and the example runs clean.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'actor-raft-pack-'));
const keep = process.argv.includes('--keep');
const step = (what) => console.log(`\n== ${what}`);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let ok = false;
try {
  step('npm pack');
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [info] = JSON.parse(out.slice(out.indexOf('[')));
  const tarball = join(work, info.filename);
  const files = info.files.map((f) => f.path);
  console.log(`${info.filename}: ${files.length} files, ${(info.size / 1024).toFixed(0)} KiB`);
  for (const needed of ['LICENSE', 'package.json', 'dist/lib/index.js', 'dist/workers/peer-boot.cjs', 'dist/workers/peer.cjs', 'examples/bank/main.mjs']) {
    if (!files.includes(needed)) throw new Error(`the tarball lacks ${needed}`);
  }
  if (files.some((f) => f.startsWith('dist/test/') || f.endsWith('.cache'))) throw new Error('the tarball carries test files or a code cache');

  step('npm install <tarball> into an empty project');
  const project = join(work, 'app');
  mkdirSync(project);
  cpSync(fileURLToPath(new URL('./pack-project.json', import.meta.url)), join(project, 'package.json'));
  const install = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project, stdio: 'inherit' });
  if (install.status !== 0) throw new Error(`npm install exited with ${install.status}`);

  step('run the bank example, copied into the project');
  cpSync(join(project, 'node_modules', 'actor-raft', 'examples', 'bank'), join(project, 'bank'), { recursive: true });
  const run = spawnSync(process.execPath, ['bank/main.mjs', '--seconds', '3'], { cwd: project, stdio: 'inherit', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`the example exited with ${run.status ?? run.signal}`);
  ok = true;
} catch (e) {
  console.error(`check-pack: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
console.log(ok ? '\npacked package: OK' : '\npacked package: FAILED');
process.exitCode = ok ? 0 : 1;
