export { Cluster, DEFAULT_TIMING, type Applied, type ApplyListener, type ClusterOptions } from './cluster.js';
export { ClusterClosedError, OptionError, PeerNotRunningError } from './errors.js';
export type { PeerState, PeerStatus, PeerTiming, StartResult } from './peer-protocol.js';
export * from './raft/index.js';
