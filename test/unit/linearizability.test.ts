// The linearizability checker (lib/check): known-good and known-bad KV
// histories, generated linearizable histories, the time limit, bad input.
import t from 'tap';
import { KvOp, checkKvHistory, kvModel, searchLinearization, type KvOpCode, type KvOperation } from '../../lib/check/index.js';
import { seededRng } from '../../lib/raft/prng.js';

function op(clientId: number, kind: KvOpCode, key: string, value: string, out: string, call: number, ret: number): KvOperation {
  return { clientId, input: { op: kind, key, value }, output: { value: out }, call, ret };
}
const get = (c: number, key: string, out: string, call: number, ret: number) => op(c, KvOp.Get, key, '', out, call, ret);
const put = (c: number, key: string, v: string, call: number, ret: number) => op(c, KvOp.Put, key, v, '', call, ret);
const append = (c: number, key: string, v: string, call: number, ret: number) => op(c, KvOp.Append, key, v, '', call, ret);

const search = (h: KvOperation[]) => searchLinearization(kvModel, h);

t.test('sequential and concurrent histories that are linearizable', async (t) => {
  t.equal(search([]), 'ok', 'the empty history');
  t.equal(search([get(0, 'k', '', 0, 1)]), 'ok', 'a missing key reads as ""');
  t.equal(search([put(0, 'k', 'a', 0, 1), append(0, 'k', 'b', 2, 3), get(0, 'k', 'ab', 4, 5)]), 'ok', 'put, append, get in order');
  // A get overlapping a put may see either value.
  t.equal(search([put(0, 'k', 'a', 0, 10), get(1, 'k', '', 1, 2)]), 'ok', 'a concurrent get sees the old value');
  t.equal(search([put(0, 'k', 'a', 0, 10), get(1, 'k', 'a', 1, 2)]), 'ok', 'or the new one');
  // Two overlapping appends may land in either order.
  const h = [append(0, 'k', 'x', 0, 10), append(1, 'k', 'y', 0, 10)];
  t.equal(search([...h, get(2, 'k', 'yx', 11, 12)]), 'ok', 'concurrent appends in either order');
  t.equal(search([put(0, 'k', 'a', 0, 5), get(1, 'k', 'a', 5, 6)]), 'ok', 'operations that touch at an instant count as concurrent');
});

t.test('histories that are not linearizable are rejected', async (t) => {
  t.equal(search([put(0, 'k', 'a', 0, 1), get(1, 'k', '', 2, 3)]), 'illegal', 'a stale read after a completed put');
  t.equal(search([put(0, 'k', 'a', 0, 1), put(0, 'k', 'b', 2, 3), get(1, 'k', 'a', 4, 5)]), 'illegal', 'a read of an overwritten value');
  t.equal(search([append(0, 'k', 'a', 0, 1), append(0, 'k', 'b', 2, 3), get(1, 'k', 'a', 4, 5)]), 'illegal', 'a lost append');
  t.equal(search([append(0, 'k', 'a', 0, 1), get(1, 'k', 'aa', 2, 3)]), 'illegal', 'an append applied twice');
  t.equal(search([append(0, 'k', 'a', 0, 1), append(0, 'k', 'b', 2, 3), get(1, 'k', 'ba', 4, 5)]), 'illegal', 'appends of one client out of order');
  // Two reads that disagree on the order of two concurrent puts.
  const h = [put(0, 'k', 'a', 0, 10), put(1, 'k', 'b', 0, 10), get(2, 'k', 'a', 11, 12), get(3, 'k', 'b', 13, 14)];
  t.equal(search(h), 'illegal', 'a value comes back after a later read saw another');
  t.equal(search([get(0, 'k', 'a', 0, 1), put(1, 'k', 'a', 2, 3)]), 'illegal', 'a read of a value before it is written');
});

/**
 * A random history that is linearizable by construction: each operation
 * takes effect at a random instant inside its call..return interval, and
 * outputs come from applying the operations in the order of those instants.
 */
function randomHistory(seed: number, clients: number, opsPerClient: number, keys: number): KvOperation[] {
  const rng = seededRng(seed);
  const pending: { o: KvOperation; at: number }[] = [];
  let unique = 0;
  for (let c = 0; c < clients; c++) {
    let now = Math.floor(rng() * 10);
    for (let k = 0; k < opsPerClient; k++) {
      const call = now + Math.floor(rng() * 5);
      const ret = call + 1 + Math.floor(rng() * 30);
      const at = call + rng() * (ret - call);
      const key = `k${Math.floor(rng() * keys)}`;
      const r = rng();
      const kind = r < 0.4 ? KvOp.Get : r < 0.6 ? KvOp.Put : KvOp.Append;
      const value = kind === KvOp.Get ? '' : `<${c}.${unique++}>`;
      pending.push({ o: op(c, kind, key, value, '', call, ret), at });
      now = ret;
    }
  }
  const state = new Map<string, string>();
  for (const { o } of [...pending].sort((a, b) => a.at - b.at)) {
    const cur = state.get(o.input.key) ?? '';
    if (o.input.op === KvOp.Get) o.output.value = cur;
    else state.set(o.input.key, o.input.op === KvOp.Put ? o.input.value : cur + o.input.value);
  }
  return pending.map((p) => p.o);
}

t.test('generated linearizable histories pass; one corrupted read makes them fail', async (t) => {
  let gets = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const h = randomHistory(seed, 2 + (seed % 6), 40, 1 + (seed % 4));
    const parts = kvModel.partition!(h);
    for (const p of parts) {
      if (search(p) !== 'ok') {
        t.fail(`seed ${seed}: a linearizable history was rejected`);
        return;
      }
    }
    const target = h.find((o) => o.input.op === KvOp.Get && o.output.value !== '');
    if (!target) continue;
    gets++;
    target.output.value = target.output.value.slice(0, -1); // a read that misses part of a write
    const bad = kvModel.partition!(h).find((p) => p[0]!.input.key === target.input.key)!;
    if (search(bad) !== 'illegal') {
      t.fail(`seed ${seed}: a corrupted read was accepted`);
      return;
    }
  }
  t.ok(gets >= 30, `${gets} corrupted histories rejected, 40 clean ones accepted`);
});

t.test('the pooled checker: ok, illegal with the culprit key, and input errors', async (t) => {
  const good = randomHistory(7, 5, 200, 8);
  const ok = await checkKvHistory(good, { threads: 2 });
  t.equal(ok.result, 'ok', `${good.length} operations over ${ok.partitions} keys in ${ok.ms.toFixed(0)} ms`);
  t.equal(ok.decided, ok.partitions, 'every key decided');

  const bad = good.slice();
  const i = bad.findIndex((o) => o.input.op === KvOp.Get && o.output.value !== '');
  bad[i] = { ...bad[i]!, output: { value: 'never written' } };
  const r = await checkKvHistory(bad, { threads: 2 });
  t.equal(r.result, 'illegal', 'a read of a value nobody wrote');
  t.same(r.illegalKeys, [bad[i]!.input.key], 'names the key');

  await t.rejects(checkKvHistory([{ clientId: 0, input: { op: 3, key: 'k', value: '' }, output: { value: '' }, call: 0, ret: 1 } as never]), TypeError);
  await t.rejects(checkKvHistory([get(0, 'k', '', 5, 1)]), /returns \(1\) before it is called \(5\)/);
  await t.rejects(checkKvHistory([], { timeoutMs: 0 }), RangeError);
});

t.test('past the time limit the answer is unknown, never ok; an illegal key found in time still wins', async (t) => {
  // 40 concurrent appends and a read nobody could see: every order of the
  // appends gives a different state, so the search cannot finish in time.
  const hard: KvOperation[] = [];
  for (let k = 0; k < 40; k++) hard.push(append(k, 'hard', String.fromCharCode(65 + k), 0, 100));
  hard.push(get(99, 'hard', 'impossible', 0, 100));
  const r = await checkKvHistory(hard, { timeoutMs: 200, threads: 2 });
  t.equal(r.result, 'unknown', `unknown after ${r.ms.toFixed(0)} ms`);
  t.ok(r.ms < 2000, 'and the search stopped soon after the limit');

  const both = [...hard, put(0, 'easy', 'a', 200, 201), get(1, 'easy', '', 202, 203)];
  const r2 = await checkKvHistory(both, { timeoutMs: 200, threads: 2 });
  t.equal(r2.result, 'illegal', 'the stale read on another key is reported');
  t.same(r2.illegalKeys, ['easy']);
});
