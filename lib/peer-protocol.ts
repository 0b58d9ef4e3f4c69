import type { MessagePort } from 'node:worker_threads';
import type { CoreStatus } from './raft/core.js';

/** Timing options of a peer, in the units the core and its host use. */
export interface PeerTiming {
  /** Milliseconds between two core ticks. */
  tickMs: number;
  /** Election timeout, drawn from [electionTicks, 2*electionTicks) ticks. */
  electionTicks: number;
  /** Heartbeat interval in ticks. */
  heartbeatTicks: number;
}

export interface PeerWorkerData {
  id: number;
  n: number;
  incarnation: number;
  seed: number;
  timing: PeerTiming;
  /** Unacknowledged AppendEntries per follower. */
  maxInflight: number;
  preVote: boolean;
  refuseWithoutQuorum: boolean;
  faults: SharedArrayBuffer;
  /** peer id -> port connected to that peer's worker */
  ports: Record<number, MessagePort>;
  /** applied entries flow to the main thread on this port */
  applyPort: MessagePort;
  /** Durable storage file; volatile memory when absent. */
  storage?: { file: string; fsync: boolean };
  /** Run the key/value service on the apply stream (instead of posting it to the main thread). */
  kv?: { maxRaftState: number };
}

export interface StartResult {
  index: number;
  term: number;
  isLeader: boolean;
}

export interface PeerState {
  term: number;
  isLeader: boolean;
}

export interface PeerStatus extends CoreStatus {
  incarnation: number;
  garbage: number;
}

/**
 * One batch on the apply stream: a snapshot to restore first (on restart, or
 * received from the leader), then [index, term, command bytes] per entry.
 */
export interface ApplyBatch {
  incarnation: number;
  snapshot?: { index: number; term: number; data: Uint8Array };
  entries: [number, number, Uint8Array][];
}

/** The control-plane API a peer worker exposes through comlink. */
export interface PeerApi {
  start(command: Uint8Array): Promise<StartResult>;
  getState(): PeerState;
  status(): PeerStatus;
  /** The service captured everything through `index` in `data`: compact the log. */
  snapshot(index: number, data: Uint8Array): void;
  setPeerPort(peer: number, port: MessagePort): void;
  attachMailbox(port: MessagePort): void;
  /** A channel from a key/value clerk (the service must be on). */
  attachClient(port: MessagePort): void;
  stop(): void;
}
