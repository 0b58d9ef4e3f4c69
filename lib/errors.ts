export { RaftOptionError as OptionError } from './raft/types.js';

/** A call was made on a peer whose worker is not running (never started, crashed or stopped). */
export class PeerNotRunningError extends Error {
  override name = 'PeerNotRunningError';
  constructor(readonly peer: number, what: string) {
    super(`${what}: peer ${peer} is not running (it was crashed, stopped or never started)`);
  }
}

/** A call was made on a cluster that has been closed. */
export class ClusterClosedError extends Error {
  override name = 'ClusterClosedError';
  constructor(what: string) {
    super(`${what}: the cluster is closed`);
  }
}
