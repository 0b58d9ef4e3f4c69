/**
 * The process the SIGKILL test kills. It runs a 3-peer cluster on the SQLite
 * files in `dataDir` and speaks a line protocol on stdout:
 *   U             all three peers are up (recovered from their files)
 *   R <json>      recovery check: {barrier, logs}: every peer's applied
 *                 commands 1..barrier after a fresh command committed on all
 *   L             load started
 *   C <i> <cmd>   command <cmd> is committed at index <i> (written the moment
 *                 the first peer applies it, before anything else happens)
 *   DONE          (final mode) clean shutdown finished
 * Lines go out with writeSync so a report is on the pipe before the next step.
 *
 * usage: node child.js <dataDir> <round> load|final
 */
import { writeSync } from 'node:fs';
import { pack, unpack } from 'msgpackr';
import { Cluster, type Applied, type AppliedSnapshot } from '../../lib/testing/cluster.js';

const [dataDir, roundArg, mode] = process.argv.slice(2);
if (!dataDir || !roundArg || (mode !== 'load' && mode !== 'final')) {
  process.stderr.write('usage: child.js <dataDir> <round> load|final\n');
  process.exit(2);
}
const round = Number(roundArg);
const PEERS = 3;
const CLIENTS = 4;
/** Each peer snapshots its applied history every this many entries. */
const SNAPSHOT_EVERY = 100;

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Write a whole line before going on (stdout is a non-blocking pipe: wait out EAGAIN). */
function out(line: string): void {
  const buf = Buffer.from(line + '\n');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

function die(message: string): never {
  process.stderr.write(`child: ${message}\n`);
  process.exit(1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cluster = new Cluster({ peers: PEERS, dataDir, fsync: true });
cluster.connectAll();
/** applied[p][i - 1] is the command peer p applied at index i (its whole history, from snapshots too). */
const applied: string[][] = Array.from({ length: PEERS }, () => []);
let reportedUpTo = 0;
const waiting = new Map<string, () => void>();

function onApply(peer: number, entries: Applied[], snapshot?: AppliedSnapshot): void {
  const mine = applied[peer]!;
  const before = mine.length;
  if (snapshot) {
    const history = unpack(snapshot.data) as string[];
    if (history.length !== snapshot.index) die(`peer ${peer}: snapshot at ${snapshot.index} holds ${history.length} commands`);
    if (snapshot.index < before) die(`peer ${peer}: snapshot at ${snapshot.index} would move back from ${before}`);
    applied[peer] = history;
  }
  const log = applied[peer]!;
  for (const e of entries) {
    if (e.index !== log.length + 1) die(`peer ${peer}: applied index ${e.index} after ${log.length}`);
    if (typeof e.command !== 'string') die(`peer ${peer}: command at ${e.index} is not a string`);
    log.push(e.command);
    if (e.index > reportedUpTo) {
      reportedUpTo = e.index;
      out(`C ${e.index} ${e.command}`);
    }
    waiting.get(e.command)?.();
  }
  if (entries.length > 0 && Math.floor(log.length / SNAPSHOT_EVERY) > Math.floor(before / SNAPSHOT_EVERY)) {
    cluster.snapshot(peer, log.length, pack(log)).catch(() => {});
  }
}

async function findLeader(): Promise<number> {
  for (;;) {
    for (let p = 0; p < PEERS; p++) {
      const st = await cluster.getState(p);
      if (st.isLeader) return p;
    }
    await sleep(20);
  }
}

let leader = 0;

/** Propose until some leader accepts; resolves with the index once the first peer applies it. */
async function commit(command: string, everywhere: boolean): Promise<number> {
  for (;;) {
    const res = await cluster.startCommand(leader, command);
    if (!res.isLeader) {
      leader = await findLeader();
      continue;
    }
    const at = (a: string[]) => a[res.index - 1] === command;
    const done = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000);
      const check = () => {
        if (everywhere ? !applied.every(at) : !applied.some(at)) return;
        clearTimeout(timer);
        resolve(true);
      };
      waiting.set(command, check);
      check(); // it may have been applied before Start() answered
    });
    const ok = await done;
    waiting.delete(command);
    if (ok) return res.index;
    // Not committed in time (leadership moved): propose under a fresh name.
    command = `${command}+`;
  }
}

async function client(c: number): Promise<never> {
  for (let k = 0; ; k++) await commit(`r${round}-c${c}-${k}`, false);
}

// A stuck recovery explains itself on stderr (the test shows it when its watchdog fires).
const progress = setInterval(() => {
  Promise.all([0, 1, 2].map((p) => cluster.status(p))).then(
    (st) => process.stderr.write(`child: ${JSON.stringify(st.map((s) => ({ role: s.role, term: s.term, commit: s.commitIndex, applied: s.appliedIndex, last: s.lastIndex, snap: s.snapshotIndex })))}\n`),
    () => {},
  );
}, 5000);
for (let p = 0; p < PEERS; p++) await cluster.start(p, onApply);
out('U');
leader = await findLeader();
const barrier = await commit(`r${round}-barrier`, true);
out(`R ${JSON.stringify({ barrier, logs: applied.map((a) => a.slice(0, barrier)) })}`);
clearInterval(progress);
if (mode === 'load') {
  out('L');
  for (let c = 0; c < CLIENTS; c++) void client(c);
} else {
  for (let k = 0; k < 10; k++) await commit(`final-${k}`, true);
  await cluster.close();
  out('DONE');
}
