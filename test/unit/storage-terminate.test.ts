// A peer's worker terminated at any moment (the lab's crash and RaftGroup.crash
// do this) leaves a file the next start opens, holding every write that returned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { seededRng } from '../../lib/raft/prng.js';
import { SqliteStorage } from '../../storage/sqlite.js';
import { snapshotBytes } from '../fixtures/snapshot-bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'actor-raft-terminate-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Run the worker `fixture` on `file` for `ms` (counted from its 'open' when
 * `fromOpen`), then terminate it; its messages go to `onMessage`. Resolves
 * with the error it failed with before that, if any.
 */
async function runThenTerminate(fixture: string, file: string, fromOpen: boolean, ms: number, onMessage: (m: unknown) => void): Promise<Error | undefined> {
  const w = new Worker(new URL(`../fixtures/${fixture}`, import.meta.url), { workerData: { file } });
  w.on('message', onMessage);
  const failed = new Promise<Error>((resolve) => w.once('error', resolve));
  const isOpen = new Promise<void>((resolve) => w.on('message', (m: unknown) => m === 'open' && resolve()));
  const start = fromOpen ? isOpen : Promise.resolve();
  const err = await Promise.race([start.then(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))), failed]);
  await w.terminate();
  return err;
}

t.test('terminating the writer at random moments never makes its file refused or lose a returned write', async (t) => {
  const file = join(dir, 'peer-0.sqlite');
  const rng = seededRng(0x7e51);
  const rounds = 80;
  let opened = 0;
  for (let r = 0; r < rounds; r++) {
    let durable = 0;
    let open = false;
    // Terminate anywhere: while it boots, opens and checkpoints (odd rounds), or writes (even rounds).
    const ms = Math.floor(rng() * (r % 2 ? 60 : 15));
    const err = await runThenTerminate('storage-writer-worker.js', file, r % 2 === 0, ms, (m) => {
      if (m === 'open') open = true;
      else durable = m as number;
    });
    if (err) {
      t.fail(`round ${r}: the writer failed: ${err.message}`);
      break;
    }
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

t.test('terminating a writer while it writes snapshots in pieces leaves the last recorded snapshot whole, never a mix', async (t) => {
  const file = join(dir, 'peer-1.sqlite');
  const rng = seededRng(0x5a6e);
  const rounds = 30;
  let recordedSome = 0;
  for (let r = 0; r < rounds; r++) {
    let recorded = 0;
    const ms = 5 + Math.floor(rng() * 60);
    const err = await runThenTerminate('storage-staging-writer.js', file, true, ms, (m) => {
      if (typeof m === 'number') recorded = m;
    });
    if (err) {
      t.fail(`round ${r}: the writer failed: ${err.message}`);
      break;
    }
    if (recorded > 0) recordedSome++;
    try {
      const s = new SqliteStorage(file, { peer: 0 });
      const snap = s.load().snapshot;
      s.close();
      if (recorded > 0 && (!snap || snap.index < recorded)) {
        t.fail(`round ${r}: the snapshot at ${recorded} was recorded, but the file holds ${snap ? `one at ${snap.index}` : 'none'}`);
        break;
      }
      if (snap && !Buffer.from(snap.data).equals(Buffer.from(snapshotBytes(snap.index)))) {
        t.fail(`round ${r}: the snapshot at ${snap.index} holds bytes that are not its own`);
        break;
      }
    } catch (e) {
      t.fail(`round ${r} (terminated after ${ms} ms): reopening failed: ${(e as Error).message}`);
      break;
    }
  }
  t.ok(recordedSome >= rounds / 3, `the writer recorded a snapshot before it was terminated in ${recordedSome} of ${rounds} rounds`);
});
