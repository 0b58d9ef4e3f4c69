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
 * Every key is an independent register that starts as "": a history is
 * linearizable if and only if each key's sub-history is.
 */
export const kvModel: Model<string, KvInput, KvOutput> = {
  init: () => '',
  step(state, input, output) {
    switch (input.op) {
      case KvOp.Get:
        return [output.value === state, state];
      case KvOp.Put:
        return [true, input.value];
      case KvOp.Append:
        return [true, state + input.value];
      default:
        return [false, state];
    }
  },
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
