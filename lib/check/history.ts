/**
 * One completed operation of a recorded history. `call` and `ret` are
 * timestamps from one monotonic clock (the tests use nanoseconds from
 * process.hrtime.bigint(), as numbers); every operation in a history returned.
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
}

/** ok: linearizable; illegal: not; unknown: the time limit came before an answer. */
export type CheckResult = 'ok' | 'illegal' | 'unknown';
