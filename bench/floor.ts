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
 * (three), the answer to the client (four). So a client finishes about one
 * Put per 4 hops + 1 commit at most, and C clients about C of them in that
 * time, however the rest is built. The sum counts nothing else (no
 * encoding, no Raft, no state machine, no batching cost), but its pieces
 * are measured apart, so it is an estimate, not a bound: in a real round
 * they can overlap better (measureRoundFloor below, the floor measured
 * whole, does more at one client).
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
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { spent, threadTimes } from './thread-times.js';

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

/** A worker's own table in its own file (WAL, fsync on every commit), for the writers and the skeleton. */
const OPEN_TABLE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE t (i INTEGER PRIMARY KEY, d BLOB NOT NULL)');
const ins = db.prepare('INSERT INTO t (i, d) VALUES (?, ?)');
`;

const WRITER = `${OPEN_TABLE}const data = Buffer.alloc(100, 7);
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

/**
 * The same bound composed instead of added up: a skeleton of the design,
 * run as a closed loop. C clients on the main thread; each turn's requests
 * (100 bytes each) go to a leader thread in one message; the leader posts
 * them to two follower threads, then commits them to its own SQLite file;
 * each follower commits them to its own and answers; once the leader's
 * commit and one follower's answer are in (2 of 3), the leader answers the
 * turn's clients in one message, and each client sends its next request.
 * Durable commits (WAL, synchronous = FULL) on the benchmark's file system.
 * Nothing else: no encoding, no Raft, no state machine. Unlike the sum
 * above it pays what the pieces cost together: four threads waking one
 * another on this machine's cores while three of them commit.
 */
const SKELETON = `${OPEN_TABLE}let row = 0;
const write = db.transaction((batch) => { for (let k = 0; k + 104 <= batch.length; k += 104) ins.run(++row, batch.subarray(k + 4, k + 104)); });
const { role, up, followers } = workerData;
// Its thread id, for the CPU by thread (Linux; elsewhere none).
let tid = null;
try { tid = require('node:fs').readlinkSync('/proc/thread-self').split('/').pop(); } catch {}
parentPort.postMessage({ tid });
if (role === 'follower') {
  up.on('message', (m) => { write(m.batch); up.postMessage(m.seq); });
} else {
  // seq -> { batch, own, acks }: a batch is answered once its own commit and one follower's are in.
  const open = new Map();
  let seq = 0;
  const answer = (s, b) => { open.delete(s); up.postMessage(b.batch, [b.batch.buffer]); };
  for (const f of followers) f.on('message', (s) => { const b = open.get(s); if (!b) return; b.acks++; if (b.own) answer(s, b); });
  up.on('message', (batch) => {
    const s = ++seq;
    const b = { batch, own: false, acks: 0 };
    open.set(s, b);
    for (const f of followers) f.postMessage({ seq: s, batch });
    write(batch);
    b.own = true;
    if (b.acks > 0) answer(s, b);
  });
}
`;

export interface RoundFloor {
  /** Puts a second of the skeleton's closed loop. */
  putsPerSecond: number;
  /** Mean time of a round (a Put's latency), ms. */
  meanMs: number;
  /**
   * CPU per Put over the measured time, µs (user + system; /proc, Linux
   * only, 10 ms ticks): the main thread (the clients), the leader, each
   * follower, the process's other threads (V8's platform workers), and the
   * whole process split into user and system time.
   */
  cpu?: SkeletonCpu;
}

export interface SkeletonCpu {
  main: number;
  leader: number;
  followers: number[];
  otherThreads: number;
  total: { user: number; system: number };
}

/** Run the skeleton with `clients` closed-loop clients for `ms` (after `warmMs` not measured). */
export async function measureRoundFloor(dir: string, clients: number, ms = 3000, warmMs = 1000): Promise<RoundFloor> {
  const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const work = mkdtempSync(join(dir, 'skeleton-'));
  const toLeader = new MessageChannel();
  const toF1 = new MessageChannel();
  const toF2 = new MessageChannel();
  const spawn = (name: string, data: object, transfer: MessagePort[]) =>
    new Worker(SKELETON, { eval: true, workerData: { sqlite, file: join(work, `${name}.sqlite`), ...data }, transferList: transfer });
  const threads = [
    spawn('leader', { role: 'leader', up: toLeader.port2, followers: [toF1.port1, toF2.port1] }, [toLeader.port2, toF1.port1, toF2.port1]),
    spawn('f1', { role: 'follower', up: toF1.port2 }, [toF1.port2]),
    spawn('f2', { role: 'follower', up: toF2.port2 }, [toF2.port2]),
  ];
  const failed = new Promise<never>((_, reject) => {
    for (const w of threads) w.once('error', reject);
  });
  failed.catch(() => {}); // raced below; a thread failing after the run is no one's concern
  const tids = threads.map((w) => new Promise<string | null>((r) => w.once('message', (m: { tid: string | null }) => r(m.tid))));
  const port = toLeader.port1;
  try {
    const [leaderTid, ...followerTids] = await Promise.race([Promise.all(tids), failed]);
    let measuring = false;
    let stop = false;
    let puts = 0;
    let latency = 0;
    const sentAt = new Float64Array(clients);
    let pending: number[] = [];
    let flushQueued = false;
    const flush = () => {
      flushQueued = false;
      const batch = new Uint8Array(pending.length * 104);
      const view = new DataView(batch.buffer);
      for (let k = 0; k < pending.length; k++) {
        view.setUint32(k * 104, pending[k]!);
        batch.fill(7, k * 104 + 4, k * 104 + 104);
      }
      pending = [];
      port.postMessage(batch, [batch.buffer]);
    };
    const send = (client: number) => {
      sentAt[client] = performance.now();
      pending.push(client);
      if (!flushQueued) {
        flushQueued = true;
        queueMicrotask(flush);
      }
    };
    let idle: () => void = () => {};
    let inFlight = clients;
    port.on('message', (batch: Uint8Array) => {
      const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
      const now = performance.now();
      for (let k = 0; k + 104 <= batch.length; k += 104) {
        const client = view.getUint32(k);
        if (measuring) {
          puts++;
          latency += now - sentAt[client]!;
        }
        if (stop) {
          if (--inFlight === 0) idle();
        } else {
          send(client);
        }
      }
    });
    for (let c = 0; c < clients; c++) send(c);
    await Promise.race([new Promise((r) => setTimeout(r, warmMs)), failed]);
    const before = { threads: threadTimes(), usage: process.cpuUsage() };
    measuring = true;
    const t0 = performance.now();
    await Promise.race([new Promise((r) => setTimeout(r, ms)), failed]);
    measuring = false;
    const after = { threads: threadTimes(), usage: process.cpuUsage(before.usage) };
    const seconds = (performance.now() - t0) / 1000;
    const counted = puts;
    stop = true;
    await Promise.race([new Promise<void>((r) => (idle = r)), failed]);
    const floor: RoundFloor = { putsPerSecond: Math.round(counted / seconds), meanMs: Number((latency / counted).toFixed(3)) };
    if (leaderTid && followerTids.every((t) => t) && after.threads.size > 0) {
      const perPut = (ms: number) => Number(((ms * 1000) / counted).toFixed(3));
      const of = (tid: string) => {
        const t = spent(before.threads, after.threads, tid);
        return t.user + t.system;
      };
      const main = of(String(process.pid));
      const leader = of(leaderTid);
      const followers = followerTids.map((t) => of(t!));
      const total = (after.usage.user + after.usage.system) / 1000;
      floor.cpu = {
        main: perPut(main),
        leader: perPut(leader),
        followers: followers.map(perPut),
        otherThreads: perPut(total - main - leader - followers.reduce((a, b) => a + b, 0)),
        total: { user: perPut(after.usage.user / 1000), system: perPut(after.usage.system / 1000) },
      };
    }
    return floor;
  } finally {
    port.close();
    await Promise.all(threads.map((w) => w.terminate()));
    rmSync(work, { recursive: true, force: true });
  }
}
