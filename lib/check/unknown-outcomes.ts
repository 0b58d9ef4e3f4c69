import { KvOp, type KvOperation } from './kv-model.js';

/**
 * Drops the operations of one key's history whose outcome is unknown (ret
 * Infinity) and which cannot change the verdict:
 *  - a read that never returned observed nothing;
 *  - an Append of "" changes nothing;
 *  - a Put or Append of a value that no returned read on the key contains.
 *    If the history with it is linearizable, so is the history without it:
 *    the reads after it in a linearization, up to the next Put, would hold its
 *    value, so there are none, and the Appends in between are legal on any
 *    state. Conversely, a linearization without it stays one with it placed
 *    last (it has no return to come before).
 * The rest are kept with their infinite return, for the search to place.
 */
export function dropUnobserved(ops: KvOperation[]): KvOperation[] {
  if (!ops.some((op) => op.ret === Infinity)) return ops;
  const reads = new Set<string>();
  for (const op of ops) if (op.input.op === KvOp.Get && op.ret !== Infinity) reads.add(op.output.value);
  const observed = (value: string) => {
    for (const r of reads) if (r.includes(value)) return true;
    return false;
  };
  return ops.filter((op) => {
    if (op.ret !== Infinity) return true;
    if (op.input.op === KvOp.Get) return false;
    if (op.input.op === KvOp.Append && op.input.value === '') return false;
    return op.input.value === '' || observed(op.input.value);
  });
}
