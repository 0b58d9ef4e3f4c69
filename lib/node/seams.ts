import type { WireMessage } from './messages.js';

/**
 * The seams a peer host runs on. The worker gives it real ones (a SQLite
 * file, MessagePorts, the process clock, the user's state machine); the
 * simulator gives it simulated ones, so the code that ships is the code it
 * tests. Storage is in storage/storage.ts.
 */

/** Where an entry sits: the state machine learns it with every command and snapshot. */
export interface EntryMeta {
  index: number;
  term: number;
}

/** Opaque handle of a timer set through a Clock. */
export type TimerHandle = unknown;

/**
 * Time as the host sees it. `now()` is a monotonic millisecond count;
 * `defer(fn)` runs fn once the current turn's work is done (setImmediate in
 * a worker), which is how one turn's inputs come to share one drain.
 */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(t: TimerHandle): void;
  defer(fn: () => void): void;
}

/**
 * A peer's outbound side of the network. `send` queues; `flush` posts what
 * is queued (one message per destination). Inbound messages reach the host
 * through `PeerHost.receive`, and each batch ends with `PeerHost.received`.
 */
export interface Transport {
  send(m: WireMessage): void;
  flush(): void;
  close(): void;
  /**
   * Could a message to `peer` arrive? False once its channel is known to be
   * gone (in one process: its worker died). Only a hint: true promises nothing.
   */
  reachable(peer: number): boolean;
}

/**
 * A snapshot being written a step at a time. Its content was fixed when it
 * began (everything applied by then), whatever is applied between steps.
 */
export interface SnapshotWriter {
  /** Write a little more (a millisecond or two of work): the snapshot's bytes once complete, undefined until then. */
  step(): Uint8Array | undefined;
  /** Give the snapshot up (the state was replaced, or the peer stops); the writer is not used again. */
  cancel(): void;
}

/**
 * The replicated state machine as the host drives it: commands, results,
 * queries and answers are bytes (lib/api/state-machine.ts adapts a user's
 * state machine of plain values to this). Every method runs on the peer's
 * own thread, synchronously.
 */
export interface ByteStateMachine {
  /**
   * Apply one committed command; deterministic. A throw is that command's
   * outcome on every replica. `wantResult` false: no caller waits on this
   * peer for the result (a follower's apply), so it need not be encoded.
   */
  apply(command: Uint8Array, meta: EntryMeta, wantResult?: boolean): Uint8Array;
  /** Everything applied so far, as bytes that restore() accepts. */
  snapshot(): Uint8Array;
  /**
   * Optional: the same snapshot taken a step at a time (see StateMachine.beginSnapshot).
   * The host uses it for the snapshots its policy takes.
   */
  beginSnapshot?(): SnapshotWriter;
  /** Replace the whole state with a snapshot's (taken through meta.index). */
  restore(data: Uint8Array, meta: EntryMeta): void;
  /** Answer a read without changing anything. */
  query(query: Uint8Array): Uint8Array;
  /**
   * Why `restore(data, meta)` would fail, or undefined if it would not;
   * either way the state is left as it is (at `current`). A throw means the
   * state machine could not be put back: the peer cannot go on. Optional:
   * without it every snapshot a leader sends is taken as restorable.
   */
  check?(data: Uint8Array, meta: EntryMeta, current: EntryMeta): string | undefined;
  /** The peer stops: release what the state machine holds. */
  close?(): void;
}
