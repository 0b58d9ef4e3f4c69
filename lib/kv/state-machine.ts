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
  /** The snapshot being written a step at a time, if one is. */
  private writing: TableSnapshotWriter | undefined;

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
        this.writing?.willChange(cmd.key);
        this.data.set(cmd.key, cmd.value!);
        return OK;
      case 'append': {
        const next = (this.data.get(cmd.key) ?? '') + cmd.value!;
        if (longerThan(next, MAX_VALUE_BYTES)) {
          return { err: 'ErrTooLarge', value: '', detail: `the value of ${JSON.stringify(cmd.key)} would pass ${MAX_VALUE_BYTES} bytes` };
        }
        this.writing?.willChange(cmd.key);
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
    for (const [k, v] of data) {
      this.writing?.willChange(k);
      this.data.set(k, v);
    }
    for (const [id, seq, err, value, detail] of sessions) {
      const result: KvResult = { err, value };
      if (detail !== undefined) result.detail = detail;
      this.sessions.mergeEntry(id, seq, result);
    }
  }

  /** Forget everything (the table and the duplicate table). */
  clear(): void {
    this.stopWriting();
    this.data.clear();
    this.sessions.clear();
  }

  /** The table and the duplicate table, for Raft's snapshot. */
  snapshot(): Uint8Array {
    return packr.pack([SNAPSHOT_VERSION, [...this.data], this.sessionRows()]);
  }

  /**
   * The same snapshot as snapshot() now, byte for byte, written a step of
   * SNAPSHOT_STEP_KEYS keys at a time; commands applied between steps do
   * not change what it holds (see TableSnapshotWriter).
   */
  beginSnapshot(): { step(): Uint8Array | undefined; cancel(): void } {
    // A writer already under way is given up: its step() now throws.
    const w = new TableSnapshotWriter(this.data, this.sessionRows());
    this.writing = w;
    return {
      step: () => {
        if (this.writing !== w) throw new Error('this snapshot was given up (the table was replaced, or another snapshot began)');
        const done = w.step();
        if (done) this.writing = undefined;
        return done;
      },
      cancel: () => {
        if (this.writing === w) this.writing = undefined;
      },
    };
  }

  private stopWriting(): void {
    this.writing = undefined;
  }

  /** Replace everything with a snapshot's contents. */
  restore(bytes: Uint8Array): void {
    this.stopWriting();
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

/** Keys a snapshot writer encodes per step: about a millisecond of work with values of a hundred bytes. */
export const SNAPSHOT_STEP_KEYS = 2048;
/** ...and fewer when the keys and values of a step pass this many characters (a table of large values). */
const SNAPSHOT_STEP_CHARS = 256 * 1024;

/**
 * Bytes of the finished snapshot one step puts together. Copying 51 MB at
 * once took about 130 ms here (most of it the kernel handing out the new
 * buffer's pages), in a step the peer (and, on a leader, its group) waited for.
 */
const SNAPSHOT_ASSEMBLE_BYTES = 4 << 20;

/** What a key held when the snapshot began, for keys changed since: its value, or ABSENT (it had none). */
const ABSENT = Symbol('absent');

/**
 * The table as it was when the writer was made, encoded while commands go
 * on changing it. Before a command changes a key the first time, the
 * writer keeps what the key held (willChange); the table's own iteration
 * order puts keys added later after every key that was there, and those
 * are skipped. The bytes equal snapshot()'s at the start: msgpack of
 * [version, [[key, value]...], sessions], the rows packed a step's worth at
 * a time and their array header written once the count is known.
 */
class TableSnapshotWriter {
  private readonly before = new Map<string, string | typeof ABSENT>();
  private readonly rows: IterableIterator<[string, string]>;
  private readonly parts: Uint8Array[] = [];
  private count = 0;
  /** Once every row is packed: the snapshot's bytes, put together over the steps that follow. */
  private out: { bytes: Uint8Array; pieces: Uint8Array[]; next: number; at: number } | undefined;

  constructor(
    private readonly table: Map<string, string>,
    private readonly sessions: SessionRow[],
  ) {
    this.rows = table.entries();
  }

  willChange(key: string): void {
    // Once every row is packed, a change can no longer reach the snapshot.
    if (this.out || this.before.has(key)) return;
    const v = this.table.get(key);
    this.before.set(key, v === undefined ? ABSENT : v);
  }

  /** The snapshot once every row is written, else undefined. */
  step(): Uint8Array | undefined {
    if (this.out) return this.assemble();
    const chunk: [string, string][] = [];
    // A step ends at so many rows, so many characters (large values), or so many rows looked at (keys added since are skipped).
    let chars = 0;
    for (let looked = 0; chunk.length < SNAPSHOT_STEP_KEYS && chars < SNAPSHOT_STEP_CHARS && looked < 4 * SNAPSHOT_STEP_KEYS; looked++) {
      const next = this.rows.next();
      if (next.done) return this.finish(chunk);
      const [k, v] = next.value;
      const was = this.before.size > 0 ? this.before.get(k) : undefined;
      if (was === ABSENT) continue;
      const value = was === undefined ? v : was;
      chunk.push([k, value]);
      chars += k.length + value.length;
    }
    this.add(chunk);
    return undefined;
  }

  /** Pack rows and keep them without their array header. */
  private add(chunk: [string, string][]): void {
    if (chunk.length === 0) return;
    const packed = packr.pack(chunk);
    this.parts.push(packed.subarray(arrayHeader(chunk.length).length));
    this.count += chunk.length;
  }

  /** Every row is packed: the pieces in order, then the first step of putting them together. */
  private finish(chunk: [string, string][]): Uint8Array | undefined {
    this.add(chunk);
    // [version, rows, sessions]: three elements, the rows' own header now that their count is known.
    const pieces = [arrayHeader(3), packr.pack(SNAPSHOT_VERSION), arrayHeader(this.count), ...this.parts, packr.pack(this.sessions)];
    let size = 0;
    for (const p of pieces) size += p.length;
    this.parts.length = 0;
    this.before.clear();
    this.out = { bytes: new Uint8Array(size), pieces, next: 0, at: 0 };
    return this.assemble();
  }

  /** Copy about SNAPSHOT_ASSEMBLE_BYTES more of the pieces; the bytes once all are in. */
  private assemble(): Uint8Array | undefined {
    const o = this.out!;
    const stop = o.at + SNAPSHOT_ASSEMBLE_BYTES;
    while (o.next < o.pieces.length && o.at < stop) {
      const p = o.pieces[o.next++]!;
      o.bytes.set(p, o.at);
      o.at += p.length;
    }
    return o.next < o.pieces.length ? undefined : o.bytes;
  }
}

/** The msgpack header of an array of n elements. */
function arrayHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x90 | n);
  if (n < 0x10000) return Uint8Array.of(0xdc, n >> 8, n & 0xff);
  return Uint8Array.of(0xdd, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}
