import { Packr, Unpackr } from 'msgpackr';
import type { KvCommand, KvErr, KvOpName, KvResult } from './state-machine.js';

/**
 * Wire formats of the key/value service, all msgpack arrays:
 *  - a log entry:     [op, key, value, clientId, seq]
 *  - a request:       [requestId, op, key, value, clientId, seq]
 *  - a reply:         [requestId, err, value, detail?]
 * Requests and replies travel in batches: the values concatenated.
 * op is 0 Get, 1 Put, 2 Append (the lab's numbering).
 */
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false });

const OPS: KvOpName[] = ['get', 'put', 'append'];

/**
 * msgpackr hands out views into a shared pool buffer (8 KiB here). Posted to
 * another thread, such a view clones the whole pool buffer, and that per
 * message cost (copy, allocation, GC pressure in the receiver) cut the
 * service's throughput by more than half: every encoding that crosses a
 * thread is copied out at its exact size, so it can be transferred instead.
 */
function pack(v: unknown[]): Uint8Array {
  return new Uint8Array(packr.pack(v));
}

/** The msgpack array in `bytes`, or undefined if they hold none. */
function unpackArray(bytes: unknown): unknown[] | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined;
  try {
    const a: unknown = unpackr.unpack(bytes);
    return Array.isArray(a) ? a : undefined;
  } catch {
    return undefined;
  }
}
const opCode = (op: KvOpName) => OPS.indexOf(op);

export function encodeCommand(c: KvCommand): Uint8Array {
  return pack([opCode(c.op), c.key, c.value ?? '', c.clientId, c.seq]);
}

/** A log entry's command, or undefined if the bytes are not one. */
export function decodeCommand(bytes: Uint8Array): KvCommand | undefined {
  const a = unpackArray(bytes);
  if (!a || a.length !== 5) return undefined;
  const [code, key, value, clientId, seq] = a as [number, string, string, number, number];
  const op = OPS[code];
  if (!op) return undefined;
  return op === 'get' ? { op, key, clientId, seq } : { op, key, value, clientId, seq };
}

export function encodeRequest(id: number, c: KvCommand): Uint8Array {
  return pack([id, opCode(c.op), c.key, c.value ?? '', c.clientId, c.seq]);
}

/** The msgpack values concatenated in `bytes` (one posted batch), or [] if they are not that. */
function unpackAll(bytes: unknown): unknown[] {
  if (!(bytes instanceof Uint8Array)) return [];
  try {
    return unpackr.unpackMultiple(bytes) as unknown[];
  } catch {
    return [];
  }
}

/**
 * The requests in one posted batch as the server receives them: each one's
 * id and raw fields for parseCommand (so malformed requests get a reasoned
 * refusal). A value without even an id is left out: there is no one to answer.
 */
export function decodeRequests(bytes: unknown): { id: number; raw: unknown }[] {
  const out: { id: number; raw: unknown }[] = [];
  for (const a of unpackAll(bytes)) {
    if (!Array.isArray(a) || !Number.isSafeInteger(a[0])) continue;
    const [id, code, key, value, clientId, seq] = a as unknown[];
    const op = typeof code === 'number' ? OPS[code] : undefined;
    out.push({ id: id as number, raw: { op: op ?? code, key, value: op === 'get' ? undefined : value, clientId, seq } });
  }
  return out;
}

export function encodeReply(id: number, r: KvResult): Uint8Array {
  return pack(r.detail === undefined ? [id, r.err, r.value] : [id, r.err, r.value, r.detail]);
}

/** The replies in one posted batch; malformed values are left out. */
export function decodeReplies(bytes: unknown): { id: number; result: KvResult }[] {
  const out: { id: number; result: KvResult }[] = [];
  for (const a of unpackAll(bytes)) {
    if (!Array.isArray(a) || !Number.isSafeInteger(a[0]) || typeof a[1] !== 'string' || typeof a[2] !== 'string') continue;
    const result: KvResult = { err: a[1] as KvErr, value: a[2] };
    if (typeof a[3] === 'string') result.detail = a[3];
    out.push({ id: a[0] as number, result });
  }
  return out;
}
