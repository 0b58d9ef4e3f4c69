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
