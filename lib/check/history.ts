/**
 * One operation of a recorded history. `call` and `ret` are timestamps from
 * one monotonic clock (the tests use nanoseconds from
 * process.hrtime.bigint(), as numbers). `ret` is Infinity for an operation
 * whose outcome is unknown (its client gave up waiting): it may have taken
 * effect at any time after its call, or never, and its output is ignored.
 */
export interface Operation<I, O> {
  clientId: number;
  input: I;
  output: O;
  call: number;
  ret: number;
}

/** A sequential specification the history is checked against. */
export interface Model<S, I, O> {
  init(): S;
  /** Is `output` legal for `input` applied to `state`, and the state after it. */
  step(state: S, input: I, output: O): [boolean, S];
  /** Split a history into independent sub-histories (default: one). */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  /**
   * A primitive that differs for different states (default: the state
   * itself, right for primitive states). Equal states should share it: the
   * search skips a (set of operations, key) pair it has seen, so a state
   * with two keys may be searched twice, never wrongly skipped.
   */
  key?(state: S): unknown;
  describe?(op: Operation<I, O>): string;
  /**
   * For a state that only grows except at "reset" operations (a register
   * under appends, which a Put resets): `isObserver` marks the operations
   * whose output is the state (a read); `fits(before, input, output)` is
   * false when the state after `input` cannot grow into an observer's
   * `output` (it is no longer a prefix of it); `size(output)` orders the
   * observers. While no reset is left to linearize, every unlinearized
   * observer that returned must still be linearized on a state that can only
   * grow, and the search drops a step that does not fit the smallest of
   * them. Wrong orders of concurrent appends then die at once instead of at
   * the next read.
   */
  growth?: {
    isReset(input: I): boolean;
    isObserver(input: I): boolean;
    size(output: O): number;
    fits(before: S, input: I, output: O): boolean;
  };
}

/** ok: linearizable; illegal: not; unknown: the time limit came before an answer. */
export type CheckResult = 'ok' | 'illegal' | 'unknown';
