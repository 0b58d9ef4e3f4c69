/**
 * `buf` if `n` more bytes fit after its first `len`; otherwise a buffer of
 * twice its size (or more, until they fit) holding those `len` bytes.
 * Batches grow this way: a copy per doubling, not per message.
 */
export function withRoom(buf: Uint8Array<ArrayBuffer>, len: number, n: number): Uint8Array<ArrayBuffer> {
  if (len + n <= buf.length) return buf;
  let size = Math.max(1, buf.length) * 2;
  while (size < len + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, len));
  return next;
}
