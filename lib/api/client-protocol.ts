import { Packr, Unpackr } from 'msgpackr';
import type { TurnBatches } from '../transport/turn-batches.js';
import { isStatus, type Outcome, type Status } from '../node/outcome.js';

/**
 * What travels on a client channel (any thread <-> one peer's worker), as
 * msgpack arrays, many concatenated in one posted buffer:
 *   request: [id, kind, flags, timeoutMs, payload]
 *   reply:   [id, status, leader, payload, message]
 * kind 1 propose (payload: the command), 2 read (payload: the query),
 * 3 admin (payload: [op, arg] in msgpack; served by node processes, see
 * lib/net/admin.ts).
 * flags: bit 0 forward (a follower hands the request to its leader);
 * bits 1-2 the read's consistency (0 linearizable, 1 lease, 2 stale).
 */
export const RequestKind = { Propose: 1, Read: 2, Admin: 3 } as const;
export type RequestKind = (typeof RequestKind)[keyof typeof RequestKind];

export const CONSISTENCIES = ['linearizable', 'lease', 'stale'] as const;
export type Consistency = (typeof CONSISTENCIES)[number];

export const FLAG_FORWARD = 1;

export function readFlags(consistency: Consistency, forward: boolean): number {
  return (CONSISTENCIES.indexOf(consistency) << 1) | (forward ? FLAG_FORWARD : 0);
}

export interface ClientRequest {
  id: number;
  kind: RequestKind;
  forward: boolean;
  consistency: Consistency;
  timeoutMs: number;
  payload: Uint8Array;
}

export interface ClientReply {
  id: number;
  status: Status;
  leader: number;
  payload: Uint8Array | undefined;
  message: string | undefined;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false });

function unpackAll(bytes: unknown): unknown[] | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined;
  try {
    return unpackr.unpackMultiple(bytes) as unknown[];
  } catch {
    return undefined;
  }
}

/** Queue a request, [id, kind, flags, timeoutMs, payload], in `to`'s batch of this turn. */
export function queueRequest<K>(out: TurnBatches<K>, to: K, id: number, kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array): void {
  out.pushFrame(to, [id, kind, flags, timeoutMs], payload);
}

/** What is wrong with a request's fields, or undefined. */
function requestProblem(kind: unknown, flags: unknown, timeoutMs: unknown, payload: unknown): string | undefined {
  if (kind !== RequestKind.Propose && kind !== RequestKind.Read && kind !== RequestKind.Admin) return `unknown request kind ${JSON.stringify(kind)}`;
  if (!Number.isSafeInteger(flags) || (flags as number) < 0 || (flags as number) > 7) return 'flags must be an integer in [0, 7]';
  if (!Number.isSafeInteger(timeoutMs) || (timeoutMs as number) < 1) return 'timeoutMs must be a positive integer';
  if (!(payload instanceof Uint8Array)) return 'the payload must be binary';
  if (!CONSISTENCIES[((flags as number) >> 1) & 3]) return 'unknown read consistency';
  return undefined;
}

/**
 * The requests of one posted batch, each either well-formed or with the
 * reason it is not (to be answered Rejected). Values without even an id
 * have nobody to answer and count as `garbage`.
 *
 * Payloads are views into the posted batch, not copies: a batch's commands
 * go into the log together and leave it together, so a command kept there
 * pins little but its neighbours.
 */
export function decodeRequests(bytes: unknown): { requests: (ClientRequest | { id: number; refused: string })[]; garbage: number } {
  const values = unpackAll(bytes);
  if (!values) return { requests: [], garbage: 1 };
  const requests: (ClientRequest | { id: number; refused: string })[] = [];
  let garbage = 0;
  for (const a of values) {
    if (!Array.isArray(a) || !Number.isSafeInteger(a[0])) {
      garbage++;
      continue;
    }
    const [id, kind, flags, timeoutMs, payload] = a as unknown[];
    const refused = requestProblem(kind, flags, timeoutMs, payload);
    if (refused !== undefined) {
      requests.push({ id: id as number, refused });
      continue;
    }
    const c = CONSISTENCIES[((flags as number) >> 1) & 3]!;
    requests.push({ id: id as number, kind: kind as RequestKind, forward: ((flags as number) & FLAG_FORWARD) !== 0, consistency: c, timeoutMs: timeoutMs as number, payload: payload as Uint8Array });
  }
  return { requests, garbage };
}

/** Queue a reply, [id, status, leader, payload, message], in `to`'s batch of this turn. */
export function queueReply<K>(out: TurnBatches<K>, to: K, id: number, o: Outcome): void {
  // The common answer (a result, no message) is written by hand, into the batch; the rest are rare.
  if (o.message === undefined) out.pushFrame(to, [id, o.status, o.leader], o.data, 1);
  else out.push(to, packr.pack([id, o.status, o.leader, o.data ?? null, o.message]));
}

/** The replies of one posted batch; malformed values are left out. */
export function decodeReplies(bytes: unknown): ClientReply[] {
  const out: ClientReply[] = [];
  for (const a of unpackAll(bytes) ?? []) {
    if (!Array.isArray(a) || !Number.isSafeInteger(a[0]) || !isStatus(a[1]) || !Number.isSafeInteger(a[2])) continue;
    out.push({
      id: a[0] as number,
      status: a[1],
      leader: a[2] as number,
      payload: a[3] instanceof Uint8Array ? a[3] : undefined,
      message: typeof a[4] === 'string' ? a[4] : undefined,
    });
  }
  return out;
}
