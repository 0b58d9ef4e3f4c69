import type { Model, Operation } from './history.js';

/** The key/value service's operations: 0 Get, 1 Put, 2 Append (the lab's numbering). */
export const KvOp = { Get: 0, Put: 1, Append: 2 } as const;
export type KvOpCode = (typeof KvOp)[keyof typeof KvOp];

export interface KvInput {
  op: KvOpCode;
  key: string;
  /** The value put or appended; empty for Get. */
  value: string;
}

export interface KvOutput {
  /** The value read; empty for Put and Append. */
  value: string;
}

export type KvOperation = Operation<KvInput, KvOutput>;

/**
 * Numbers the register values one search meets, by how each was made: the
 * value a Put wrote, or an earlier value plus an appended string. The
 * search memoizes on the number, which costs the same however long the
 * value has grown; keyed by the string itself, every step would hash the
 * whole value, and a key with thousands of appends would make the search
 * quadratic. Different values never share a number. The same value reached
 * two ways (appending "ab" then "c", or "a" then "bc") gets two, which only
 * means it may be searched twice.
 */
class ValueNumbers {
  private next = 1;
  /** made.get(earlier number, or -1 for a Put).get(string) */
  private readonly made = new Map<number, Map<string, number>>();

  number(from: number, s: string): number {
    let m = this.made.get(from);
    if (!m) this.made.set(from, (m = new Map()));
    let id = m.get(s);
    if (id === undefined) m.set(s, (id = this.next++));
    return id;
  }
}

/** One key's register during a search: its value and that value's number. */
export interface KvState {
  value: string;
  id: number;
  numbers: ValueNumbers;
}

const PUT = -1;

/**
 * Every key is an independent register that starts as "": a history is
 * linearizable if and only if each key's sub-history is.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => ({ value: '', id: 0, numbers: new ValueNumbers() }),
  step(state, input, output) {
    switch (input.op) {
      case KvOp.Get:
        return [output.value.length === state.value.length && output.value === state.value, state];
      case KvOp.Put:
        return [true, { value: input.value, id: state.numbers.number(PUT, input.value), numbers: state.numbers }];
      case KvOp.Append:
        if (input.value === '') return [true, state];
        return [true, { value: state.value + input.value, id: state.numbers.number(state.id, input.value), numbers: state.numbers }];
      default:
        return [false, state];
    }
  },
  key: (state) => state.id,
  partition(history) {
    const byKey = new Map<string, KvOperation[]>();
    for (const op of history) {
      let ops = byKey.get(op.input.key);
      if (!ops) byKey.set(op.input.key, (ops = []));
      ops.push(op);
    }
    return [...byKey.keys()].sort().map((k) => byKey.get(k)!);
  },
  describe(op) {
    const { op: code, key, value } = op.input;
    if (code === KvOp.Get) return `get(${JSON.stringify(key)}) -> ${JSON.stringify(op.output.value)}`;
    if (code === KvOp.Put) return `put(${JSON.stringify(key)}, ${JSON.stringify(value)})`;
    if (code === KvOp.Append) return `append(${JSON.stringify(key)}, ${JSON.stringify(value)})`;
    return '<invalid>';
  },
};
