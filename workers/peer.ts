import { parentPort, type MessagePort } from 'node:worker_threads';
import { Comlink, nodeEndpoint } from '../lib/transport/comlink.js';
import { PortTransport } from '../lib/transport/port-transport.js';
import { getHeapStatistics } from 'node:v8';
import { PeerHost } from '../lib/node/host.js';
import { ClientService } from '../lib/node/client-service.js';
import { realClock } from '../lib/node/real-clock.js';
import { threadCpuMs } from '../lib/node/thread-cpu.js';
import type { BootResult, LeaderEvent, PeerBoot, PeerControl, PeerFatal, StartReply, StartRequest } from '../lib/node/boot.js';
import type { ByteStateMachine } from '../lib/node/seams.js';
import { byteStateMachine, loadStateMachine } from '../lib/api/state-machine.js';
import { serializeError, type SerializedError } from '../lib/api/errors.js';
import { FaultTransport } from '../lib/testing/fault-transport.js';
import { FaultState } from '../lib/testing/faults.js';
import { bundledStateMachines } from '../lib/node/bundled-state-machines.js';
import { SqliteStorage } from '../storage/sqlite.js';
import { MemoryStorage, type Storage } from '../storage/storage.js';
import { PeerMeter } from '../lib/metrics/peer-meter.js';
import { MAX_PEER_ID } from '../lib/raft/types.js';

/**
 * A peer worker: builds one PeerHost from its boot message (storage, the
 * network, the state machine named by module) and exposes its control
 * plane through comlink. Nothing here is specific to any service.
 */

// Inside the bundle, which runs from a V8 code cache, import() must come
// from the boot file (scripts/peer-boot.cjs); run unbundled, it is ours.
const importModule: (url: string) => Promise<unknown> =
  (globalThis as { __peerImport?: (url: string) => Promise<unknown> }).__peerImport ?? ((url) => import(url));

const builtins = bundledStateMachines(import.meta.url);

interface Booted {
  host: PeerHost;
  transport: PortTransport;
  clients: ClientService;
}

function run(b: PeerBoot): void {
  // The lab's network knows its n peers; a group's may grow (membership changes), so any peer id is heard.
  const transport = b.faults ? new FaultTransport(b.id, b.incarnation, new FaultState(b.n, b.faults)) : new PortTransport(b.id, MAX_PEER_ID + 1, b.incarnation);
  for (const [peer, port] of Object.entries(b.ports)) transport.setPort(Number(peer), port);
  if (!b.faults) transport.countTraffic();
  const earlyClients: MessagePort[] = [];
  let peer: Booted | undefined;
  let failure: SerializedError | undefined;
  let stopped = false;
  const meter = new PeerMeter();

  const booting = (async () => {
    let storage: Storage | undefined;
    try {
      storage = b.storage ? new SqliteStorage(b.storage.file, { peer: b.id, fsync: b.storage.fsync, shareReads: b.storage.shareReads }) : new MemoryStorage();
      const sm = await loadStateMachine(b.stateMachine, { peer: b.id, peers: b.n, incarnation: b.incarnation }, importModule, builtins);
      const bytes: ByteStateMachine = (sm as { codec?: string }).codec === 'bytes' ? (sm as unknown as ByteStateMachine) : byteStateMachine(sm);
      if (stopped) {
        storage.close();
        bytes.close?.();
        return;
      }
      const host = new PeerHost(
        { id: b.id, ...(b.voters ? { voters: b.voters } : { peers: b.n }), seed: b.seed, timing: b.timing, ...b.host },
        { storage: meter.timeStorage(storage), transport, clock: realClock, stateMachine: bytes },
        {
          leaderChanged: (term, leader) => {
            meter.leaderChanged(term, leader);
            b.events?.postMessage({ term, leader } satisfies LeaderEvent);
          },
        },
      );
      const clients = new ClientService(host, meter);
      for (const port of earlyClients) clients.attach(port);
      transport.onLost = (p) => host.unreachable(p);
      transport.listen((m) => host.receive(m));
      peer = { host, transport, clients };
    } catch (e) {
      storage?.close();
      failure = serializeError(e);
    }
  })();

  function running(): Booted {
    if (!peer) throw new Error(failure ? `peer ${b.id} failed to start: ${failure.message}` : `peer ${b.id} is still starting`);
    return peer;
  }

  const api: PeerControl = {
    async ready(): Promise<BootResult> {
      await booting;
      return failure ? { ok: false, error: failure } : { ok: true };
    },
    getState: () => running().host.getState(),
    status() {
      const p = running();
      const cpuMs = threadCpuMs();
      const heap = getHeapStatistics();
      return {
        ...p.host.status(),
        incarnation: b.incarnation,
        garbage: p.transport.garbage() + p.clients.garbage(),
        heapUsedBytes: heap.used_heap_size,
        heapTotalBytes: heap.total_heap_size,
        meter: meter.figures(),
        ...(() => {
          const traffic = p.transport.trafficCounts();
          return traffic ? { traffic } : {};
        })(),
        ...(cpuMs === undefined ? {} : { cpuMs }),
      };
    },
    compact: (index, data) => running().host.compact(index, data),
    takeSnapshot: () => running().host.takeSnapshot(),
    changeMembership(change, timeoutMs) {
      return new Promise((resolve) =>
        running().host.changeMembership(change, timeoutMs, (o) => resolve({ status: o.status, message: o.message, leader: o.leader, ...(o.code ? { code: o.code } : {}) })),
      );
    },
    transferLeadership(to, timeoutMs) {
      return new Promise((resolve) => running().host.transferLeadership(to, timeoutMs, (o) => resolve({ status: o.status, message: o.message, leader: o.leader })));
    },
    setPeerPort: (p, port) => transport.setPort(p, port),
    attachMailbox: (port) => transport.addMailbox(port),
    attachStarter(port) {
      port.on('message', ([id, command]: StartRequest) => {
        let reply: StartReply;
        try {
          const r = running().host.start(command);
          reply = [id, r.index, r.term, r.isLeader];
        } catch (e) {
          const err = e instanceof Error ? e : new Error(String(e));
          reply = [id, err.name, err.message];
        }
        port.postMessage(reply);
      });
    },
    attachClient(port) {
      if (peer) peer.clients.attach(port);
      else earlyClients.push(port);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (peer) {
        peer.clients.close();
        peer.host.stop();
      } else {
        transport.close();
      }
      b.events?.close();
    },
  };

  Comlink.expose(api, nodeEndpoint(parentPort!));
}

// A peer that dies anyway (its state machine threw where no caller can be
// told, its storage failed) says why before it ends: the supervisor marks it
// down at once and reports the error with its class and fields, which the
// worker's own error event would reduce to a plain object.
process.on('uncaughtException', (e) => {
  parentPort!.postMessage({ fatal: serializeError(e) } satisfies PeerFatal);
  process.exit(1);
});

// The supervisor may spawn this worker before a peer goes down (a warm
// spare, its modules loaded while nobody waits) and say which peer it is later.
parentPort!.once('message', (m: { boot: PeerBoot }) => run(m.boot));
