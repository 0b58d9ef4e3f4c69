// The adapter between a state machine of values and the engine's bytes:
// results are encoded for the peer that answers, skipped where nobody
// waits, and a shared frozen result is encoded once, while a mutable one
// is encoded afresh every time.
import t from 'tap';
import { byteStateMachine, decodeValue, encodeValue, type StateMachine } from '../../lib/api/state-machine.js';

const meta = (index: number) => ({ index, term: 1 });

t.test('a mutable result that changes is encoded afresh each time; a frozen one is reused', async (t) => {
  const mutable: number[] = [0];
  const frozen = Object.freeze(['OK', '']);
  let n = 0;
  const sm: StateMachine = {
    apply: (cmd) => {
      if (cmd === 'frozen') return frozen;
      mutable[0] = ++n;
      return mutable;
    },
    query: () => null,
    snapshot: () => new Uint8Array(0),
    restore: () => {},
  };
  const b = byteStateMachine(sm);
  const cmd = (v: string) => encodeValue(v);
  t.same(decodeValue(b.apply(cmd('m'), meta(1), true)), [1]);
  t.same(decodeValue(b.apply(cmd('m'), meta(2), true)), [2], 'the same array, changed, is encoded again');
  const f1 = b.apply(cmd('frozen'), meta(3), true);
  const f2 = b.apply(cmd('frozen'), meta(4), true);
  t.same(decodeValue(f1), ['OK', '']);
  t.equal(f1, f2, 'the frozen result is encoded once');
  t.same(decodeValue(b.apply(cmd('m'), meta(5), true)), [3], 'and a mutable one after it is still fresh');
  t.equal(b.apply(cmd('m'), meta(6), false).length, 0, 'nobody waits: nothing encoded');
  t.equal(n, 4, 'but the command was applied');
});

t.test('a frozen array that holds an object is not cached (the object could change)', async (t) => {
  const inner = { v: 1 };
  const shell = Object.freeze([inner]);
  const sm: StateMachine = { apply: () => shell, query: () => null, snapshot: () => new Uint8Array(0), restore: () => {} };
  const b = byteStateMachine(sm);
  t.same(decodeValue(b.apply(encodeValue(1), meta(1), true)), [{ v: 1 }]);
  inner.v = 2;
  t.same(decodeValue(b.apply(encodeValue(1), meta(2), true)), [{ v: 2 }]);
});

t.test('values decoded from views into one buffer: each exactly its own bytes, with no DataView left on the view', async (t) => {
  const values: unknown[] = [1, 'a string', { k: [1, 2, 3] }, null, 2 ** 40, new Uint8Array([7, 8]), -3.5, ['OK', '']];
  const parts = values.map(encodeValue);
  const buf = new Uint8Array(parts.reduce((n, p) => n + p.length, 0) + 4);
  let at = 2; // nothing starts at offset 0: every part is a view into the middle
  const views: Uint8Array[] = [];
  for (const p of parts) {
    buf.set(p, at);
    views.push(buf.subarray(at, at + p.length));
    at += p.length;
  }
  for (let k = 0; k < values.length; k++) {
    t.same(decodeValue(views[k]!), values[k], `value ${k}`);
    t.notOk(Object.prototype.hasOwnProperty.call(views[k], 'dataView'), `view ${k} keeps nothing of the decoder`);
  }
  // Decoded in another order, across two buffers in turn: the cache follows the buffer.
  const other = encodeValue('elsewhere');
  const otherBuf = new Uint8Array(other.length + 3);
  otherBuf.set(other, 3);
  t.same(decodeValue(views[2]!), values[2]);
  t.same(decodeValue(otherBuf.subarray(3)), 'elsewhere');
  t.same(decodeValue(views[1]!), values[1]);
  // A view cut short reads nothing of the bytes after it: it fails as a short buffer does.
  const str = encodeValue('abc'); // 0xa3 then three bytes
  const host = new Uint8Array(16).fill(0x61);
  host.set(str, 4);
  t.throws(() => decodeValue(host.subarray(4, 4 + str.length - 1)), 'a string cut short fails');
  t.throws(() => decodeValue(str.slice(0, str.length - 1)), 'and so do the same bytes alone (a buffer of their own)');
  const u16 = encodeValue(300); // 0xcd then two bytes
  host.set(u16, 8);
  t.throws(() => decodeValue(host.subarray(8, 10)), 'a number cut short fails');
  t.throws(() => decodeValue(host.subarray(4, 4 + str.length + 1)), 'bytes left over after the value fail');
  t.same(decodeValue(host.subarray(8, 11)), 300);
});
