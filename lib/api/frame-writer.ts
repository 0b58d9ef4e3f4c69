/**
 * Hand-written msgpack for the two hot client frames, a request and an
 * answer: a fixed array of small integers and one binary payload. Packing
 * them with msgpackr built an array, ran its general encoder and copied the
 * result out of its pool buffer; here the bytes are written once, at their
 * exact size. The output is plain msgpack that msgpackr decodes.
 */

/** Bytes a non-negative safe integer or -1..-32 takes. */
function intSize(v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`frame-writer: ${v} is not a safe integer`);
  if (v >= 0) return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : v < 0x100000000 ? 5 : 9;
  if (v >= -32) return 1;
  throw new RangeError(`frame-writer: ${v} is out of range`);
}

function writeInt(out: Uint8Array, at: number, v: number): number {
  if (v < 0) {
    out[at] = 0x100 + v; // negative fixint
    return at + 1;
  }
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
    out[at + 1] = v >>> 8;
    out[at + 2] = v & 0xff;
    return at + 3;
  }
  if (v < 0x100000000) {
    out[at] = 0xce;
    writeU32(out, at + 1, v);
    return at + 5;
  }
  out[at] = 0xcf;
  writeU32(out, at + 1, Math.floor(v / 0x100000000));
  writeU32(out, at + 5, v >>> 0);
  return at + 9;
}

function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

function binHeaderSize(n: number): number {
  return n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function writeBin(out: Uint8Array, at: number, b: Uint8Array): number {
  const n = b.length;
  if (n < 0x100) {
    out[at] = 0xc4;
    out[at + 1] = n;
    at += 2;
  } else if (n < 0x10000) {
    out[at] = 0xc5;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    at += 3;
  } else {
    out[at] = 0xc6;
    writeU32(out, at + 1, n);
    at += 5;
  }
  out.set(b, at);
  return at + n;
}

/** Bytes writeFrameInto writes for these arguments (see writeFrame). */
export function frameSize(ints: readonly number[], payload: Uint8Array | undefined, tail = 0): number {
  if (ints.length + 1 + tail > 15) throw new RangeError('frame-writer: at most 15 items');
  let size = 1 + tail + (payload ? binHeaderSize(payload.length) + payload.length : 1);
  for (const v of ints) size += intSize(v);
  return size;
}

/**
 * Write the frame of writeFrame into `out` at `at` (frameSize bytes must
 * fit there); returns where it ends. Frames written end to end into one
 * buffer are a batch, with no buffer of their own each.
 */
export function writeFrameInto(out: Uint8Array, at: number, ints: readonly number[], payload: Uint8Array | undefined, tail = 0): number {
  out[at++] = 0x90 | (ints.length + 1 + tail);
  for (const v of ints) at = writeInt(out, at, v);
  if (payload) at = writeBin(out, at, payload);
  else out[at++] = 0xc0;
  for (let k = 0; k < tail; k++) out[at++] = 0xc0;
  return at;
}

/**
 * [ints..., payload] as one msgpack array (payload nil when undefined), and
 * `tail` more nils after it. Integers must be safe and at least -32.
 */
export function writeFrame(ints: readonly number[], payload: Uint8Array | undefined, tail = 0): Uint8Array {
  const out = new Uint8Array(frameSize(ints, payload, tail));
  writeFrameInto(out, 0, ints, payload, tail);
  return out;
}
