// The hand-written client frames decode (with msgpackr, as the receivers
// do) to exactly what was written, at every integer and length boundary.
import t from 'tap';
import { Unpackr } from 'msgpackr';
import { writeFrame } from '../../lib/api/frame-writer.js';

const unpackr = new Unpackr({ useRecords: false, moreTypes: false });
const INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER, -1, -32];
const LENGTHS = [0, 1, 255, 256, 65535, 65536, 70000];

t.test('integers at every size boundary, payloads of every length class', async (t) => {
  for (const v of INTS) {
    const f = writeFrame([v, 1, v], new Uint8Array([7]));
    t.same(unpackr.unpack(f), [v, 1, v, new Uint8Array([7])], `${v}`);
  }
  for (const n of LENGTHS) {
    const payload = new Uint8Array(n).map((_, i) => i & 0xff);
    const got = unpackr.unpack(writeFrame([3, 4], payload)) as unknown[];
    t.equal(got.length, 3);
    t.ok(got[2] instanceof Uint8Array && Buffer.compare(got[2], payload) === 0, `a ${n}-byte payload comes back as it was`);
  }
});

t.test('no payload is nil, and the tail adds nils', async (t) => {
  t.same(unpackr.unpack(writeFrame([5, 0, -1], undefined, 1)), [5, 0, -1, null, null]);
  t.same(unpackr.unpack(writeFrame([5], new Uint8Array(0), 2)), [5, new Uint8Array(0), null, null]);
});

t.test('frames concatenate into a batch that decodes frame by frame', async (t) => {
  const a = writeFrame([1, 2], new Uint8Array([1, 2, 3]));
  const b = writeFrame([300, 70000], undefined, 1);
  const batch = new Uint8Array(a.length + b.length);
  batch.set(a);
  batch.set(b, a.length);
  t.same(unpackr.unpackMultiple(batch), [[1, 2, new Uint8Array([1, 2, 3])], [300, 70000, null, null]]);
});

t.test('out of range: a RangeError, never a wrong frame', async (t) => {
  t.throws(() => writeFrame([-33], undefined), RangeError);
  t.throws(() => writeFrame([1.5], undefined), RangeError);
  t.throws(() => writeFrame([2 ** 53], undefined), RangeError);
  t.throws(() => writeFrame(new Array(15).fill(0), undefined), RangeError);
});
