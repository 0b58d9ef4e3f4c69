// A peer's worker terminated at any moment (the lab's crash and RaftGroup.crash
// do this) leaves a file the next start opens, holding every write that returned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { seededRng } from '../../lib/raft/prng.js';
import { SqliteStorage } from '../../storage/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'actor-raft-terminate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('terminating the writer at random moments never makes its file refused or lose a returned write', async (t) => {
  const file = join(dir, 'peer-0.sqlite');
  const rng = seededRng(0x7e51);
  const rounds = 80;
  let opened = 0;
  for (let r = 0; r < rounds; r++) {
    const w = new Worker(new URL('../fixtures/storage-writer-worker.js', import.meta.url), { workerData: { file } });
    let durable = 0;
    let open = false;
    w.on('message', (m: unknown) => {
      if (m === 'open') open = true;
      else durable = m as number;
    });
    const failed = new Promise<Error>((resolve) => w.once('error', resolve));
    const isOpen = new Promise<void>((resolve) => w.on('message', (m: unknown) => m === 'open' && resolve()));
    // Terminate anywhere: while it boots, opens and checkpoints (odd rounds), or writes (even rounds).
    const ms = Math.floor(rng() * (r % 2 ? 60 : 15));
    const wait = r % 2 ? Promise.resolve() : isOpen;
    const err = await Promise.race([wait.then(() => new Promise<undefined>((r2) => setTimeout(() => r2(undefined), ms))), failed]);
    if (err) {
      t.fail(`round ${r}: the writer failed: ${err.message}`);
      break;
    }
    await w.terminate();
    if (open) opened++;
    let term = -1;
    try {
      const s = new SqliteStorage(file, { peer: 0 });
      term = s.load().hardState.term;
      s.close();
    } catch (e) {
      t.fail(`round ${r} (terminated after ${ms} ms): reopening failed: ${(e as Error).message}`);
      break;
    }
    if (term < durable) {
      t.fail(`round ${r}: term ${term} on disk, but ${durable} was written`);
      break;
    }
  }
  t.ok(opened >= rounds / 2, `the writer had opened the file in ${opened} of ${rounds} rounds (the others were cut off while opening it)`);
});
