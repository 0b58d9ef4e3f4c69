import type { Message, PeerId } from '../raft/types.js';

/**
 * Messages between peer hosts that the Raft core never sees: a follower
 * forwards a proposal to its leader and relays the leader's answer. They
 * travel on the same transport as Raft's messages.
 */
export const HostMessageType = {
  Forward: 20,
  ForwardReply: 21,
} as const;

/** A proposal a follower hands its leader; `ctx` is the follower's number for it. */
export interface ForwardRequest {
  type: typeof HostMessageType.Forward;
  from: PeerId;
  to: PeerId;
  term: number;
  ctx: number;
  /** How long the leader may wait for the entry to be applied. */
  timeoutMs: number;
  data: Uint8Array;
}

/** The leader's outcome for a forwarded proposal (see lib/node/outcome.ts). */
export interface ForwardReply {
  type: typeof HostMessageType.ForwardReply;
  from: PeerId;
  to: PeerId;
  term: number;
  ctx: number;
  status: number;
  leader: PeerId;
  /** Where the proposal's entry sat, -1 when it got none. */
  index: number;
  data: Uint8Array;
  message: string;
}

export type HostMessage = ForwardRequest | ForwardReply;
export type WireMessage = Message | HostMessage;

export function isHostMessage(m: WireMessage): m is HostMessage {
  return m.type === HostMessageType.Forward || m.type === HostMessageType.ForwardReply;
}
