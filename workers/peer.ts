import { parentPort, type MessagePort } from 'node:worker_threads';
import { Comlink, nodeEndpoint } from '../lib/net/comlink.js';
import { FaultState } from '../lib/net/faults.js';
import { PeerTransport } from '../lib/net/transport.js';
import { RaftCore } from '../lib/raft/core.js';
import { seededRng } from '../lib/raft/prng.js';
import { KvServer } from '../lib/kv/server.js';
import { PortBatches } from '../lib/kv/port-batches.js';
import type { ApplyBatch, PeerApi, PeerWorkerData, StartResult } from '../lib/peer-protocol.js';
import { SqliteStorage, logEntryStateSize, RAFT_STATE_HEADER_BYTES } from '../storage/sqlite.js';
import { MemoryStorage, type Storage } from '../storage/storage.js';

/**
 * The peer actor: one Raft core in its own worker thread. Every input (a
 * mailbox batch, a tick, a proposal) only feeds the core and schedules one
 * drain for the end of the turn; the drain persists, sends, applies and
 * advances, so a turn's proposals share one write and one message per peer
 * (a leader's requests go out just before the write, the rest after it).
 */
function runPeer(wd: PeerWorkerData): void {
  const faults = new FaultState(wd.n, wd.faults);
  const storage: Storage = wd.storage
    ? new SqliteStorage(wd.storage.file, { peer: wd.id, fsync: wd.storage.fsync })
    : new MemoryStorage();
  const initial = storage.load();
  const core = new RaftCore({
    id: wd.id,
    peers: wd.n,
    electionTicks: wd.timing.electionTicks,
    heartbeatTicks: wd.timing.heartbeatTicks,
    maxInflight: wd.maxInflight,
    preVote: wd.preVote,
    refuseWithoutQuorum: wd.refuseWithoutQuorum,
    rng: seededRng(wd.seed),
    initial,
  });
  // With the key/value service on, it runs here on the apply stream; otherwise
  // the stream goes to the main thread.
  const kv = wd.kv
    ? new KvServer(
        {
          propose: (data) => core.propose(data),
          currentTerm: () => core.currentTerm(),
          isLeader: () => core.isLeader(),
          compact: (index, data) => {
            // The service has applied exactly what Raft handed out; never more.
            if (index <= core.status().appliedIndex && core.compact(index, data)) schedule();
          },
        },
        { maxRaftState: wd.kv.maxRaftState },
      )
    : undefined;

  // The service starts from the stored snapshot, before any entry is applied.
  if (initial.snapshot && initial.snapshot.index > 0) {
    const { index, term, data } = initial.snapshot;
    if (kv) kv.applySnapshot(index, data);
    else wd.applyPort.postMessage({ incarnation: wd.incarnation, snapshot: { index, term, data }, entries: [] } satisfies ApplyBatch);
  }

  // The persisted Raft state's size (what the service compares with
  // maxraftstate), kept up to date from the log as entries become stable.
  let logBytes = 0;
  let bytesSnapshot = -1;
  let bytesStable = -1;
  function raftStateBytes(): number {
    const snap = core.log.snapshotIndex();
    const stable = core.log.stableIndex;
    if (snap !== bytesSnapshot || stable < bytesStable) {
      logBytes = 0;
      bytesStable = snap;
    }
    for (const e of core.log.slice(bytesStable + 1, stable)) logBytes += logEntryStateSize(e.term, e.data.length);
    bytesSnapshot = snap;
    bytesStable = stable;
    return RAFT_STATE_HEADER_BYTES + logBytes;
  }

  let drainScheduled = false;
  let stopped = false;
  const clientPorts: MessagePort[] = [];
  // Replies leave once per turn per client channel, together.
  const replies = new PortBatches();

  function schedule(): void {
    if (drainScheduled || stopped) return;
    drainScheduled = true;
    setImmediate(drain);
  }

  // Ticks keep a fixed grid (one per tickMs since start), but the worker only
  // wakes when the core has something due: an idle follower sleeps until its
  // election timeout, a leader until its next heartbeat. Waking every tick
  // costs real CPU for nothing (about 10 ms a second per worker here).
  const tickMs = wd.timing.tickMs;
  let lastTick = performance.now();
  let timer: NodeJS.Timeout | undefined;
  let timerDue = Infinity;

  /**
   * Run the ticks that have come due while the worker slept. Every input calls
   * this before reaching the core, so ticks and messages reach it in the order
   * they happened (a heartbeat must reset the election timer after the ticks
   * before it, not before).
   */
  function catchUp(): void {
    // Timers fire on whole milliseconds: a tick less than 1 ms away counts as due.
    const due = Math.floor((performance.now() - lastTick + 1) / tickMs);
    if (due <= 0) return;
    lastTick += due * tickMs;
    for (let k = 0; k < due; k++) core.tick();
    schedule();
  }

  function onTimer(): void {
    timer = undefined;
    timerDue = Infinity;
    if (stopped) return;
    catchUp();
    armTimer();
  }

  /** Sleep until the core's next due tick, sooner if a drain brought it closer. */
  function armTimer(): void {
    if (stopped) return;
    const due = lastTick + core.ticksUntilDue() * tickMs;
    if (timer !== undefined && due >= timerDue) return;
    if (timer !== undefined) clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(onTimer, Math.max(0, due - performance.now()));
  }

  const transport = new PeerTransport(
    wd.id,
    wd.incarnation,
    faults,
    (m) => {
      catchUp();
      core.step(m);
    },
    schedule,
  );
  for (const [peer, port] of Object.entries(wd.ports)) transport.setPort(Number(peer), port);

  function drain(): void {
    drainScheduled = false;
    if (stopped) return;
    while (core.hasReady()) {
      const rd = core.ready();
      // A leader's requests leave before its own write, so that the
      // followers write while it does (they go out now, not at the end of the turn).
      if (rd.earlyCount > 0) {
        for (let i = 0; i < rd.earlyCount; i++) transport.send(rd.messages[i]!);
        transport.flush();
      }
      storage.save(rd);
      // Stored entries were replaced: count the log afresh.
      if (rd.entries.length > 0 && rd.entries[0]!.index <= bytesStable) bytesSnapshot = -1;
      for (let i = rd.earlyCount; i < rd.messages.length; i++) transport.send(rd.messages[i]!);
      if (kv) {
        if (rd.applySnapshot) kv.applySnapshot(rd.applySnapshot.index, rd.applySnapshot.data);
        if (rd.committed.length > 0) kv.applyEntries(rd.committed);
      } else if (rd.committed.length > 0 || rd.applySnapshot) {
        const batch: ApplyBatch = {
          incarnation: wd.incarnation,
          entries: rd.committed.map((e) => [e.index, e.term, e.data]),
        };
        if (rd.applySnapshot) {
          const { index, term, data } = rd.applySnapshot;
          batch.snapshot = { index, term, data };
        }
        wd.applyPort.postMessage(batch);
      }
      core.advance(rd);
    }
    kv?.afterDrain(raftStateBytes());
    transport.flush();
    replies.flush();
    armTimer();
  }

  armTimer();

  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    kv?.failAll();
    for (const p of clientPorts) p.close();
    transport.close();
    wd.applyPort.close();
    storage.close();
  }

  const api: PeerApi = {
    async start(command: Uint8Array): Promise<StartResult> {
      if (stopped) throw new Error(`peer ${wd.id} is stopped`);
      catchUp();
      const placed = core.propose(command);
      if (!placed) return { index: -1, term: core.currentTerm(), isLeader: false };
      // Answer at once, as Figure 2's Start does: the entry may still be lost
      // (it is not committed), and a caller's next Start can join this one's
      // write and message instead of waiting for them.
      schedule();
      return { index: placed.index, term: placed.term, isLeader: true };
    },
    getState() {
      return { term: core.currentTerm(), isLeader: core.isLeader() };
    },
    status() {
      return { ...core.status(), incarnation: wd.incarnation, garbage: faults.garbage(wd.id) };
    },
    snapshot(index: number, data: Uint8Array) {
      if (stopped) throw new Error(`peer ${wd.id} is stopped`);
      if (core.compact(index, data)) schedule();
    },
    setPeerPort(peer: number, port: MessagePort) {
      transport.setPort(peer, port);
    },
    attachMailbox(port: MessagePort) {
      transport.addMailbox(port);
    },
    attachClient(port: MessagePort) {
      if (!kv) throw new Error(`peer ${wd.id} runs no key/value service`);
      if (stopped) return;
      clientPorts.push(port);
      port.on('message', (bytes: unknown) => {
        if (stopped) return;
        catchUp();
        kv.handle(bytes, (reply) => replies.push(port, reply));
        schedule();
      });
    },
    stop,
  };

  Comlink.expose(api, nodeEndpoint(parentPort!));
}

// The cluster may spawn this worker before a peer goes down (a warm spare,
// its modules loaded while nobody waits) and say which peer it is later.
parentPort!.once('message', (m: { boot: PeerWorkerData }) => runPeer(m.boot));
