import { Packr, Unpackr } from 'msgpackr';
import { EntryType, MAX_INDEX, MAX_TERM, MessageType, type Entry, type Message, type Snapshot } from '../raft/types.js';
import { decodeConfig, encodeConfig } from '../raft/config.js';
import { intIn as rangeProblem, messageProblem } from '../raft/validate.js';
import { HostMessageType, type WireMessage } from '../node/messages.js';
import { isStatus } from '../node/outcome.js';
import { AppendWriter } from './append-writer.js';
import { withRoom } from './with-room.js';

/**
 * Wire format of one peer-to-peer frame: a msgpack array
 *   [fromIncarnation, toIncarnation, type, term, from, to, ...fields]
 * Arrays rather than maps keep frames small and independent of encoder
 * history, so the byte count of a frame is what a standalone encoding costs.
 * Entries travel flattened as [term, data, term, data, ...] with indices
 * implied by prevLogIndex.
 */
export interface Frame {
  fromInc: number;
  toInc: number;
  msg: WireMessage;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export class DecodeError extends Error {
  override name = 'DecodeError';
}

const appendWriter = new AppendWriter();

/** The frame's bytes; valid until the next call (they may be a view into an encoder's buffer): copy or send them at once. */
export function encodeFrame(f: Frame): Uint8Array {
  const m = f.msg;
  const head: unknown[] = [f.fromInc, f.toInc, m.type, m.term, m.from, m.to];
  switch (m.type) {
    case MessageType.Vote:
      head.push(m.lastLogIndex, m.lastLogTerm, m.pre);
      return packr.pack(head);
    case MessageType.VoteResponse:
      return packr.pack([...head, m.granted, m.pre]);
    case MessageType.Append:
      // Written by hand, its entries encoded once for all the followers they go to (append-writer.ts).
      return appendWriter.write(f.fromInc, f.toInc, m);
    case MessageType.AppendResponse:
      return packr.pack([...head, m.success, m.index, m.hintTerm, m.hintIndex, m.seq ?? 0]);
    case MessageType.Snapshot:
      return packr.pack([...head, m.snapshot.index, m.snapshot.term, m.snapshot.data, m.snapshot.config ? encodeConfig(m.snapshot.config) : null]);
    case MessageType.SnapshotResponse:
      return packr.pack([...head, m.index]);
    case MessageType.ReadIndex:
      return packr.pack([...head, m.ctx, m.lease]);
    case MessageType.ReadIndexResponse:
      return packr.pack([...head, m.ctx, m.index]);
    case MessageType.TimeoutNow:
      return packr.pack(head);
    case HostMessageType.Forward:
      return packr.pack([...head, m.ctx, m.timeoutMs, m.data]);
    case HostMessageType.ForwardReply:
      return packr.pack([...head, m.ctx, m.status, m.leader, m.index, m.data, m.message]);
  }
}

function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new DecodeError(`${what} is not an integer`);
  return v;
}

/** An integer in [lo, hi]. */
function intIn(v: unknown, lo: number, hi: number, what: string): number {
  const problem = rangeProblem(v, lo, hi, what);
  if (problem) throw new DecodeError(problem);
  return v as number;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new DecodeError(`${what} is not a boolean`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new DecodeError(`${what} is not a string`);
  return v;
}

function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new DecodeError(`${what} is not binary`);
  // A view into the posted batch, not a copy: what is kept of a batch (its
  // entries, a snapshot) is nearly all of it, and is let go together, so
  // the view pins little beyond itself; a copy per entry cost a malloc and
  // a free each (measured: README, where the CPU goes).
  return v;
}

/** Items in a frame of each type: the header's six and the type's own fields. */
const FRAME_LENGTH: Record<number, number> = {
  [MessageType.Vote]: 9,
  [MessageType.VoteResponse]: 8,
  [MessageType.Append]: 11,
  [MessageType.AppendResponse]: 11,
  [MessageType.Snapshot]: 10,
  [MessageType.SnapshotResponse]: 7,
  [MessageType.ReadIndex]: 8,
  [MessageType.ReadIndexResponse]: 8,
  [MessageType.TimeoutNow]: 6,
  [HostMessageType.Forward]: 9,
  [HostMessageType.ForwardReply]: 12,
};

/** setTimeout's limit: a forwarded proposal's timeout is never longer. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Validates shape, types and ranges; throws DecodeError for anything
 * malformed. `peers` is the cluster size (ids are 0..peers-1). A Raft
 * message must meet every rule of messageProblem (lib/raft/validate.ts:
 * terms within MAX_TERM and the message's own term, indices within
 * MAX_INDEX, entries contiguous with non-decreasing terms, ...). A host
 * message: term in [0, MAX_TERM]; ctx a non-negative safe integer;
 * Forward's timeoutMs in [0, 2^31 - 1]; ForwardReply's status a Status
 * code, leader -1 (none known) or a peer, index -1 (no entry) or in
 * [0, MAX_INDEX]. Every frame has exactly its type's number of items.
 */
/** A host message's term and ids, checked as messageProblem checks a Raft message's. */
function hostHead(term: number, from: number, to: number, peers: number): { term: number; from: number; to: number } {
  return { term: intIn(term, 0, MAX_TERM, 'term'), from: intIn(from, 0, peers - 1, 'from'), to: intIn(to, 0, peers - 1, 'to') };
}

function snapshotOf(index: number, term: number, data: Uint8Array, config: unknown): Snapshot {
  if (config === null) return { index, term, data };
  try {
    return { index, term, data, config: decodeConfig(bytes(config, 'snapshot config')) };
  } catch (e) {
    throw new DecodeError(`snapshot config: ${(e as Error).message}`);
  }
}

export function decodeFrame(raw: unknown, peers: number): Frame {
  if (!Array.isArray(raw) || raw.length < 6) throw new DecodeError('frame is not an array of at least 6 items');
  const fromInc = intIn(raw[0], 0, Number.MAX_SAFE_INTEGER, 'fromInc');
  const toInc = intIn(raw[1], 0, Number.MAX_SAFE_INTEGER, 'toInc');
  const type = raw[2];
  const length = typeof type === 'number' ? FRAME_LENGTH[type] : undefined;
  if (length === undefined) throw new DecodeError(`unknown message type ${String(type)}`);
  if (raw.length !== length) throw new DecodeError(`a frame of type ${String(type)} has ${length} items, not ${raw.length}`);
  const term = int(raw[3], 'term');
  const from = int(raw[4], 'from');
  const to = int(raw[5], 'to');
  let msg: Message;
  switch (type) {
    case MessageType.Vote:
      msg = { type, term, from, to, lastLogIndex: int(raw[6], 'lastLogIndex'), lastLogTerm: int(raw[7], 'lastLogTerm'), pre: bool(raw[8], 'pre') };
      break;
    case MessageType.VoteResponse:
      msg = { type, term, from, to, granted: bool(raw[6], 'granted'), pre: bool(raw[7], 'pre') };
      break;
    case MessageType.Append: {
      const prevLogIndex = intIn(raw[6], 0, MAX_INDEX, 'prevLogIndex');
      const prevLogTerm = int(raw[7], 'prevLogTerm');
      const commit = int(raw[8], 'commit');
      const flat = raw[9];
      if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new DecodeError('entries are malformed');
      if (flat.length / 2 > MAX_INDEX - prevLogIndex) throw new DecodeError(`prevLogIndex ${prevLogIndex} + ${flat.length / 2} entries is beyond ${MAX_INDEX}`);
      const entries: Entry[] = new Array(flat.length / 2);
      for (let k = 0; k < entries.length; k++) {
        const t = int(flat[2 * k], 'entry term');
        entries[k] = t < 0 ? { index: prevLogIndex + 1 + k, term: -t, data: bytes(flat[2 * k + 1], 'entry data'), type: EntryType.Config } : { index: prevLogIndex + 1 + k, term: t, data: bytes(flat[2 * k + 1], 'entry data') };
      }
      msg = { type, term, from, to, prevLogIndex, prevLogTerm, commit, entries, seq: int(raw[10], 'seq') };
      break;
    }
    case MessageType.AppendResponse:
      msg = {
        type,
        term,
        from,
        to,
        success: bool(raw[6], 'success'),
        index: int(raw[7], 'index'),
        hintTerm: int(raw[8], 'hintTerm'),
        hintIndex: int(raw[9], 'hintIndex'),
        seq: int(raw[10], 'seq'),
      };
      break;
    case MessageType.Snapshot:
      msg = {
        type,
        term,
        from,
        to,
        snapshot: snapshotOf(int(raw[6], 'snapshot index'), int(raw[7], 'snapshot term'), bytes(raw[8], 'snapshot data'), raw[9]),
      };
      break;
    case MessageType.SnapshotResponse:
      msg = { type, term, from, to, index: int(raw[6], 'index') };
      break;
    case MessageType.ReadIndex:
      msg = { type, term, from, to, ctx: int(raw[6], 'ctx'), lease: bool(raw[7], 'lease') };
      break;
    case MessageType.ReadIndexResponse:
      msg = { type, term, from, to, ctx: int(raw[6], 'ctx'), index: int(raw[7], 'index') };
      break;
    case MessageType.TimeoutNow:
      msg = { type, term, from, to };
      break;
    case HostMessageType.Forward: {
      const forward: WireMessage = {
        type,
        ...hostHead(term, from, to, peers),
        ctx: intIn(raw[6], 0, Number.MAX_SAFE_INTEGER, 'ctx'),
        timeoutMs: intIn(raw[7], 0, MAX_TIMEOUT_MS, 'timeoutMs'),
        data: bytes(raw[8], 'data'),
      };
      return { fromInc, toInc, msg: forward };
    }
    case HostMessageType.ForwardReply: {
      const status = raw[7];
      if (!isStatus(status)) throw new DecodeError(`status ${String(status)} is not a status code`);
      const reply: WireMessage = {
        type,
        ...hostHead(term, from, to, peers),
        ctx: intIn(raw[6], 0, Number.MAX_SAFE_INTEGER, 'ctx'),
        status,
        leader: intIn(raw[8], -1, peers - 1, 'leader'),
        index: intIn(raw[9], -1, MAX_INDEX, 'index'),
        data: bytes(raw[10], 'data'),
        message: str(raw[11], 'message'),
      };
      return { fromInc, toInc, msg: reply };
    }
    default:
      throw new DecodeError(`unknown message type ${String(type)}`);
  }
  const problem = messageProblem(msg, peers);
  if (problem) throw new DecodeError(problem);
  return { fromInc, toInc, msg };
}

/** Is a message a request (a call, in the lab network's terms) rather than a reply? */
export function isWireRequest(m: WireMessage): boolean {
  switch (m.type) {
    case MessageType.Vote:
    case MessageType.Append:
    case MessageType.Snapshot:
    case MessageType.ReadIndex:
    case MessageType.TimeoutNow:
    case HostMessageType.Forward:
      return true;
    default:
      return false;
  }
}


/** Split a mailbox batch (concatenated msgpack values) into raw values. */
export function unpackBatch(buf: Uint8Array): unknown[] {
  return unpackr.unpackMultiple(buf) as unknown[];
}

/** unpackBatch, with each value's encoded size (for per-type byte counts). */
export function unpackBatchSized(buf: Uint8Array): { raw: unknown; bytes: number }[] {
  const out: { raw: unknown; bytes: number }[] = [];
  unpackr.unpackMultiple(buf, (raw: unknown, start?: number, end?: number) => {
    out.push({ raw, bytes: (end ?? 0) - (start ?? 0) });
  });
  return out;
}

/**
 * Encode an application value (a command) as bytes for the log: a copy of
 * exactly its size, not a view into msgpackr's pool buffer, so that posting
 * it to a peer's worker transfers these bytes rather than cloning the pool.
 */
export function encodeValue(v: unknown): Uint8Array {
  return new Uint8Array(packr.pack(v));
}

export function decodeValue(b: Uint8Array): unknown {
  return unpackr.unpack(b);
}

/**
 * Accumulates encoded frames for one destination and hands them out as one
 * contiguous buffer, so a whole event-loop turn costs one postMessage.
 */
export class BatchBuffer {
  private buf = new Uint8Array(4096);
  private len = 0;

  get empty(): boolean {
    return this.len === 0;
  }

  push(frame: Uint8Array): void {
    this.buf = withRoom(this.buf, this.len, frame.length);
    this.buf.set(frame, this.len);
    this.len += frame.length;
  }

  /** Returns a fresh buffer holding the batch (safe to transfer) and resets. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    if (this.buf.length > 1 << 20) this.buf = new Uint8Array(4096);
    return out;
  }
}
