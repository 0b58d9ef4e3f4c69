import type { MessagePort } from 'node:worker_threads';
import type { SerializedError } from '../api/errors.js';
import type { HostStatus, PeerTiming } from './host.js';
import type { Status } from './outcome.js';
import type { MeterFigures } from '../metrics/peer-meter.js';
import type { ConfigChange } from '../raft/config.js';

/** Everything a peer worker is told when it boots (posted once, with its ports transferred). */
export interface PeerBoot {
  id: number;
  n: number;
  /** The voters the group started with (default 0..n-1); [] for a peer that joins a running group. */
  voters?: number[];
  incarnation: number;
  seed: number;
  timing: PeerTiming;
  host: {
    maxInflight: number;
    preVote: boolean;
    refuseWithoutQuorum: boolean;
    leaseReads: boolean;
    leaseMarginTicks?: number;
    snapshotThreshold: number;
    snapshotRatio: number;
    maxCommandBytes: number;
    maxQueryBytes: number;
    maxPending?: number;
    maxPendingBytes?: number;
  };
  /** Durable storage file; volatile memory when absent. shareReads: others may read it while it is open (SqliteOptions). */
  storage?: { file: string; fsync: boolean; shareReads: boolean };
  /** peer id -> port connected to that peer's worker */
  ports: Record<number, MessagePort>;
  /** The lab's fault-injecting network (its shared state); absent: a plain, healthy network. */
  faults?: SharedArrayBuffer;
  /** Where the worker reports leader changes (when someone listens). */
  events?: MessagePort;
  stateMachine: { module: string; options?: unknown };
}

/** A peer's view of who leads, posted on its events port whenever it changes. */
export interface LeaderEvent {
  term: number;
  leader: number;
}

export interface PeerStatus extends HostStatus {
  incarnation: number;
  /** Undecodable or misaddressed messages the peer dropped (peer and client channels). */
  garbage: number;
  /** The JavaScript heap of the peer's thread (V8's used and total heap sizes, bytes). */
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Leader changes, client proposals by outcome with their latency, and durable writes' latency (for metrics). */
  meter: MeterFigures;
  /** Peer messages and bytes sent and received by type (groups count them; the lab does not). */
  traffic?: { sent: Record<number, { messages: number; bytes: number }>; received: Record<number, { messages: number; bytes: number }> };
  /** CPU time the peer's thread has used, in ms (Linux only; 10 ms resolution). */
  cpuMs?: number;
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

/** What a peer worker posts to its parent just before it dies of an error. */
export interface PeerFatal {
  fatal: SerializedError;
}

export type BootResult = { ok: true } | { ok: false; error: SerializedError };

/** Start() on a starter port (PeerControl.attachStarter): a request id and the command. */
export type StartRequest = [id: number, command: Uint8Array];
/** Its answer: the id and Start()'s result, or the id and the error's name and message if Start() threw. */
export type StartReply = [id: number, index: number, term: number, isLeader: boolean] | [id: number, errorName: string, errorMessage: string];

/** The control-plane API a peer worker exposes through comlink. */
export interface PeerControl {
  /** Resolves once the peer runs, or says why it could not start. */
  ready(): Promise<BootResult>;
  getState(): PeerState;
  status(): PeerStatus;
  /** The service captured everything through `index` in `data`: compact the log (the lab's Snapshot()). */
  compact(index: number, data: Uint8Array): void;
  /** Snapshot the state machine now and compact the log. */
  takeSnapshot(): boolean;
  transferLeadership(to: number, timeoutMs: number): Promise<{ status: Status; message?: string; leader: number }>;
  /** A single-server membership change through this peer (it must lead); Ok once it is applied here. */
  changeMembership(change: ConfigChange, timeoutMs: number): Promise<{ status: Status; message?: string; leader: number; code?: string }>;
  setPeerPort(peer: number, port: MessagePort): void;
  /** An extra inbound port treated as peer traffic (tests of bad input). */
  attachMailbox(port: MessagePort): void;
  /** A port for Figure 2's Start() (the lab's interface: append if leading, answer at once): StartRequest in, StartReply out, cheaper than a call through this API. */
  attachStarter(port: MessagePort): void;
  /** A client channel (proposals and reads). */
  attachClient(port: MessagePort): void;
  stop(): void;
}
