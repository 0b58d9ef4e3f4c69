import type { Model, Operation } from './history.js';

/**
 * What one search ended with. `stopped`: asked to give up before an answer;
 * `memory`: its memo reached its byte budget first (both mean "unknown").
 */
export type SearchOutcome = 'ok' | 'illegal' | 'stopped' | 'memory';

/** Default byte budget of one search's memo (see SearchLimits.memoBytes). */
export const DEFAULT_MEMO_BYTES = 512 << 20;

export interface SearchLimits {
  /**
   * Give up ('memory') once the memo of seen configurations is estimated to
   * hold this many bytes: a history hard enough to need more is answered
   * "unknown" instead of exhausting the heap.
   */
  memoBytes?: number;
}

/** How many search steps pass between two looks at the stop condition. */
const STOP_CHECK_STEPS = 256;

/**
 * Wing & Gong's search for a linearization with Lowe's memoization.
 *
 * The calls and returns sit in one list in time order (a call before a
 * return at equal times, so touching operations count as concurrent). The
 * search walks it from the front: at a call it tries to linearize that
 * operation next (legal in the current state, and the set of linearized
 * operations with the resulting state not seen before); it then lifts the
 * operation's call and return out of the list and starts over. Reaching a
 * return means its operation should already have taken effect: that branch
 * is dead, and the search backtracks. An empty list is a linearization.
 * Memoizing (linearized set, state) pairs bounds the work by the number of
 * distinct configurations instead of the number of orders.
 */
export function searchLinearization<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  shouldStop: () => boolean = () => false,
  /** Filled with the operations' indices in the order found, when the answer is 'ok'. */
  linearization?: number[],
  /**
   * 'exact' (default): each configuration seen is kept whole (the set of
   * operations as a bitset), so nothing is skipped wrongly. 'hashed': only a
   * 52-bit hash of the set is kept, which costs no copy per step; two sets
   * sharing a hash could make the search skip one that leads somewhere, so
   * an 'illegal' answer from it must be confirmed by an exact search (an
   * 'ok' needs no confirming: the order found is a real one).
   */
  memo: 'exact' | 'hashed' = 'exact',
  limits: SearchLimits = {},
): SearchOutcome {
  const n = ops.length;
  if (n === 0) return 'ok';
  const keyOf = model.key ?? ((state: S) => state as unknown);
  const memoBudget = limits.memoBytes ?? DEFAULT_MEMO_BYTES;
  // An operation that never returned (ret Infinity: its outcome is unknown)
  // has no return entry: nothing forces it to take effect, and the search is
  // done once every operation that did return is linearized.
  const returned = (i: number) => ops[i]!.ret !== Infinity;
  let dueLeft = 0;
  for (let i = 0; i < n; i++) if (returned(i)) dueLeft++;
  const growth = model.growth;

  // Nodes 0..2n-1 are the entries in time order; node 2n is the head sentinel.
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    order.push(2 * i); // even: call of op i, odd: its return
    if (returned(i)) order.push(2 * i + 1);
  }
  const timeOf = (e: number) => (e & 1 ? ops[e >> 1]!.ret : ops[e >> 1]!.call);
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1));
  const m = order.length;
  const head = m;
  const next = new Int32Array(m + 1);
  const prev = new Int32Array(m + 1);
  const opOf = new Int32Array(m);
  const isCall = new Uint8Array(m);
  const retNode = new Int32Array(n).fill(-1);
  let last = head;
  for (let k = 0; k < m; k++) {
    const e = order[k]!;
    opOf[k] = e >> 1;
    isCall[k] = e & 1 ? 0 : 1;
    if (e & 1) retNode[e >> 1] = k;
    next[last] = k;
    prev[k] = last;
    last = k;
  }
  next[last] = -1;

  const unlink = (x: number) => {
    next[prev[x]!] = next[x]!;
    if (next[x] !== -1) prev[next[x]!] = prev[x]!;
  };
  const relink = (x: number) => {
    next[prev[x]!] = x;
    if (next[x] !== -1) prev[next[x]!] = x;
  };

  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  // Zobrist hashing: each operation owns a random 32-bit word and the set's
  // hash is the XOR of its members' words, kept up to date as operations go
  // in and out (O(1) a step, where hashing the whole set costs n/32).
  // Equal hashes are still compared bit by bit, so a collision costs time only.
  const zobrist = new Int32Array(n);
  const zobrist2 = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    zobrist[i] = mix32(i + 1);
    zobrist2[i] = mix32((i + 1) ^ 0x5bd1e995);
  }
  let setHash = 0;
  let setHash2 = 0;
  const sameBits = (a: Uint32Array) => {
    for (let w = 0; w < words; w++) if (a[w] !== bits[w]) return false;
    return true;
  };
  // Keyed by state first: one set of operations can end in many states
  // (concurrent appends in different orders), one state in few sets.
  const seen = new Map<unknown, Map<number, Uint32Array[]>>();
  const seenHashed = new Map<unknown, Set<number>>();
  // Estimated bytes per memo entry: a number in a Set, or a copied bitset with
  // its array header and a share of the maps around it.
  const entryBytes = memo === 'hashed' ? 24 : 4 * words + 96;
  let memoBytes = 0;
  /** Record (bits, state); false if it was already there. */
  const remember = (state: S): boolean => {
    const k = keyOf(state);
    memoBytes += entryBytes;
    if (memo === 'hashed') {
      let sets = seenHashed.get(k);
      if (!sets) seenHashed.set(k, (sets = new Set()));
      const h = (setHash >>> 0) * 0x100000 + (setHash2 >>> 12);
      if (sets.has(h)) return false;
      sets.add(h);
      return true;
    }
    let byBits = seen.get(k);
    if (!byBits) seen.set(k, (byBits = new Map()));
    let bucket = byBits.get(setHash);
    if (!bucket) byBits.set(setHash, (bucket = []));
    for (const b of bucket) if (sameBits(b)) return false;
    bucket.push(bits.slice());
    return true;
  };

  // Growth pruning (see Model.growth): the observers (reads) that returned,
  // smallest output first; `due` is the first not yet linearized, the
  // tightest bound on what the state may grow into (every unlinearized
  // observer is one, and the smallest is the one a wrong step overshoots
  // first). `resetsLeft` counts the unlinearized operations that could
  // shrink the state; while any is left, no pruning.
  const linearized = new Uint8Array(n);
  const observers: number[] = [];
  let resetsLeft = 0;
  if (growth) {
    for (let i = 0; i < n; i++) {
      if (growth.isReset(ops[i]!.input)) resetsLeft++;
      else if (growth.isObserver(ops[i]!.input) && returned(i)) observers.push(i);
    }
    observers.sort((a, b) => growth.size(ops[a]!.output) - growth.size(ops[b]!.output) || ops[a]!.ret - ops[b]!.ret);
  }
  const observerRank = new Int32Array(n).fill(-1);
  observers.forEach((op, r) => (observerRank[op] = r));
  let due = 0;
  const take = (op: number) => {
    linearized[op] = 1;
    if (returned(op)) dueLeft--;
    if (!growth) return;
    if (growth.isReset(ops[op]!.input)) resetsLeft--;
    while (due < observers.length && linearized[observers[due]!]) due++;
  };
  const untake = (op: number) => {
    linearized[op] = 0;
    if (returned(op)) dueLeft++;
    if (!growth) return;
    if (growth.isReset(ops[op]!.input)) resetsLeft++;
    const r = observerRank[op]!;
    if (r >= 0 && r < due) due = r;
  };
  /** False when the step from `before` by operation `op` cannot grow into the next observer still due. */
  const fitsDue = (before: S, op: number): boolean => {
    if (!growth || resetsLeft > 0 || due >= observers.length) return true;
    const o = observers[due]!;
    if (o === op) return true;
    return growth.fits(before, ops[op]!.input, ops[o]!.output);
  };

  const stackNode: number[] = [];
  const stackState: S[] = [];
  let state = model.init();
  let entry = next[head]!;
  let steps = 0;
  while (dueLeft > 0) {
    if (++steps % STOP_CHECK_STEPS === 0) {
      if (shouldStop()) return 'stopped';
      if (memoBytes > memoBudget) return 'memory';
    }
    if (isCall[entry]) {
      const op = opOf[entry]!;
      const o = ops[op]!;
      // The growth test first: it is a prefix comparison, the step builds a state.
      const [legal, after] = fitsDue(state, op) ? model.step(state, o.input, o.output) : REFUSED;
      if (legal) {
        bits[op >>> 5]! |= 1 << (op & 31);
        setHash ^= zobrist[op]!;
        setHash2 ^= zobrist2[op]!;
        if (remember(after)) {
          stackNode.push(entry);
          stackState.push(state);
          state = after;
          unlink(entry);
          if (retNode[op]! >= 0) unlink(retNode[op]!);
          take(op);
          entry = next[head]!;
          continue;
        }
        bits[op >>> 5]! &= ~(1 << (op & 31));
        setHash ^= zobrist[op]!;
        setHash2 ^= zobrist2[op]!;
      }
      entry = next[entry]!;
    } else {
      if (stackNode.length === 0) return 'illegal';
      const node = stackNode.pop()!;
      state = stackState.pop()!;
      const op = opOf[node]!;
      bits[op >>> 5]! &= ~(1 << (op & 31));
      setHash ^= zobrist[op]!;
      setHash2 ^= zobrist2[op]!;
      untake(op);
      if (retNode[op]! >= 0) relink(retNode[op]!);
      relink(node);
      entry = next[node]!;
    }
  }
  if (linearization) for (const node of stackNode) linearization.push(opOf[node]!);
  return 'ok';
}

const REFUSED: [boolean, never] = [false, undefined as never];

/** MurmurHash3's finalizer: spreads consecutive integers over all 32 bits. */
function mix32(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}
