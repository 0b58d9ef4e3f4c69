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
export class ValueNumbers {
  private next = 1;
  /** Each string put or appended, numbered. */
  private readonly strings = new Map<string, number>();
  /** (earlier number + 1) * 2^24 + string number -> the value's number; one map, no map per value. */
  private readonly made = new Map<number, number>();

  number(from: number, s: string): number {
    let sid = this.strings.get(s);
    if (sid === undefined) this.strings.set(s, (sid = this.strings.size));
    // Exact while there are under 2^24 strings and 2^28 values: beyond, a map per value.
    if (sid >= 1 << 24 || from + 1 >= 1 << 28) return this.numberSlow(from, sid);
    const key = (from + 1) * 0x1000000 + sid;
    let id = this.made.get(key);
    if (id === undefined) this.made.set(key, (id = this.next++));
    return id;
  }

  private readonly slow = new Map<string, number>();
  private numberSlow(from: number, sid: number): number {
    const key = `${from}/${sid}`;
    let id = this.slow.get(key);
    if (id === undefined) this.slow.set(key, (id = this.next++));
    return id;
  }
}

/**
 * One key's register during a search: its value as `base + tail`, where
 * `base` is a whole (flat) string, typically the last value read, and
 * `tail` what was appended since; and that value's number. Kept in two
 * parts so that checking a read never compares against a string built by
 * thousands of concatenations: V8 would copy such a string whole into one
 * piece at every comparison, so a key read after each append cost the
 * square of its length in copies (and the garbage collector's time).
 */
export interface KvState {
  base: string;
  tail: string;
  id: number;
  numbers: ValueNumbers;
}

/** The register's whole value (built on demand; the search never needs it). */
export function valueOf(state: KvState): string {
  return state.base + state.tail;
}

const PUT = -1;

/**
 * Does `s` hold `part` at position `at`? Compared as a substring rather
 * than with startsWith: V8's startsWith walks the characters one by one,
 * about 40 times slower than the substring comparison on values of tens of
 * kilobytes, which made a one-client history of 20,000 operations take
 * seconds to check.
 */
export function holdsAt(s: string, part: string, at: number): boolean {
  return s.length >= at + part.length && s.substring(at, at + part.length) === part;
}

/**
 * Model.growth for a register (either model; `lengthOf` reads its state's
 * length): Puts reset it, Gets observe it, and an Append still fits a read
 * when the read holds the appended string at the register's current length.
 */
function registerGrowth<S>(lengthOf: (state: S) => number): NonNullable<Model<S, KvInput, KvOutput>['growth']> {
  return {
    isReset: (input) => input.op === KvOp.Put,
    isObserver: (input) => input.op === KvOp.Get,
    size: (output) => output.value.length,
    fits: (before, input, output) => input.op !== KvOp.Append || holdsAt(output.value, input.value, lengthOf(before)),
  };
}

/**
 * Every key is an independent register that starts as "": a history is
 * linearizable if and only if each key's sub-history is.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => ({ base: '', tail: '', id: 0, numbers: new ValueNumbers() }),
  step(state, input, output) {
    switch (input.op) {
      case KvOp.Get: {
        const v = output.value;
        const { base, tail } = state;
        if (v.length !== base.length + tail.length || !holdsAt(v, base, 0) || !holdsAt(v, tail, base.length)) return [false, state];
        // The same value, now held as the read's own flat string.
        return [true, tail === '' ? state : { base: v, tail: '', id: state.id, numbers: state.numbers }];
      }
      case KvOp.Put:
        return [true, { base: input.value, tail: '', id: state.numbers.number(PUT, input.value), numbers: state.numbers }];
      case KvOp.Append:
        if (input.value === '') return [true, state];
        return [true, { base: state.base, tail: state.tail + input.value, id: state.numbers.number(state.id, input.value), numbers: state.numbers }];
      default:
        return [false, state];
    }
  },
  key: (state) => state.id,
  growth: registerGrowth((state) => state.base.length + state.tail.length),
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

// ---- the same model on fingerprints ---------------------------------------------

/**
 * Two polynomial hashes (moduli below 2^26, so every product stays exact in
 * a double) of a string's UTF-16 code units. With them a register's value
 * is (length, h1, h2): an Append extends it in O(1) whatever the value's
 * length, and a Get compares three numbers instead of two strings. In a
 * history where one key grows by thousands of appends and is read after
 * each (the lab's one-client tests), comparing the strings made every step
 * cost the value's whole length.
 */
const P1 = 67108859;
const P2 = 67108837;
const B1 = 65537;
const B2 = 92821;

interface Fingerprint {
  len: number;
  h1: number;
  h2: number;
  /** B^len mod P, to append this string to another. */
  p1: number;
  p2: number;
}

function fingerprint(s: string): Fingerprint {
  let h1 = 0;
  let h2 = 0;
  let p1 = 1;
  let p2 = 1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = (h1 * B1 + c) % P1;
    h2 = (h2 * B2 + c) % P2;
    p1 = (p1 * B1) % P1;
    p2 = (p2 * B2) % P2;
  }
  return { len: s.length, h1, h2, p1, p2 };
}

/** The fingerprint of a + b, from theirs. */
function concat(a: Fingerprint, b: Fingerprint): Fingerprint {
  return {
    len: a.len + b.len,
    h1: (a.h1 * b.p1 + b.h1) % P1,
    h2: (a.h2 * b.p2 + b.h2) % P2,
    p1: (a.p1 * b.p1) % P1,
    p2: (a.p2 * b.p2) % P2,
  };
}

/**
 * Fingerprints of one history's strings, computed once per operation (kept
 * by the operation's input or output object, which costs no string
 * hashing). A value read is usually the last one read plus what was
 * appended since, so a string that starts with the previous one is
 * fingerprinted from it and its new tail: reading a value that grew by
 * thousands of appends costs a native prefix comparison, not a loop over
 * every character.
 */
class Fingerprints {
  private readonly byObject = new WeakMap<object, Fingerprint>();
  private last = '';
  private lastPrint = fingerprint('');

  /** `read`: a value a Get returned (the ones that grow); the previous one read is the likely prefix. */
  of(owner: object, s: string, read = false): Fingerprint {
    let f = this.byObject.get(owner);
    if (f) return f;
    const extends_ = read && this.last.length > 0 && holdsAt(s, this.last, 0);
    f = extends_ ? concat(this.lastPrint, fingerprint(s.slice(this.last.length))) : fingerprint(s);
    this.byObject.set(owner, f);
    if (read) {
      this.last = s;
      this.lastPrint = f;
    }
    return f;
  }
}

/** One cache for every search in this thread: a key searched twice is fingerprinted once (entries go with their operations). */
const sharedPrints = new Fingerprints();

export interface KvHashedState {
  len: number;
  h1: number;
  h2: number;
  id: number;
  numbers: ValueNumbers;
  prints: Fingerprints;
}

/**
 * kvModel with each value replaced by its fingerprint. Equal values always
 * have equal fingerprints, so every step legal under kvModel is legal here
 * and an 'illegal' answer is exact; two different values could share one
 * (about one chance in 2^52), so an 'ok' answer must be confirmed by
 * replaying the linearization found under kvModel (see replay()).
 */
export const kvHashedModel: Model<KvHashedState, KvInput, KvOutput> = {
  init: () => ({ len: 0, h1: 0, h2: 0, id: 0, numbers: new ValueNumbers(), prints: sharedPrints }),
  step(state, input, output) {
    switch (input.op) {
      case KvOp.Get: {
        const f = state.prints.of(output, output.value, true);
        return [f.len === state.len && f.h1 === state.h1 && f.h2 === state.h2, state];
      }
      case KvOp.Put: {
        const f = state.prints.of(input, input.value);
        return [true, { len: f.len, h1: f.h1, h2: f.h2, id: state.numbers.number(PUT, input.value), numbers: state.numbers, prints: state.prints }];
      }
      case KvOp.Append: {
        if (input.value === '') return [true, state];
        const f = state.prints.of(input, input.value);
        return [
          true,
          {
            len: state.len + f.len,
            h1: (state.h1 * f.p1 + f.h1) % P1,
            h2: (state.h2 * f.p2 + f.h2) % P2,
            id: state.numbers.number(state.id, input.value),
            numbers: state.numbers,
            prints: state.prints,
          },
        ];
      }
      default:
        return [false, state];
    }
  },
  key: (state) => state.id,
  growth: registerGrowth((state) => state.len),
};

/** Does applying `ops` in this order, one at a time, give each its recorded output under `model`? */
export function replay<S, I, O>(model: Model<S, I, O>, ops: readonly { input: I; output: O }[]): boolean {
  let state = model.init();
  for (const op of ops) {
    const [legal, next] = model.step(state, op.input, op.output);
    if (!legal) return false;
    state = next;
  }
  return true;
}
