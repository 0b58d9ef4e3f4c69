// A Clerk living in another worker thread (driven by kv-clerk.test.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { Clerk, type ClientLink } from '../../lib/kv/index.js';

const ck = new Clerk(workerData.link as ClientLink);
const before = await ck.get('shared');
await ck.append('shared', '+worker');
const after = await ck.get('shared');
ck.close();
parentPort!.postMessage({ before, after });
