import { EntryType, type AppendRequest, type Entry } from '../raft/types.js';

/**
 * The AppendEntries frame written by hand: the leader's most frequent and
 * largest frame, sent with the same entries to every follower that is up
 * to date. msgpackr built the flattened entries array and ran its general
 * encoder once per follower (4-6% of a busy leader's thread); here the
 * entries' bytes are written once and reused for every follower the same
 * slice of the log goes to. The output is the same msgpack array that
 * encodeFrame describes, [fromInc, toInc, type, term, from, to,
 * prevLogIndex, prevLogTerm, commit, [term, data, ...], seq], which
 * msgpackr decodes like its own.
 */

function intSize(v: number): number {
  if (v >= 0) return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : v < 0x100000000 ? 5 : 9;
  return v >= -32 ? 1 : v >= -0x80 ? 2 : v >= -0x8000 ? 3 : v >= -0x80000000 ? 5 : 9;
}

function writeInt(out: Uint8Array, view: DataView, at: number, v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`append-writer: ${v} is not a safe integer`);
  if (v >= 0) {
    if (v < 0x80) {
      out[at] = v;
      return at + 1;
    }
    if (v < 0x100) {
      out[at] = 0xcc;
      out[at + 1] = v;
      return at + 2;
    }
    if (v < 0x10000) {
      out[at] = 0xcd;
      view.setUint16(at + 1, v);
      return at + 3;
    }
    if (v < 0x100000000) {
      out[at] = 0xce;
      view.setUint32(at + 1, v);
      return at + 5;
    }
  } else {
    if (v >= -32) {
      out[at] = 0x100 + v;
      return at + 1;
    }
    if (v >= -0x80) {
      out[at] = 0xd0;
      view.setInt8(at + 1, v);
      return at + 2;
    }
    if (v >= -0x8000) {
      out[at] = 0xd1;
      view.setInt16(at + 1, v);
      return at + 3;
    }
    if (v >= -0x80000000) {
      out[at] = 0xd2;
      view.setInt32(at + 1, v);
      return at + 5;
    }
  }
  // Beyond 32 bits: a float64, exact for a safe integer (msgpackr decodes it as a number).
  out[at] = 0xcb;
  view.setFloat64(at + 1, v);
  return at + 9;
}

function binHeaderSize(n: number): number {
  return n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function arrayHeaderSize(n: number): number {
  return n < 16 ? 1 : n < 0x10000 ? 3 : 5;
}

function writeArrayHeader(out: Uint8Array, view: DataView, at: number, n: number): number {
  if (n < 16) {
    out[at] = 0x90 | n;
    return at + 1;
  }
  if (n < 0x10000) {
    out[at] = 0xdc;
    view.setUint16(at + 1, n);
    return at + 3;
  }
  out[at] = 0xdd;
  view.setUint32(at + 1, n);
  return at + 5;
}

/** A Config entry's term travels negated (a term is never below 1, so the sign carries the type). */
const wireTerm = (e: Entry) => (e.type === EntryType.Config ? -e.term : e.term);

/** The flattened entries, [term, data, term, data, ...], as one msgpack array. */
export function encodeEntries(entries: readonly Entry[]): Uint8Array {
  let size = arrayHeaderSize(entries.length * 2);
  for (const e of entries) size += intSize(wireTerm(e)) + binHeaderSize(e.data.length) + e.data.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = writeArrayHeader(out, view, 0, entries.length * 2);
  for (const e of entries) {
    at = writeInt(out, view, at, wireTerm(e));
    const n = e.data.length;
    if (n < 0x100) {
      out[at] = 0xc4;
      out[at + 1] = n;
      at += 2;
    } else if (n < 0x10000) {
      out[at] = 0xc5;
      view.setUint16(at + 1, n);
      at += 3;
    } else {
      out[at] = 0xc6;
      view.setUint32(at + 1, n);
      at += 5;
    }
    out.set(e.data, at);
    at += n;
  }
  return out;
}

/**
 * Writes Append frames, keeping the encoding of the last entries it wrote:
 * a frame whose entries are the very same Entry objects (the same slice of
 * the log, going to another follower) reuses it.
 */
export class AppendWriter {
  private last: readonly Entry[] = [];
  private lastBytes: Uint8Array = encodeEntries([]);

  private entriesBytes(entries: readonly Entry[]): Uint8Array {
    const prev = this.last;
    let same = prev.length === entries.length;
    for (let k = 0; same && k < entries.length; k++) same = prev[k] === entries[k];
    if (!same) {
      this.lastBytes = encodeEntries(entries);
      this.last = entries;
    }
    return this.lastBytes;
  }

  write(fromInc: number, toInc: number, m: AppendRequest): Uint8Array {
    const flat = this.entriesBytes(m.entries);
    const ints = [fromInc, toInc, m.type, m.term, m.from, m.to, m.prevLogIndex, m.prevLogTerm, m.commit];
    const seq = m.seq ?? 0;
    let size = 1 + flat.length + intSize(seq);
    for (const v of ints) size += intSize(v);
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    out[0] = 0x90 | 11;
    let at = 1;
    for (const v of ints) at = writeInt(out, view, at, v);
    out.set(flat, at);
    at += flat.length;
    writeInt(out, view, at, seq);
    return out;
  }
}
