// TurnBatches writes a turn's frames for one destination end to end into
// one buffer of that batch's own: what a flush sends must decode to the
// frames in order, and must never change afterwards (a posted batch is
// transferred, a socket keeps it until written).
import t from 'tap';
import { Unpackr } from 'msgpackr';
import { writeFrame } from '../../lib/api/frame-writer.js';
import { TurnBatches } from '../../lib/transport/turn-batches.js';

const unpackr = new Unpackr({ useRecords: false, moreTypes: false });

t.test('a flush sends each destination its frames in order, as one buffer', async (t) => {
  const sent: [string, Uint8Array][] = [];
  const b = new TurnBatches<string>((to, batch) => sent.push([to, batch]));
  const big = new Uint8Array(5000).fill(9);
  b.pushFrame('a', [1, 2, 3], new Uint8Array([7, 8]));
  b.push('b', writeFrame([4], undefined, 1));
  // Past the first buffer's size: the batch grows and keeps what it held.
  for (let i = 0; i < 40; i++) b.pushFrame('a', [i, 300, 70000], big);
  b.pushFrame('b', [5, 0, -1], undefined, 1);
  b.flush();
  t.same(sent.map(([to]) => to), ['a', 'b'], 'one batch per destination');
  const a = unpackr.unpackMultiple(sent[0]![1]) as unknown[];
  t.equal(a.length, 41);
  t.same(a[0], [1, 2, 3, new Uint8Array([7, 8])]);
  for (let i = 0; i < 40; i++) t.same(a[i + 1], [i, 300, 70000, big], `frame ${i + 1}`);
  t.same(unpackr.unpackMultiple(sent[1]![1]), [[4, null, null], [5, 0, -1, null, null]]);
  t.same(sent[0]![1], new Uint8Array(Buffer.concat([writeFrame([1, 2, 3], new Uint8Array([7, 8])), ...Array.from({ length: 40 }, (_, i) => writeFrame([i, 300, 70000], big))])), 'byte for byte what writeFrame writes');
});

t.test('a sent batch is never written again by later turns', async (t) => {
  const sent: Uint8Array[] = [];
  const b = new TurnBatches<string>((_to, batch) => sent.push(batch));
  b.pushFrame('a', [1], new Uint8Array([1, 1, 1]));
  b.flush();
  const first = Uint8Array.from(sent[0]!);
  for (let i = 0; i < 10; i++) {
    b.pushFrame('a', [2], new Uint8Array(100).fill(i));
    b.flush();
  }
  t.same(sent[0], first, 'the first batch holds what it held when it was sent');
  t.not(sent[1]!.buffer, sent[0]!.buffer, 'each batch has a buffer of its own');
});

t.test('a batch is sent at the end of the turn without a flush', async (t) => {
  const sent: Uint8Array[] = [];
  const b = new TurnBatches<string>((_to, batch) => sent.push(batch));
  b.pushFrame('a', [1], undefined);
  b.pushFrame('a', [2], undefined);
  t.equal(sent.length, 0, 'nothing before the turn ends');
  await new Promise((r) => setImmediate(r));
  t.same(unpackr.unpackMultiple(sent[0]!), [[1, null], [2, null]]);
  b.drop('a');
});

t.test('drop forgets what was queued for a closed destination', async (t) => {
  const sent: string[] = [];
  const b = new TurnBatches<string>((to) => sent.push(to));
  b.pushFrame('a', [1], undefined);
  b.pushFrame('b', [1], undefined);
  b.drop('a');
  b.flush();
  t.same(sent, ['b']);
});
