// A Clerk living in another worker thread (driven by kv-clerk.test.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { Clerk } from '../../lib/kv/index.js';
import { labEnds, type LabClientLink } from '../../lib/testing/index.js';

const ck = new Clerk(labEnds(workerData.link as LabClientLink));
const before = await ck.get('shared');
await ck.append('shared', '+worker');
const after = await ck.get('shared');
ck.close();
parentPort!.postMessage({ before, after });
