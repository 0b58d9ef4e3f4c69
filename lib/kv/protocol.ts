import { checkedCommand, parseCommand, type KvCommand, type KvErr, type KvOpName, type KvResult } from './state-machine.js';

/**
 * How the key/value service's commands and answers look on the engine
 * (each a msgpack value, encoded by the engine's client):
 *  - a command (a log entry):  [op, key, value, clientId, seq]
 *  - a query (a Get, read by ReadIndex, not logged): the key
 *  - a result or answer:       [err, value, detail?]
 * op is 0 Get, 1 Put, 2 Append (the lab's numbering).
 */
export type KvReply = [KvErr, string] | [KvErr, string, string];

const OPS: KvOpName[] = ['get', 'put', 'append'];

/**
 * A command's wire form. The value goes as it is (a Get carries none): a
 * Put or Append without a string value is refused by the service, never
 * stored as "".
 */
export function commandToWire(c: KvCommand): unknown[] {
  return wireOf(c.op, c.key, c.value, c.clientId, c.seq);
}

/** A wire command as a command, or the refusal to answer (refusal() says what is wrong with it). */
export function wireToCommand(raw: unknown): KvCommand | KvResult {
  if (!Array.isArray(raw)) return parseCommand(raw);
  const [code, key, value, clientId, seq] = raw as unknown[];
  const op = (typeof code === 'number' ? OPS[code] : undefined) ?? code;
  return checkedCommand(op, key, value, clientId, seq);
}

/** A command's wire form from its fields (already checked by refusal()). */
export function wireOf(op: KvOpName, key: string, value: string | undefined, clientId: number, seq: number): unknown[] {
  return [OPS.indexOf(op), key, op === 'get' ? null : value, clientId, seq];
}

/** Shared by every plain OK (frozen: nobody may change it). */
const OK_REPLY = Object.freeze(['OK', '']) as unknown as KvReply;

export function toReply(r: KvResult): KvReply {
  if (r.err === 'OK' && r.value === '' && r.detail === undefined) return OK_REPLY;
  return r.detail === undefined ? [r.err, r.value] : [r.err, r.value, r.detail];
}

/** A reply as the service sent it, or undefined if it is not one. */
export function fromReply(raw: unknown): KvResult | undefined {
  if (!Array.isArray(raw) || typeof raw[0] !== 'string' || typeof raw[1] !== 'string') return undefined;
  const r: KvResult = { err: raw[0] as KvErr, value: raw[1] };
  if (typeof raw[2] === 'string') r.detail = raw[2];
  return r;
}
