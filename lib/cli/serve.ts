/**
 * `actor-raft serve`: one node of a cluster in this process, in the style
 * of etcd's flags. Its peer runs in a worker thread that owns the node's
 * sockets (peers and clients, both mutual TLS) and its SQLite store; this
 * thread checks the configuration, starts the worker, and stops it on
 * SIGINT or SIGTERM. Everything that can be checked before the first file
 * is touched is checked first, and a node that cannot start says why and
 * exits 1 with its data directory as it was.
 */
import { Worker } from 'node:worker_threads';
import { createServer } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { pino, type Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { peerRegistry } from '../metrics/registry.js';
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { Comlink, nodeEndpoint, type Remote } from '../transport/comlink.js';
import { readTlsFiles, TlsConfigError, checkTlsFiles } from '../tls/tls-files.js';
import { parseInitialCluster, parseMembers, ClusterSpecError } from '../net/cluster-spec.js';
import type { TcpPeer } from '../transport/tcp-transport.js';
import { parseHostPort, formatHostPort, AddressError, type HostPort } from '../net/host-port.js';
import { checkDataDir, claimDataDir, DataDirError } from '../net/member-dir.js';
import type { NodeBoot, NodeControl, NodeFigures, NodeLog } from '../net/node-boot.js';
import { DEFAULT_SNAPSHOT_RATIO } from '../node/snapshot-policy.js';

export const SERVE_USAGE = `usage: actor-raft serve --name NAME --initial-cluster NAME=HOST:PORT,... --ca FILE --cert FILE --key FILE [options]
       actor-raft serve --name NAME --join CLUSTER-ID --members ID:NAME=HOST:PORT,... --ca FILE --cert FILE --key FILE [options]
  --name NAME                 this member (its certificate's common name)
  --initial-cluster LIST      every member as name=host:port (the address its peers dial), comma-separated
  --initial-cluster-token T   tells clusters with the same members apart (default none)
  --join CLUSTER-ID           join a running cluster (after \`actor-raft member add\`, which prints this and --members)
  --members LIST              with --join: every member as id:name=host:port, this one included
  --listen-peer HOST:PORT     where to accept peers (default this member's address in --initial-cluster)
  --listen-client HOST:PORT   where to accept clients (default 127.0.0.1:2379)
  --data-dir DIR              the node's store (default ./NAME.actor-raft)
  --ca FILE --cert FILE --key FILE
                              the cluster's CA and this node's certificate and key (mutual TLS, required)
  --state-machine MODULE      the state machine's module (default the key/value service)
  --snapshot-threshold BYTES  snapshot once the Raft state reaches this (default 8388608; -1 never)
  --listen-metrics HOST:PORT  serve Prometheus metrics over HTTP at /metrics (default off)
  --log-level LEVEL           error, warn, info (default) or debug; logs are JSON lines on stdout
  --unsafe-no-fsync           do not fsync (a machine crash may lose acknowledged writes)`;

/** A configuration that cannot run: the message names the problem. */
export class ServeConfigError extends Error {
  override name = 'ServeConfigError';
}

export interface ServeConfig {
  boot: NodeBoot;
  metrics?: HostPort;
  logLevel: string;
  dataDir: string;
  fresh: boolean;
  name: string;
}

/** Read and check the flags; throws ServeConfigError (or TlsConfigError, ClusterSpecError, DataDirError) naming the problem. */
export function serveConfig(args: string[]): ServeConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        name: { type: 'string' },
        'initial-cluster': { type: 'string' },
        'initial-cluster-token': { type: 'string' },
        join: { type: 'string' },
        members: { type: 'string' },
        'listen-peer': { type: 'string' },
        'listen-client': { type: 'string' },
        'data-dir': { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        'state-machine': { type: 'string' },
        'snapshot-threshold': { type: 'string' },
        'unsafe-no-fsync': { type: 'boolean' },
        'listen-metrics': { type: 'string' },
        'log-level': { type: 'string' },
      },
    });
  } catch (e) {
    throw new ServeConfigError((e as Error).message);
  }
  const v = parsed.values;
  if (!v.name) throw new ServeConfigError('--name is required');
  let spec: { members: TcpPeer[]; clusterId: string };
  let voters: number[];
  if (v.join !== undefined) {
    if (v['initial-cluster'] !== undefined) throw new ServeConfigError('--join and --initial-cluster exclude each other (a joining node takes --members)');
    if (!/^[0-9a-f]{16}$/.test(v.join)) throw new ServeConfigError(`--join takes the cluster's id (16 hex digits, as \`actor-raft member add\` prints it), got ${v.join}`);
    if (!v.members) throw new ServeConfigError('--join needs --members (as `actor-raft member add` prints it)');
    spec = { members: parseMembers(v.members), clusterId: v.join };
    voters = [];
  } else {
    if (!v['initial-cluster']) throw new ServeConfigError('--initial-cluster is required');
    if (v.members !== undefined) throw new ServeConfigError('--members is for a joining node (with --join)');
    spec = parseInitialCluster(v['initial-cluster'], v['initial-cluster-token'] ?? '');
    voters = spec.members.map((m) => m.id!);
  }
  const me = spec.members.find((m) => m.name === v.name);
  if (!me) throw new ServeConfigError(`--name ${v.name} is not in ${v.join !== undefined ? '--members' : '--initial-cluster'} (members: ${spec.members.map((m) => m.name).join(', ')})`);
  const id = me.id!;
  const tls = readTlsFiles({ ca: v.ca ?? '', cert: v.cert ?? '', key: v.key ?? '' });
  const cn = checkTlsFiles(tls, { ca: v.ca!, cert: v.cert!, key: v.key! });
  if (cn !== v.name) throw new TlsConfigError(`the certificate ${v.cert} is for ${JSON.stringify(cn)}, not for --name ${v.name}`);
  const address = (flag: string, raw: string | undefined, def: HostPort): HostPort => {
    if (raw === undefined) return def;
    try {
      return parseHostPort(raw, flag);
    } catch (e) {
      throw new ServeConfigError((e as AddressError).message);
    }
  };
  const listenPeer = address('--listen-peer', v['listen-peer'], { host: me.host, port: me.port });
  const listenClient = address('--listen-client', v['listen-client'], { host: '127.0.0.1', port: 2379 });
  const metrics = v['listen-metrics'] === undefined ? undefined : address('--listen-metrics', v['listen-metrics'], listenClient);
  const logLevel = v['log-level'] ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) throw new ServeConfigError(`--log-level must be error, warn, info or debug, got ${logLevel}`);
  const taken = [listenPeer, listenClient, ...(metrics ? [metrics] : [])].map(formatHostPort);
  if (new Set(taken).size !== taken.length) throw new ServeConfigError(`--listen-peer, --listen-client and --listen-metrics must differ (${taken.join(', ')})`);
  if (formatHostPort(listenPeer) === formatHostPort(listenClient)) throw new ServeConfigError(`--listen-peer and --listen-client are both ${formatHostPort(listenPeer)}`);
  let snapshotThreshold = 8 << 20;
  if (v['snapshot-threshold'] !== undefined) {
    snapshotThreshold = Number(v['snapshot-threshold']);
    if (!Number.isSafeInteger(snapshotThreshold) || (snapshotThreshold < 1 && snapshotThreshold !== -1)) {
      throw new ServeConfigError(`--snapshot-threshold must be -1 (never) or a positive number of bytes, got ${v['snapshot-threshold']}`);
    }
  }
  const dataDir = v['data-dir'] ?? `${v.name}.actor-raft`;
  const { fresh, store } = checkDataDir(dataDir, { clusterId: spec.clusterId, name: me.name, id });
  return {
    name: me.name,
    dataDir,
    ...(metrics ? { metrics } : {}),
    logLevel,
    fresh,
    boot: {
      id,
      clusterId: spec.clusterId,
      members: spec.members,
      voters,
      tls,
      listenPeer,
      listenClient,
      store,
      fsync: !v['unsafe-no-fsync'],
      seed: randomInt(2 ** 31),
      timing: { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 },
      snapshotThreshold,
      snapshotRatio: DEFAULT_SNAPSHOT_RATIO,
      stateMachine: { module: v['state-machine'] ?? new URL('../kv/service.js', import.meta.url).href },
    },
  };
}

/** Fail now if an address cannot be listened on, before any file is written (the worker checks again when it listens). */
async function probe(at: HostPort, flag: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) =>
      reject(new ServeConfigError(e.code === 'EADDRINUSE' ? `${flag} ${formatHostPort(at)} is in use` : `${flag} ${formatHostPort(at)}: ${e.message}`)),
    );
    s.listen(at.port, at.host, () => s.close(() => resolve()));
  });
}

const KNOWN = [ServeConfigError, TlsConfigError, ClusterSpecError, DataDirError];

/** Run the node until a signal stops it; resolves with the exit code. */
export async function serve(args: string[]): Promise<number> {
  let config: ServeConfig;
  try {
    config = serveConfig(args);
    await probe(config.boot.listenPeer, '--listen-peer');
    await probe(config.boot.listenClient, '--listen-client');
    if (config.metrics) await probe(config.metrics, '--listen-metrics');
  } catch (e) {
    if (KNOWN.some((k) => e instanceof k)) {
      console.error(`actor-raft serve: ${(e as Error).message}`);
      return e instanceof ServeConfigError && /required|Unknown option|unexpected argument/i.test((e as Error).message) ? 2 : 1;
    }
    throw e;
  }
  const { boot } = config;
  const logger: Logger = pino({ level: config.logLevel, base: { node: config.name, id: boot.id } });
  if (config.fresh) claimDataDir(config.dataDir, { clusterId: boot.clusterId, name: config.name, id: boot.id });
  const worker = new Worker(new URL('../../workers/node-peer.js', import.meta.url), { workerData: boot });
  // The main thread's own lines carry the latest term the worker reported.
  let term = 0;
  worker.on('message', (m: { log?: NodeLog }) => {
    if (!m?.log) return;
    term = m.log.term;
    const { level, msg, ...fields } = m.log;
    logger[level](fields, msg);
  });
  const api = Comlink.wrap<NodeControl>(nodeEndpoint(worker)) as Remote<NodeControl>;
  let exited = false;
  const died = new Promise<number>((resolve) => {
    worker.once('error', (e) => logger.error({ term, err: e }, 'the node failed'));
    worker.once('exit', (code) => {
      exited = true;
      resolve(code === 0 ? 0 : 1);
    });
  });
  const ready = await Promise.race([api.ready(), died.then(() => ({ ok: false as const, error: { name: 'Error', message: 'the node worker exited while starting' } }))]);
  if (!ready.ok) {
    console.error(`actor-raft serve: ${ready.error.message}`);
    if (!exited) await worker.terminate();
    return 1;
  }
  let http: HttpServer | undefined;
  if (config.metrics) {
    try {
      http = await serveMetrics(config.metrics, () => api.figures(), config.name);
    } catch (e) {
      console.error(`actor-raft serve: ${(e as Error).message}`);
      await api.stop().catch(() => {});
      await worker.terminate();
      return 1;
    }
  }
  logger.info(
    { term: (await api.figures()).host.term, peer: formatHostPort(ready.peer), client: formatHostPort(ready.client), ...(http ? { metrics: `http://${formatHostPort(config.metrics!)}/metrics` } : {}), dataDir: config.dataDir, cluster: boot.clusterId, members: boot.members.length },
    'serving',
  );
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ term, signal }, 'stopping');
      http?.close();
      void api
        .stop()
        .catch(() => {})
        .then(() => worker.terminate())
        .then(() => resolve(0));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  const code = await Promise.race([stopped, died]);
  http?.close();
  return code;
}

/** GET /metrics: this node's figures (from its worker) and the process's own, in Prometheus' text format. */
async function serveMetrics(at: HostPort, figures: () => Promise<NodeFigures>, name: string): Promise<HttpServer> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  peerRegistry(async () => {
    const f = await figures();
    return [
      {
        labels: { node: name },
        host: f.host,
        meter: f.meter,
        traffic: { sent: f.transport.sent, received: f.transport.received },
        connections: {
          refused: { peer: f.transport.refusedConnections, client: f.clients.refusedConnections },
          garbage: { peer: f.transport.garbageConnections, client: f.clients.garbageConnections },
        },
        heapUsedBytes: f.heapUsedBytes,
        ...(f.cpuMs === undefined ? {} : { cpuMs: f.cpuMs }),
      },
    ];
  }, registry);
  const server = createHttpServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new ServeConfigError(e.code === 'EADDRINUSE' ? `--listen-metrics ${formatHostPort(at)} is in use` : `--listen-metrics ${formatHostPort(at)}: ${e.message}`)));
    server.listen(at.port, at.host, () => resolve());
  });
  return server;
}
