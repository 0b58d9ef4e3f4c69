/** Identifies a peer inside one cluster: a stable id in [0, MAX_PEER_ID], never reused for another peer. */
export type PeerId = number;

/** The largest peer id (ids are small integers so that they pack small on the wire). */
export const MAX_PEER_ID = 2 ** 31 - 1;

/** What an entry holds: a command for the state machine, or a new cluster configuration. */
export const EntryType = { Command: 0, Config: 1 } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/**
 * A log entry. `data` is opaque to the core (the service's encoded command),
 * except in a Config entry (type 1), where it is the new configuration
 * (encodeConfig). An entry without `type` is a command.
 */
export interface Entry {
  index: number;
  term: number;
  data: Uint8Array;
  type?: EntryType;
}

/**
 * A cluster configuration (thesis 4.1): the voters, whose majority decides
 * elections and commits, and the learners, which receive the log but do not
 * vote. Ids appear once, sorted. `context` carries what the host needs to
 * reach a member (its name and address), opaque to the core.
 */
export interface ClusterConfig {
  voters: PeerId[];
  learners: PeerId[];
  context?: Record<string, string>;
}

/** What Figure 2 calls persistent state, apart from the log. */
export interface HardState {
  term: number;
  /** Candidate voted for in `term`, or -1 for none. */
  vote: PeerId;
}

export interface SnapshotMeta {
  index: number;
  term: number;
}

export interface Snapshot extends SnapshotMeta {
  data: Uint8Array;
  /** The configuration as of `index` (absent: the one the peer started with). */
  config?: ClusterConfig;
}

/**
 * The largest term a message may carry (and so the largest a peer can be
 * told to adopt). A peer adds 1 to its term for every election it starts,
 * so a term must leave room to grow: at Number.MAX_SAFE_INTEGER, term + 1
 * is no longer exact and no election could ever happen again (and the term
 * is persisted, so not after a restart either). Any term at or below 2^52
 * leaves about 4.5e15 elections below MAX_SAFE_INTEGER, far more than a
 * cluster holds in its lifetime (at 1,000 elections a second, 140,000
 * years). A peer never starts an election beyond MAX_TERM, so every term
 * it sends is within it too.
 */
export const MAX_TERM = 2 ** 52;

/**
 * The most a message may raise its receiver's term by at once. Bounding
 * the term alone would not be enough: a message at MAX_TERM itself would
 * leave no election that the others accept. A peer far behind legitimately
 * jumps by the number of elections it missed, which 2^32 (at 1,000
 * elections a second, 50 days of them) covers; a term further ahead is
 * refused, so one bad message cannot use up the room below MAX_TERM.
 */
export const MAX_TERM_JUMP = 2 ** 32;

/**
 * The largest log index (and commit index, read index, round number) a
 * message may carry: a leader's log grows by one index per entry, so 2^52
 * is as out of reach as MAX_TERM, and an Append's prevLogIndex plus its
 * entries is bounded by it too, so index arithmetic stays exact.
 */
export const MAX_INDEX = 2 ** 52;

export const MessageType = {
  Vote: 1,
  VoteResponse: 2,
  Append: 3,
  AppendResponse: 4,
  Snapshot: 5,
  SnapshotResponse: 6,
  /** A follower asks its leader for a read index (thesis 6.4). */
  ReadIndex: 7,
  ReadIndexResponse: 8,
  /** Leadership transfer (thesis 3.10): the leader tells a caught-up peer to campaign now. */
  TimeoutNow: 9,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

interface Envelope {
  from: PeerId;
  to: PeerId;
  term: number;
}

/**
 * RequestVote, or with `pre` a pre-vote (thesis 9.6): "would you vote for me
 * in `term`?", asked before a candidate increments its term. A pre-vote
 * changes nothing at the receiver.
 */
export interface VoteRequest extends Envelope {
  type: typeof MessageType.Vote;
  lastLogIndex: number;
  lastLogTerm: number;
  pre: boolean;
}

/** A granted pre-vote carries the term asked about; a refusal the voter's own term. */
export interface VoteResponse extends Envelope {
  type: typeof MessageType.VoteResponse;
  granted: boolean;
  pre: boolean;
}

export interface AppendRequest extends Envelope {
  type: typeof MessageType.Append;
  prevLogIndex: number;
  prevLogTerm: number;
  entries: Entry[];
  commit: number;
  /**
   * The leader's round number when it sent this (0 when absent). The answer
   * echoes it, so a leader knows that a majority still followed it after a
   * given moment: what a ReadIndex read or a lease needs (thesis 6.4).
   */
  seq?: number;
}

/**
 * On success `index` is the highest index now known to match the leader.
 * On rejection `index` is the rejected prevLogIndex and the hint fields carry
 * the fast-backup information: `hintTerm` is the follower's term at
 * prevLogIndex (0 when its log is too short) and `hintIndex` is the first
 * index the follower holds for that term (or its last index + 1 when short).
 */
export interface AppendResponse extends Envelope {
  type: typeof MessageType.AppendResponse;
  success: boolean;
  index: number;
  hintTerm: number;
  hintIndex: number;
  /** The request's round number, echoed. */
  seq?: number;
}

export interface SnapshotRequest extends Envelope {
  type: typeof MessageType.Snapshot;
  snapshot: Snapshot;
}

export interface SnapshotResponse extends Envelope {
  type: typeof MessageType.SnapshotResponse;
  /** The snapshot index the follower now holds (or already held). */
  index: number;
}

/**
 * A follower's read: "what is your commit index, once you have confirmed
 * you still lead?" `ctx` is the follower's own number for the read; `lease`
 * lets a leader holding a valid lease answer without a round.
 */
export interface ReadIndexRequest extends Envelope {
  type: typeof MessageType.ReadIndex;
  ctx: number;
  lease: boolean;
}

/** The read index for the follower's `ctx`, or -1: refused (not the leader, or it lost its leadership). */
export interface ReadIndexResponse extends Envelope {
  type: typeof MessageType.ReadIndexResponse;
  ctx: number;
  index: number;
}

/** Campaign at once, skipping pre-vote: the sender, the leader, hands over to you. */
export interface TimeoutNowRequest extends Envelope {
  type: typeof MessageType.TimeoutNow;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | SnapshotRequest
  | SnapshotResponse
  | ReadIndexRequest
  | ReadIndexResponse
  | TimeoutNowRequest;

export function isRequest(m: { type: number }): boolean {
  return (
    m.type === MessageType.Vote ||
    m.type === MessageType.Append ||
    m.type === MessageType.Snapshot ||
    m.type === MessageType.ReadIndex ||
    m.type === MessageType.TimeoutNow
  );
}

/**
 * A read the core has placed: the state machine may answer it once it has
 * applied through `index`. `index` -1: refused (this peer does not lead and
 * knows no leader, or the leader lost its leadership before confirming it).
 */
export interface ReadState {
  ctx: number;
  index: number;
}

export const Role = {
  Follower: 'follower',
  /** Asking for pre-votes; its term is unchanged until a majority would vote for it. */
  PreCandidate: 'precandidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/**
 * One batch of work handed out by the core. The host must, in order:
 * 1. persist in one atomic write: `hardState`; `snapshot` (dropping every
 *    stored entry at or below its index); `entries` (replacing every stored
 *    entry at or after entries[0].index); and drop stored entries above
 *    `lastIndex`;
 * 2. send `messages`;
 * 3. hand `applySnapshot` (a snapshot received from the leader) and then
 *    `committed` to the state machine;
 * 4. call `advance(ready)`;
 * 5. answer each of `readStates` once the state machine has applied through
 *    its index (they need nothing persisted).
 */
export interface Ready {
  hardState?: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
  /** The last log index once this Ready is applied; storage holds nothing beyond. */
  lastIndex: number;
  /**
   * Messages to send once this Ready is persisted, except the first
   * `earlyCount`: a leader's AppendEntries and InstallSnapshot requests,
   * which may leave before the leader's own write (thesis 10.2.1), so the
   * followers' writes overlap it. The leader counts itself toward a commit
   * only once advance() reports its entries stable.
   */
  messages: Message[];
  earlyCount: number;
  applySnapshot?: Snapshot;
  committed: Entry[];
  /** Reads placed (or refused) since the last Ready. */
  readStates: ReadState[];
}

/** What a host's storage hands back to a restarted core. */
export interface InitialState {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
}

/** Thrown for invalid options or arguments; `option` names the culprit. */
export class RaftOptionError extends Error {
  override name = 'RaftOptionError';
  constructor(readonly option: string, message: string) {
    super(`${option}: ${message}`);
  }
}
