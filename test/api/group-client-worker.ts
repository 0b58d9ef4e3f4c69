// A GroupClient in another worker thread (driven by group.test.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { GroupClient, type GroupHandle } from '../../lib/index.js';

const client = GroupClient.connect(workerData.handle as GroupHandle);
try {
  const before = await client.read('value');
  const result = await client.propose({ op: 'add', n: 1 });
  const after = await client.read('value');
  parentPort!.postMessage({ before, result, after });
} catch (e) {
  parentPort!.postMessage({ error: String(e) });
} finally {
  client.close();
}
