// The embedded bank ledger (examples/bank): its state machine on its own,
// then the whole example as a user runs it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const exampleDir = new URL('../../../examples/bank/', import.meta.url);

interface Ledger {
  apply(cmd: unknown, entry: { index: number; term: number }): { ok?: unknown; refused?: string };
  query(q: unknown): unknown;
  snapshot(): Uint8Array;
  restore(b: Uint8Array, entry: { index: number; term: number }): void;
}

async function ledger(): Promise<Ledger> {
  const mod = (await import(new URL('ledger.mjs', exampleDir).href)) as { createStateMachine(): Ledger };
  return mod.createStateMachine();
}

t.test('the ledger: transfers never overdraw, a repeated command is applied once, snapshots carry everything', async (t) => {
  const l = await ledger();
  let index = 0;
  const apply = (cmd: object) => l.apply(cmd, { index: ++index, term: 1 });
  t.same(apply({ op: 'open', account: 'a', client: 'c', seq: 1 }), { ok: { balance: 0 } });
  apply({ op: 'open', account: 'b', client: 'c', seq: 2 });
  t.same(apply({ op: 'deposit', account: 'a', amount: 100, client: 'c', seq: 3 }), { ok: { balance: 100 } });
  t.same(apply({ op: 'transfer', from: 'a', to: 'b', amount: 60, client: 'c', seq: 4 }), { ok: { from: 40, to: 60 } });
  t.match(apply({ op: 'transfer', from: 'a', to: 'b', amount: 41, client: 'c', seq: 5 }), { refused: /insufficient funds/ }, 'an overdraw is refused');
  t.same(l.query({ accounts: true }), { a: 40, b: 60 }, 'and changes nothing');
  t.same(apply({ op: 'transfer', from: 'a', to: 'b', amount: 10, client: 'd', seq: 1 }), { ok: { from: 30, to: 70 } });
  t.same(apply({ op: 'transfer', from: 'a', to: 'b', amount: 10, client: 'd', seq: 1 }), { ok: { from: 30, to: 70 } }, 'a retried command gets its first answer');
  t.same(l.query({ accounts: true }), { a: 30, b: 70 }, 'and is not applied again');
  t.throws(() => apply({ op: 'deposit', account: 'a', amount: -5, client: 'c', seq: 6 }), /positive whole number/, 'a malformed command throws (an ApplyError for the proposer)');
  t.throws(() => apply({ op: 'open', account: 'x', client: 'c', seq: 3 }), /older than its latest/);
  const copy = await ledger();
  copy.restore(l.snapshot(), { index, term: 1 });
  t.same(copy.query({ accounts: true }), l.query({ accounts: true }), 'a snapshot restores the balances');
  t.same(copy.apply({ op: 'transfer', from: 'a', to: 'b', amount: 10, client: 'd', seq: 1 }, { index: index + 1, term: 1 }), { ok: { from: 30, to: 70 } }, 'and the duplicate table');
  t.equal(l.query({ total: true }), 100);
});

t.test('the example end to end: three peers, tellers in two threads, a leader killed, restarted and handed leadership', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'bank-test-'));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));
  const child = spawn(process.execPath, [fileURLToPath(new URL('main.mjs', exampleDir)), '--seconds', '3', '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  t.comment(out.trim().split('\n').join('\n'));
  t.equal(code, 0, 'it exits 0');
  t.match(out, /killed the leader's worker, peer \d/, 'the leader was killed');
  t.match(out, /an overdraw is refused: insufficient funds/, 'an overdraw was refused');
  t.match(out, /handed leadership to peer \d/, 'leadership was handed back');
  t.match(out, /total 80000 cents \(expected 80000\)/, 'no money appeared or vanished');
  t.match(out, /every peer holds the same ledger: yes/);
  const done = /(\d+) transfers done/.exec(out);
  t.ok(done && Number(done[1]) > 100, `transfers went through (${done?.[1]})`);
});
