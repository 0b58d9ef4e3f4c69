/**
 * The latency floor of a durable Put on this machine, for any design made
 * of what this project is made of (a client on the main thread, one peer
 * per worker thread, durable SQLite commits), measured in the same minute
 * as the row it goes with.
 *
 * A Put that a closed-loop client waits for needs its own durable commit
 * on a majority after its request arrives: the request crosses to the
 * leader (one hop), the entry to a follower (two), the follower's commit
 * (an fsync, while the other peers write theirs), its acknowledgement back
 * (three), the answer to the client (four). So no client can finish more
 * than one Put per 4 hops + 1 commit, and C clients no more than C of them
 * in that time, however the rest is built. The floor counts nothing else:
 * no encoding, no Raft, no state machine, no batching cost.
 *
 * - hop: the mean one-way time of a 16-byte message (its buffer
 *   transferred) between two worker threads that wait for it, from a
 *   ping-pong (each side wakes the other, as the peers do).
 * - commit: the mean time of a SQLite commit (WAL, synchronous = FULL) of
 *   `rows` 100-byte rows, in three worker threads writing at once, each to
 *   its own file under `dir` (the benchmark's own file system).
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

export interface Floor {
  /** Mean one-way message time between two waiting worker threads, µs. */
  hopUs: number;
  /** Mean durable commit time with three writers at once, ms. */
  commitMs: number;
  /** 4 hops + 1 commit, ms: no closed-loop client can finish a Put faster. */
  putMs: number;
}

const PING = `
const { parentPort, workerData } = require('node:worker_threads');
const { port, lead, trips } = workerData;
if (lead) {
  let n = 0; let t0 = 0;
  port.on('message', (b) => {
    if (++n === trips) { parentPort.postMessage(Number(process.hrtime.bigint() - t0) / 1000 / (2 * trips)); port.close(); return; }
    port.postMessage(b, [b.buffer]);
  });
  t0 = process.hrtime.bigint();
  const b = new Uint8Array(16); port.postMessage(b, [b.buffer]);
} else {
  let n = 0;
  port.on('message', (b) => { port.postMessage(b, [b.buffer]); if (++n === trips) port.close(); });
}
`;

const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE t (i INTEGER PRIMARY KEY, d BLOB NOT NULL)');
const ins = db.prepare('INSERT INTO t (i, d) VALUES (?, ?)');
const data = Buffer.alloc(100, 7);
let i = 0;
const write = db.transaction((rows) => { for (let k = 0; k < rows; k++) ins.run(++i, data); });
const go = new Int32Array(workerData.start);
Atomics.wait(go, 0, 0);
const end = performance.now() + workerData.ms;
let n = 0; let total = 0;
while (performance.now() < end) { const t = performance.now(); write(workerData.rows); total += performance.now() - t; n++; }
db.close();
parentPort.postMessage(total / n);
`;

function result(w: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    w.once('message', (v: number) => resolve(v));
    w.once('error', reject);
    w.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`floor worker exited with code ${code}`))));
  });
}

async function hopUs(trips: number): Promise<number> {
  const { port1, port2 } = new MessageChannel();
  const a = new Worker(PING, { eval: true, workerData: { port: port1, lead: true, trips }, transferList: [port1] });
  const b = new Worker(PING, { eval: true, workerData: { port: port2, lead: false, trips }, transferList: [port2] });
  try {
    return await result(a);
  } finally {
    await Promise.all([a.terminate(), b.terminate()]);
  }
}

async function commitMs(dir: string, rows: number, ms: number): Promise<number> {
  const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const start = new SharedArrayBuffer(4);
  const work = mkdtempSync(join(dir, 'floor-'));
  const writers = [0, 1, 2].map((k) => new Worker(WRITER, { eval: true, workerData: { sqlite, file: join(work, `w${k}.sqlite`), rows, ms, start } }));
  try {
    const results = writers.map(result);
    await new Promise((r) => setTimeout(r, 200)); // every writer has its file open and waits
    const go = new Int32Array(start);
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    const means = await Promise.all(results);
    return means.reduce((a, b) => a + b, 0) / means.length;
  } finally {
    await Promise.all(writers.map((w) => w.terminate()));
    rmSync(work, { recursive: true, force: true });
  }
}

/** Measure the floor now: `rows` rows per commit (a closed-loop round's Puts), writers running `ms`. */
export async function measureFloor(dir: string, rows: number, ms = 1500): Promise<Floor> {
  const hop = await hopUs(2000);
  const commit = await commitMs(dir, rows, ms);
  return { hopUs: Number(hop.toFixed(1)), commitMs: Number(commit.toFixed(3)), putMs: Number((4 * (hop / 1000) + commit).toFixed(3)) };
}
