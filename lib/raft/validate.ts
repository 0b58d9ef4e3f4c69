import { EntryType, MAX_INDEX, MAX_TERM, MessageType, type Message } from './types.js';
import { configProblem, decodeConfig } from './config.js';

/**
 * The rules every Raft message must meet whatever the receiver's state:
 * each field of the right type and within the range the core produces it
 * in. Used by the wire codec (a frame that breaks one is undecodable) and
 * by RaftCore.step (which drops such a message, so a core fed directly is
 * as safe as one behind the codec).
 *
 *  - type: one of MessageType; from, to: peer ids in [0, peers).
 *  - an entry's type, when given, is a command or a Config entry whose
 *    data is a configuration; a snapshot's config, when given, is one.
 *  - term: an integer in [0, MAX_TERM]. Every other term field is an
 *    integer in [0, term]: a peer's log never holds an entry of a term
 *    beyond its own, and a pre-vote asks about a term beyond its log's.
 *  - indices (lastLogIndex, prevLogIndex, commit, index, hintIndex, the
 *    snapshot's index) and seq: integers in [0, MAX_INDEX]; a
 *    ReadIndexResponse's index may also be -1 (refused). ctx: a
 *    non-negative safe integer.
 *  - Append: prevLogIndex + entries.length <= MAX_INDEX; entry k has
 *    index prevLogIndex + 1 + k, bytes for data and a term in [1, term],
 *    no lower than prevLogTerm or the entry before it (a log's terms never
 *    decrease).
 *  - AppendResponse: a refusal's hintIndex is at most its index (the
 *    follower's hint never points past the prevLogIndex it refused).
 *
 * Returns what is wrong, or undefined for a message that meets them all.
 */
export function messageProblem(m: Message, peers: number): string | undefined {
  if (typeof m !== 'object' || m === null) return 'not an object';
  const term = m.term;
  const bad =
    intIn(term, 0, MAX_TERM, 'term') ??
    intIn(m.from, 0, peers - 1, 'from') ??
    intIn(m.to, 0, peers - 1, 'to');
  if (bad) return bad;
  switch (m.type) {
    case MessageType.Vote:
      return intIn(m.lastLogIndex, 0, MAX_INDEX, 'lastLogIndex') ?? intIn(m.lastLogTerm, 0, term, 'lastLogTerm') ?? isBool(m.pre, 'pre');
    case MessageType.VoteResponse:
      return isBool(m.granted, 'granted') ?? isBool(m.pre, 'pre');
    case MessageType.Append: {
      const problem =
        intIn(m.prevLogIndex, 0, MAX_INDEX, 'prevLogIndex') ??
        intIn(m.prevLogTerm, 0, term, 'prevLogTerm') ??
        intIn(m.commit, 0, MAX_INDEX, 'commit') ??
        (m.seq === undefined ? undefined : intIn(m.seq, 0, MAX_INDEX, 'seq'));
      if (problem) return problem;
      const entries: unknown = m.entries;
      if (!Array.isArray(entries)) return 'entries is not an array';
      if (entries.length > MAX_INDEX - m.prevLogIndex) return `prevLogIndex ${m.prevLogIndex} + ${entries.length} entries is beyond ${MAX_INDEX}`;
      let floor = Math.max(1, m.prevLogTerm);
      for (let k = 0; k < entries.length; k++) {
        const e: unknown = entries[k];
        if (typeof e !== 'object' || e === null) return `entry ${k} is not an object`;
        const { index, term: t, data, type } = e as Record<string, unknown>;
        if (index !== m.prevLogIndex + 1 + k) return `entry ${k} has index ${String(index)}, not ${m.prevLogIndex + 1 + k}`;
        // The entry's name only on a problem: built for every entry, it cost a string per entry per check.
        const tp = intIn(t, floor, term, 'term');
        if (tp) return `entry ${k} ${tp}`;
        if (!(data instanceof Uint8Array)) return `entry ${k} data is not bytes`;
        if (type !== undefined && type !== EntryType.Command && type !== EntryType.Config) return `entry ${k} has type ${String(type)}`;
        if (type === EntryType.Config) {
          try {
            decodeConfig(data);
          } catch (err) {
            return `entry ${k}: ${(err as Error).message}`;
          }
        }
        floor = t as number;
      }
      return undefined;
    }
    case MessageType.AppendResponse: {
      const problem =
        isBool(m.success, 'success') ??
        intIn(m.index, 0, MAX_INDEX, 'index') ??
        intIn(m.hintTerm, 0, term, 'hintTerm') ??
        intIn(m.hintIndex, 0, MAX_INDEX, 'hintIndex') ??
        (m.seq === undefined ? undefined : intIn(m.seq, 0, MAX_INDEX, 'seq'));
      if (problem) return problem;
      if (!m.success && m.hintIndex > m.index) return `hintIndex ${m.hintIndex} is beyond the refused index ${m.index}`;
      return undefined;
    }
    case MessageType.Snapshot: {
      const s: unknown = m.snapshot;
      if (typeof s !== 'object' || s === null) return 'snapshot is not an object';
      const { index, term: t, data, config } = s as Record<string, unknown>;
      return (
        intIn(index, 0, MAX_INDEX, 'snapshot index') ??
        intIn(t, 0, term, 'snapshot term') ??
        (data instanceof Uint8Array ? undefined : 'snapshot data is not bytes') ??
        (config === undefined ? undefined : configProblem(config as never))
      );
    }
    case MessageType.SnapshotResponse:
      return intIn(m.index, 0, MAX_INDEX, 'index');
    case MessageType.ReadIndex:
      return intIn(m.ctx, 0, Number.MAX_SAFE_INTEGER, 'ctx') ?? isBool(m.lease, 'lease');
    case MessageType.ReadIndexResponse:
      return intIn(m.ctx, 0, Number.MAX_SAFE_INTEGER, 'ctx') ?? intIn(m.index, -1, MAX_INDEX, 'index');
    case MessageType.TimeoutNow:
      return undefined;
    default:
      return `unknown message type ${String((m as { type: unknown }).type)}`;
  }
}

/** undefined if v is a safe integer in [lo, hi], else what is wrong with it. */
export function intIn(v: unknown, lo: number, hi: number, what: string): string | undefined {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) return `${what} is not an integer`;
  if (v < lo || v > hi) return `${what} ${v} is outside [${lo}, ${hi}]`;
  return undefined;
}

function isBool(v: unknown, what: string): string | undefined {
  return typeof v === 'boolean' ? undefined : `${what} is not a boolean`;
}
