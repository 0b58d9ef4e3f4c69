// decodeFrame's ranges: for every message type and every field, a value of
// the wrong type, a negative one, one beyond MAX_TERM / MAX_INDEX, an unsafe
// integer and an id out of range are each rejected with a DecodeError; the
// boundary values themselves are accepted.
import t from 'tap';
import { DecodeError, decodeFrame, encodeFrame, unpackBatch } from '../../lib/transport/codec.js';
import { MAX_INDEX, MAX_TERM, MessageType, messageProblem, seededRng, type Message } from '../../lib/raft/index.js';
import { HostMessageType, isHostMessage } from '../../lib/node/messages.js';
import { ALL_TYPES, FIELDS, TYPE_NAME, allMutations, validFrame, type FrameContext } from './bad-frames.js';

const PEERS = 3;
const ctx: FrameContext = { peers: PEERS, from: 0, to: 1, fromInc: 1, toInc: 2, term: 7 };

function rejects(raw: unknown): string | undefined {
  try {
    decodeFrame(raw, PEERS);
  } catch (e) {
    if (e instanceof DecodeError) return e.message;
    throw e;
  }
  return undefined;
}

t.test('a valid frame of every type decodes, and re-encodes to the same frame', async (t) => {
  const rng = seededRng(1);
  for (const type of ALL_TYPES) {
    for (let k = 0; k < 20; k++) {
      const raw = validFrame(type, ctx, rng);
      const f = decodeFrame(raw, PEERS);
      t.equal(f.msg.type, type);
      if (!isHostMessage(f.msg)) t.equal(messageProblem(f.msg, PEERS), undefined, `${TYPE_NAME[type]} meets the core's rules`);
      t.same(decodeFrame(unpackBatch(encodeFrame(f))[0], PEERS), f, `${TYPE_NAME[type]} round-trips through encodeFrame`);
    }
  }
});

t.test('every field of every message type: each wrong type and out-of-range value is a DecodeError', async (t) => {
  const rng = seededRng(2);
  let cases = 0;
  for (const type of ALL_TYPES) {
    const base = validFrame(type, ctx, rng);
    t.equal(rejects(base), undefined, `the base ${TYPE_NAME[type]} frame is valid`);
    const seen = new Set<string>();
    for (const m of allMutations(type, base, PEERS)) {
      const frame = base.slice();
      m.apply(frame);
      const why = rejects(frame);
      t.ok(why !== undefined, `${TYPE_NAME[type]}: ${m.why} is rejected${why ? ` (${why})` : ''}`);
      // ... and for that field, not for something else.
      if (m.field && why !== undefined) t.ok(why.includes(m.field === 'entries' ? 'entr' : m.field), `the error names ${m.field}`);
      if (m.field) seen.add(m.field);
      cases++;
    }
    // Every field has at least one rejected variant.
    for (const f of FIELDS[type]) t.ok(seen.has(f.name), `${TYPE_NAME[type]}: field ${f.name} is covered`);
  }
  t.comment(`${cases} invalid frames rejected`);
});

t.test('the boundary values are accepted: MAX_TERM, MAX_INDEX, -1 where the core sends it', async (t) => {
  const at = (type: number, fields: unknown[], term = MAX_TERM) => [1, 1, type, term, 2, 0, ...fields];
  const ok = (raw: unknown[], what: string) => t.equal(rejects(raw), undefined, what);
  ok(at(MessageType.Vote, [MAX_INDEX, MAX_TERM, false]), 'Vote at MAX_TERM, lastLogIndex MAX_INDEX, lastLogTerm MAX_TERM');
  ok(at(MessageType.Append, [MAX_INDEX - 1, MAX_TERM, MAX_INDEX, [MAX_TERM, new Uint8Array(0)], MAX_INDEX]), 'Append reaching MAX_INDEX exactly');
  ok(at(MessageType.Append, [0, 0, 0, [], 0], 1), 'a heartbeat from index 0');
  ok(at(MessageType.AppendResponse, [false, 9, MAX_TERM, 9, 0]), 'a refusal whose hintIndex is its index');
  ok(at(MessageType.AppendResponse, [true, MAX_INDEX, 0, 0, MAX_INDEX]), 'a success at MAX_INDEX');
  ok(at(MessageType.Snapshot, [MAX_INDEX, MAX_TERM, new Uint8Array(1), null]), 'a snapshot at MAX_INDEX');
  ok(at(MessageType.ReadIndexResponse, [Number.MAX_SAFE_INTEGER, -1]), 'a refused read (index -1), ctx MAX_SAFE_INTEGER');
  ok(at(MessageType.VoteResponse, [false, true], 0), 'a refusal in term 0 (a peer that never saw an election)');
  ok(at(HostMessageType.Forward, [1, 2 ** 31 - 1, new Uint8Array(1)]), 'Forward with the longest timeout');
  ok(at(HostMessageType.ForwardReply, [1, 6, -1, -1, new Uint8Array(0), '']), 'ForwardReply with no leader and no index');
  ok(at(HostMessageType.ForwardReply, [1, 0, PEERS - 1, MAX_INDEX, new Uint8Array(0), 'x']), 'ForwardReply from the last peer at MAX_INDEX');
});

t.test('the observed bug: a term of MAX_SAFE_INTEGER is refused in every message type', async (t) => {
  const rng = seededRng(3);
  for (const type of ALL_TYPES) {
    const frame = validFrame(type, ctx, rng);
    frame[3] = Number.MAX_SAFE_INTEGER;
    t.match(rejects(frame), /term/, `${TYPE_NAME[type]} with term MAX_SAFE_INTEGER`);
  }
});

t.test('messageProblem, the rules RaftCore.step applies too, refuses the same messages built directly', async (t) => {
  // A core behind some other transport gets the same protection (lib/raft/validate.ts).
  const bad: [string, unknown][] = [
    ['term MAX_SAFE_INTEGER', { type: MessageType.Vote, from: 0, to: 1, term: Number.MAX_SAFE_INTEGER, lastLogIndex: 0, lastLogTerm: 0, pre: false }],
    ['a string index', { type: MessageType.SnapshotResponse, from: 0, to: 1, term: 1, index: '3' }],
    ['entries with gaps', { type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [{ index: 2, term: 1, data: new Uint8Array(0) }] }],
    ['an unknown type', { type: 42, from: 0, to: 1, term: 1 }],
    ['from out of range', { type: MessageType.TimeoutNow, from: 3, to: 1, term: 1 }],
  ];
  for (const [what, m] of bad) t.not(messageProblem(m as Message, PEERS), undefined, what);
});
