export * from './config.js';
export * from './kv-config.js';
export { Cluster, ClusterClosedError, DEFAULT_TIMING, type Applied, type AppliedSnapshot, type ApplyListener, type ClusterOptions } from './cluster.js';
export { FaultState } from './faults.js';
export { labEnds, type LabClientLink } from './lab-ends.js';
export type { PeerState, PeerStatus, StartResult } from '../node/boot.js';
export type { PeerTiming } from '../node/host.js';
export { ServiceGroup, type ServiceGroupOptions } from './service-group.js';
export { CtrlerConfig, type CtrlerClient } from './ctrler-config.js';
