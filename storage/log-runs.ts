import { EntryType, type Entry } from '../lib/raft/types.js';
import { decodeConfig } from '../lib/raft/config.js';
import { entryChecksum } from './checksum.js';
import { StorageError } from './errors.js';

/**
 * The log is stored in runs: one row per run of consecutive entries (what
 * one Ready appends), its body the entries one after another. A row per
 * entry cost SQLite a statement step, five bound values and a B-tree
 * insert each, about 1.4 us of CPU per entry on every peer (three peers
 * write each entry); a run costs one row whatever its length.
 *
 * An entry in a body: its checksum (u32, the same CRC-32 a version 3 row
 * carried: over a kind tag, its index, its term and its bytes), its term
 * (float64: any safe integer), its kind (u8), its length (u32) and its
 * bytes. Its index is the run's first index plus its position. Every entry
 * keeps its own checksum so that a changed byte is reported by entry, and
 * a length that no longer adds up is caught by the entry checksums or by
 * the run not ending where its `last` says.
 */
const HEADER = 17;

/** Cap on one run's entries: a Ready larger than this is written as several rows. */
export const RUN_MAX_ENTRIES = 4096;
/** Cap on one run's body, in bytes (an entry larger than this is a run of its own). */
export const RUN_MAX_BYTES = 1 << 20;

/** One entry as a run holds it: its stored checksum comes with it (an upgrade copies it unchanged). */
export interface RunEntry {
  term: number;
  kind: number;
  data: Uint8Array;
  crc: number;
}

/** The body of a run of `entries` (consecutive indexes). */
export function encodeRunBody(entries: readonly RunEntry[], from = 0, to = entries.length): Uint8Array {
  let size = 0;
  for (let k = from; k < to; k++) size += HEADER + entries[k]!.data.length;
  const body = new Uint8Array(size);
  const view = new DataView(body.buffer);
  let at = 0;
  for (let k = from; k < to; k++) {
    const e = entries[k]!;
    view.setUint32(at, e.crc);
    view.setFloat64(at + 4, e.term);
    body[at + 12] = e.kind;
    view.setUint32(at + 13, e.data.length);
    body.set(e.data, at + HEADER);
    at += HEADER + e.data.length;
  }
  return body;
}

/** Entries of a Ready as run entries, each with its checksum computed. */
export function runEntries(entries: readonly Entry[]): RunEntry[] {
  const out: RunEntry[] = new Array(entries.length);
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k]!;
    const kind = e.type ?? EntryType.Command;
    out[k] = { term: e.term, kind, data: e.data, crc: entryChecksum(e.index, e.term, e.data, kind) };
  }
  return out;
}

/**
 * Where the Ready's entries split into rows: [start, end) pairs, each run
 * within RUN_MAX_ENTRIES entries and RUN_MAX_BYTES of body (or one entry).
 */
export function runBounds(entries: readonly { data: Uint8Array }[]): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  let bytes = 0;
  for (let k = 0; k < entries.length; k++) {
    const b = HEADER + entries[k]!.data.length;
    if (k > start && (k - start >= RUN_MAX_ENTRIES || bytes + b > RUN_MAX_BYTES)) {
      out.push([start, k]);
      start = k;
      bytes = 0;
    }
    bytes += b;
  }
  if (entries.length > start) out.push([start, entries.length]);
  return out;
}

function malformed(file: string, index: number, what: string): StorageError {
  return new StorageError('corrupt', file, `log entry ${index} ${what} (stored bytes changed)`, { index });
}

/**
 * Walk a run's entry headers, checking only its structure: calls `each`
 * with every entry's index, term, kind, and the offsets of its bytes.
 * Throws a `corrupt` StorageError when the lengths run past the body or
 * the entries do not end exactly at `last`.
 */
export function walkRun(
  file: string,
  first: number,
  last: number,
  body: Uint8Array,
  each: (index: number, term: number, kind: number, start: number, end: number, crc: number) => void,
): void {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  let index = first;
  while (at < body.length) {
    if (index > last) throw malformed(file, index, `lies past its run's end ${last}`);
    if (at + HEADER > body.length) throw malformed(file, index, 'is cut short');
    const crc = view.getUint32(at);
    const term = view.getFloat64(at + 4);
    const kind = body[at + 12]!;
    const n = view.getUint32(at + 13);
    const end = at + HEADER + n;
    if (end > body.length) throw malformed(file, index, 'runs past the end of its run');
    each(index, term, kind, at + HEADER, end, crc);
    at = end;
    index++;
  }
  if (index !== last + 1) throw new StorageError('corrupt', file, `the log run ${first}..${last} holds entries only through ${index - 1} (stored bytes changed)`, { index });
}

/**
 * A run's entries after `after` (the snapshot index), every checksum
 * verified; their bytes are views into one copy of the body.
 */
export function decodeRun(file: string, first: number, last: number, stored: Uint8Array, after: number, out: Entry[]): void {
  const body = new Uint8Array(stored); // one copy: SQLite's buffer is not ours to keep
  walkRun(file, first, last, body, (index, term, kind, start, end, crc) => {
    if (index <= after) return;
    if (!Number.isSafeInteger(term) || term < 0) throw malformed(file, index, `has an impossible term ${term}`);
    if (kind !== EntryType.Command && kind !== EntryType.Config) throw new StorageError('corrupt', file, `log entry ${index} has an unknown kind ${kind}`, { index });
    const data = body.subarray(start, end);
    if (entryChecksum(index, term, data, kind) !== crc) throw malformed(file, index, 'fails its checksum');
    if (kind === EntryType.Config) {
      try {
        decodeConfig(data);
      } catch (e) {
        throw new StorageError('corrupt', file, `log entry ${index} holds ${(e as Error).message}`, { index });
      }
      out.push({ index, term, data, type: EntryType.Config });
    } else {
      out.push({ index, term, data });
    }
  });
}

/** Bytes the first `count` entries of a run take in its body. */
export function prefixBytes(file: string, first: number, last: number, body: Uint8Array, count: number): number {
  let bytes = 0;
  walkRun(file, first, last, body, (index, _term, _kind, _start, end) => {
    if (index < first + count) bytes = end;
  });
  return bytes;
}
