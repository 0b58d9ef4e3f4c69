// The peer host's own check on host messages: a ForwardReply is taken only
// from the leader the proposal was forwarded to (the codec cannot know
// that); PeerHost.receive returns false for the rest, which the transport
// counts as garbage. One host over hand-made seams, no threads.
import t from 'tap';
import { PeerHost } from '../../lib/node/host.js';
import { HostMessageType, type ForwardReply, type WireMessage } from '../../lib/node/messages.js';
import { Status, type Outcome } from '../../lib/node/outcome.js';
import type { Clock, Transport } from '../../lib/node/seams.js';
import { MessageType } from '../../lib/raft/index.js';
import { MemoryStorage } from '../../storage/storage.js';

t.test('a ForwardReply from a peer the proposal did not go to is refused; the leader\'s own is taken', async (t) => {
  const deferred: (() => void)[] = [];
  let now = 0;
  const clock: Clock = { now: () => now, setTimer: () => ({}), clearTimer: () => {}, defer: (fn) => void deferred.push(fn) };
  const sent: WireMessage[] = [];
  const transport: Transport = { send: (m) => void sent.push(m), flush: () => {}, close: () => {}, reachable: () => true };
  const stateMachine = { apply: () => new Uint8Array(0), snapshot: () => new Uint8Array(0), restore: () => {}, query: () => new Uint8Array(0) };
  const host = new PeerHost(
    { id: 1, peers: 3, seed: 1, timing: { tickMs: 10, electionTicks: 50, heartbeatTicks: 10 } },
    { storage: new MemoryStorage(), transport, clock, stateMachine },
  );
  const drain = () => {
    while (deferred.length > 0) deferred.shift()!();
  };
  t.ok(host.receive({ type: MessageType.Append, from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0, seq: 1 }), 'peer 0 leads term 1');
  drain();
  const outcomes: Outcome[] = [];
  host.propose(new Uint8Array([1]), { forward: true, timeoutMs: 1000 }, (o) => outcomes.push(o));
  drain();
  const fwd = sent.find((m) => m.type === HostMessageType.Forward);
  t.ok(fwd && fwd.to === 0, 'the proposal is forwarded to peer 0');
  if (!fwd || fwd.type !== HostMessageType.Forward) return;
  const reply = (from: number): ForwardReply => ({
    type: HostMessageType.ForwardReply,
    from,
    to: 1,
    term: 1,
    ctx: fwd.ctx,
    status: Status.Ok,
    leader: from,
    index: 1,
    data: new Uint8Array(0),
    message: '',
  });
  t.equal(host.receive(reply(2)), false, 'peer 2 answering it is refused');
  t.same(outcomes, [], 'and settles nothing');
  t.ok(host.receive({ ...reply(0), ctx: fwd.ctx + 100 }), 'an answer for a forward nobody waits for is ignored');
  t.ok(host.receive(reply(0)), 'peer 0 answering it is taken');
  t.same(outcomes.map((o) => [o.status, o.index]), [[Status.Ok, 1]], 'and settles the proposal');
  t.ok(host.receive(reply(0)), 'a repeat is ignored');
  t.equal(outcomes.length, 1);
  host.stop();
});
