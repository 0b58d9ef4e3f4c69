/**
 * How a proposal or a read ended, as a host reports it to whoever asked
 * (a local caller, a client channel, a forwarding follower). The codes
 * travel on the wire; lib/api/errors.ts turns them into typed errors.
 */
export const Status = {
  /** Done: `data` holds the state machine's result or answer. */
  Ok: 0,
  /** Not done, and never will be: this peer does not lead (a proposal was not appended, a read not placed). Safe to retry. */
  NotLeader: 1,
  /** A proposal whose fate this peer cannot know: it may or may not be applied (timeout, leadership lost, peer stopped). */
  Unknown: 2,
  /** The state machine threw while applying (or answering); `message` carries what it threw. */
  ApplyError: 3,
  /** A read that was not answered in time. Nothing happened; safe to retry. */
  Timeout: 4,
  /** Refused for what it is (empty, too large, malformed): retrying cannot help. */
  Rejected: 5,
  /** The peer is stopping or stopped; a proposal's outcome is unknown. */
  Stopped: 6,
  /** Flow control: too much already waits on this peer. Nothing was done; safe to retry after a pause. */
  Busy: 7,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

export interface Outcome {
  status: Status;
  /** The result (proposal) or answer (read), with Ok. */
  data?: Uint8Array;
  /** Why, for every status but Ok. */
  message?: string;
  /** The leader this peer knows of, -1 for none. */
  leader: number;
  /** Where the proposal's entry sat, when it got one. */
  index?: number;
  /** Why a membership change was refused (Rejected): 'in-progress', 'already-member', 'not-member', 'not-learner', 'last-voter'. */
  code?: string;
}

export type OutcomeCallback = (o: Outcome) => void;

export function isStatus(v: unknown): v is Status {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 7;
}
