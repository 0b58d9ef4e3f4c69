// `actor-raft certs`, the development CA helper, as a user runs it: the files
// it writes, that they pass readTlsFiles, and its exit codes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTlsFiles } from '../../lib/tls/tls-files.js';

const bin = fileURLToPath(new URL('../../lib/cli/actor-raft.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 });

t.test('actor-raft certs writes a CA and a certificate per name, and replaces nothing', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'certs-')), 'certs');
  t.teardown(() => rmSync(join(dir, '..'), { recursive: true, force: true }));
  const r = run('certs', '--dir', dir, 'node-1', 'node-2', 'client');
  t.equal(r.status, 0, r.stderr);
  t.same(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'client.crt', 'client.key', 'node-1.crt', 'node-1.key', 'node-2.crt', 'node-2.key']);
  t.equal(statSync(join(dir, 'node-1.key')).mode & 0o777, 0o600, 'keys are readable by their owner only');
  for (const n of ['node-1', 'node-2', 'client']) t.doesNotThrow(() => readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`) }), `${n}'s files check out`);
  const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const again = run('certs', '--dir', dir, 'node-3', '--host', '127.0.0.1');
  t.equal(again.status, 0, again.stderr);
  t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), ca, 'the CA is kept');
  t.doesNotThrow(() => readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node-3.crt'), key: join(dir, 'node-3.key') }), 'a later certificate is signed by the same CA');
  const before = readFileSync(join(dir, 'node-1.crt'), 'utf8');
  const dup = run('certs', '--dir', dir, 'node-1');
  t.equal(dup.status, 1, 'an existing name: exit 1');
  t.match(dup.stderr, /exists already/);
  t.equal(readFileSync(join(dir, 'node-1.crt'), 'utf8'), before, 'and its file is untouched');
  t.equal(run('certs', 'node-9').status, 2, 'no --dir: usage error');
  t.equal(run('certs', '--dir', dir).status, 2, 'no name: usage error');
  t.equal(run('certs', '--dir', dir, 'bad name').status, 2, 'a bad name: usage error');
  t.equal(run('serve-nothing').status, 2, 'an unknown command: usage error');
});
