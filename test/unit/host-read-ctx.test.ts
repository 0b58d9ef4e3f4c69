// A restarted peer must not take a late answer meant for the incarnation
// before it. Reads and forwarded proposals are matched to their answers by
// a number (ctx); a peer that numbered them from 1 again after a restart
// took the leader's late answer to its predecessor's read (an older read
// index: a stale read, found by the simulator, seed 15320) or forwarded
// proposal (another command's outcome) for the answer to its own.
import t from 'tap';
import { PeerHost } from '../../lib/node/host.js';
import { HostMessageType, type WireMessage } from '../../lib/node/messages.js';
import { Status, type Outcome } from '../../lib/node/outcome.js';
import type { ByteStateMachine, Clock, Transport } from '../../lib/node/seams.js';
import { MessageType, type Entry } from '../../lib/raft/index.js';
import { MemoryStorage } from '../../storage/storage.js';

const TIMING = { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 };
const enc = (n: number) => new TextEncoder().encode(String(n));
const dec = (b: Uint8Array | undefined) => Number(new TextDecoder().decode(b));

/** Peer 1 of 3 on `storage`, one incarnation: its own seed (a supervisor gives every start another), its messages captured. */
function incarnation(storage: MemoryStorage, seed: number) {
  const sent: WireMessage[] = [];
  const deferred: (() => void)[] = [];
  const clock: Clock = { now: () => 0, setTimer: () => ({}), clearTimer: () => {}, defer: (fn) => void deferred.push(fn) };
  const transport: Transport = { send: (m) => void sent.push(m as WireMessage), flush: () => {}, close: () => {}, reachable: () => true };
  let applied = 0;
  const stateMachine: ByteStateMachine = {
    apply: (_cmd, e) => enc((applied = e.index)),
    query: () => enc(applied),
    snapshot: () => enc(applied),
    restore: (d) => {
      applied = dec(d);
    },
  };
  const host = new PeerHost({ id: 1, peers: 3, seed, timing: TIMING }, { storage, transport, clock, stateMachine });
  const run = () => {
    while (deferred.length > 0) for (const fn of deferred.splice(0)) fn();
  };
  /** Leader 0 of term 1 sends entries from..to and says `commit` is committed. */
  const append = (from: number, to: number, commit: number) => {
    const entries: Entry[] = [];
    for (let i = from; i <= to; i++) entries.push({ index: i, term: 1, data: new Uint8Array([i]) });
    host.receive({ type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: from - 1, prevLogTerm: from > 1 ? 1 : 0, entries, commit, seq: from });
    run();
  };
  const asked = (type: number) => sent.filter((m) => m.type === type) as (WireMessage & { ctx: number })[];
  return { host, run, append, asked, applied: () => applied };
}

t.test("a late answer to the previous incarnation's read does not answer the new one's", async (t) => {
  const storage = new MemoryStorage();
  const first = incarnation(storage, 11);
  first.append(1, 2, 2);
  first.host.read(enc(0), { consistency: 'linearizable', forward: true, timeoutMs: 1000 }, () => {});
  first.run();
  const [old] = first.asked(MessageType.ReadIndex);
  t.ok(old, 'the first incarnation asked the leader for a read index');
  first.host.stop();

  // The restart: entry 3 is stored but not known committed here; the leader has committed it (a write acknowledged).
  const second = incarnation(storage, 12);
  second.append(3, 3, 2);
  t.equal(second.applied(), 2, 'applied through 2');
  const answers: Outcome[] = [];
  second.host.read(enc(0), { consistency: 'linearizable', forward: true, timeoutMs: 1000 }, (o) => answers.push(o));
  second.run();
  const [mine] = second.asked(MessageType.ReadIndex);
  t.ok(mine, 'the second incarnation asked for its own read index');
  t.not(mine!.ctx, old!.ctx, 'under a number of its own');

  // The leader's late answer to the old read (its read index then: 2).
  second.host.receive({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 1, ctx: old!.ctx, index: 2 });
  second.run();
  t.same(answers, [], 'the old answer does not answer the new read (it would give the state through 2, missing the acknowledged write at 3)');

  second.host.receive({ type: MessageType.ReadIndexResponse, from: 0, to: 1, term: 1, ctx: mine!.ctx, index: 3 });
  second.run();
  t.same(answers, [], 'its own answer places it at 3: it waits for entry 3 to be applied');
  second.append(4, 4, 3);
  t.equal(answers.length, 1, 'answered once 3 is applied');
  t.equal(answers[0]!.status, Status.Ok);
  t.equal(dec(answers[0]!.data), 3, 'with the state through 3');
});

t.test("a late outcome of the previous incarnation's forwarded proposal does not answer the new one's", async (t) => {
  const storage = new MemoryStorage();
  const first = incarnation(storage, 21);
  first.append(1, 1, 1);
  first.host.propose(new Uint8Array([7]), { forward: true, timeoutMs: 1000 }, () => {});
  first.run();
  const [old] = first.asked(HostMessageType.Forward);
  t.ok(old, 'the first incarnation forwarded its proposal to the leader');
  first.host.stop();

  const second = incarnation(storage, 22);
  second.append(2, 2, 1);
  const outcomes: Outcome[] = [];
  second.host.propose(new Uint8Array([9]), { forward: true, timeoutMs: 1000 }, (o) => outcomes.push(o));
  second.run();
  const [mine] = second.asked(HostMessageType.Forward);
  t.ok(mine, 'the second incarnation forwarded its own');
  t.not(mine!.ctx, old!.ctx, 'under a number of its own');

  // The leader's outcome for the old proposal: applied at 3.
  const reply = (ctx: number, index: number): WireMessage => ({ type: HostMessageType.ForwardReply, from: 0, to: 1, term: 1, ctx, status: Status.Ok, leader: 0, index, data: enc(index), message: '' });
  second.host.receive(reply(old!.ctx, 3));
  second.run();
  t.same(outcomes, [], "the old proposal's outcome is not taken for the new one's");
  second.host.receive(reply(mine!.ctx, 4));
  second.run();
  t.equal(outcomes.length, 1, 'its own outcome answers it');
  t.equal(outcomes[0]!.index, 4);
});
