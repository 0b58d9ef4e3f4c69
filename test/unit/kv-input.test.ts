// The key/value service never alters or merges what it is given: a key or
// value that is not a string, or a string that is not well-formed Unicode
// (a lone surrogate, which UTF-8 cannot carry), is refused with
// ErrBadRequest by the Clerk before it sends and by the service when a
// command arrives some other way; every string it accepts comes back exactly.
import t from 'tap';
import { RaftGroup } from '../../lib/index.js';
import {
  Clerk,
  KvRequestError,
  KvStateMachine,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  commandToWire,
  isCommand,
  isWellFormedString,
  kvStateMachine,
  parseCommand,
  type KvReply,
} from '../../lib/kv/index.js';
import { createStateMachine } from '../../lib/kv/service.js';
import { decodeValue, encodeValue } from '../../lib/api/state-machine.js';

const NOT_STRINGS: [string, unknown][] = [
  ['null', null],
  ['undefined', undefined],
  ['a number', 5],
  ['zero', 0],
  ['a boolean', false],
  ['an object', { v: 'x' }],
  ['an array', ['x']],
  ['bytes', new Uint8Array([0x61])],
];

const LONE: [string, string][] = [
  ['a lone high surrogate', '\uD800'],
  ['another lone high surrogate', '\uD801'],
  ['a lone low surrogate', '\uDFFF'],
  ['a high surrogate at the end', 'abc\uD83D'],
  ['a low surrogate at the start', '\uDE00abc'],
  ['a low surrogate before a high one', '\uDE00\uD83D'],
  ['a lone surrogate inside a valid pair run', '\uD83D\uDE00\uD83D'],
];

/** Well-formed strings that must come back exactly as they went in. */
const KEEP: [string, string][] = [
  ['the empty string', ''],
  ['ASCII', 'plain'],
  ['emoji (astral, surrogate pairs)', '😀🎉 👩‍👩‍👧'],
  ['the edges of the astral planes', '\uD800\uDC00\uDBFF\uDFFF\u{10FFFF}'],
  ['the code points next to the surrogates and the noncharacters', '\uD7FF\uE000\uFFFE\uFFFF'],
  ['NUL characters', '\0a\0\0b\0'],
  ['U+FFFD itself', '\uFFFD'],
  ['composed é', '\u00E9'],
  ['decomposed é', 'e\u0301'],
  ['control characters and newlines', '\t\r\n\x7F\x1B'],
];

function wire(op: 0 | 1 | 2, key: unknown, value: unknown, clientId: number, seq: number): unknown[] {
  return [op, key, value, clientId, seq];
}

t.test('isWellFormedString', async (t) => {
  for (const [what, s] of LONE) t.notOk(isWellFormedString(s), `ill-formed: ${what}`);
  for (const [what, s] of KEEP) t.ok(isWellFormedString(s), `well-formed: ${what}`);
});

t.test('parseCommand refuses non-string keys and values and ill-formed strings, with ErrBadRequest', async (t) => {
  for (const op of ['put', 'append'] as const) {
    for (const [what, v] of NOT_STRINGS) {
      const r = parseCommand({ op, key: 'k', value: v, clientId: 1, seq: 1 });
      t.ok(!isCommand(r) && r.err === 'ErrBadRequest' && /value must be a string/.test(r.detail ?? ''), `${op} with ${what} as the value`);
    }
    const missing = parseCommand({ op, key: 'k', clientId: 1, seq: 1 });
    t.ok(!isCommand(missing) && missing.err === 'ErrBadRequest', `${op} with no value at all`);
  }
  for (const op of ['get', 'put', 'append'] as const) {
    for (const [what, k] of NOT_STRINGS) {
      const r = parseCommand({ op, key: k, value: 'v', clientId: 1, seq: 1 });
      t.ok(!isCommand(r) && r.err === 'ErrBadRequest' && /key must be a string/.test(r.detail ?? ''), `${op} with ${what} as the key`);
    }
    for (const [what, k] of LONE) {
      const r = parseCommand({ op, key: k, value: 'v', clientId: 1, seq: 1 });
      t.ok(!isCommand(r) && r.err === 'ErrBadRequest' && /key is not well-formed Unicode/.test(r.detail ?? ''), `${op} with ${what} in the key`);
    }
  }
  for (const op of ['put', 'append'] as const) {
    for (const [what, v] of LONE) {
      const r = parseCommand({ op, key: 'k', value: v, clientId: 1, seq: 1 });
      t.ok(!isCommand(r) && r.err === 'ErrBadRequest' && /value is not well-formed Unicode/.test(r.detail ?? ''), `${op} with ${what} in the value`);
    }
  }
  const at = parseCommand({ op: 'put', key: 'k', value: 'ab😀c\uDC00d', clientId: 1, seq: 1 });
  t.match(at, { err: 'ErrBadRequest', detail: /at index 5/ }, 'the reason says where the lone surrogate is');
  for (const [what, s] of KEEP) {
    const r = parseCommand({ op: 'put', key: s, value: s, clientId: 1, seq: 1 });
    t.ok(isCommand(r) && r.key === s && r.value === s, `accepted unchanged: ${what}`);
  }
});

t.test('commandToWire sends the value as it is: no "" made up for a missing one', async (t) => {
  const w = commandToWire({ op: 'put', key: 'k', clientId: 1, seq: 1 });
  t.not(w[2], '', 'a Put without a value does not go out with ""');
  const sm = createStateMachine();
  t.equal(sm.apply(decodeValue(encodeValue(w)), { index: 1, term: 1 })[0], 'ErrBadRequest', 'and the service refuses it');
  t.equal(sm.query('k')[0], 'ErrNoKey', 'nothing was stored');
  t.same(commandToWire({ op: 'append', key: 'k', value: 'v', clientId: 1, seq: 2 }), [2, 'k', 'v', 1, 2], 'a value goes as it is');
});

t.test('the service module (in this thread) refuses wrongly typed and ill-formed commands and stores nothing', async (t) => {
  const sm = createStateMachine();
  const meta = { index: 1, term: 1 };
  // Through the codec, as the engine delivers commands.
  const apply = (raw: unknown): KvReply => sm.apply(decodeValue(encodeValue(raw)), meta);
  t.same(apply(wire(1, 'k', 'prev', 1, 1)), ['OK', ''], 'a good put');
  let seq = 1;
  for (const op of [1, 2] as const) {
    for (const [what, v] of NOT_STRINGS) {
      const r = apply(wire(op, 'k', v, 1, ++seq));
      t.equal(r[0], 'ErrBadRequest', `${op === 1 ? 'put' : 'append'} with ${what}: ${r[2]}`);
    }
    for (const [what, k] of NOT_STRINGS) t.equal(apply(wire(op, k, 'v', 1, ++seq))[0], 'ErrBadRequest', `${op === 1 ? 'put' : 'append'} with ${what} as the key`);
  }
  t.same(sm.query('k'), ['OK', 'prev'], 'the value is as it was');
  // Straight to apply (no codec): a lone surrogate that reaches the service is refused too.
  for (const [what, s] of LONE) {
    t.equal(sm.apply(wire(1, s, 'v', 1, ++seq), meta)[0], 'ErrBadRequest', `a put to a key with ${what}`);
    t.equal(sm.apply(wire(1, 'k', s, 1, ++seq), meta)[0], 'ErrBadRequest', `a put of a value with ${what}`);
    t.equal(sm.apply(wire(2, 'k', s, 1, ++seq), meta)[0], 'ErrBadRequest', `an append of a value with ${what}`);
    t.equal(sm.query(s)[0], 'ErrBadRequest', `a get of a key with ${what}`);
  }
  t.same(sm.query('k'), ['OK', 'prev'], 'still as it was');
  t.same(sm.query('\uFFFD'), ['ErrNoKey', ''], 'and no key was made of replacement characters');
  for (const q of [5, null, { k: 'k' }]) t.equal(sm.query(q)[0], 'ErrBadRequest', `a get of ${JSON.stringify(q)}`);
  // The table keeps only what was accepted.
  const table = new KvStateMachine();
  table.restore(sm.snapshot());
  t.equal(table.size, 1, 'one key in the table');
});

t.test('end to end on a group: the Clerk refuses, the service refuses raw commands, accepted strings come back exactly', async (t) => {
  const group = await RaftGroup.open<unknown, KvReply, unknown, KvReply>({ peers: 3, stateMachine: kvStateMachine });
  t.teardown(() => group.close());
  const ck = Clerk.connect(group.handle());
  t.teardown(() => ck.close());
  const refused = async (p: Promise<unknown>, what: string, why: RegExp) => {
    try {
      await p;
      t.fail(`accepted: ${what}`);
    } catch (e) {
      t.ok(e instanceof KvRequestError && e.err === 'ErrBadRequest' && why.test(e.message), `refused with ErrBadRequest: ${what} (${String(e)})`);
    }
  };
  const any = ck as unknown as { put(k: unknown, v: unknown): Promise<void>; append(k: unknown, v: unknown): Promise<void>; get(k: unknown): Promise<string> };

  await ck.put('k', 'prev');
  for (const [what, v] of NOT_STRINGS) {
    await refused(any.put('k', v), `put('k', ${what})`, /value must be a string/);
    await refused(any.append('k', v), `append('k', ${what})`, /value must be a string/);
    await refused(any.put('fresh', v), `put('fresh', ${what})`, /value must be a string/);
    await refused(any.append('fresh2', v), `append('fresh2', ${what})`, /value must be a string/);
  }
  t.equal(await ck.get('k'), 'prev', 'a Get afterwards shows the previous value');
  t.same(await group.read('fresh'), ['ErrNoKey', ''], 'and a key only refused writes named has no value');
  t.same(await group.read('fresh2'), ['ErrNoKey', '']);
  for (const [what, k] of NOT_STRINGS) {
    await refused(any.put(k, 'v'), `put(${what}, 'v')`, /key must be a string/);
    await refused(any.append(k, 'v'), `append(${what}, 'v')`, /key must be a string/);
    await refused(any.get(k), `get(${what})`, /key must be a string/);
  }

  // Lone surrogates: refused in keys and in values, so "\uD800" and "\uD801" never share a value.
  for (const [what, s] of LONE) {
    await refused(ck.put(s, 'x'), `put of a key with ${what}`, /key is not well-formed/);
    await refused(ck.append(s, 'x'), `append to a key with ${what}`, /key is not well-formed/);
    await refused(ck.get(s), `get of a key with ${what}`, /key is not well-formed/);
    await refused(ck.put('k', s), `put of a value with ${what}`, /value is not well-formed/);
    await refused(ck.append('k', s), `append of a value with ${what}`, /value is not well-formed/);
  }
  t.equal(await ck.get('k'), 'prev', 'the value is untouched');
  for (const k of ['\uFFFD', '\uFFFD\uFFFD\uFFFD', 'abc\uFFFD', 'abc\uFFFD\uFFFD\uFFFD']) {
    t.same(await group.read(k), ['ErrNoKey', ''], `nothing landed under ${JSON.stringify(k)}`);
  }
  // Appending the two halves of a pair one by one cannot build one: each half alone is refused.
  await ck.put('pair', '');
  await refused(ck.append('pair', '\uD83D'), 'append of a high half', /value is not well-formed/);
  await refused(ck.append('pair', '\uDE00'), 'append of a low half', /value is not well-formed/);
  t.equal(await ck.get('pair'), '', 'the value is still empty');

  // Well-formed strings, as keys and as values, come back exactly, and distinct keys stay distinct.
  for (const [what, s] of KEEP) await ck.put(`v:${what}`, s);
  for (const [what, s] of KEEP) await ck.put(s, `k:${what}`);
  for (const [what, s] of KEEP) {
    t.equal(await ck.get(`v:${what}`), s, `value kept exactly: ${what}`);
    t.equal(await ck.get(s), `k:${what}`, `key kept exactly and kept apart: ${what}`);
  }
  await ck.append('v:emoji (astral, surrogate pairs)', '\0😀');
  t.equal(await ck.get('v:emoji (astral, surrogate pairs)'), '😀🎉 👩‍👩‍👧\0😀', 'an append keeps both parts exactly');
  // Long strings: a key of MAX_KEY_BYTES in 4-byte characters, a value of MAX_VALUE_BYTES in 1- to 4-byte ones.
  const longKey = '😀'.repeat(MAX_KEY_BYTES / 4);
  const unit = 'a\0é€😀'; // 1 + 1 + 2 + 3 + 4 = 11 bytes
  const longValue = unit.repeat(Math.floor(MAX_VALUE_BYTES / 11));
  t.equal(Buffer.byteLength(longKey), MAX_KEY_BYTES);
  await ck.put(longKey, longValue);
  const back = await ck.get(longKey);
  t.ok(back === longValue, `a ${Buffer.byteLength(longValue)}-byte value under a ${MAX_KEY_BYTES}-byte key comes back exactly`);

  // Raw commands through the engine's client, bypassing the Clerk: the service refuses them.
  const id = 987654321;
  let seq = 0;
  for (const op of [1, 2] as const) {
    const name = op === 1 ? 'put' : 'append';
    for (const [what, v] of NOT_STRINGS) {
      const r = await group.propose(wire(op, 'k', v, id, ++seq));
      t.equal(r[0], 'ErrBadRequest', `a raw ${name} of ${what}: ${r[2]}`);
      const fresh = await group.propose(wire(op, 'raw-fresh', v, id, ++seq));
      t.equal(fresh[0], 'ErrBadRequest', `a raw ${name} of ${what} to a new key`);
    }
    for (const [what, k] of NOT_STRINGS) {
      const r = await group.propose(wire(op, k, 'v', id, ++seq));
      t.equal(r[0], 'ErrBadRequest', `a raw ${name} with ${what} as the key: ${r[2]}`);
    }
    const r = await group.propose({ op: name, key: 'k', clientId: id, seq: ++seq });
    t.equal(r[0], 'ErrBadRequest', `a raw ${name} as an object without a value`);
    const short = await group.propose([op, 'k']);
    t.equal(short[0], 'ErrBadRequest', `a raw ${name} that is cut short`);
  }
  t.equal(await ck.get('k'), 'prev', 'after all of them the value is as it was');
  t.same(await group.read('raw-fresh'), ['ErrNoKey', ''], 'and the new key has none');
  for (const q of [5, null, ['k'], { key: 'k' }]) t.equal((await group.read(q))[0], 'ErrBadRequest', `a raw Get of ${JSON.stringify(q)}`);
  t.same(await group.propose(wire(1, 'k', 'raw', id, ++seq)), ['OK', ''], 'a good raw command still works');
  t.equal(await ck.get('k'), 'raw');
});
