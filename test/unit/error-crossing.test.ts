// Errors thrown in a worker keep their class, message and fields on the caller's thread.
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { NotLeaderError, OptionError, RaftError, StorageError } from '../../lib/index.js';
import { Comlink, nodeEndpoint } from '../../lib/transport/comlink.js';

t.test('errors thrown through comlink arrive as the same class with their fields', async (t) => {
  const worker = new Worker(new URL('../fixtures/throwing-worker.js', import.meta.url));
  const api = Comlink.wrap<Record<'option' | 'storage' | 'notLeader' | 'own' | 'notAnError', () => never>>(nodeEndpoint(worker));
  try {
    const caught = async (f: () => Promise<unknown>) => f().then(() => undefined, (e: unknown) => e);
    const opt = await caught(() => api.option());
    t.ok(opt instanceof OptionError, 'OptionError is instanceof OptionError');
    t.match(opt, { option: 'timeoutMs', message: 'timeoutMs: must be a positive number, got -1' }, 'option and message kept');
    const st = await caught(() => api.storage());
    t.ok(st instanceof StorageError, 'StorageError is instanceof StorageError');
    t.match(st, { code: 'corrupt', file: '/data/peer-1.sqlite', index: 9, systemCode: 'SQLITE_CORRUPT', message: '/data/peer-1.sqlite: log entry 9 fails its checksum' }, 'code, file, index, cause, message kept');
    const nl = await caught(() => api.notLeader());
    t.ok(nl instanceof NotLeaderError && nl instanceof RaftError, 'NotLeaderError is instanceof NotLeaderError and RaftError');
    t.equal((nl as NotLeaderError).leader, 2, 'leader hint kept');
    const own = await caught(() => api.own());
    t.ok(own instanceof Error, "a class the engine does not know arrives as an Error");
    t.match(own, { name: 'OwnError', code: 'EOWN', message: 'a class of its own' }, 'with its name, code and message');
    const bare = await caught(() => api.notAnError());
    t.ok(bare instanceof Error, 'a thrown non-Error arrives as an Error');
    t.match(bare, { code: 'SQLITE_CANTOPEN', message: 'SQLITE_CANTOPEN' }, 'with its code, and a message');
  } finally {
    await worker.terminate();
  }
});
