import { Packr, Unpackr } from 'msgpackr';
import { Sessions } from './sessions.js';

/** Limits on what one request may carry and a key may hold (UTF-8 bytes). */
export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1 << 20;

export type KvOpName = 'get' | 'put' | 'append';

/** One command as it travels through the Raft log. */
export interface KvCommand {
  op: KvOpName;
  key: string;
  /** Put and Append only. */
  value?: string;
  /** Exactly-once: a client's commands carry increasing sequence numbers. */
  clientId: number;
  seq: number;
}

/** The lab's error values, plus two for refused input. */
/** ErrWrongGroup: the sharded service's answer for a key whose shard this group does not serve. */
export type KvErr = 'OK' | 'ErrNoKey' | 'ErrWrongLeader' | 'ErrBadRequest' | 'ErrTooLarge' | 'ErrWrongGroup';

export interface KvResult {
  err: KvErr;
  /** Get: the value read ("" when the key is missing). */
  value: string;
  /** Why a request was refused, for ErrBadRequest and ErrTooLarge. */
  detail?: string;
}

/** Is the UTF-8 form of `s` longer than `limit` bytes? (Counts only when the length cannot tell.) */
function longerThan(s: string, limit: number): boolean {
  if (s.length * 3 <= limit) return false;
  if (s.length > limit) return true;
  return Buffer.byteLength(s, 'utf8') > limit;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Is `s` well-formed UTF-16 (no lone surrogate)? Only such strings survive
 * UTF-8 (msgpack's string form) unchanged: a lone surrogate comes back as
 * U+FFFD, so "\uD800" and "\uD801" would become one and the same key.
 */
export function isWellFormedString(s: string): boolean {
  // String.prototype.isWellFormed is in Node 20 (V8 11.3); tsconfig's lib (ES2022) does not declare it.
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** Where the first lone surrogate of an ill-formed string is, for the refusal's reason. */
function loneSurrogateAt(s: string): number {
  return s.search(LONE_SURROGATE);
}

/**
 * Check a request's fields before it goes anywhere near the log. Keys and
 * values must be strings of well-formed Unicode (see isWellFormedString):
 * anything else is refused with ErrBadRequest, never converted, so that
 * what is stored is exactly what was sent. Returns the refusal to send
 * back, or undefined when the fields make a command. (`value` is looked at
 * for Put and Append only.)
 */
export function refusal(op: unknown, key: unknown, value: unknown, clientId: unknown, seq: unknown): KvResult | undefined {
  const bad = (detail: string): KvResult => ({ err: 'ErrBadRequest', value: '', detail });
  if (op !== 'get' && op !== 'put' && op !== 'append') return bad(`op must be "get", "put" or "append", got ${JSON.stringify(op)}`);
  if (typeof key !== 'string') return bad('key must be a string');
  if (op !== 'get' && typeof value !== 'string') return bad(`value must be a string for ${op}`);
  if (!isWellFormedString(key)) return bad(`key is not well-formed Unicode (a lone surrogate at index ${loneSurrogateAt(key)})`);
  if (op !== 'get' && !isWellFormedString(value as string)) {
    return bad(`value is not well-formed Unicode (a lone surrogate at index ${loneSurrogateAt(value as string)})`);
  }
  if (!Number.isSafeInteger(clientId) || (clientId as number) < 0) return bad('clientId must be a non-negative integer');
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) return bad('seq must be a positive integer');
  if (longerThan(key, MAX_KEY_BYTES)) return { err: 'ErrTooLarge', value: '', detail: `key longer than ${MAX_KEY_BYTES} bytes` };
  if (op !== 'get' && longerThan(value as string, MAX_VALUE_BYTES)) {
    return { err: 'ErrTooLarge', value: '', detail: `value longer than ${MAX_VALUE_BYTES} bytes` };
  }
  return undefined;
}

/** A request object's command, or the refusal to send back (see refusal()). */
export function parseCommand(raw: unknown): KvCommand | KvResult {
  if (typeof raw !== 'object' || raw === null) return { err: 'ErrBadRequest', value: '', detail: 'request must be an object' };
  const r = raw as Record<string, unknown>;
  return checkedCommand(r.op, r.key, r.value, r.clientId, r.seq);
}

/** The command these fields make, or the refusal (see refusal()). */
export function checkedCommand(op: unknown, key: unknown, value: unknown, clientId: unknown, seq: unknown): KvCommand | KvResult {
  const refused = refusal(op, key, value, clientId, seq);
  if (refused) return refused;
  const cmd: KvCommand = { op: op as KvOpName, key: key as string, clientId: clientId as number, seq: seq as number };
  if (op !== 'get') cmd.value = value as string;
  return cmd;
}

export function isCommand(x: KvCommand | KvResult): x is KvCommand {
  return 'op' in x;
}

/** One client's entry in the duplicate table: [clientId, seq, err, value, detail?]. */
export type SessionRow = [number, number, KvErr, string, string?];

/** The answer to every Put and Append that succeeds (shared; never changed). */
const OK: KvResult = Object.freeze({ err: 'OK', value: '' });

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false });
const SNAPSHOT_VERSION = 1;

/**
 * The replicated key/value table with its duplicate table. Every replica
 * applies the same commands in the same order, so everything here must be
 * deterministic. A command whose sequence number its client has already
 * had applied is not applied again: it gets the stored result (for the
 * client's latest command) or a plain OK (an older one, which that client
 * stopped waiting for long ago).
 */
export class KvStateMachine {
  private readonly data = new Map<string, string>();
  private readonly sessions = new Sessions<KvResult>();

  apply(cmd: KvCommand): KvResult {
    const seen = this.sessions.seen(cmd.clientId, cmd.seq, OK);
    if (seen) return seen;
    const result = this.execute(cmd);
    this.sessions.record(cmd.clientId, cmd.seq, result);
    return result;
  }

  private execute(cmd: KvCommand): KvResult {
    // A Put needs no lookup first: in a table of 256,000 keys each lookup is a cache miss or more.
    switch (cmd.op) {
      case 'get':
        return this.read(cmd.key);
      case 'put':
        this.data.set(cmd.key, cmd.value!);
        return OK;
      case 'append': {
        const next = (this.data.get(cmd.key) ?? '') + cmd.value!;
        if (longerThan(next, MAX_VALUE_BYTES)) {
          return { err: 'ErrTooLarge', value: '', detail: `the value of ${JSON.stringify(cmd.key)} would pass ${MAX_VALUE_BYTES} bytes` };
        }
        this.data.set(cmd.key, next);
        return OK;
      }
    }
  }

  /** A Get outside the log (a ReadIndex read): the value, or ErrNoKey. */
  read(key: string): KvResult {
    const cur = this.data.get(key);
    return cur === undefined ? { err: 'ErrNoKey', value: '' } : { err: 'OK', value: cur };
  }

  get size(): number {
    return this.data.size;
  }

  /** The duplicate table as rows: [clientId, seq, err, value, detail?]. */
  sessionRows(): SessionRow[] {
    const sessions: SessionRow[] = [];
    for (const [id, s] of this.sessions.entries()) {
      const row: SessionRow = [id, s.seq, s.result.err, s.result.value];
      if (s.result.detail !== undefined) row.push(s.result.detail);
      sessions.push(row);
    }
    return sessions;
  }

  /** The table as [key, value] rows. */
  dataRows(): [string, string][] {
    return [...this.data];
  }

  /**
   * Take in a table and duplicate table from elsewhere (a shard arriving
   * from another group): the rows are added, and each client's entry is
   * the newer of the two, never simply replaced, so a command applied on
   * either side is still recognised when its client retries it here.
   */
  merge(data: readonly [string, string][], sessions: readonly SessionRow[]): void {
    for (const [k, v] of data) this.data.set(k, v);
    for (const [id, seq, err, value, detail] of sessions) {
      const result: KvResult = { err, value };
      if (detail !== undefined) result.detail = detail;
      this.sessions.mergeEntry(id, seq, result);
    }
  }

  /** Forget everything (the table and the duplicate table). */
  clear(): void {
    this.data.clear();
    this.sessions.clear();
  }

  /** The table and the duplicate table, for Raft's snapshot. */
  snapshot(): Uint8Array {
    return packr.pack([SNAPSHOT_VERSION, [...this.data], this.sessionRows()]);
  }

  /** Replace everything with a snapshot's contents. */
  restore(bytes: Uint8Array): void {
    this.data.clear();
    this.sessions.clear();
    if (bytes.length === 0) return;
    let decoded: unknown;
    try {
      decoded = unpackr.unpack(bytes);
    } catch {
      decoded = undefined;
    }
    if (!Array.isArray(decoded) || decoded[0] !== SNAPSHOT_VERSION) throw new Error('not a key/value snapshot of a known version');
    const [, data, sessions] = decoded as [number, [string, string][], SessionRow[]];
    this.merge(data, sessions);
  }
}
