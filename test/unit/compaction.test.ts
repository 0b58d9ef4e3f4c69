// Section 7 (log compaction) of the extended Raft paper, on the pure core.
import t from 'tap';
import { MessageType, RaftCore, RaftOptionError, seededRng, type Entry, type InitialState, type Message, type Ready } from '../../lib/raft/index.js';
import { MemoryStorage } from '../../storage/storage.js';

const enc = new TextEncoder();
const ent = (index: number, term: number): Entry => ({ index, term, data: enc.encode(`e${index}t${term}`) });
const logOf = (...terms: number[]) => terms.map((term, k) => ent(k + 1, term));

function core(id: number, peers: number, initial?: InitialState): RaftCore {
  return new RaftCore({ id, peers, electionTicks: 10, heartbeatTicks: 2, rng: seededRng(7 + id), initial });
}

/** Persist into `disk`, then advance: what a host does with each Ready. */
function drain(c: RaftCore, disk: MemoryStorage): Ready[] {
  const out: Ready[] = [];
  while (c.hasReady()) {
    const rd = c.ready();
    disk.save(rd);
    c.advance(rd);
    out.push(rd);
  }
  return out;
}

const msgs = (rds: Ready[]): Message[] => rds.flatMap((r) => r.messages);

t.test('7: a follower whose log conflicts with an installed snapshot discards it, and later entries still reach storage', async (t) => {
  const disk = new MemoryStorage();
  const f = core(1, 3, { hardState: { term: 3, vote: -1 }, entries: logOf(1, 1, 1, 1, 1, 1, 1, 1, 1, 1) });
  disk.save({ hardState: { term: 3, vote: -1 }, entries: logOf(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), lastIndex: 10, messages: [], earlyCount: 0, committed: [], readStates: [] });
  f.step({ type: MessageType.Snapshot, from: 0, to: 1, term: 3, snapshot: { index: 5, term: 2, data: enc.encode('s5') } });
  const rd1 = drain(f, disk);
  t.equal(rd1[0]!.snapshot?.index, 5, 'the snapshot is handed to storage');
  t.equal(rd1[0]!.applySnapshot?.index, 5, 'and to the state machine');
  t.equal(f.log.lastIndex(), 5, 'the conflicting log is gone');
  t.same(disk.load().entries, [], 'storage holds no entry after the snapshot');
  f.step({ type: MessageType.Append, from: 0, to: 1, term: 3, prevLogIndex: 5, prevLogTerm: 2, entries: [ent(6, 3), ent(7, 3)], commit: 7 });
  const rd2 = drain(f, disk);
  t.same(rd2[0]!.entries.map((e) => e.index), [6, 7], 'entries after the snapshot are handed to storage');
  const back = disk.load();
  t.same(back.entries.map((e) => [e.index, e.term]), [[6, 3], [7, 3]], 'storage holds them');
  t.doesNotThrow(() => core(1, 3, back), 'a restart from storage sees a contiguous log');
});

t.test('7: a follower whose log matches the snapshot point keeps the entries that follow it', async (t) => {
  const disk = new MemoryStorage();
  const f = core(1, 3, { hardState: { term: 2, vote: -1 }, entries: logOf(1, 1, 2, 2, 2, 2) });
  f.step({ type: MessageType.Snapshot, from: 0, to: 1, term: 2, snapshot: { index: 4, term: 2, data: enc.encode('s4') } });
  drain(f, disk);
  t.equal(f.log.snapshotIndex(), 4);
  t.same([f.log.term(5), f.log.term(6)], [2, 2], 'entries 5 and 6 are kept');
  t.equal(f.status().commitIndex, 4, 'the snapshot point counts as committed');
});

t.test('7: a snapshot at or below the commit index is answered but not installed', async (t) => {
  const disk = new MemoryStorage();
  const f = core(1, 3, { hardState: { term: 2, vote: -1 }, entries: logOf(1, 1, 2) });
  f.step({ type: MessageType.Append, from: 0, to: 1, term: 2, prevLogIndex: 3, prevLogTerm: 2, entries: [], commit: 3 });
  drain(f, disk);
  f.step({ type: MessageType.Snapshot, from: 0, to: 1, term: 2, snapshot: { index: 2, term: 1, data: enc.encode('old') } });
  const rds = drain(f, disk);
  t.notOk(rds.some((r) => r.snapshot || r.applySnapshot), 'nothing to persist or apply');
  const resp = msgs(rds).find((m) => m.type === MessageType.SnapshotResponse);
  t.equal(resp && resp.type === MessageType.SnapshotResponse ? resp.index : -1, 3, 'the answer reports the commit index');
});

t.test('7: compact() discards the log through the index, only up to what was applied', async (t) => {
  const disk = new MemoryStorage();
  const l = core(0, 1);
  for (let k = 0; k < 300 && !l.isLeader(); k++) l.tick();
  t.ok(l.isLeader(), 'a single peer elects itself');
  drain(l, disk);
  for (let i = 0; i < 5; i++) l.propose(enc.encode(`c${i}`));
  drain(l, disk);
  t.equal(l.status().appliedIndex, 5);
  t.throws(() => l.compact(6, enc.encode('x')), RaftOptionError, 'beyond the applied index is refused');
  t.equal(l.compact(3, enc.encode('s3')), true);
  const rds = drain(l, disk);
  t.equal(rds[0]!.snapshot?.index, 3, 'the snapshot goes to storage');
  t.notOk(rds[0]!.applySnapshot, 'a snapshot the service made is not applied back to it');
  t.same(disk.load().entries.map((e) => e.index), [4, 5], 'storage dropped entries 1..3');
  t.equal(l.compact(2, enc.encode('s2')), false, 'a snapshot at or below the current one is ignored');
});

/** Three cores wired in memory; `lost(m)` says which messages never arrive. */
function trio(lost: (m: Message) => boolean) {
  const disks = [new MemoryStorage(), new MemoryStorage(), new MemoryStorage()];
  const cores = [core(0, 3), core(1, 3), core(2, 3)];
  const sent: Message[] = [];
  const pump = () => {
    for (let round = 0; round < 50; round++) {
      let moved = false;
      for (let i = 0; i < 3; i++) {
        for (const m of msgs(drain(cores[i]!, disks[i]!))) {
          sent.push(m);
          if (lost(m)) continue;
          cores[m.to]!.step(m);
          moved = true;
        }
      }
      if (!moved) return;
    }
  };
  /** Tick the leader-to-be (or leader) n times, delivering everything in between. */
  const tick0 = (n: number) => {
    for (let k = 0; k < n; k++) {
      cores[0]!.tick();
      pump();
    }
  };
  const elect0 = () => {
    for (let k = 0; k < 300 && !cores[0]!.isLeader(); k++) tick0(1);
  };
  const snapshotsTo2 = () => sent.filter((m) => m.type === MessageType.Snapshot && m.to === 2);
  return { cores, sent, pump, tick0, elect0, snapshotsTo2 };
}

t.test('7: a leader sends InstallSnapshot to a follower that needs compacted entries, then resumes AppendEntries', async (t) => {
  let down = true;
  const { cores, pump, tick0, elect0, snapshotsTo2 } = trio((m) => down && (m.to === 2 || m.from === 2));
  elect0();
  t.ok(cores[0]!.isLeader(), 'peer 0 leads');
  for (let i = 0; i < 20; i++) {
    cores[0]!.propose(enc.encode(`c${i}`));
    pump();
  }
  t.equal(cores[0]!.status().commitIndex, 20, 'committed with peers 0 and 1');
  cores[0]!.compact(15, enc.encode('snapshot through 15'));
  pump();
  down = false;
  tick0(10);
  t.ok(snapshotsTo2().some((m) => m.type === MessageType.Snapshot && m.snapshot.index === 15), 'InstallSnapshot carries the snapshot through 15');
  t.equal(cores[2]!.log.snapshotIndex(), 15, 'the follower installed it');
  t.equal(cores[2]!.status().commitIndex, 20, 'and caught up to the commit index by AppendEntries');
  t.same([16, 17, 18, 19, 20].map((i) => cores[2]!.log.term(i)), [1, 1, 1, 1, 1], 'with entries 16..20');
});

t.test('7: an InstallSnapshot that is lost is sent again even while the follower answers heartbeats', async (t) => {
  let down = true; // peer 2 starts cut off
  const { cores, pump, tick0, elect0, snapshotsTo2 } = trio((m) => down && (m.to === 2 || m.from === 2));
  elect0();
  for (let i = 0; i < 12; i++) {
    cores[0]!.propose(enc.encode(`c${i}`));
    pump();
  }
  cores[0]!.compact(10, enc.encode('snapshot through 10'));
  // The leader notices peer 2 needs the snapshot while 2 is still unreachable: that copy is lost.
  tick0(4);
  t.ok(snapshotsTo2().length > 0, 'a snapshot was sent while peer 2 was cut off');
  down = false;
  const before = snapshotsTo2().length;
  tick0(20);
  t.ok(snapshotsTo2().length > before, 'the snapshot is sent again although peer 2 answers heartbeats');
  t.equal(cores[2]!.log.snapshotIndex(), 10, 'peer 2 installed it');
  t.equal(cores[2]!.status().commitIndex, 12, 'and caught up');
});

t.test('7: a streaming follower whose next entries the leader compacts away gets the snapshot (no crash)', async (t) => {
  const disks = [new MemoryStorage(), new MemoryStorage(), new MemoryStorage()];
  const cores = [core(0, 3), core(1, 3), core(2, 3)];
  const [leader] = cores as [RaftCore, RaftCore, RaftCore];
  const deliver = (ms: Message[], to: number[]) => {
    for (const m of ms) if (to.includes(m.to)) cores[m.to]!.step(m);
  };
  /** Everything the peers send, each delivered only to the peers in `to`; repeated until quiet. */
  const settle = (to: number[], from = [0, 1, 2]) => {
    for (let round = 0; round < 20; round++) {
      const out = from.flatMap((p) => msgs(drain(cores[p]!, disks[p]!)));
      if (out.length === 0) return;
      deliver(out, to);
    }
  };
  for (let k = 0; k < 40 && !leader.isLeader(); k++) {
    leader.tick();
    settle([0, 1, 2]);
  }
  t.ok(leader.isLeader(), 'peer 0 leads');
  settle([0, 1, 2]);
  leader.propose(enc.encode('one'));
  settle([0, 1, 2]);
  // Entry 2 reaches peer 2 but its answer is lost: it stays in flight to a streaming follower.
  leader.propose(enc.encode('two'));
  deliver(msgs(drain(leader, disks[0]!)), [1, 2]);
  drain(cores[2]!, disks[2]!);
  settle([0, 1], [0, 1]);
  leader.propose(enc.encode('three'));
  settle([0, 1], [0, 1]);
  t.equal(leader.status().appliedIndex, 3, 'three entries committed and applied with peer 1');
  leader.compact(3, enc.encode('snapshot at 3'));
  leader.propose(enc.encode('four'));
  let rds: Ready[] = [];
  t.doesNotThrow(() => {
    rds = drain(leader, disks[0]!);
  }, 'the leader does not trip over the compacted entries');
  const toTwo = msgs(rds).filter((m) => m.to === 2);
  t.ok(
    toTwo.some((m) => m.type === MessageType.Snapshot),
    `peer 2 is sent the snapshot (sent: ${toTwo.map((m) => m.type).join(', ')})`,
  );
});
