import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import { Packr, Unpackr } from 'msgpackr';
import type { ByteStateMachine, EntryMeta, SnapshotWriter } from '../node/seams.js';
import { StateMachineError } from './errors.js';

export type { EntryMeta, SnapshotWriter };

/**
 * Your replicated state machine. Every peer's worker thread builds one from
 * your module and drives it; all of its methods run on that thread,
 * synchronously, one at a time.
 *
 * Commands, results, queries and answers are any values msgpack can encode
 * (numbers, strings, booleans, null, arrays, plain objects, Uint8Array,
 * Map, Date). They are encoded once on the caller's thread and decoded on
 * the peer's, so what `apply` receives is a copy, never the caller's object.
 */
export interface StateMachine<Command = unknown, Result = unknown, Query = unknown, Answer = unknown> {
  /**
   * Apply one committed command and return its result. Called once per
   * command, in log order, on every replica.
   *
   * Must be deterministic: the same commands in the same order give the
   * same state and the same results on every replica. Use nothing that
   * differs between peers or runs (the clock, random numbers, the
   * environment, iteration order of anything you did not order yourself).
   * Read what you need from the command or from `entry` (its log index
   * and term are the same on every replica).
   *
   * A throw is this command's outcome on every replica: the proposer gets
   * an ApplyError with its message, and the peer carries on with whatever
   * state `apply` left. Check first, then change state, so that a refused
   * command changes nothing.
   */
  apply(command: Command, entry: EntryMeta): Result;
  /**
   * Answer a read from the current state. Must not change the state
   * (replicas that answer no reads must stay identical to ones that do).
   * A throw reaches the reader as an ApplyError.
   */
  query(query: Query): Answer;
  /**
   * Everything applied so far, as bytes that `restore` accepts. The engine
   * calls it when its snapshot policy says the log is long enough (see
   * `snapshotThreshold`), then discards the log through the last applied
   * entry. A snapshot taken on one replica may be restored on another.
   */
  snapshot(): Uint8Array;
  /**
   * Optional: the same snapshot, written a step at a time, so that a large
   * state does not stop the peer while it is encoded (a whole-table encode
   * of a million keys takes the better part of a second). When present,
   * the engine's snapshot policy uses it instead of `snapshot()`:
   * `beginSnapshot()` fixes what the snapshot holds, everything applied so
   * far; the engine then calls `step()` between its other work, and
   * `apply` runs between steps, until `step()` returns the bytes (the same
   * bytes `snapshot()` would have returned when the snapshot began; `restore`
   * must accept them). Keep a step to a millisecond or two. The engine calls
   * `cancel()` instead when it gives the snapshot up (the state is replaced
   * by `restore`, or tried against a leader's snapshot; `snapshot(peer)`
   * takes a whole one now; the peer stops); a writer is never used after
   * either. One writer at a time.
   */
  beginSnapshot?(): SnapshotWriter;
  /**
   * Replace the whole state with a snapshot's (taken after the entry
   * `entry`). Called when a peer starts from its stored snapshot and when
   * a lagging peer receives the leader's; the next command applied is
   * entry.index + 1.
   */
  restore(snapshot: Uint8Array, entry: EntryMeta): void;
  /** The peer is stopping: release files, timers or anything else held. Optional. */
  close?(): void;
}

/** What a state machine module's factory is told about where it runs. */
export interface StateMachineContext {
  /** This peer's id, 0..peers-1. */
  peer: number;
  peers: number;
  /** Grows with every start of this peer. */
  incarnation: number;
}

/**
 * A state machine module exports `createStateMachine(options, context)`
 * (or a default export that is that function), returning the instance or
 * a promise of it.
 */
export type StateMachineFactory = (options: unknown, context: StateMachineContext) => StateMachine | Promise<StateMachine>;

/** Which state machine a group runs: an ES module (path or URL) and options for its factory. */
export interface StateMachineSpec {
  /** A file path (absolute, or relative to the working directory) or a URL (file:, data:). */
  module: string | URL;
  /** Handed to the factory in every peer; structured-cloned, so plain data only. */
  options?: unknown;
}

const METHODS = ['apply', 'query', 'snapshot', 'restore'] as const;

/** The module as a URL string: absolute paths and paths relative to the working directory become file: URLs. */
export function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '') throw new StateMachineError('the state machine module must be a path or URL', String(module));
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)) return module;
  return pathToFileURL(isAbsolute(module) ? module : resolve(module)).href;
}

/** Check that an instance keeps the contract, naming the first method it lacks. */
export function checkInstance(sm: unknown, module: string): StateMachine {
  if (typeof sm !== 'object' || sm === null) {
    throw new StateMachineError(`${module}: createStateMachine returned ${sm === null ? 'null' : typeof sm}, not a state machine object`, module, 'createStateMachine');
  }
  for (const m of METHODS) {
    if (typeof (sm as Record<string, unknown>)[m] !== 'function') {
      throw new StateMachineError(`${module}: the state machine has no ${m}() method`, module, m);
    }
  }
  const close = (sm as Record<string, unknown>).close;
  if (close !== undefined && typeof close !== 'function') throw new StateMachineError(`${module}: close must be a method when present`, module, 'close');
  return sm as StateMachine;
}

/** The factory a loaded module exports. */
export function factoryOf(mod: unknown, module: string): StateMachineFactory {
  const m = mod as Record<string, unknown>;
  const f = typeof m.createStateMachine === 'function' ? m.createStateMachine : typeof m.default === 'function' ? m.default : undefined;
  if (!f) {
    throw new StateMachineError(
      `${module}: the module exports no createStateMachine(options, context) function (nor a default export that is one)`,
      module,
      'createStateMachine',
    );
  }
  return f as StateMachineFactory;
}

/**
 * Import a state machine module and build its instance. `importModule` is
 * the thread's import(): the bundled worker runs from a code cache, where
 * import() has to come from its boot file.
 */
export async function loadStateMachine(
  spec: { module: string; options?: unknown },
  context: StateMachineContext,
  importModule: (url: string) => Promise<unknown>,
  builtins: ReadonlyMap<string, StateMachineFactory> = new Map(),
): Promise<StateMachine> {
  const module = spec.module;
  let factory = builtins.get(module);
  if (!factory) {
    let mod: unknown;
    try {
      mod = await importModule(module);
    } catch (e) {
      throw new StateMachineError(`${module}: the module could not be imported: ${e instanceof Error ? e.message : String(e)}`, module);
    }
    factory = factoryOf(mod, module);
  }
  let sm: unknown;
  try {
    sm = await factory(spec.options, context);
  } catch (e) {
    throw new StateMachineError(`${module}: createStateMachine threw: ${e instanceof Error ? e.message : String(e)}`, module, 'createStateMachine');
  }
  return checkInstance(sm, module);
}

const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: true, mapsAsObjects: true });

/** Encode a command, result, query or answer: an exact-size copy, safe to transfer. */
export function encodeValue(v: unknown): Uint8Array {
  return new Uint8Array(packr.pack(v));
}

/**
 * Encode a request's payload in place, in msgpackr's pool buffer, without
 * encodeValue's copy: for bytes that are only ever copied (into a client
 * frame, now and on every retry). msgpackr writes each value after the
 * last one, never over it, so the view stays valid while it is held; it
 * must not be transferred (that would detach the pool).
 */
export function encodePayload(v: unknown): Uint8Array {
  return packr.pack(v);
}

// msgpackr keeps a DataView on the array it decodes, as a property of that
// array. Decoded directly, every command (a view into the message or batch
// that carried it, held in the log until compaction) would get a DataView
// and a property store of its own: about 200 bytes per entry on every peer,
// surviving young-generation collections. Views of one buffer are decoded
// through one array over that buffer instead, a DataView per buffer (the
// last buffer decoded stays referenced until a view of another comes).
let lastBuffer: ArrayBufferLike | undefined;
let whole: Uint8Array = new Uint8Array(0);
// One range for every call: msgpackr reads start and end when a decode begins.
const range = { start: 0, end: 0 };

export function decodeValue(b: Uint8Array): unknown {
  // A whole buffer (or nothing): no view to spare.
  if (b.length === 0 || (b.byteOffset === 0 && b.length === b.buffer.byteLength)) return unpackr.unpack(b);
  if (b.buffer !== lastBuffer) {
    lastBuffer = b.buffer;
    whole = new Uint8Array(b.buffer);
  }
  range.start = b.byteOffset;
  range.end = b.byteOffset + b.length;
  return unpackr.unpack(whole, range);
}

/** A promise from apply or query would be encoded as an empty object: refuse it, saying why. */
function synchronous(v: unknown, method: string): unknown {
  if (typeof (v as { then?: unknown } | null)?.then === 'function') {
    throw new Error(`${method}() returned a promise; it must return its result synchronously (apply runs in log order, on every replica alike)`);
  }
  return v;
}

/** Your state machine as the host drives it: bytes in, bytes out, msgpack in between. */
/** What a follower's apply returns: nobody there reads it. */
const NO_RESULT = new Uint8Array(0);

/** A frozen array of primitives: nothing in it can ever change. */
function isFrozenFlat(v: unknown): boolean {
  if (!Array.isArray(v) || !Object.isFrozen(v)) return false;
  for (const x of v) if (typeof x === 'object' && x !== null) return false;
  return true;
}

/** A writer whose finished snapshot must be bytes, as snapshot()'s must. */
function checkedWriter(w: SnapshotWriter): SnapshotWriter {
  if (typeof w !== 'object' || w === null || typeof w.step !== 'function' || typeof w.cancel !== 'function') {
    throw new TypeError('beginSnapshot() must return an object with step() and cancel()');
  }
  return {
    step: () => {
      const data = w.step();
      if (data !== undefined && !(data instanceof Uint8Array)) throw new TypeError(`a snapshot writer's step() must return a Uint8Array or undefined, got ${typeof data}`);
      return data;
    },
    cancel: () => w.cancel(),
  };
}

export function byteStateMachine(sm: StateMachine): ByteStateMachine {
  let lastFrozen: unknown;
  let lastBytes: Uint8Array = NO_RESULT;
  return {
    apply: (command, meta, wantResult) => {
      const result = synchronous(sm.apply(decodeValue(command), meta), 'apply');
      if (wantResult === false) return NO_RESULT;
      // The same frozen array of plain values again (a service's shared "OK"): its bytes cannot have changed.
      if (result === lastFrozen) return lastBytes;
      const bytes = encodeValue(result);
      if (isFrozenFlat(result)) {
        lastFrozen = result;
        lastBytes = bytes;
      }
      return bytes;
    },
    query: (q) => encodeValue(synchronous(sm.query(decodeValue(q)), 'query')),
    snapshot: () => {
      const data = sm.snapshot();
      if (!(data instanceof Uint8Array)) throw new TypeError(`snapshot() must return a Uint8Array, got ${typeof data}`);
      return data;
    },
    ...(sm.beginSnapshot ? { beginSnapshot: () => checkedWriter(sm.beginSnapshot!()) } : {}),
    restore: (data, meta) => sm.restore(data, meta),
    check(data, meta, current) {
      // Try it, then put back the state as it was, whether it restored or threw.
      const backup = sm.snapshot();
      let refusal: string | undefined;
      try {
        sm.restore(data, meta);
      } catch (e) {
        refusal = e instanceof Error ? e.message || e.name : String(e);
      }
      sm.restore(backup, current);
      return refusal;
    },
    close: () => sm.close?.(),
  };
}
