/**
 * actor-raft: Raft in worker threads, with your state machine on every peer.
 * The product API; the lab fixture is in actor-raft/testing.
 */
export { RaftGroup, type GroupOptions, type GroupStatus, type LeaderListener, type PeerReport } from './api/group.js';
export { GroupClient, type GroupHandle, type ProposeOptions, type ReadOptions } from './api/client.js';
export type { Consistency } from './api/client-protocol.js';
export type { StateMachine, StateMachineContext, StateMachineFactory, StateMachineSpec, EntryMeta, SnapshotWriter } from './api/state-machine.js';
export {
  ApplyError,
  BusyError,
  GroupClosedError,
  NotLeaderError,
  OptionError,
  OutcomeUnknownError,
  PeerNotRunningError,
  MembershipError,
  RaftError,
  RequestRejectedError,
  StateMachineError,
  TimeoutError,
  type RaftErrorCode,
} from './api/errors.js';
export type { PeerStatus } from './node/boot.js';
export { StorageError, type StorageErrorCode } from '../storage/sqlite.js';
export type { ConfigChange, ConfigRefusal } from './raft/config.js';
