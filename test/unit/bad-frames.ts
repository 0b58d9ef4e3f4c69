// Raw peer-to-peer frames for the bad-input tests: a valid frame of every
// message type, laid out as the codec lays it out, and for every field the
// values that make the frame invalid (wrong type, out of range). Shared by
// the codec's range tests and the live-cluster fuzz test.
import { MAX_INDEX, MAX_TERM, MessageType } from '../../lib/raft/index.js';
import { HostMessageType } from '../../lib/node/messages.js';
import { randInt, type Rng } from '../../lib/raft/prng.js';

/** What a field holds, which decides its valid range. */
export type FieldKind =
  | 'config' // a snapshot's configuration: nil, or bytes that decode as one
  | 'inc' // an incarnation: [0, MAX_SAFE_INTEGER]
  | 'term' // the message's term: [0, MAX_TERM]
  | 'termField' // another term: [0, the message's term]
  | 'id' // a peer: [0, peers)
  | 'leader' // a peer or -1
  | 'index' // [0, MAX_INDEX]
  | 'indexOrNone' // [-1, MAX_INDEX]
  | 'ctx' // [0, MAX_SAFE_INTEGER]
  | 'timeout' // [0, 2^31 - 1]
  | 'status' // a Status code, 0..6
  | 'bool'
  | 'bytes'
  | 'string'
  | 'entries'; // flattened [term, data, ...]

export interface Field {
  at: number;
  name: string;
  kind: FieldKind;
}

export const ALL_TYPES = [
  MessageType.Vote,
  MessageType.VoteResponse,
  MessageType.Append,
  MessageType.AppendResponse,
  MessageType.Snapshot,
  MessageType.SnapshotResponse,
  MessageType.ReadIndex,
  MessageType.ReadIndexResponse,
  MessageType.TimeoutNow,
  HostMessageType.Forward,
  HostMessageType.ForwardReply,
] as const;
export type WireType = (typeof ALL_TYPES)[number];
export const RAFT_TYPES = ALL_TYPES.filter((t) => t < HostMessageType.Forward);

export const TYPE_NAME: Record<WireType, string> = {
  [MessageType.Vote]: 'Vote',
  [MessageType.VoteResponse]: 'VoteResponse',
  [MessageType.Append]: 'Append',
  [MessageType.AppendResponse]: 'AppendResponse',
  [MessageType.Snapshot]: 'Snapshot',
  [MessageType.SnapshotResponse]: 'SnapshotResponse',
  [MessageType.ReadIndex]: 'ReadIndex',
  [MessageType.ReadIndexResponse]: 'ReadIndexResponse',
  [MessageType.TimeoutNow]: 'TimeoutNow',
  [HostMessageType.Forward]: 'Forward',
  [HostMessageType.ForwardReply]: 'ForwardReply',
};

const HEADER: Field[] = [
  { at: 0, name: 'fromInc', kind: 'inc' },
  { at: 1, name: 'toInc', kind: 'inc' },
  { at: 3, name: 'term', kind: 'term' },
  { at: 4, name: 'from', kind: 'id' },
  { at: 5, name: 'to', kind: 'id' },
];

function body(...fields: [string, FieldKind][]): Field[] {
  return fields.map(([name, kind], k) => ({ at: 6 + k, name, kind }));
}

/** Every field of every type, at its position in the frame. */
export const FIELDS: Record<WireType, Field[]> = {
  [MessageType.Vote]: [...HEADER, ...body(['lastLogIndex', 'index'], ['lastLogTerm', 'termField'], ['pre', 'bool'])],
  [MessageType.VoteResponse]: [...HEADER, ...body(['granted', 'bool'], ['pre', 'bool'])],
  [MessageType.Append]: [
    ...HEADER,
    ...body(['prevLogIndex', 'index'], ['prevLogTerm', 'termField'], ['commit', 'index'], ['entries', 'entries'], ['seq', 'index']),
  ],
  [MessageType.AppendResponse]: [
    ...HEADER,
    ...body(['success', 'bool'], ['index', 'index'], ['hintTerm', 'termField'], ['hintIndex', 'index'], ['seq', 'index']),
  ],
  [MessageType.Snapshot]: [...HEADER, ...body(['snapshot index', 'index'], ['snapshot term', 'termField'], ['snapshot data', 'bytes'], ['snapshot config', 'config'])],
  [MessageType.SnapshotResponse]: [...HEADER, ...body(['index', 'index'])],
  [MessageType.ReadIndex]: [...HEADER, ...body(['ctx', 'ctx'], ['lease', 'bool'])],
  [MessageType.ReadIndexResponse]: [...HEADER, ...body(['ctx', 'ctx'], ['index', 'indexOrNone'])],
  [MessageType.TimeoutNow]: [...HEADER],
  [HostMessageType.Forward]: [...HEADER, ...body(['ctx', 'ctx'], ['timeoutMs', 'timeout'], ['data', 'bytes'])],
  [HostMessageType.ForwardReply]: [
    ...HEADER,
    ...body(['ctx', 'ctx'], ['status', 'status'], ['leader', 'leader'], ['index', 'indexOrNone'], ['data', 'bytes'], ['message', 'string']),
  ],
};

/** Where a frame goes and what it may say. */
export interface FrameContext {
  peers: number;
  from: number;
  to: number;
  fromInc: number;
  toInc: number;
  /** The term the frame carries (at least 1). */
  term: number;
}

const bytesOf = (rng: Rng, max: number): Uint8Array => Uint8Array.from({ length: randInt(rng, 0, max) }, () => randInt(rng, 0, 255));

/**
 * A valid frame of `type` (every field within its range; small random
 * indices, an Append with 0-3 entries of non-decreasing terms).
 */
export function validFrame(type: WireType, c: FrameContext, rng: Rng): unknown[] {
  const head: unknown[] = [c.fromInc, c.toInc, type, c.term, c.from, c.to];
  const index = () => randInt(rng, 0, 40);
  const termUpTo = () => randInt(rng, 0, c.term);
  const bool = () => rng() < 0.5;
  switch (type) {
    case MessageType.Vote:
      return [...head, index(), termUpTo(), bool()];
    case MessageType.VoteResponse:
      return [...head, bool(), bool()];
    case MessageType.Append: {
      const prevLogTerm = termUpTo();
      const flat: unknown[] = [];
      let t = Math.max(1, prevLogTerm);
      for (let k = randInt(rng, 0, 3); k > 0; k--) {
        t = randInt(rng, t, c.term);
        flat.push(t, bytesOf(rng, 8));
      }
      return [...head, index(), prevLogTerm, index(), flat, index()];
    }
    case MessageType.AppendResponse: {
      const i = index();
      return [...head, bool(), i, termUpTo(), randInt(rng, 0, i), index()];
    }
    case MessageType.Snapshot:
      return [...head, index(), termUpTo(), bytesOf(rng, 16), rng() < 0.5 ? null : new TextEncoder().encode(JSON.stringify({ v: [0, 1, 2], l: [4] }))];
    case MessageType.SnapshotResponse:
      return [...head, index()];
    case MessageType.ReadIndex:
      return [...head, index(), bool()];
    case MessageType.ReadIndexResponse:
      return [...head, index(), randInt(rng, -1, 40)];
    case MessageType.TimeoutNow:
      return head;
    case HostMessageType.Forward:
      return [...head, index(), randInt(rng, 0, 5000), bytesOf(rng, 8)];
    case HostMessageType.ForwardReply:
      return [...head, index(), randInt(rng, 0, 6), randInt(rng, -1, c.peers - 1), randInt(rng, -1, 40), bytesOf(rng, 8), 'fuzz'];
  }
}

/** A change that makes a frame invalid, whatever the receiver's state. */
export interface Mutation {
  why: string;
  /** The field it breaks (none: the frame as a whole). */
  field?: string;
  apply(frame: unknown[]): void;
}

const SAFE = Number.MAX_SAFE_INTEGER;
/** Values that are no safe integer at all. */
const NOT_INTEGERS: [string, unknown][] = [
  ['a string', '7'],
  ['nil', null],
  ['a boolean', true],
  ['a fraction', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['2^53 (unsafe)', 2 ** 53],
  ['-2^53 (unsafe)', -(2 ** 53)],
  ['2^60 (unsafe)', 2 ** 60],
  ['a map', { n: 1 }],
  ['an array', [1]],
  ['bytes', new Uint8Array([1])],
];

function set(at: number, v: unknown): (f: unknown[]) => void {
  return (f) => {
    f[at] = v;
  };
}

/** Integers just outside a field's range (the range given the frame it is in). */
function outOfRange(field: Field, frame: unknown[], peers: number): [string, number][] {
  const term = frame[3] as number;
  switch (field.kind) {
    case 'inc':
      return [['-1', -1]];
    case 'term':
      return [['-1', -1], ['MAX_TERM + 1', MAX_TERM + 1], ['MAX_SAFE_INTEGER', SAFE]];
    case 'termField':
      return [['-1', -1], ['the message term + 1', term + 1], ['MAX_TERM + 1', MAX_TERM + 1], ['MAX_SAFE_INTEGER', SAFE]];
    case 'id':
      return [['-1', -1], [`${peers} (no such peer)`, peers], ['MAX_SAFE_INTEGER', SAFE]];
    case 'leader':
      return [['-2', -2], [`${peers} (no such peer)`, peers], ['MAX_SAFE_INTEGER', SAFE]];
    case 'index':
      return [['-1', -1], ['MAX_INDEX + 1', MAX_INDEX + 1], ['MAX_SAFE_INTEGER', SAFE], ['-MAX_SAFE_INTEGER', -SAFE]];
    case 'indexOrNone':
      return [['-2', -2], ['MAX_INDEX + 1', MAX_INDEX + 1], ['MAX_SAFE_INTEGER', SAFE], ['-MAX_SAFE_INTEGER', -SAFE]];
    case 'ctx':
      return [['-1', -1], ['-MAX_SAFE_INTEGER', -SAFE]];
    case 'timeout':
      return [['-1', -1], ['2^31', 2 ** 31], ['MAX_SAFE_INTEGER', SAFE]];
    case 'status':
      return [['-1', -1], ['8 (no such status)', 8], ['99', 99]];
    default:
      return [];
  }
}

/** Every invalid value for one field of a frame (the frame supplies the term a termField is bounded by). */
export function fieldMutations(field: Field, frame: unknown[], peers: number): Mutation[] {
  const at = field.at;
  const out: Mutation[] = [];
  const add = (why: string, apply: (f: unknown[]) => void) => out.push({ why: `${field.name} ${why}`, field: field.name, apply });
  switch (field.kind) {
    case 'bool':
      for (const [w, v] of [['0', 0], ['1', 1], ['a string', 'true'], ['nil', null], ['bytes', new Uint8Array(1)]] as [string, unknown][]) add(`is ${w}`, set(at, v));
      return out;
    case 'bytes':
      for (const [w, v] of [['a string', 'data'], ['a number', 5], ['nil', null], ['an array', [1, 2, 3]], ['a map', {}]] as [string, unknown][]) add(`is ${w}`, set(at, v));
      return out;
    case 'string':
      for (const [w, v] of [['a number', 5], ['nil', null], ['bytes', new Uint8Array(2)], ['an array', []], ['a boolean', true]] as [string, unknown][]) add(`is ${w}`, set(at, v));
      return out;
    case 'config': {
      const enc = new TextEncoder();
      for (const [w, v] of [
        ['a string', 'config'],
        ['a number', 5],
        ['an array', [0, 1]],
        ['a map', { v: [0] }],
        ['bytes that are not JSON', enc.encode('nope')],
        ['a configuration without voters', enc.encode('{"v":[],"l":[]}')],
        ['voters out of order', enc.encode('{"v":[2,1],"l":[]}')],
        ['a voter that is also a learner', enc.encode('{"v":[1],"l":[1]}')],
      ] as [string, unknown][]) add(`is ${w}`, set(at, v));
      return out;
    }
    case 'entries':
      return entryMutations(frame).map((m) => ({ why: `entries: ${m.why}`, field: field.name, apply: m.apply }));
    default:
      for (const [w, v] of NOT_INTEGERS) add(`is ${w}`, set(at, v));
      if (field.kind === 'status') add('is "0"', set(at, '0'));
      for (const [w, v] of outOfRange(field, frame, peers)) add(`is ${w}`, set(at, v));
      return out;
  }
}

/** An Append's entries made invalid (the frame's own fields give the bounds). */
function entryMutations(frame: unknown[]): Mutation[] {
  const term = frame[3] as number;
  const b = new Uint8Array([7]);
  const m = (why: string, apply: (f: unknown[]) => void): Mutation => ({ why, apply });
  return [
    m('not an array', set(9, 'entries')),
    m('a map', set(9, { 0: 1 })),
    m('nil', set(9, null)),
    m('an odd number of items', set(9, [term, b, term])),
    m('an entry term that is a string', set(9, [String(term), b])),
    m('an entry term that is a fraction', set(9, [1.5, b])),
    m('an entry term of 0', (f) => {
      f[7] = 0;
      f[9] = [0, b];
    }),
    m('an entry term beyond the message term', set(9, [term + 1, b])),
    m('an entry term of MAX_SAFE_INTEGER', set(9, [SAFE, b])),
    m('an entry term below prevLogTerm', (f) => {
      f[7] = term;
      f[9] = [term - 1, b];
    }),
    m('entry terms that decrease', (f) => {
      f[7] = 0;
      f[9] = [term, b, term - 1, b];
    }),
    m('entry data that is not bytes', set(9, [term, 'data'])),
    m('entry data that is nil', set(9, [term, null])),
    // A negative term marks a Config entry: its data must be a configuration.
    m('a config entry whose data is not a configuration', set(9, [-term, b])),
    m('prevLogIndex MAX_INDEX with one entry (beyond MAX_INDEX)', (f) => {
      f[6] = MAX_INDEX;
      f[7] = 0;
      f[9] = [term, b];
    }),
  ];
}

/** Invalid whatever its fields: wrong length or no known type. */
export function frameMutations(type: WireType): Mutation[] {
  return [
    { why: 'one item missing', apply: (f) => void f.pop() },
    { why: 'one item too many', apply: (f) => void f.push(0) },
    ...([0, 10, 19, 22, 99, -3, '3', null, 3.5] as unknown[]).filter((t) => t !== type).map((t) => ({ why: `type ${JSON.stringify(t)}`, apply: set(2, t) })),
  ];
}

/** Every invalid variant of one field, or of the frame as a whole, for `type`. */
export function allMutations(type: WireType, frame: unknown[], peers: number): Mutation[] {
  const out = frameMutations(type);
  for (const field of FIELDS[type]) out.push(...fieldMutations(field, frame, peers));
  if (type === MessageType.AppendResponse) {
    out.push({
      why: 'a refusal whose hintIndex is beyond its index',
      apply: (f) => {
        f[6] = false;
        f[7] = 5;
        f[9] = 6;
      },
    });
  }
  return out;
}
