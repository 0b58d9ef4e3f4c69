import type { PeerTiming } from '../node/host.js';
import type { TlsFiles } from '../tls/tls-files.js';
import type { TcpPeer, TcpTransportStats } from '../transport/tcp-transport.js';
import type { HostPort } from './host-port.js';
import type { NodeReport } from './admin.js';
import type { ClientServerStats } from './client-server.js';
import type { HostStatus } from '../node/host.js';
import type { MeterFigures } from '../metrics/peer-meter.js';

/** A structured log line from the node's worker: the main thread adds the node's name and id. */
export interface NodeLog {
  level: 'info' | 'warn' | 'error';
  msg: string;
  term: number;
  [field: string]: unknown;
}

/** What `actor-raft serve` hands its node worker (as workerData). */
export interface NodeBoot {
  id: number;
  clusterId: string;
  /** The members this node knows of at start, with their ids. */
  members: TcpPeer[];
  /** The cluster's initial voters; [] for a node that joins a running cluster. */
  voters: number[];
  tls: TlsFiles;
  listenPeer: HostPort;
  listenClient: HostPort;
  store: string;
  fsync: boolean;
  seed: number;
  timing: PeerTiming;
  snapshotThreshold: number;
  snapshotRatio: number;
  stateMachine: { module: string; options?: unknown };
}

/** Everything a node's worker measures, for its status and its metrics. */
export interface NodeFigures {
  report: NodeReport;
  host: HostStatus;
  transport: TcpTransportStats;
  clients: ClientServerStats;
  meter: MeterFigures;
  heapUsedBytes: number;
  cpuMs?: number;
}

export type NodeBootResult = { ok: true; peer: HostPort; client: HostPort } | { ok: false; error: { name: string; message: string } };

/** The node worker's control plane, through comlink. */
export interface NodeControl {
  ready(): Promise<NodeBootResult>;
  figures(): NodeFigures;
  stop(): void;
}
