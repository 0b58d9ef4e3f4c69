// The hand-written AppendEntries frame (lib/transport/append-writer.ts)
// against msgpackr's encoding of the same array, value for value, over
// random messages that reach every integer and binary width; and its reuse
// of the entries' bytes, which must never hand one slice's bytes to another.
import t from 'tap';
import { Packr, Unpackr } from 'msgpackr';
import { AppendWriter, encodeEntries } from '../../lib/transport/append-writer.js';
import { decodeFrame, unpackBatch } from '../../lib/transport/codec.js';
import { EntryType, MAX_INDEX, MAX_TERM, MessageType, randInt, seededRng, type AppendRequest, type Entry } from '../../lib/raft/index.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** How encodeFrame packed an Append with msgpackr before it was written by hand. */
function reference(fromInc: number, toInc: number, m: AppendRequest): Uint8Array {
  const flat: unknown[] = [];
  for (const e of m.entries) flat.push(e.type === EntryType.Config ? -e.term : e.term, e.data);
  return packr.pack([fromInc, toInc, m.type, m.term, m.from, m.to, m.prevLogIndex, m.prevLogTerm, m.commit, flat, m.seq ?? 0]);
}

const widths = [0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 52];

function randomAppend(rng: () => number): { fromInc: number; toInc: number; m: AppendRequest } {
  const pick = () => widths[randInt(rng, 0, widths.length - 1)]!;
  const n = rng() < 0.1 ? 0 : randInt(rng, 1, rng() < 0.1 ? 20 : 300);
  const prevLogIndex = Math.min(pick(), MAX_INDEX - n);
  const firstTerm = Math.max(1, Math.min(pick(), MAX_TERM));
  const entries: Entry[] = Array.from({ length: n }, (_, k) => {
    const size = rng() < 0.02 ? randInt(rng, 65536, 70000) : rng() < 0.05 ? randInt(rng, 256, 2000) : randInt(rng, 0, 40);
    const data = new Uint8Array(size).map((_, i) => (i * 7 + k) & 0xff);
    const e: Entry = { index: prevLogIndex + 1 + k, term: firstTerm, data };
    return rng() < 0.05 ? { ...e, type: EntryType.Config } : e;
  });
  const term = Math.max(firstTerm, Math.min(pick() || 1, MAX_TERM));
  const m: AppendRequest = { type: MessageType.Append, from: 0, to: 1, term, prevLogIndex, prevLogTerm: Math.min(firstTerm, pick()), commit: pick(), entries, seq: pick() };
  return { fromInc: pick(), toInc: pick(), m };
}

/** A decoded value as text: numbers with their sign, binaries as hex. */
function show(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  if (v instanceof Uint8Array) return `<${Buffer.from(v).toString('hex')}>`;
  return `${typeof v}:${String(v)}`;
}

t.test('the hand-written Append decodes to exactly what msgpackr encoded', async (t) => {
  const rng = seededRng(7);
  const w = new AppendWriter();
  let differ = '';
  for (let k = 0; k < 400 && !differ; k++) {
    const { fromInc, toInc, m } = randomAppend(rng);
    const mine = show(unpackr.unpack(w.write(fromInc, toInc, m)));
    const theirs = show(unpackr.unpack(reference(fromInc, toInc, m)));
    if (mine !== theirs) {
      let at = 0;
      while (mine[at] === theirs[at]) at++;
      differ = `message ${k} (${m.entries.length} entries, prevLogIndex ${m.prevLogIndex}, term ${m.term}) decodes differently at ${at}: ${mine.slice(at - 20, at + 40)} against ${theirs.slice(at - 20, at + 40)}`;
    }
  }
  t.equal(differ, '', '400 random messages, every integer and binary width');
});

t.test('a written Append round-trips through decodeFrame', async (t) => {
  const w = new AppendWriter();
  const entries: Entry[] = [
    { index: 11, term: 3, data: new TextEncoder().encode('a') },
    { index: 12, term: 3, data: new Uint8Array(0) },
    { index: 13, term: 4, data: new TextEncoder().encode('{"v":[0,1,2],"l":[]}'), type: EntryType.Config },
  ];
  const m: AppendRequest = { type: MessageType.Append, from: 0, to: 2, term: 4, prevLogIndex: 10, prevLogTerm: 3, commit: 9, entries, seq: 5 };
  const back = decodeFrame(unpackBatch(w.write(1, 2, m))[0], 3);
  t.same(back, { fromInc: 1, toInc: 2, msg: m }, 'the same frame, Config entry and empty entry included');
});

t.test("one slice's entries are encoded once, and never stand in for another slice's", async (t) => {
  const w = new AppendWriter();
  const enc = new TextEncoder();
  const log: Entry[] = Array.from({ length: 6 }, (_, k) => ({ index: k + 1, term: 1, data: enc.encode(`entry ${k + 1}`) }));
  const to = (peer: number, entries: Entry[]): AppendRequest => ({ type: MessageType.Append, from: 0, to: peer, term: 2, prevLogIndex: (entries[0]?.index ?? 7) - 1, prevLogTerm: 1, commit: 0, entries, seq: peer });
  const decoded = (b: Uint8Array) => (decodeFrame(unpackBatch(b)[0], 3).msg as AppendRequest).entries.map((e) => new TextDecoder().decode(e.data));
  const a = w.write(1, 1, to(1, log.slice(0, 3)));
  const b = w.write(1, 1, to(2, log.slice(0, 3))); // another array, the same Entry objects
  t.same(decoded(a), decoded(b), 'the second follower gets the same entries');
  t.same(Buffer.from(b.subarray(b.length - 1 - encodeEntries(log.slice(0, 3)).length, b.length - 1)), Buffer.from(encodeEntries(log.slice(0, 3))), 'its entries are the shared encoding');
  // The same length and positions, other objects (a truncated and rewritten log): its own bytes.
  const rewritten: Entry[] = [log[0]!, { index: 2, term: 2, data: enc.encode('rewritten 2') }, { index: 3, term: 2, data: enc.encode('rewritten 3') }];
  t.same(decoded(w.write(1, 1, to(1, rewritten))), ['entry 1', 'rewritten 2', 'rewritten 3'], 'a slice with other entries is encoded afresh');
  t.same(decoded(w.write(1, 1, to(2, log.slice(3, 6)))), ['entry 4', 'entry 5', 'entry 6'], 'and so is the next slice');
  t.same(decoded(w.write(1, 1, to(2, []))), [], 'and a heartbeat');
});
