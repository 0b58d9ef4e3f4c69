/**
 * Length-prefixed frames on a byte stream (TCP): a 4-byte big-endian length,
 * then that many bytes. A stream has no message boundaries of its own, so
 * the reader reassembles frames from whatever chunks the socket delivers.
 * A length of zero or past the bound can only come from a broken or hostile
 * sender: the reader throws, and the connection is closed (the caller's
 * job), because nothing after a bad length can be trusted to line up.
 */

export const FRAME_HEADER_BYTES = 4;

export class FrameError extends Error {
  override name = 'FrameError';
}

/** The bytes to write for one frame: header and payload in one buffer, so one socket write carries both. */
export function lengthPrefixed(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The length of the frame being assembled, once its header is in. */
  private want = -1;

  constructor(readonly maxFrameBytes: number) {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer from 1 to 2^32-1, got ${String(maxFrameBytes)}`);
    }
  }

  /** Bytes held for a frame not yet complete (bounded by the frame limit plus one chunk). */
  get pending(): number {
    return this.buffered;
  }

  /** Feed one chunk; returns every frame it completed, in order. Throws FrameError on a bad length. */
  push(chunk: Buffer): Uint8Array[] {
    const done: Uint8Array[] = [];
    if (chunk.length === 0) return done;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.want < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        const len = this.take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (len === 0) throw new FrameError('a frame of length 0');
        if (len > this.maxFrameBytes) throw new FrameError(`a frame of ${len} bytes, over the limit of ${this.maxFrameBytes}`);
        this.want = len;
      }
      if (this.buffered < this.want) break;
      done.push(this.take(this.want));
      this.want = -1;
    }
    return done;
  }

  /** Remove the first n buffered bytes (n <= buffered), copying only when they span chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
