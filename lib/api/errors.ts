/**
 * The errors of the public API. Each has a stable `code`; they are built on
 * the caller's side of a thread boundary (from codes that cross it), so
 * `instanceof` works wherever the caller is.
 */
import { RaftOptionError as OptionError } from '../raft/types.js';
import { StorageError, type StorageErrorCode } from '../../storage/errors.js';

export { OptionError, StorageError, type StorageErrorCode };

export type RaftErrorCode =
  | 'not-leader'
  | 'outcome-unknown'
  | 'apply-error'
  | 'timeout'
  | 'busy'
  | 'rejected'
  | 'closed'
  | 'state-machine'
  | 'peer-not-running'
  | 'membership';

export class RaftError extends Error {
  override name = 'RaftError';
  constructor(
    readonly code: RaftErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Nothing was done: the peer asked does not lead and could not hand the
 * request on (no leader known, a transfer in progress, or a leader cut off
 * from its majority). Safe to retry; `leader` is a hint (-1: none).
 */
export class NotLeaderError extends RaftError {
  override name = 'NotLeaderError';
  constructor(
    message: string,
    readonly leader: number,
  ) {
    super('not-leader', message);
  }
}

/**
 * A proposal may or may not have been applied: its answer did not come in
 * time, the leader lost its leadership, or a peer stopped while it was in
 * flight. Retrying may apply it twice unless the command is idempotent
 * (the key/value service makes it so with client ids and sequence numbers).
 */
export class OutcomeUnknownError extends RaftError {
  override name = 'OutcomeUnknownError';
  constructor(message: string) {
    super('outcome-unknown', message);
  }
}

/** The state machine threw while applying the command (on every replica alike) or answering the query. */
export class ApplyError extends RaftError {
  override name = 'ApplyError';
  constructor(
    message: string,
    /** The log index of the command whose apply threw (undefined for a query). */
    readonly index?: number,
  ) {
    super('apply-error', message);
  }
}

/** A read or a leadership transfer did not complete in time; it changed nothing. */
export class TimeoutError extends RaftError {
  override name = 'TimeoutError';
  constructor(message: string) {
    super('timeout', message);
  }
}

/**
 * Flow control: the peers had as much waiting as they accept (see
 * `maxPending` and `maxPendingBytes`) for as long as the call's timeout
 * allowed. Nothing was done; safe to retry.
 */
export class BusyError extends RaftError {
  override name = 'BusyError';
  constructor(message: string) {
    super('busy', message);
  }
}

/** The request was refused for what it is (empty, over the size limit, malformed); retrying cannot help. */
export class RequestRejectedError extends RaftError {
  override name = 'RequestRejectedError';
  constructor(message: string) {
    super('rejected', message);
  }
}

/** The group (or client) was closed; what was in flight has an unknown outcome. */
export class GroupClosedError extends RaftError {
  override name = 'GroupClosedError';
  constructor(what: string) {
    super('closed', `${what}: the group is closed`);
  }
}

/** The state machine module could not be loaded or lacks part of the contract. */
export class StateMachineError extends RaftError {
  override name = 'StateMachineError';
  constructor(
    message: string,
    /** The module as given. */
    readonly module: string,
    /** The export or method at fault, if one is. */
    readonly method?: string,
  ) {
    super('state-machine', message);
  }
}

/** A call named a peer that is not running (crashed, stopped or never started). */
export class PeerNotRunningError extends RaftError {
  override name = 'PeerNotRunningError';
  constructor(
    readonly peer: number,
    what: string,
  ) {
    super('peer-not-running', `${what}: peer ${peer} is not running (it was crashed, stopped or never started)`);
  }
}

/**
 * A membership change that does not apply, the configuration unchanged:
 * `reason` is 'in-progress' (another change is not committed yet; retry
 * later), 'already-member', 'not-member', 'not-learner' or 'last-voter'.
 */
export class MembershipError extends RaftError {
  override name = 'MembershipError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super('membership', message);
  }
}

/** An error as it crosses a thread boundary (comlink and a worker's death would keep only name and message). */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  module?: string;
  method?: string;
  option?: string;
  file?: string;
  peer?: number;
  leader?: number;
  index?: number;
  systemCode?: string;
  stack?: string;
}

const STRING_FIELDS = ['code', 'module', 'method', 'option', 'file', 'systemCode', 'stack'] as const;
const NUMBER_FIELDS = ['peer', 'leader', 'index'] as const;

/** Plain data for any thrown value: an Error's class name, message and typed fields; anything else described. */
export function serializeError(e: unknown): SerializedError {
  const x = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
  let out: SerializedError;
  if (e instanceof Error) out = { name: e.name, message: e.message };
  else if (typeof x.code === 'string' || typeof x.message === 'string') {
    // Not an Error but error-like (what a native addon's error becomes after a structured clone).
    out = { name: typeof x.name === 'string' ? x.name : 'Error', message: typeof x.message === 'string' && x.message ? x.message : String(x.code) };
  } else out = { name: 'Error', message: `a non-error value was thrown: ${String(e)}` };
  for (const k of STRING_FIELDS) if (typeof x[k] === 'string') out[k] = x[k] as string;
  for (const k of NUMBER_FIELDS) if (typeof x[k] === 'number') out[k] = x[k] as number;
  return out;
}

function afterPrefix(message: string, prefix: string | undefined): string {
  return prefix && message.startsWith(`${prefix}: `) ? message.slice(prefix.length + 2) : message;
}

/**
 * Rebuild, on this side of a thread boundary, the error a peer's thread
 * threw: the same class (so instanceof works), message, code and fields.
 * `module` is the state machine module to name when the error does not.
 */
export function reviveError(e: SerializedError, module = ''): Error {
  let err: Error;
  switch (e.name) {
    case 'StateMachineError':
      err = new StateMachineError(e.message, e.module ?? module, e.method);
      break;
    case 'StorageError':
      err = new StorageError((e.code ?? 'io') as StorageErrorCode, e.file ?? '', afterPrefix(e.message, e.file), {
        ...(e.index !== undefined ? { index: e.index } : {}),
        ...(e.systemCode !== undefined ? { cause: e.systemCode } : {}),
      });
      break;
    case 'RaftOptionError':
      err = new OptionError(e.option ?? 'option', afterPrefix(e.message, e.option));
      break;
    case 'NotLeaderError':
      err = new NotLeaderError(e.message, e.leader ?? -1);
      break;
    case 'OutcomeUnknownError':
      err = new OutcomeUnknownError(e.message);
      break;
    case 'ApplyError':
      err = new ApplyError(e.message, e.index);
      break;
    case 'TimeoutError':
      err = new TimeoutError(e.message);
      break;
    case 'RequestRejectedError':
      err = new RequestRejectedError(e.message);
      break;
    case 'BusyError':
      err = new BusyError(e.message);
      break;
    case 'PeerNotRunningError': {
      err = new PeerNotRunningError(e.peer ?? -1, '');
      err.message = e.message;
      break;
    }
    case 'GroupClosedError':
      err = new GroupClosedError('');
      err.message = e.message;
      break;
    case 'TypeError':
      err = new TypeError(e.message);
      break;
    case 'RangeError':
      err = new RangeError(e.message);
      break;
    default: {
      err = new Error(e.message);
      err.name = e.name;
      const x = err as unknown as Record<string, unknown>;
      for (const k of STRING_FIELDS) if (k !== 'stack' && e[k] !== undefined) x[k] = e[k];
      for (const k of NUMBER_FIELDS) if (e[k] !== undefined) x[k] = e[k];
    }
  }
  if (e.stack) err.stack = `${err.name}: ${err.message}\n    (thrown in a peer's thread)\n${e.stack.split('\n').slice(1).join('\n')}`;
  return err;
}
