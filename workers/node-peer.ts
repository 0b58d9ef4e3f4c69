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
import { decodeAdmin, type AddedMember, type NodeReport } from '../lib/net/admin.js';
import { formatHostPort, parseHostPort } from '../lib/net/host-port.js';
import { MEMBER_NAME, parseMemberContext } from '../lib/net/cluster-spec.js';
import { MAX_PEER_ID, type ClusterConfig } from '../lib/raft/types.js';
import type { TcpPeer } from '../lib/transport/tcp-transport.js';
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
let prune: NodeJS.Timeout | undefined;
const meter = new PeerMeter();

/** A log line for the main thread's logger (events are rare: role and leader changes, snapshots, errors). */
function log(line: NodeLog): void {
  parentPort!.postMessage({ log: line });
}
let failure: { name: string; message: string } | undefined;
let stopped = false;

/**
 * Who is who: every member of the configuration in force by id, with its
 * name and address. The initial members come from the boot (the cluster's
 * initial list, or a joiner's --members); members added later carry
 * theirs in the configuration ("name=host:port").
 */
const known = new Map<number, TcpPeer>(b.members.map((m) => [m.id!, m]));
let config: ClusterConfig = { voters: b.voters, learners: [] };

function memberOf(id: number): TcpPeer | undefined {
  const ctx = config.context?.[id];
  if (ctx !== undefined) {
    const m = parseMemberContext(ctx);
    if (m) return { id, ...m };
  }
  return known.get(id);
}

function nameOf(id: number): string {
  return id < 0 ? '' : (memberOf(id)?.name ?? `#${id}`);
}

/**
 * The transport follows the configuration: new members are dialed and
 * admitted at once. Removed ones are cut off only once their removal is
 * committed (pruneMembers): until then a leader that removed itself still
 * needs its followers' answers to commit the change.
 */
function syncMembers(t: TcpTransport, c: ClusterConfig): void {
  config = c;
  // A joiner knows no configuration until the leader's first message brings one: keep whom it was told of.
  if (c.voters.length === 0) return;
  const want = new Map<number, TcpPeer>();
  for (const id of [...c.voters, ...c.learners]) {
    const m = memberOf(id);
    if (m) {
      want.set(id, m);
      known.set(id, m);
    }
  }
  for (const [id, m] of want) {
    try {
      t.setPeer(id, m);
    } catch (e) {
      log({ level: 'error', msg: `cannot admit member ${id}: ${(e as Error).message}`, term: 0 });
    }
  }
}

function pruneMembers(r: Running): void {
  const s = r.host.status();
  if (!s.configCommitted || s.config.voters.length === 0) return;
  const keep = new Set([...s.config.voters, ...s.config.learners]);
  for (const p of r.transport.members()) if (p.id !== b.id && !keep.has(p.id!)) r.transport.removePeer(p.id!);
}

function report(r: Running): NodeReport {
  const s = r.host.status();
  const t = r.transport.stats();
  const c = r.clients.stats();
  const me = known.get(b.id)!;
  return {
    name: me.name,
    id: b.id,
    clusterId: b.clusterId,
    client: formatHostPort(r.clients.address()),
    term: s.term,
    role: s.role,
    leader: s.leader >= 0 ? nameOf(s.leader) : '',
    commitIndex: s.commitIndex,
    appliedIndex: s.stateMachineIndex,
    lastIndex: s.lastIndex,
    snapshotIndex: s.snapshotIndex,
    members: [...s.config.voters.map((id) => [id, 'voter'] as const), ...s.config.learners.map((id) => [id, 'learner'] as const)].map(([id, role]) => {
      const m = memberOf(id);
      return { id, name: m?.name ?? `#${id}`, peer: m ? formatHostPort(m) : '', role };
    }),
    membersCommitted: s.configCommitted,
    refusedConnections: { peer: t.refusedConnections, client: c.refusedConnections },
    garbageConnections: { peer: t.garbageConnections, client: c.garbageConnections },
  };
}

/** Ids of members added while serving: far above the initial ones, and never reused (a log index is not). */
const ADDED_ID_BASE = 1 << 20;

function idByName(name: string): number | undefined {
  for (const id of [...config.voters, ...config.learners]) if (memberOf(id)?.name === name) return id;
  return undefined;
}

function admin(r: Running): (payload: Uint8Array, done: OutcomeCallback) => void {
  return (payload, done) => {
    const leader = r.host.status().leader;
    const reply = (o: Omit<Outcome, 'leader'>) => done({ ...o, leader });
    const req = decodeAdmin(payload);
    if (typeof req === 'string') return reply({ status: Status.Rejected, message: req });
    if (req[0] === 'status') return reply({ status: Status.Ok, data: encodeValue(report(r)) });
    const names = () => [...config.voters, ...config.learners].map(nameOf).join(', ');
    if (req[0] === 'add') {
      const [, name, address, timeoutMs] = req;
      let at;
      try {
        at = parseHostPort(address, 'the new member\'s address');
      } catch (e) {
        return reply({ status: Status.Rejected, message: (e as Error).message });
      }
      if (!MEMBER_NAME.test(name)) return reply({ status: Status.Rejected, message: `${JSON.stringify(name)} is not a member name` });
      const existing = idByName(name);
      if (existing !== undefined) return reply({ status: Status.Rejected, message: `already-member: ${name} is member ${existing}`, code: 'already-member' });
      if (!r.host.core.isLeader()) return done({ status: Status.NotLeader, message: 'not the leader', leader });
      const id = ADDED_ID_BASE + r.host.core.log.lastIndex() + 1;
      if (id > MAX_PEER_ID) return reply({ status: Status.Rejected, message: 'no member ids are left (the log passed 2^31 - 2^20 entries)' });
      const context = `${name}=${formatHostPort(at)}`;
      return r.host.changeMembership({ type: 'addLearner', id, context }, timeoutMs, (o) => {
        if (o.status !== Status.Ok) return done(o);
        const all = [...config.voters, ...config.learners].map((m) => `${m}:${nameOf(m)}=${formatHostPort(memberOf(m)!)}`);
        if (!all.some((x) => x.startsWith(`${id}:`))) all.push(`${id}:${context}`);
        done({ status: Status.Ok, data: encodeValue({ id, clusterId: b.clusterId, members: all.join(',') } satisfies AddedMember), leader: o.leader });
      });
    }
    const to = idByName(req[1]);
    if (to === undefined) return reply({ status: Status.Rejected, message: `not-member: there is no member ${JSON.stringify(req[1])} (members: ${names()})`, code: 'not-member' });
    if (req[0] === 'promote' || req[0] === 'remove') {
      return r.host.changeMembership(req[0] === 'promote' ? { type: 'promote', id: to } : { type: 'remove', id: to }, req[2], (o) =>
        done(o.status === Status.Ok ? { status: Status.Ok, data: encodeValue(to), leader: o.leader } : o),
      );
    }
    r.host.transferLeadership(to, req[2], (o) => {
      done(o.status === Status.Ok ? { status: Status.Ok, data: encodeValue(nameOf(to)), leader: o.leader } : { ...o, message: o.message ?? `the transfer ended with status ${o.status} (leader: ${nameOf(o.leader) || 'none'})` });
    });
  };
}

const booting: Promise<NodeBootResult> = (async () => {
  let transport: TcpTransport | undefined;
  let clients: ClientServer | undefined;
  let storage: SqliteStorage | undefined;
  try {
    transport = await TcpTransport.open({ id: b.id, peers: b.members, tls: b.tls, listen: b.listenPeer });
    const tcp = transport;
    clients = await ClientServer.open({ listen: b.listenClient, tls: b.tls });
    storage = new SqliteStorage(b.store, { peer: b.id, fsync: b.fsync });
    const timed = meter.timeStorage(storage);
    const sm = await loadStateMachine(b.stateMachine, { peer: b.id, peers: b.voters.length, incarnation: 0 }, (url) => import(url));
    const bytes: ByteStateMachine = (sm as { codec?: string }).codec === 'bytes' ? (sm as unknown as ByteStateMachine) : byteStateMachine(sm);
    let lastRole = '';
    let lastLeader = -2;
    const host: PeerHost = new PeerHost(
      { id: b.id, voters: b.voters, seed: b.seed, timing: b.timing, preVote: true, snapshotThreshold: b.snapshotThreshold, snapshotRatio: b.snapshotRatio },
      { storage: timed, transport, clock: realClock, stateMachine: bytes },
      {
        leaderChanged(term, leader) {
          meter.leaderChanged(term, leader);
          // Called from inside the host's drain (and once while it is built): read the role when the turn is done.
          setImmediate(() => {
            const role = host.status().role;
            if (role === lastRole && leader === lastLeader) return;
            const leaderName = nameOf(leader);
            const msg = role === 'leader' ? 'became leader' : role === 'candidate' || role === 'precandidate' ? `started an election (${role})` : leader >= 0 ? `following ${leaderName}` : 'no leader known';
            log({ level: 'info', msg, term, role, leader: leaderName });
            lastRole = role;
            lastLeader = leader;
          });
        },
        configChanged(c) {
          const before = [...config.voters, ...config.learners].join(',') + '|' + config.learners.join(',');
          syncMembers(tcp, c);
          const after = [...c.voters, ...c.learners].join(',') + '|' + c.learners.join(',');
          if (before !== after) {
            log({
              level: 'info',
              msg: 'membership changed',
              term: host ? host.getState().term : 0,
              voters: c.voters.map(nameOf),
              learners: c.learners.map(nameOf),
              ...(c.voters.includes(b.id) || c.learners.includes(b.id) || c.voters.length === 0 ? {} : { removed: true }),
            });
          }
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
    prune = setInterval(() => pruneMembers(r), 1000);
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
  clearInterval(prune);
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
