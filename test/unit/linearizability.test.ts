// The linearizability checker (lib/check): known-good and known-bad KV
// histories, generated linearizable histories, the time limit, bad input.
import t from 'tap';
import { KvOp, checkKvHistory, dropUnobserved, kvModel, searchLinearization, type KvOpCode, type KvOperation } from '../../lib/check/index.js';
import { seededRng } from '../../lib/raft/prng.js';

function op(clientId: number, kind: KvOpCode, key: string, value: string, out: string, call: number, ret: number): KvOperation {
  return { clientId, input: { op: kind, key, value }, output: { value: out }, call, ret };
}
const get = (c: number, key: string, out: string, call: number, ret: number) => op(c, KvOp.Get, key, '', out, call, ret);
const put = (c: number, key: string, v: string, call: number, ret: number) => op(c, KvOp.Put, key, v, '', call, ret);
const append = (c: number, key: string, v: string, call: number, ret: number) => op(c, KvOp.Append, key, v, '', call, ret);

const search = (h: KvOperation[]) => searchLinearization(kvModel, h);

/**
 * n concurrent Puts of distinct values and a read of a value nobody wrote:
 * every subset of the Puts, with each last value, is a configuration of its
 * own and no read prunes them (Puts reset the register), so the search needs
 * about n * 2^n steps to say "illegal".
 */
function hardHistory(n: number): KvOperation[] {
  const hard: KvOperation[] = [];
  for (let k = 0; k < n; k++) hard.push(put(k, 'hard', `v${k}`, 0, 100));
  hard.push(get(99, 'hard', 'impossible', 0, 100));
  return hard;
}

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
  const hard = hardHistory(40);
  const r = await checkKvHistory(hard, { timeoutMs: 200, threads: 2 });
  t.equal(r.result, 'unknown', `unknown after ${r.ms.toFixed(0)} ms`);
  t.ok(r.ms < 2000, 'and the search stopped soon after the limit');

  const both = [...hard, put(0, 'easy', 'a', 200, 201), get(1, 'easy', '', 202, 203)];
  const r2 = await checkKvHistory(both, { timeoutMs: 200, threads: 2 });
  t.equal(r2.result, 'illegal', 'the stale read on another key is reported');
  t.same(r2.illegalKeys, ['easy']);
});

/**
 * The reference the search is compared with: every order of the operations
 * that respects real time (a before b when a returned before b was called),
 * each operation whose outcome is unknown (ret Infinity) either placed
 * anywhere after its call or left out.
 */
function bruteForce(h: KvOperation[]): 'ok' | 'illegal' {
  const n = h.length;
  const used = new Array<boolean>(n).fill(false);
  const go = (value: string, placed: number): boolean => {
    // Done when every operation that returned is placed.
    if (h.every((o, i) => used[i] || o.ret === Infinity)) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      const o = h[i]!;
      // Not yet placeable while another unplaced operation returned before o was called.
      if (h.some((p, j) => j !== i && !used[j] && p.ret < o.call)) continue;
      let next = value;
      if (o.input.op === KvOp.Get) {
        if (o.ret === Infinity || o.output.value !== value) continue;
      } else next = o.input.op === KvOp.Put ? o.input.value : value + o.input.value;
      used[i] = true;
      const found = go(next, placed + 1);
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return go('', 0) ? 'ok' : 'illegal';
}

/** A small random one-key history, linearizable or not, some writes of unknown outcome. */
function smallHistory(seed: number): KvOperation[] {
  const rng = seededRng(seed);
  const h: KvOperation[] = [];
  const values = ['a', 'b', 'ab', 'ba', 'c'];
  const n = 3 + Math.floor(rng() * 5);
  for (let i = 0; i < n; i++) {
    const call = Math.floor(rng() * 10);
    const ret = rng() < 0.15 ? Infinity : call + Math.floor(rng() * 6);
    const r = rng();
    if (r < 0.4) {
      // Reads of values that may or may not be reachable.
      const out = rng() < 0.2 ? '' : values[Math.floor(rng() * values.length)]! + (rng() < 0.3 ? 'c' : '');
      h.push(get(i, 'k', out, call, ret));
    } else if (r < 0.6) h.push(put(i, 'k', values[Math.floor(rng() * 2)]!, call, ret));
    else h.push(append(i, 'k', ['a', 'b', 'c'][Math.floor(rng() * 3)]!, call, ret));
  }
  return h;
}

t.test('the search (with growth pruning and unknown outcomes) agrees with brute force on 3000 small histories', async (t) => {
  let illegal = 0;
  let unknownOps = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const h = smallHistory(seed);
    unknownOps += h.filter((o) => o.ret === Infinity).length;
    const want = bruteForce(h);
    if (want === 'illegal') illegal++;
    const got = searchLinearization(kvModel, h);
    const viaDrop = searchLinearization(kvModel, dropUnobserved(h));
    if (got !== want || viaDrop !== want) {
      t.fail(`seed ${seed}: brute force ${want}, search ${got}, after dropping unobserved writes ${viaDrop}: ${JSON.stringify(h)}`);
      return;
    }
  }
  t.ok(illegal > 300 && illegal < 2700, `both verdicts well represented: ${illegal} of 3000 illegal`);
  t.ok(unknownOps > 1000, `${unknownOps} operations of unknown outcome among them`);
});

t.test('growth pruning is sound: a search that prunes a live order is caught', async (t) => {
  // Planted bug: a growth rule that drops every Append which does not come
  // first in the next read (it forgets the state's length); the brute force
  // above must disagree with it somewhere.
  const broken = { ...kvModel, growth: { ...kvModel.growth!, fits: (_s: unknown, input: KvOperation['input'], out: KvOperation['output']) => input.op !== KvOp.Append || out.value.startsWith(input.value) } };
  let caught = 0;
  for (let seed = 1; seed <= 3000 && caught === 0; seed++) {
    const h = smallHistory(seed);
    if (searchLinearization(broken as typeof kvModel, h) !== bruteForce(h)) caught = seed;
  }
  t.ok(caught > 0, `the planted bug disagrees with brute force (first at seed ${caught})`);
});

t.test('many concurrent appends between reads are decided at once', async (t) => {
  // 15 clients, each appending its own tokens, all operations overlapping
  // their neighbours for long stretches (as under partitions), a read now and then.
  const rng = seededRng(3);
  const h: KvOperation[] = [];
  let value = '';
  let at = 0;
  for (let i = 0; i < 3000; i++) {
    at += 1;
    const call = at - Math.floor(rng() * 400);
    const ret = at + Math.floor(rng() * 400);
    if (i % 10 === 9) {
      h.push(get(i % 15, 'k', value, call, ret));
    } else {
      const token = `x ${i % 15} ${i} y`;
      value += token;
      h.push(append(i % 15, 'k', token, call, ret));
    }
  }
  const r = await checkKvHistory(h, { timeoutMs: 1000, threads: 1 });
  t.equal(r.result, 'ok', `${h.length} operations decided in ${r.ms.toFixed(0)} ms`);
  // One read with the first two tokens swapped (appended long before it was
  // called, and in the other order by every later read): illegal, and decided in time.
  const bad = h.map((o) => ({ ...o, output: { ...o.output } }));
  const g = bad.filter((o) => o.input.op === KvOp.Get)[150]!;
  g.output.value = g.output.value.replace(/^(x \d+ \d+ y)(x \d+ \d+ y)/, '$2$1');
  t.not(g.output.value, h.filter((o) => o.input.op === KvOp.Get)[150]!.output.value, 'the read was changed');
  const r2 = await checkKvHistory(bad, { timeoutMs: 1000, threads: 1 });
  t.equal(r2.result, 'illegal', `a read with two tokens swapped is rejected in ${r2.ms.toFixed(0)} ms`);
});

t.test('writes whose outcome is unknown', async (t) => {
  const lost = [put(0, 'k', 'a', 0, 1), put(1, 'k', 'b', 2, Infinity), get(2, 'k', 'a', 5, 6)];
  const r = await checkKvHistory(lost, { threads: 1 });
  t.equal(r.result, 'ok', 'a write that never returned and was never seen may never have happened');
  t.equal(r.unknownOutcomes, 1);
  t.equal(r.unknownDropped, 1, 'and is set aside unsearched');

  const seen = [put(0, 'k', 'a', 0, 1), append(1, 'k', 'b', 2, Infinity), get(2, 'k', 'ab', 5, 6), get(2, 'k', 'ab', 7, 8)];
  const r2 = await checkKvHistory(seen, { threads: 1 });
  t.equal(r2.result, 'ok', 'one that was seen took effect before the read that saw it');
  t.equal(r2.unknownDropped, 0, 'it is searched');

  const flicker = [put(0, 'k', 'a', 0, 1), append(1, 'k', 'b', 2, Infinity), get(2, 'k', 'ab', 5, 6), get(2, 'k', 'a', 7, 8)];
  t.equal((await checkKvHistory(flicker, { threads: 1 })).result, 'illegal', 'a write seen and then unseen is still caught');

  // Thousands of abandoned writes nobody read do not slow the check down.
  const many: KvOperation[] = [put(0, 'k', 'base', 0, 1)];
  for (let i = 0; i < 5000; i++) many.push(append(1 + (i % 50), 'k', `lost${i};`, 2 + i, Infinity));
  many.push(get(99, 'k', 'base', 6000, 6001));
  const r3 = await checkKvHistory(many, { threads: 1, timeoutMs: 1000 });
  t.equal(r3.result, 'ok', `5000 unknown outcomes decided in ${r3.ms.toFixed(0)} ms`);
  t.equal(r3.unknownDropped, 5000);

  await t.rejects(checkKvHistory([get(0, 'k', '', Infinity, Infinity)]), /call must be a finite number/);
});

t.test('memory is bounded: a search past its budget answers unknown; a thread out of heap does too', async (t) => {
  const hard = hardHistory(40);
  const r = await checkKvHistory(hard, { threads: 1, timeoutMs: 60_000, memoBytes: 4 << 20 });
  t.equal(r.result, 'unknown', `unknown after ${r.ms.toFixed(0)} ms`);
  t.equal(r.memoryLimited, 1, 'because of the memo budget, not the clock');
  t.ok(r.ms < 30_000, 'well before the time limit');

  // No memo budget, a small heap: the pool thread dies of heap exhaustion,
  // the check answers unknown and the checker keeps working.
  const checker = new (await import('../../lib/check/index.js')).LinearizabilityChecker({ threads: 1, workerHeapMb: 32 });
  try {
    const r2 = await checker.checkKv(hard, { timeoutMs: 60_000, memoBytes: Number.MAX_SAFE_INTEGER });
    t.equal(r2.result, 'unknown', `unknown after ${r2.ms.toFixed(0)} ms: the thread ran out of heap`);
    t.equal(r2.memoryLimited, 1);
    const after = await checker.checkKv([put(0, 'k', 'a', 0, 1), get(1, 'k', 'a', 2, 3)]);
    t.equal(after.result, 'ok', 'the next check runs on a fresh thread');
  } finally {
    await checker.close();
  }
});
