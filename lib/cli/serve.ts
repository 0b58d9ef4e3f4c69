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
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { Comlink, nodeEndpoint, type Remote } from '../transport/comlink.js';
import { readTlsFiles, TlsConfigError, checkTlsFiles } from '../tls/tls-files.js';
import { parseInitialCluster, ClusterSpecError } from '../net/cluster-spec.js';
import { parseHostPort, formatHostPort, AddressError, type HostPort } from '../net/host-port.js';
import { checkDataDir, claimDataDir, DataDirError } from '../net/member-dir.js';
import type { NodeBoot, NodeControl } from '../net/node-boot.js';

export const SERVE_USAGE = `usage: actor-raft serve --name NAME --initial-cluster NAME=HOST:PORT,... --ca FILE --cert FILE --key FILE [options]
  --name NAME                 this member (its certificate's common name)
  --initial-cluster LIST      every member as name=host:port (the address its peers dial), comma-separated
  --initial-cluster-token T   tells clusters with the same members apart (default none)
  --listen-peer HOST:PORT     where to accept peers (default this member's address in --initial-cluster)
  --listen-client HOST:PORT   where to accept clients (default 127.0.0.1:2379)
  --data-dir DIR              the node's store (default ./NAME.actor-raft)
  --ca FILE --cert FILE --key FILE
                              the cluster's CA and this node's certificate and key (mutual TLS, required)
  --state-machine MODULE      the state machine's module (default the key/value service)
  --snapshot-threshold BYTES  snapshot once the Raft state reaches this (default 8388608; -1 never)
  --unsafe-no-fsync           do not fsync (a machine crash may lose acknowledged writes)`;

/** A configuration that cannot run: the message names the problem. */
export class ServeConfigError extends Error {
  override name = 'ServeConfigError';
}

export interface ServeConfig {
  boot: NodeBoot;
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
        'listen-peer': { type: 'string' },
        'listen-client': { type: 'string' },
        'data-dir': { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        'state-machine': { type: 'string' },
        'snapshot-threshold': { type: 'string' },
        'unsafe-no-fsync': { type: 'boolean' },
      },
    });
  } catch (e) {
    throw new ServeConfigError((e as Error).message);
  }
  const v = parsed.values;
  if (!v.name) throw new ServeConfigError('--name is required');
  if (!v['initial-cluster']) throw new ServeConfigError('--initial-cluster is required');
  const spec = parseInitialCluster(v['initial-cluster'], v['initial-cluster-token'] ?? '');
  const id = spec.members.findIndex((m) => m.name === v.name);
  if (id < 0) throw new ServeConfigError(`--name ${v.name} is not in --initial-cluster (members: ${spec.members.map((m) => m.name).join(', ')})`);
  const me = spec.members[id]!;
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
    fresh,
    boot: {
      id,
      clusterId: spec.clusterId,
      members: spec.members,
      tls,
      listenPeer,
      listenClient,
      store,
      fsync: !v['unsafe-no-fsync'],
      seed: randomInt(2 ** 31),
      timing: { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 },
      snapshotThreshold,
      snapshotRatio: 1,
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
  } catch (e) {
    if (KNOWN.some((k) => e instanceof k)) {
      console.error(`actor-raft serve: ${(e as Error).message}`);
      return e instanceof ServeConfigError && /required|Unknown option|unexpected argument/i.test((e as Error).message) ? 2 : 1;
    }
    throw e;
  }
  const { boot } = config;
  if (config.fresh) claimDataDir(config.dataDir, { clusterId: boot.clusterId, name: config.name, id: boot.id });
  const worker = new Worker(new URL('../../workers/node-peer.js', import.meta.url), { workerData: boot });
  const api = Comlink.wrap<NodeControl>(nodeEndpoint(worker)) as Remote<NodeControl>;
  let exited = false;
  const died = new Promise<number>((resolve) => {
    worker.once('error', (e) => console.error(`actor-raft serve: the node failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`));
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
  console.log(`${config.name} (member ${boot.id} of ${boot.members.length}, cluster ${boot.clusterId}) serving: peers on ${formatHostPort(ready.peer)}, clients on ${formatHostPort(ready.client)}, data in ${config.dataDir}`);
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      console.log(`${config.name}: ${signal}, stopping`);
      void api
        .stop()
        .catch(() => {})
        .then(() => worker.terminate())
        .then(() => resolve(0));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return Promise.race([stopped, died]);
}
