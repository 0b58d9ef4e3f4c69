import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { Comlink, nodeEndpoint } from '../lib/transport/comlink.js';
import { TcpTransport } from '../lib/transport/tcp-transport.js';
import { PeerHost } from '../lib/node/host.js';
import { realClock } from '../lib/node/real-clock.js';
import { threadCpuMs } from '../lib/node/thread-cpu.js';
import { Status, type Outcome, type OutcomeCallback } from '../lib/node/outcome.js';
import type { ByteStateMachine } from '../lib/node/seams.js';
import { byteStateMachine, encodeValue, loadStateMachine } from '../lib/api/state-machine.js';
import { ClientServer } from '../lib/net/client-server.js';
import { decodeAdmin, type NodeReport } from '../lib/net/admin.js';
import { formatHostPort } from '../lib/net/host-port.js';
import type { NodeBoot, NodeBootResult, NodeControl, NodeFigures } from '../lib/net/node-boot.js';
import { SqliteStorage } from '../storage/sqlite.js';
import { PeerMeter } from '../lib/metrics/peer-meter.js';
import type { NodeLog } from '../lib/net/node-boot.js';

/**
 * The worker of one node process (`actor-raft serve`): its peer host, the
 * TCP transport to the other members and the client port, all on this
 * thread, so neither peer traffic nor client requests hop through the main
 * thread. The sockets open first: a node whose address is taken fails
 * before it opens its store.
 */
const b = workerData as NodeBoot;

interface Running {
  host: PeerHost;
  transport: TcpTransport;
  clients: ClientServer;
}

let node: Running | undefined;
const meter = new PeerMeter();

/** A log line for the main thread's logger (events are rare: role and leader changes, snapshots, errors). */
function log(line: NodeLog): void {
  parentPort!.postMessage({ log: line });
}
let failure: { name: string; message: string } | undefined;
let stopped = false;

function report(r: Running): NodeReport {
  const s = r.host.status();
  const t = r.transport.stats();
  const c = r.clients.stats();
  return {
    name: b.members[b.id]!.name,
    id: b.id,
    clusterId: b.clusterId,
    client: formatHostPort(r.clients.address()),
    term: s.term,
    role: s.role,
    leader: s.leader >= 0 ? (b.members[s.leader]?.name ?? '') : '',
    commitIndex: s.commitIndex,
    appliedIndex: s.stateMachineIndex,
    lastIndex: s.lastIndex,
    snapshotIndex: s.snapshotIndex,
    members: b.members.map((m, id) => ({ id, name: m.name, peer: formatHostPort(m) })),
    refusedConnections: { peer: t.refusedConnections, client: c.refusedConnections },
    garbageConnections: { peer: t.garbageConnections, client: c.garbageConnections },
  };
}

function admin(r: Running): (payload: Uint8Array, done: OutcomeCallback) => void {
  return (payload, done) => {
    const leader = r.host.status().leader;
    const reply = (o: Omit<Outcome, 'leader'>) => done({ ...o, leader });
    const req = decodeAdmin(payload);
    if (typeof req === 'string') return reply({ status: Status.Rejected, message: req });
    if (req[0] === 'status') return reply({ status: Status.Ok, data: encodeValue(report(r)) });
    const to = b.members.findIndex((m) => m.name === req[1]);
    if (to < 0) return reply({ status: Status.Rejected, message: `there is no member ${JSON.stringify(req[1])} (members: ${b.members.map((m) => m.name).join(', ')})` });
    r.host.transferLeadership(to, req[2], (o) => {
      const name = o.leader >= 0 ? (b.members[o.leader]?.name ?? '') : '';
      done(o.status === Status.Ok ? { status: Status.Ok, data: encodeValue(b.members[to]!.name), leader: o.leader } : { ...o, message: o.message ?? `the transfer ended with status ${o.status} (leader: ${name || 'none'})` });
    });
  };
}

const booting: Promise<NodeBootResult> = (async () => {
  let transport: TcpTransport | undefined;
  let clients: ClientServer | undefined;
  let storage: SqliteStorage | undefined;
  try {
    transport = await TcpTransport.open({ id: b.id, peers: b.members, tls: b.tls, listen: b.listenPeer });
    clients = await ClientServer.open({ listen: b.listenClient, tls: b.tls });
    storage = new SqliteStorage(b.store, { peer: b.id, fsync: b.fsync });
    const timed = meter.timeStorage(storage);
    const sm = await loadStateMachine(b.stateMachine, { peer: b.id, peers: b.members.length, incarnation: 0 }, (url) => import(url));
    const bytes: ByteStateMachine = (sm as { codec?: string }).codec === 'bytes' ? (sm as unknown as ByteStateMachine) : byteStateMachine(sm);
    let lastRole = '';
    let lastLeader = -2;
    const host: PeerHost = new PeerHost(
      { id: b.id, peers: b.members.length, seed: b.seed, timing: b.timing, preVote: true, snapshotThreshold: b.snapshotThreshold, snapshotRatio: b.snapshotRatio },
      { storage: timed, transport, clock: realClock, stateMachine: bytes },
      {
        leaderChanged(term, leader) {
          meter.leaderChanged(term, leader);
          // Called from inside the host's drain (and once while it is built): read the role when the turn is done.
          setImmediate(() => {
            const role = host.status().role;
            if (role === lastRole && leader === lastLeader) return;
            const leaderName = leader >= 0 ? b.members[leader]!.name : '';
            const msg = role === 'leader' ? 'became leader' : role === 'candidate' || role === 'precandidate' ? `started an election (${role})` : leader >= 0 ? `following ${leaderName}` : 'no leader known';
            log({ level: 'info', msg, term, role, leader: leaderName });
            lastRole = role;
            lastLeader = leader;
          });
        },
        snapshot(kind, index, bytes) {
          log({ level: 'info', msg: kind === 'taken' ? 'took a snapshot' : 'installed a snapshot from the leader', term: host ? host.getState().term : 0, index, bytes });
        },
      },
    );
    const r: Running = { host, transport, clients };
    transport.onLost = (p) => host.unreachable(p);
    transport.listen((m) => host.receive(m));
    clients.serve(host, { admin: admin(r), meter });
    node = r;
    if (stopped) stop();
    return { ok: true, peer: transport.address(), client: clients.address() };
  } catch (e) {
    clients?.close();
    transport?.close();
    storage?.close();
    failure = { name: (e as Error)?.name ?? 'Error', message: (e as Error)?.message ?? String(e) };
    return { ok: false, error: failure };
  }
})();

function stop(): void {
  stopped = true;
  if (!node) return;
  node.clients.close();
  // The host closes its storage, transport and state machine.
  node.host.stop();
}

const api: NodeControl = {
  ready: () => booting,
  figures(): NodeFigures {
    if (!node) throw new Error(failure ? `the node failed to start: ${failure.message}` : 'the node is still starting');
    const cpuMs = threadCpuMs();
    return {
      report: report(node),
      host: node.host.status(),
      transport: node.transport.stats(),
      clients: node.clients.stats(),
      meter: meter.figures(),
      heapUsedBytes: getHeapStatistics().used_heap_size,
      ...(cpuMs === undefined ? {} : { cpuMs }),
    };
  },
  stop,
};

Comlink.expose(api, nodeEndpoint(parentPort!));
