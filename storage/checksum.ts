import { crc32 } from 'node:zlib';

/**
 * CRC-32 checksums of what a peer stores, verified whenever it is read back.
 * SQLite's own checks cover its page structure, not the bytes inside a
 * value: a flipped bit in an entry's payload passes `quick_check`. Each
 * checksum covers a kind tag and the row's numbers as well as its bytes,
 * so an entry moved to another index, or a hard state's term and vote
 * swapped, fails too.
 */

const KIND_ENTRY = 1;
const KIND_HARD_STATE = 2;
const KIND_SNAPSHOT = 3;
const KIND_CONFIG_ENTRY = 4;
const KIND_SNAPSHOT_WITH_CONFIG = 5;

// One scratch header per thread: a tag byte and up to two numbers (safe integers are exact as float64).
const head = new DataView(new ArrayBuffer(17));
const headBytes = new Uint8Array(head.buffer);

function header(kind: number, a: number, b: number): number {
  head.setUint8(0, kind);
  head.setFloat64(1, a, true);
  head.setFloat64(9, b, true);
  return crc32(headBytes);
}

// zlib.crc32 of an empty Buffer whose memory is null (what SQLite hands back for an
// empty blob) returns 0, not the running value: an empty payload adds nothing anyway.
function extend(crc: number, data: Uint8Array): number {
  return data.length === 0 ? crc : crc32(data, crc);
}

/** `kind` 1: a Config entry (its own tag, so a command's bytes never pass for a configuration). */
export function entryChecksum(index: number, term: number, data: Uint8Array, kind = 0): number {
  return extend(header(kind === 1 ? KIND_CONFIG_ENTRY : KIND_ENTRY, index, term), data);
}

export function hardStateChecksum(term: number, vote: number): number {
  return header(KIND_HARD_STATE, term, vote);
}

/** With `config` (its encoded configuration) the checksum covers it too, after the data. */
export function snapshotChecksum(index: number, term: number, data: Uint8Array, config?: Uint8Array): number {
  return snapshotChecksumEnd(extend(snapshotChecksumBegin(index, term, config !== undefined), data), config);
}

/**
 * snapshotChecksum a piece at a time, for a snapshot written in pieces:
 * begin, extend with each piece of the data in order, end. Whether a
 * configuration follows must be known at the start (it picks the tag).
 */
export function snapshotChecksumBegin(index: number, term: number, withConfig: boolean): number {
  return header(withConfig ? KIND_SNAPSHOT_WITH_CONFIG : KIND_SNAPSHOT, index, term);
}

export function checksumExtend(crc: number, data: Uint8Array): number {
  return extend(crc, data);
}

export function snapshotChecksumEnd(crc: number, config?: Uint8Array): number {
  return config ? extend(crc, config) : crc;
}
