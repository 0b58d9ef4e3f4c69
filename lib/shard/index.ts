export { NSHARDS, key2shard, emptyConfig, copyConfig, configToWire, configFromWire, type ShardConfig, type ConfigWire } from './config.js';
export { rebalance } from './rebalance.js';
export { ControllerState } from './controller.js';
export { ControllerClerk, ShardCtrlerError, type JoinGroups } from './controller-clerk.js';
export { parseCtrlerCommand, CtrlerRefusal, type CtrlerErr, type CtrlerOp, type CtrlerCommand } from './controller-protocol.js';

/** The shard controller as a group's state machine: `RaftGroup.open({ peers: 3, stateMachine: shardControllerStateMachine })`. */
export const shardControllerStateMachine = { module: new URL('./controller.js', import.meta.url).href } as const;
export { ShardKvState, ShardStatus, statusName, type ShardData, type StepReply } from './shardkv-state.js';
export type { ShardKvStep, GroupStateWire } from './shardkv-service.js';
export { ShardClerk } from './shard-clerk.js';
export { GroupCoordinator, POLL_MS } from './coordinator.js';
export type { ShardKvOptions } from './shardkv-service.js';
export { ShardedService, type ShardedOptions } from './deployment.js';
export { GroupDirectory, DirectoryClient } from './directory.js';
