/**
 * The errors of the public API. Each has a stable `code`; they are built on
 * the caller's side of a thread boundary (from codes that cross it), so
 * `instanceof` works wherever the caller is.
 */
export { RaftOptionError as OptionError } from '../raft/types.js';

export type RaftErrorCode =
  | 'not-leader'
  | 'outcome-unknown'
  | 'apply-error'
  | 'timeout'
  | 'rejected'
  | 'closed'
  | 'state-machine'
  | 'peer-not-running';

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

/** An error as it crosses a thread boundary (comlink would keep only name and message). */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  module?: string;
  method?: string;
  option?: string;
  file?: string;
  peer?: number;
}

export function serializeError(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: SerializedError = { name: e.name, message: e.message };
  const x = e as unknown as Record<string, unknown>;
  for (const k of ['code', 'module', 'method', 'option', 'file'] as const) if (typeof x[k] === 'string') out[k] = x[k] as string;
  if (typeof x.peer === 'number') out.peer = x.peer;
  return out;
}
