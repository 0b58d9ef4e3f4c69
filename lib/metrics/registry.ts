import { Registry, type Metric } from 'prom-client';
import type { HostStatus } from '../node/host.js';
import { MessageType } from '../raft/types.js';
import { HostMessageType } from '../node/messages.js';
import { Status } from '../node/outcome.js';
import { LATENCY_BUCKETS, type HistogramFigures } from './histogram.js';
import type { MeterFigures } from './peer-meter.js';

/** One peer's figures as its thread reported them, with the labels that name it. */
export interface PeerFigures {
  labels: Record<string, string>;
  host: HostStatus;
  meter?: MeterFigures;
  /** Network counters by message type (the TCP transport's). */
  traffic?: { sent: Record<number, { messages: number; bytes: number }>; received: Record<number, { messages: number; bytes: number }> };
  connections?: { refused: Record<string, number>; garbage: Record<string, number> };
  heapUsedBytes?: number;
  cpuMs?: number;
}

const TYPE_NAMES = new Map<number, string>();
for (const [name, code] of Object.entries({ ...MessageType, ...HostMessageType })) TYPE_NAMES.set(code, name);
const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]));
const ROLES = ['follower', 'precandidate', 'candidate', 'leader'] as const;

type Value = { value: number; labels: Record<string, string | number>; metricName?: string };
type Kind = 'gauge' | 'counter' | 'histogram';

/**
 * A prom-client registry over the figures of peers that live on other
 * threads: each scrape asks the threads once (figures are shared by every
 * metric of that scrape) and prom-client formats them. The metrics are
 * computed from the peers' own counters, never kept a second time here, so
 * a restarted peer's counters start again from zero (Prometheus' rate()
 * treats that as a reset).
 */
export function peerRegistry(source: () => Promise<PeerFigures[]>, registry = new Registry()): Registry {
  // One scrape reads every metric in one go (prom-client awaits each in
  // turn, in microtasks once the figures are in): they share one fetch,
  // which is forgotten at the end of the turn, so the next scrape is fresh.
  let cached: Promise<PeerFigures[]> | undefined;
  const figures = (): Promise<PeerFigures[]> => {
    if (!cached) {
      const p = source();
      cached = p;
      const forget = () => setImmediate(() => {
        if (cached === p) cached = undefined;
      });
      p.then(forget, forget);
    }
    return cached;
  };
  const define = (name: string, help: string, type: Kind, values: (p: PeerFigures) => Value[]) => {
    const metric = {
      name,
      help,
      type,
      aggregator: 'sum',
      collect() {},
      reset() {},
      async get() {
        const all = await figures();
        return { name, help, type, aggregator: 'sum', values: all.flatMap((p) => values(p).map((v) => ({ ...v, labels: { ...p.labels, ...v.labels } }))) };
      },
    };
    registry.registerMetric(metric as unknown as Metric);
  };
  const one = (value: number | undefined): Value[] => (value === undefined ? [] : [{ value, labels: {} }]);
  const hostGauge = (name: string, help: string, pick: (h: HostStatus) => number, type: Kind = 'gauge') => define(name, help, type, (p) => one(pick(p.host)));

  hostGauge('actor_raft_term', 'The current term.', (h) => h.term);
  define('actor_raft_role', 'The peer\'s role: 1 for the one it has, 0 for the others.', 'gauge', (p) => ROLES.map((r) => ({ value: p.host.role === r ? 1 : 0, labels: { role: r } })));
  hostGauge('actor_raft_leader', 'The id of the leader this peer knows of, -1 for none.', (h) => h.leader);
  hostGauge('actor_raft_commit_index', 'The highest log index known to be committed.', (h) => h.commitIndex);
  hostGauge('actor_raft_applied_index', 'The last index the state machine applied.', (h) => h.stateMachineIndex);
  hostGauge('actor_raft_last_index', 'The last index in the log.', (h) => h.lastIndex);
  hostGauge('actor_raft_snapshot_index', 'The index the latest snapshot covers.', (h) => h.snapshotIndex);
  hostGauge('actor_raft_pending_proposals', 'Proposals waiting for their outcome on this peer.', (h) => h.pendingProposals);
  hostGauge('actor_raft_pending_reads', 'Reads waiting on this peer.', (h) => h.pendingReads);
  hostGauge('actor_raft_busy_answers_total', 'Requests answered Busy (flow control).', (h) => h.busyAnswers, 'counter');
  hostGauge('actor_raft_apply_errors_total', 'Commands whose apply threw.', (h) => h.applyErrors, 'counter');
  hostGauge('actor_raft_snapshots_taken_total', 'Snapshots this peer took.', (h) => h.snapshotsTaken, 'counter');
  hostGauge('actor_raft_snapshot_installs_total', 'Snapshots from a leader this peer installed.', (h) => h.snapshotsInstalled, 'counter');
  hostGauge('actor_raft_snapshot_bytes', 'The size of the latest snapshot.', (h) => h.snapshotBytes);
  define('actor_raft_leader_changes_total', 'Times this peer saw a new leader.', 'counter', (p) => one(p.meter?.leaderChanges));
  define('actor_raft_proposals_total', 'Client proposals answered, by outcome.', 'counter', (p) =>
    Object.entries(p.meter?.proposals ?? {}).map(([code, n]) => ({ value: n, labels: { outcome: STATUS_NAMES.get(Number(code)) ?? code } })),
  );
  define('actor_raft_proposal_duration_seconds', 'Time from a client proposal\'s arrival to its answer.', 'histogram', (p) => histogram('actor_raft_proposal_duration_seconds', p.meter?.proposalSeconds));
  define('actor_raft_storage_save_duration_seconds', 'Time to write one batch durably (SQLite write and fsync).', 'histogram', (p) => histogram('actor_raft_storage_save_duration_seconds', p.meter?.saveSeconds));
  const traffic = (dir: 'sent' | 'received', field: 'messages' | 'bytes') => (p: PeerFigures) =>
    Object.entries(p.traffic?.[dir] ?? {}).map(([code, c]) => ({ value: c[field], labels: { type: TYPE_NAMES.get(Number(code)) ?? code } }));
  define('actor_raft_messages_sent_total', 'Peer messages sent, by type.', 'counter', traffic('sent', 'messages'));
  define('actor_raft_message_bytes_sent_total', 'Bytes of peer messages sent, by type.', 'counter', traffic('sent', 'bytes'));
  define('actor_raft_messages_received_total', 'Peer messages received, by type.', 'counter', traffic('received', 'messages'));
  define('actor_raft_message_bytes_received_total', 'Bytes of peer messages received, by type.', 'counter', traffic('received', 'bytes'));
  define('actor_raft_snapshot_sends_total', 'Snapshots sent to followers (InstallSnapshot messages).', 'counter', (p) => (p.traffic ? one(p.traffic.sent[MessageType.Snapshot]?.messages ?? 0) : []));
  const conns = (kind: 'refused' | 'garbage') => (p: PeerFigures) => Object.entries(p.connections?.[kind] ?? {}).map(([port, n]) => ({ value: n, labels: { port } }));
  define('actor_raft_refused_connections_total', 'Connections refused at the TLS handshake (no certificate, another CA\'s, a name not in the cluster), by port.', 'counter', conns('refused'));
  define('actor_raft_garbage_connections_total', 'Connections closed for a bad frame length or undecodable bytes, by port.', 'counter', conns('garbage'));
  define('actor_raft_peer_heap_used_bytes', 'The JavaScript heap the peer\'s thread uses.', 'gauge', (p) => one(p.heapUsedBytes));
  define('actor_raft_peer_cpu_seconds_total', 'CPU time the peer\'s thread has used.', 'counter', (p) => one(p.cpuMs === undefined ? undefined : p.cpuMs / 1000));
  return registry;
}

function histogram(name: string, h: HistogramFigures | undefined): Value[] {
  if (!h) return [];
  const out: Value[] = [];
  let cumulative = 0;
  LATENCY_BUCKETS.forEach((le, k) => {
    cumulative += h.counts[k]!;
    out.push({ metricName: `${name}_bucket`, labels: { le }, value: cumulative });
  });
  out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count });
  out.push({ metricName: `${name}_sum`, labels: {}, value: h.sum });
  out.push({ metricName: `${name}_count`, labels: {}, value: h.count });
  return out;
}
