// The bank ledger, embedded: a Raft group of three peers in this process,
// each in its own worker thread running ledger.mjs, its state in SQLite.
// Tellers in two other worker threads move money at random while this
// thread kills the leader's worker, restarts it, and hands leadership to
// another peer. At the end the money must all be there, no balance below
// zero, and every peer must hold the same ledger.
//
//   node examples/bank/main.mjs [--seconds 6] [--data DIR]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { RaftGroup } from 'actor-raft';
import { Refused, Teller } from './teller.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '6' }, data: { type: 'string' } } });
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new Error(`--seconds must be a positive number, got ${values.seconds}`);
const dataDir = values.data ?? mkdtempSync(join(tmpdir(), 'bank-'));
const ACCOUNTS = Array.from({ length: 8 }, (_, i) => `acct-${i}`);
const OPENING = 10_000;

const group = await RaftGroup.open({
  peers: 3,
  dataDir,
  stateMachine: { module: new URL('./ledger.mjs', import.meta.url) },
  // Small, so the run takes snapshots and a restarted peer may catch up from one.
  snapshotThreshold: 64 * 1024,
});
group.onLeaderChange(({ term, leader }) => console.log(`  leader: ${leader < 0 ? 'none' : `peer ${leader}`} (term ${term})`));
let ok = true;
try {
  const bank = new Teller(group, 'main');
  for (const a of ACCOUNTS) {
    await bank.open(a);
    await bank.deposit(a, OPENING);
  }
  const expected = ACCOUNTS.length * OPENING;
  console.log(`${ACCOUNTS.length} accounts opened with ${OPENING} cents each; tellers in two worker threads transfer for ${seconds} s`);

  const workers = ['east', 'west'].map((name) => {
    const handle = group.handle();
    const w = new Worker(new URL('./teller-worker.mjs', import.meta.url), {
      workerData: { handle, accounts: ACCOUNTS, seconds, name, tellers: 8 },
      transferList: [handle.control],
    });
    return new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  });

  const third = (seconds * 1000) / 3;
  await new Promise((r) => setTimeout(r, third));
  const victim = (await group.status()).leader;
  if (victim >= 0) {
    await group.crash(victim);
    console.log(`  killed the leader's worker, peer ${victim}`);
  }
  // A refused transfer (overdraw) is the state machine's answer, the same everywhere.
  const poor = new Teller(group, 'poor');
  try {
    await poor.transfer(ACCOUNTS[0], ACCOUNTS[1], expected + 1);
    ok = false;
    console.log('  an overdraw was accepted');
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    console.log(`  an overdraw is refused: ${e.message}`);
  }
  await new Promise((r) => setTimeout(r, third));
  if (victim >= 0) {
    await group.restart(victim);
    console.log(`  restarted peer ${victim} from its SQLite file`);
    await group.transferLeadership(victim);
    console.log(`  handed leadership to peer ${victim}`);
  }
  const counts = await Promise.all(workers);
  const sum = (k) => counts.reduce((n, c) => n + c[k], 0);
  console.log(`${sum('transfers')} transfers done, ${sum('refused')} refused for insufficient funds, ${sum('retries')} sent again after an unknown outcome`);

  const total = await bank.total();
  const balances = await group.read({ accounts: true });
  const negative = Object.entries(balances).filter(([, b]) => b < 0);
  console.log(`total ${total} cents (expected ${expected}); lowest balance ${Math.min(...Object.values(balances))}`);
  if (total !== expected || negative.length > 0) ok = false;

  // Every peer's own copy of the ledger, read locally once it has caught up.
  const target = (await group.status()).peers.reduce((m, p) => Math.max(m, p.running ? p.commitIndex : 0), 0);
  for (let k = 0; k < 500; k++) {
    const st = await group.status();
    if (st.peers.every((p) => p.running && p.stateMachineIndex >= target)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const copies = await Promise.all([0, 1, 2].map((peer) => group.read({ accounts: true }, { consistency: 'stale', peer })));
  const same = copies.every((c) => JSON.stringify(c) === JSON.stringify(copies[0]));
  console.log(`every peer holds the same ledger: ${same ? 'yes' : 'NO'}`);
  if (!same) ok = false;
} finally {
  await group.close();
  if (!values.data) rmSync(dataDir, { recursive: true, force: true });
}
console.log(ok ? 'ledger consistent' : 'LEDGER INCONSISTENT');
process.exitCode = ok ? 0 : 1;
