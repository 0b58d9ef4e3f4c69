// The key/value state machine (lib/kv): semantics, exactly-once, snapshots, input checks.
import t from 'tap';
import { KvStateMachine, MAX_KEY_BYTES, MAX_VALUE_BYTES, isCommand, parseCommand, type KvCommand } from '../../lib/kv/index.js';
import { SNAPSHOT_STEP_KEYS } from '../../lib/kv/state-machine.js';
import { seededRng } from '../../lib/raft/prng.js';

let seqs = new Map<number, number>();
function cmd(clientId: number, op: KvCommand['op'], key: string, value?: string, seq?: number): KvCommand {
  const s = seq ?? (seqs.get(clientId) ?? 0) + 1;
  seqs.set(clientId, Math.max(s, seqs.get(clientId) ?? 0));
  return value === undefined ? { op, key, clientId, seq: s } : { op, key, value, clientId, seq: s };
}

t.beforeEach(() => {
  seqs = new Map();
});

t.test('Get, Put and Append', async (t) => {
  const m = new KvStateMachine();
  t.same(m.apply(cmd(1, 'get', 'k')), { err: 'ErrNoKey', value: '' }, 'a missing key');
  t.same(m.apply(cmd(1, 'append', 'k', 'a')), { err: 'OK', value: '' }, 'append to a missing key');
  t.same(m.apply(cmd(1, 'get', 'k')), { err: 'OK', value: 'a' }, 'acts as a put');
  m.apply(cmd(1, 'append', 'k', 'b'));
  t.same(m.apply(cmd(2, 'get', 'k')), { err: 'OK', value: 'ab' });
  m.apply(cmd(2, 'put', 'k', 'x'));
  t.same(m.apply(cmd(1, 'get', 'k')), { err: 'OK', value: 'x' }, 'put replaces');
  t.equal(m.size, 1);
});

t.test('exactly once: a re-sent command is answered from the duplicate table and not applied again', async (t) => {
  const m = new KvStateMachine();
  const a = cmd(7, 'append', 'k', 'x');
  m.apply(a);
  t.same(m.apply(a), { err: 'OK', value: '' }, 'the repeat is answered');
  t.same(m.apply(cmd(8, 'get', 'k')).value, 'x', 'and applied once');
  const g = cmd(7, 'get', 'k');
  t.same(m.apply(g), { err: 'OK', value: 'x' });
  m.apply(cmd(8, 'append', 'k', 'y'));
  t.same(m.apply(g), { err: 'OK', value: 'x' }, "a repeated Get returns the first answer");
  t.same(m.apply(a), { err: 'OK', value: '' }, 'an older command of the client is not applied');
  t.same(m.apply(cmd(8, 'get', 'k')).value, 'xy');
});

t.test('a snapshot carries the table and the duplicate table', async (t) => {
  const m = new KvStateMachine();
  const a = cmd(1, 'append', 'k', 'x');
  m.apply(a);
  m.apply(cmd(2, 'put', 'é', 'ünïcode'));
  const bad = cmd(3, 'append', 'big', 'y'.repeat(MAX_VALUE_BYTES));
  m.apply(bad);
  const tooBig = cmd(3, 'append', 'big', 'z');
  const refused = m.apply(tooBig);
  t.equal(refused.err, 'ErrTooLarge', 'an append past the value limit is refused');
  const r = new KvStateMachine();
  r.restore(m.snapshot());
  t.same(r.apply(cmd(9, 'get', 'é')), { err: 'OK', value: 'ünïcode' });
  t.same(r.apply(a), { err: 'OK', value: '' }, 'a duplicate after a restore is recognised');
  t.same(r.apply(cmd(9, 'get', 'k')).value, 'x', 'and not applied twice');
  t.same(r.apply(tooBig), refused, 'a refusal is remembered too');
  t.equal(r.apply(cmd(9, 'get', 'big')).value.length, MAX_VALUE_BYTES, 'the value was left as it was');
  r.restore(new Uint8Array(0));
  t.equal(r.size, 0, 'an empty snapshot is an empty table');
  t.throws(() => r.restore(new Uint8Array([1, 2, 3])), /not a key\/value snapshot/);
});

t.test('replicas that apply the same commands end in the same state', async (t) => {
  const rng = seededRng(3);
  const a = new KvStateMachine();
  const b = new KvStateMachine();
  const log: KvCommand[] = [];
  for (let i = 0; i < 2000; i++) {
    const client = Math.floor(rng() * 5);
    const r = rng();
    const op = r < 0.3 ? 'get' : r < 0.5 ? 'put' : 'append';
    const c = cmd(client, op, `k${Math.floor(rng() * 10)}`, op === 'get' ? undefined : `v${i}`);
    log.push(c);
    if (rng() < 0.2) log.push(c); // a re-sent command lands twice in the log
  }
  const ra = log.map((c) => a.apply(c));
  const rb = log.map((c) => b.apply(c));
  t.same(ra, rb, 'the same answers');
  t.same(Buffer.from(a.snapshot()), Buffer.from(b.snapshot()), 'byte-identical snapshots');
});

t.test('parseCommand: clear refusals for malformed or oversized requests', async (t) => {
  const ok = parseCommand({ op: 'put', key: 'k', value: 'v', clientId: 1, seq: 1 });
  t.ok(isCommand(ok), 'a well-formed put');
  const cases: [unknown, RegExp][] = [
    [null, /request must be an object/],
    [{ op: 'del', key: 'k', clientId: 1, seq: 1 }, /op must be/],
    [{ op: 'get', key: 3, clientId: 1, seq: 1 }, /key must be a string/],
    [{ op: 'append', key: 'k', clientId: 1, seq: 1 }, /value must be a string for append/],
    [{ op: 'get', key: 'k', clientId: -1, seq: 1 }, /clientId/],
    [{ op: 'get', key: 'k', clientId: 1, seq: 0 }, /seq must be a positive integer/],
    [{ op: 'get', key: 'k', clientId: 1.5, seq: 1 }, /clientId/],
  ];
  for (const [raw, why] of cases) {
    const r = parseCommand(raw);
    t.ok(!isCommand(r) && r.err === 'ErrBadRequest' && why.test(r.detail ?? ''), `refused: ${JSON.stringify(raw)} (${isCommand(r) ? 'accepted' : r.detail})`);
  }
  const longKey = parseCommand({ op: 'get', key: 'k'.repeat(MAX_KEY_BYTES + 1), clientId: 1, seq: 1 });
  t.match(longKey, { err: 'ErrTooLarge', detail: /key longer than/ });
  const wideKey = parseCommand({ op: 'get', key: '€'.repeat(MAX_KEY_BYTES / 3 + 1), clientId: 1, seq: 1 });
  t.match(wideKey, { err: 'ErrTooLarge' }, 'the limit counts UTF-8 bytes, not characters');
  t.ok(isCommand(parseCommand({ op: 'get', key: 'k'.repeat(MAX_KEY_BYTES), clientId: 1, seq: 1 })), 'a key at the limit is fine');
  const bigValue = parseCommand({ op: 'put', key: 'k', value: 'v'.repeat(MAX_VALUE_BYTES + 1), clientId: 1, seq: 1 });
  t.match(bigValue, { err: 'ErrTooLarge', detail: /value longer than/ });
});

/** Step a snapshot writer to its end, running `between` after each step that did not finish: its bytes, and how many steps did not finish. */
function writeInSteps(w: { step(): Uint8Array | undefined }, between: (steps: number) => void = () => {}): { got: Uint8Array; steps: number } {
  let steps = 0;
  for (;;) {
    const got = w.step();
    if (got !== undefined) return { got, steps };
    between(++steps);
  }
}

t.test('a snapshot written in steps is the snapshot of where it began, byte for byte, whatever is applied between the steps', async (t) => {
  const rng = seededRng(7);
  for (const keys of [0, 1, 15, 16, SNAPSHOT_STEP_KEYS - 1, SNAPSHOT_STEP_KEYS, SNAPSHOT_STEP_KEYS + 1, 3 * SNAPSHOT_STEP_KEYS + 5, 70_000]) {
    const m = new KvStateMachine();
    for (let i = 0; i < keys; i++) m.apply(cmd(1 + (i % 5), 'put', `k${i}`, 'v'.repeat(i % 40)));
    const want = m.snapshot();
    // Between steps: new values for old keys, appends, new keys, new clients.
    const { got, steps } = writeInSteps(m.beginSnapshot(), () => {
      for (let j = 0; j < 50; j++) {
        const k = `k${Math.floor(rng() * (keys + 100))}`;
        m.apply(cmd(1 + Math.floor(rng() * 8), rng() < 0.5 ? 'put' : 'append', k, `x${j}`));
      }
      // A shard's rows arriving (the sharded service merges them into the table).
      m.merge([[`k${Math.floor(rng() * (keys + 100))}`, 'merged']], []);
    });
    t.equal(steps, Math.floor(keys / SNAPSHOT_STEP_KEYS), `${keys} keys: ${steps + 1} steps`);
    t.ok(Buffer.from(got).equals(Buffer.from(want)), `${keys} keys: the same bytes as snapshot() when it began`);
    const r = new KvStateMachine();
    r.restore(got);
    t.equal(r.size, keys, 'and it restores the table as it was');
  }
});

t.test('a snapshot being written is given up when the table is replaced or another begins', async (t) => {
  const m = new KvStateMachine();
  for (let i = 0; i < 3 * SNAPSHOT_STEP_KEYS; i++) m.apply(cmd(1, 'put', `k${i}`, 'v'));
  const a = m.beginSnapshot();
  t.equal(a.step(), undefined, 'one step of three');
  const b = m.beginSnapshot();
  t.throws(() => a.step(), /given up/, 'a second snapshot gives up the first');
  t.equal(b.step(), undefined);
  m.restore(m.snapshot());
  t.throws(() => b.step(), /given up/, 'a restore gives up the one being written');
  const c = m.beginSnapshot();
  c.cancel();
  t.throws(() => c.step(), /given up/, 'so does cancel()');
  const d = m.beginSnapshot();
  m.clear();
  t.throws(() => d.step(), /given up/, 'and clear()');
});

t.test('a step of a table of large values stops at about 256 K characters, not 2,048 rows', async (t) => {
  const m = new KvStateMachine();
  for (let i = 0; i < 100; i++) m.apply(cmd(1, 'put', `k${i}`, 'v'.repeat(64 * 1024)));
  const want = m.snapshot();
  const { got, steps } = writeInSteps(m.beginSnapshot());
  t.equal(steps, 26, '100 values of 64 K characters take 25 steps of 4, a last one that finds the end and puts the first 4 MB together, and one for the rest');
  t.ok(Buffer.from(got).equals(Buffer.from(want)), 'the same bytes');
});

t.test("a large snapshot's bytes are put together over steps of about 4 MB, and what is applied meanwhile does not reach them", async (t) => {
  const m = new KvStateMachine();
  // 40 MB of values: 160 steps of rows (4 values of 64 K characters each), then about 10 of putting 40 MB together.
  for (let i = 0; i < 640; i++) m.apply(cmd(1, 'put', `k${i}`, String.fromCharCode(97 + (i % 26)).repeat(64 * 1024)));
  const want = m.snapshot();
  const { got, steps } = writeInSteps(m.beginSnapshot(), (n) => {
    m.apply(cmd(2, 'put', `k${n}`, 'changed'));
    m.apply(cmd(2, 'put', `new${n}`, 'added'));
  });
  t.ok(steps >= 168, `${steps + 1} steps: 160 of rows, then the bytes a few MB at a time`);
  t.ok(steps <= 172, 'not one step per piece');
  t.equal(got.length, want.length, `${(want.length / 1e6).toFixed(1)} MB`);
  t.ok(Buffer.from(got).equals(Buffer.from(want)), 'the same bytes as snapshot() when it began');
});
