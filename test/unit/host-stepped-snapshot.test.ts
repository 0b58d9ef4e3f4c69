// The host's side of snapshots written a step at a time (beginSnapshot),
// one follower over hand-made seams, every deferred step run by the test:
// entries are applied between steps, the snapshot is stored at the index
// where it began, and a snapshot installed from the leader, or the peer
// stopping, cancels the one being written.
import t from 'tap';
import { PeerHost } from '../../lib/node/host.js';
import type { ByteStateMachine, Clock, SnapshotWriter, Transport } from '../../lib/node/seams.js';
import { MessageType, type Entry, type Ready, type Snapshot } from '../../lib/raft/index.js';
import { MemoryStorage, type SnapshotStager } from '../../storage/storage.js';

const STEPS = 5;
// 40 entries of one byte pass it (5 bytes of Raft state each); the 10 that follow do not.

const PIECES = 3;

/** Memory storage that stages every snapshot in PIECES steps, and records what it was asked and saved. */
class StagingStorage extends MemoryStorage {
  readonly staged: { snap: Snapshot; steps: number; cancelled: boolean }[] = [];
  readonly savedSnapshots: { snap: Snapshot; stagedFirst: boolean }[] = [];

  stageSnapshot(snap: Snapshot): SnapshotStager {
    const st = { snap, steps: 0, cancelled: false };
    this.staged.push(st);
    return {
      step: () => {
        if (st.cancelled) throw new Error('a cancelled stager was stepped');
        return ++st.steps >= PIECES;
      },
      cancel: () => {
        st.cancelled = true;
      },
    };
  }

  override save(rd: Ready): void {
    if (rd.snapshot) {
      const sn = rd.snapshot;
      const st = this.staged.find((x) => x.snap.data === sn.data && x.steps >= PIECES && !x.cancelled);
      this.savedSnapshots.push({ snap: sn, stagedFirst: st !== undefined && st.snap.index === sn.index && st.snap.term === sn.term });
    }
    super.save(rd);
  }
}

function follower(storage: MemoryStorage = new MemoryStorage()) {
  const deferred: (() => void)[] = [];
  const clock: Clock = { now: () => 0, setTimer: () => ({}), clearTimer: () => {}, defer: (fn) => void deferred.push(fn) };
  const transport: Transport = { send: () => {}, flush: () => {}, close: () => {}, reachable: () => true };
  const log = { begun: [] as number[], steps: 0, cancelled: 0, stepsAtCancel: -1, whole: 0, cancelledWhenChecked: -1 };
  let total = 0;
  const encode = (n: number) => new TextEncoder().encode(String(n));
  const stateMachine: ByteStateMachine = {
    apply: (cmd) => encode((total += cmd[0]!)),
    query: () => encode(total),
    snapshot: () => {
      log.whole++;
      return encode(total);
    },
    beginSnapshot(): SnapshotWriter {
      log.begun.push(total);
      const at = total;
      let left = STEPS;
      return {
        step: () => (log.steps++, --left > 0 ? undefined : encode(at)),
        cancel: () => {
          log.cancelled++;
          log.stepsAtCancel = log.steps;
        },
      };
    },
    restore: (data) => {
      total = Number(new TextDecoder().decode(data));
    },
    // Trying a leader's snapshot replaces the state for a moment: a writer must be given up before.
    check: () => {
      log.cancelledWhenChecked = log.cancelled;
      return undefined;
    },
  };
  const host = new PeerHost(
    { id: 1, peers: 3, seed: 1, timing: { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 }, snapshotThreshold: 200 },
    { storage, transport, clock, stateMachine },
  );
  /** The snapshot storage holds, as the state it encodes. */
  const stored = () => {
    const s = storage.load().snapshot;
    return s ? { index: s.index, total: Number(new TextDecoder().decode(s.data)) } : undefined;
  };
  let last = 0;
  /** The leader (peer 0, term 1) sends `n` more entries, each adding 1, and commits them all. */
  const append = (n: number) => {
    const entries: Entry[] = Array.from({ length: n }, (_, k) => ({ index: last + 1 + k, term: 1, data: new Uint8Array([1]) }));
    host.receive({ type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: last, prevLogTerm: last === 0 ? 0 : 1, entries, commit: last + n, seq: last + 1 });
    last += n;
  };
  /** Run what is deferred now (one turn), not what that schedules. */
  const turn = () => {
    for (const fn of deferred.splice(0)) fn();
  };
  return { host, log, append, turn, deferred, stored, total: () => total, storage };
}

t.test('entries are applied between the steps; the snapshot is stored at the index it began at', async (t) => {
  const f = follower();
  f.append(40);
  f.turn(); // drain: apply 40 entries; the policy begins a snapshot
  t.same(f.log.begun, [40], 'the policy began a snapshot of the 40 applied entries');
  t.equal(f.log.whole, 0, 'and did not take a whole one at once');
  f.turn(); // first step
  f.append(10);
  f.turn(); // the drain applies 10 more, and the second step runs
  t.equal(f.total(), 50, 'entries that came while it was written are applied');
  t.equal(f.host.status().snapshotIndex, 0, 'nothing is compacted before the snapshot is complete');
  for (let k = 0; k < STEPS && f.deferred.length > 0; k++) f.turn();
  t.equal(f.log.steps, STEPS, `it took its ${STEPS} steps`);
  const st = f.host.status();
  t.equal(st.snapshotIndex, 40, 'the log is compacted through the index where the snapshot began');
  t.equal(st.snapshotsTaken, 1);
  t.same(f.stored(), { index: 40, total: 40 }, 'storage holds the state as of index 40, not the 50 applied by the end');
  t.equal(f.log.cancelled, 0);
  f.host.stop();
});

t.test("a snapshot installed from the leader cancels the one being written, whose steps then stop", async (t) => {
  const f = follower();
  f.append(40);
  f.turn();
  f.turn();
  t.equal(f.log.steps, 1, 'one step taken');
  f.host.receive({ type: MessageType.Snapshot, from: 0, to: 1, term: 1, snapshot: { index: 100, term: 1, data: new TextEncoder().encode('100') } });
  for (let k = 0; k < 10 && f.deferred.length > 0; k++) f.turn();
  t.equal(f.log.cancelled, 1, 'the writer was cancelled when the snapshot was installed');
  t.equal(f.log.cancelledWhenChecked, 1, 'before the state machine was asked to try it');
  t.ok(f.log.steps < STEPS, `before it was complete (${f.log.steps} of ${STEPS} steps)`);
  t.equal(f.log.steps, f.log.stepsAtCancel, 'and never stepped again');
  t.equal(f.host.status().snapshotIndex, 100, "the leader's snapshot is the peer's");
  t.equal(f.total(), 100, 'and its state');
  f.host.stop();
});

t.test('stopping the peer cancels the snapshot being written', async (t) => {
  const f = follower();
  f.append(40);
  f.turn();
  f.host.stop();
  t.equal(f.log.cancelled, 1);
  f.turn();
  t.equal(f.log.steps, 0, 'no step runs after the stop');
});

t.test('an explicit snapshot supersedes the one being written', async (t) => {
  const f = follower();
  f.append(40);
  f.turn();
  f.append(5);
  f.turn();
  t.ok(f.host.takeSnapshot(), 'takeSnapshot() takes a whole snapshot now');
  t.equal(f.log.whole, 1);
  t.equal(f.log.cancelled, 1, 'and cancels the writer');
  for (let k = 0; k < 10 && f.deferred.length > 0; k++) f.turn();
  t.equal(f.host.status().snapshotIndex, 45, 'the log is compacted through everything applied');
  t.same(f.stored(), { index: 45, total: 45 }, 'and the older snapshot, had it finished, did not replace it');
  f.host.stop();
});

t.test('a storage that writes snapshots in pieces gets every piece written before the Ready that records the snapshot', async (t) => {
  const storage = new StagingStorage();
  const f = follower(storage);
  f.append(40);
  for (let k = 0; k < STEPS + 1; k++) f.turn(); // the drain that begins it, then the writer's steps
  t.equal(storage.staged.length, 1, 'once encoded, the snapshot went to the storage to be staged');
  const st = storage.staged[0]!;
  t.same([st.snap.index, st.snap.term], [40, 1], 'at the index it began at, with its term');
  t.same(st.snap.config?.voters, [0, 1, 2], 'and the configuration the compaction records');
  t.equal(f.host.status().snapshotIndex, 0, 'nothing is compacted while its pieces are written');
  f.append(5);
  f.turn(); // a drain and the first piece
  t.equal(f.total(), 45, 'entries that come meanwhile are applied');
  for (let k = 0; k < 10 && f.deferred.length > 0; k++) f.turn();
  t.equal(st.steps, PIECES, `every piece was written (${PIECES} steps)`);
  t.equal(f.host.status().snapshotIndex, 40, 'then the log was compacted');
  t.equal(storage.savedSnapshots.length, 1);
  t.ok(storage.savedSnapshots[0]!.stagedFirst, 'and the Ready recording it carried the very bytes, index and term staged');
  t.same(f.stored(), { index: 40, total: 40 });
  f.host.stop();
});

t.test('a snapshot installed from the leader while pieces are written gives the staging up', async (t) => {
  const storage = new StagingStorage();
  const f = follower(storage);
  f.append(40);
  for (let k = 0; k < STEPS + 2; k++) f.turn();
  const st = storage.staged[0]!;
  t.equal(st.steps, 1, 'one piece written');
  f.host.receive({ type: MessageType.Snapshot, from: 0, to: 1, term: 1, snapshot: { index: 100, term: 1, data: new TextEncoder().encode('100') } });
  for (let k = 0; k < 10 && f.deferred.length > 0; k++) f.turn();
  t.ok(st.cancelled, 'the stager was cancelled');
  t.equal(st.steps, 1, 'and never stepped again');
  t.same(f.stored(), { index: 100, total: 100 }, "the leader's snapshot is stored");
  t.same(storage.savedSnapshots.map((x) => [x.snap.index, x.stagedFirst]), [[100, false]], 'and it is the only snapshot saved');
  f.host.stop();
});

t.test('stopping the peer while pieces are written cancels the staging', async (t) => {
  const storage = new StagingStorage();
  const f = follower(storage);
  f.append(40);
  for (let k = 0; k < STEPS + 1; k++) f.turn();
  f.host.stop();
  t.ok(storage.staged[0]!.cancelled);
  f.turn();
  t.equal(storage.staged[0]!.steps, 0, 'no piece is written after the stop');
});
