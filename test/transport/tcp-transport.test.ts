// The TCP transport with mutual TLS, on loopback: frames, delivery and
// batching, refused handshakes, connections closed for garbage while the
// others carry on, reconnection, the bound on a slow peer's buffer, and bad
// options. Every server and socket is opened and closed here.
import t from 'tap';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameError, FrameReader, lengthPrefixed } from '../../lib/transport/length-frames.js';
import { TcpTransport, TcpTransportError, type TcpPeer } from '../../lib/transport/tcp-transport.js';
import { encodeFrame } from '../../lib/transport/codec.js';
import { createDevCa, issueCertificate, writeDevCertificates, type Pem } from '../../lib/tls/dev-ca.js';
import { TlsConfigError, readTlsFiles, type TlsFiles } from '../../lib/tls/tls-files.js';
import { MessageType } from '../../lib/raft/types.js';
import type { WireMessage } from '../../lib/node/messages.js';
import { PeerHost } from '../../lib/node/host.js';
import { realClock } from '../../lib/node/real-clock.js';
import { Status, type Outcome } from '../../lib/node/outcome.js';
import type { ByteStateMachine } from '../../lib/node/seams.js';
import { MemoryStorage } from '../../storage/storage.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** p, or a failure after ms: a broken transport fails this file instead of hanging it. */
function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const vote = (from: number, to: number, term: number): WireMessage => ({ type: MessageType.Vote, term, from, to, lastLogIndex: 0, lastLogTerm: 0, pre: false });

const ca = await createDevCa();
const otherCa = await createDevCa({ name: 'another CA' });
const certs = new Map<string, Pem>();
for (const name of ['peer-0', 'peer-1', 'peer-2', 'stranger']) certs.set(name, await issueCertificate(ca, name));
const impostor = await issueCertificate(otherCa, 'peer-1');
const files = (name: string, from: Pem = certs.get(name)!, authority: Pem = ca): TlsFiles => ({ ca: authority.cert, cert: from.cert, key: from.key });

/** Open n transports on free loopback ports and tell each where the others are. */
async function openCluster(n: number, options: { maxBufferedBytes?: number } = {}): Promise<TcpTransport[]> {
  const peers: TcpPeer[] = Array.from({ length: n }, (_, i) => ({ name: `peer-${i}`, host: '127.0.0.1', port: 0 }));
  const ts: TcpTransport[] = [];
  for (let i = 0; i < n; i++) ts.push(await TcpTransport.open({ id: i, peers: structuredClone(peers), tls: files(`peer-${i}`), ...options }));
  for (const a of ts) for (let j = 0; j < n; j++) if (j !== a.id) a.setPeerAddress(j, '127.0.0.1', ts[j]!.address().port);
  for (const a of ts) await until(`peer ${a.id} connected`, () => ts.every((b) => b === a || a.reachable(b.id)));
  return ts;
}

/** A raw TLS connection to a transport, as a peer or client would open it. */
function rawConnect(port: number, tls: Partial<TlsFiles>): Promise<{ socket: TLSSocket; closed: Promise<void> }> {
  return within(new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca: tls.ca ?? ca.cert, cert: tls.cert, key: tls.key, rejectUnauthorized: false });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => {});
    socket.once('secureConnect', () => resolve({ socket, closed }));
    socket.once('close', () => resolve({ socket, closed }));
  }), 'a handshake');
}

t.test('frames: reassembled from any chunking; a zero or oversized length is an error', async (t) => {
  const payloads = [Buffer.from('a'), Buffer.alloc(300, 7), Buffer.from('xyz')];
  const stream = Buffer.concat(payloads.map((p) => lengthPrefixed(p)));
  for (const size of [1, 2, 3, 5, 64, stream.length]) {
    const r = new FrameReader(1000);
    const got: Buffer[] = [];
    for (let at = 0; at < stream.length; at += size) for (const f of r.push(stream.subarray(at, at + size))) got.push(Buffer.from(f));
    t.same(got, payloads, `chunks of ${size} bytes`);
    t.equal(r.pending, 0, 'nothing left over');
  }
  t.throws(() => new FrameReader(10).push(Buffer.from([0, 0, 0, 0])), FrameError, 'length 0');
  t.throws(() => new FrameReader(10).push(Buffer.from([0, 0, 0, 11])), FrameError, 'one byte over the limit');
  t.same(new FrameReader(10).push(Buffer.from([0, 0, 0, 10])), [], 'at the limit: waits for the payload');
  t.throws(() => new FrameReader(0), RangeError);
});

t.test('messages are delivered with mutual TLS, one frame per destination per flush', async (t) => {
  const ts = await openCluster(3);
  t.teardown(() => ts.forEach((x) => x.close()));
  const got: WireMessage[][] = [[], [], []];
  ts.forEach((x, i) => x.listen((m) => void got[i]!.push(m)));
  for (let k = 1; k <= 100; k++) {
    ts[0]!.send(vote(0, 1, k));
    ts[0]!.send(vote(0, 2, k));
  }
  ts[2]!.send(vote(2, 0, 7));
  const before = ts[0]!.stats().framesWritten;
  ts[0]!.flush();
  ts[2]!.flush();
  t.equal(ts[0]!.stats().framesWritten - before, 2, '200 messages to 2 peers: 2 frames');
  await until('delivery', () => got[1]!.length === 100 && got[2]!.length === 100 && got[0]!.length === 1);
  t.same(got[1]!.map((m) => m.term), Array.from({ length: 100 }, (_, k) => k + 1), 'in order');
  t.same(got[0]![0], vote(2, 0, 7), 'the message as sent');
  const s0 = ts[0]!.stats();
  t.equal(s0.sent[MessageType.Vote]!.messages, 200, 'sent messages counted by type');
  t.equal(ts[1]!.stats().received[MessageType.Vote]!.messages, 100, 'received messages counted by type');
  t.equal(ts[1]!.stats().received[MessageType.Vote]!.bytes, 100 * encodeFrame({ fromInc: 0, toInc: 0, msg: vote(0, 1, 1) }).length, 'and their bytes');
  t.equal(s0.refusedConnections + s0.garbageConnections, 0, 'no refusals among the peers');
});

t.test('a connection without a certificate, or with one from another CA or of a stranger, is refused before any message is read', async (t) => {
  const [a, b] = await openCluster(2);
  t.teardown(() => {
    a!.close();
    b!.close();
  });
  const got: WireMessage[] = [];
  a!.listen((m) => void got.push(m));
  const port = a!.address().port;
  const cases: [string, Partial<TlsFiles>][] = [
    ['no certificate', {}],
    ['a certificate from another CA', { ca: otherCa.cert, cert: impostor.cert, key: impostor.key }],
    ['a certificate of the CA for a name not in the cluster', files('stranger')],
  ];
  let refused = 0;
  for (const [what, tls] of cases) {
    const { socket, closed } = await rawConnect(port, tls);
    // Whatever the handshake let through on the client's side, a valid message must not be read.
    socket.write(lengthPrefixed(encodeFrame({ fromInc: 0, toInc: 0, msg: vote(1, 0, 99) })));
    await within(closed, `${what}: the connection closed`);
    refused++;
    await until(`${what} counted`, () => a!.stats().refusedConnections === refused);
    t.pass(`${what}: closed and counted`);
  }
  await sleep(50);
  t.equal(got.length, 0, 'nothing delivered');
  t.equal(a!.stats().garbageConnections, 0, 'refusals are not counted as garbage');
});

t.test('garbage bytes, a corrupt length or a misaddressed message close that connection and nothing else', async (t) => {
  const [a, b, c] = await openCluster(3);
  t.teardown(() => [a, b, c].forEach((x) => x!.close()));
  const got: WireMessage[] = [];
  a!.listen((m) => void got.push(m));
  const port = a!.address().port;
  const bad: [string, Buffer][] = [
    ['garbage bytes in a frame', lengthPrefixed(Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37]))],
    ['a corrupt length', Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])],
    ['a message claiming another sender', lengthPrefixed(encodeFrame({ fromInc: 0, toInc: 0, msg: vote(2, 0, 5) }))],
    ['a message for another peer', lengthPrefixed(encodeFrame({ fromInc: 0, toInc: 0, msg: vote(1, 2, 5) }))],
  ];
  let closedCount = 0;
  for (const [what, bytes] of bad) {
    const { socket, closed } = await rawConnect(port, files('peer-1'));
    t.ok(socket.authorized !== undefined && !socket.destroyed, `${what}: the handshake succeeded`);
    socket.write(bytes);
    await within(closed, `${what}: the connection closed`);
    closedCount++;
    await until('counted', () => a!.stats().garbageConnections === closedCount);
    // The real peers' connections carry on.
    b!.send(vote(1, 0, closedCount));
    c!.send(vote(2, 0, closedCount));
    b!.flush();
    c!.flush();
    await until('the others still deliver', () => got.filter((m) => m.term === closedCount).length === 2);
    t.pass(`${what}: that connection closed, the peers' connections still deliver`);
  }
  t.notOk(got.some((m) => m.term === 5), 'no bad message delivered');
  t.equal(a!.stats().refusedConnections, 0);
});

t.test('a peer that goes away is redialed with backoff and reached again', async (t) => {
  const [a, b] = await openCluster(2);
  const lost: number[] = [];
  a!.onLost = (p) => lost.push(p);
  const port = b!.address().port;
  b!.close();
  await until('loss noticed', () => !a!.reachable(1));
  t.same(lost, [1], 'onLost told');
  a!.send(vote(0, 1, 1));
  a!.flush();
  t.equal(a!.stats().droppedBatches, 1, 'a batch for an unconnected peer is dropped, not held');
  await sleep(300);
  const b2 = await TcpTransport.open({ id: 1, peers: [{ name: 'peer-0', host: '127.0.0.1', port: a!.address().port }, { name: 'peer-1', host: '127.0.0.1', port }], tls: files('peer-1') });
  t.teardown(() => {
    a!.close();
    b2.close();
  });
  const got: WireMessage[] = [];
  b2.listen((m) => void got.push(m));
  await until('reconnected', () => a!.reachable(1));
  a!.send(vote(0, 1, 2));
  a!.flush();
  await until('delivered', () => got.length === 1);
  t.equal(got[0]!.term, 2);
  t.ok(a!.stats().connects >= 2, 'connected twice');
});

t.test('a peer that refuses us (we are not its member) is redialed at the slowing pace, not at once', async (t) => {
  // b knows peer-1 and peer-2 only: a (peer-0) completes its side of each TLS 1.3 handshake, then b refuses it.
  const b = await TcpTransport.open({ id: 1, peers: [{ id: 1, name: 'peer-1', host: '127.0.0.1', port: 0 }, { id: 2, name: 'peer-2', host: '127.0.0.1', port: 1 }], tls: files('peer-1') });
  const a = await TcpTransport.open({ id: 0, peers: [{ id: 0, name: 'peer-0', host: '127.0.0.1', port: 0 }, { id: 1, name: 'peer-1', host: '127.0.0.1', port: b.address().port }], tls: files('peer-0') });
  t.teardown(() => {
    a.close();
    b.close();
  });
  await sleep(1500);
  const refused = b.stats().refusedConnections;
  // Backoff from 50 ms, doubling (with jitter down to half): at most about 7 tries in 1.5 s; redialing at once would be 30.
  t.ok(refused >= 1 && refused <= 10, `refused ${refused} times in 1.5 s`);
  t.notOk(a.reachable(1), 'and never counted as reachable for long');
});

t.test("a peer that stops reading costs at most maxBufferedBytes; the batches past it are dropped", async (t) => {
  const max = 1 << 20;
  const held: TLSSocket[] = [];
  // peer-1's certificate on a server that never reads: a stalled process.
  const stalled = createServer({ ca: ca.cert, cert: certs.get('peer-1')!.cert, key: certs.get('peer-1')!.key, requestCert: true }, (s) => {
    s.pause();
    held.push(s);
  });
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
  const port = (stalled.address() as { port: number }).port;
  const a = await TcpTransport.open({ id: 0, peers: [{ name: 'peer-0', host: '127.0.0.1', port: 0 }, { name: 'peer-1', host: '127.0.0.1', port }], tls: files('peer-0'), maxBufferedBytes: max });
  t.teardown(() => {
    a.close();
    for (const s of held) s.destroy();
    stalled.close();
  });
  await until('connected', () => a.reachable(1));
  const data = new Uint8Array(256 << 10);
  let most = 0;
  for (let k = 0; k < 200; k++) {
    a.send({ type: MessageType.Append, term: 1, from: 0, to: 1, prevLogIndex: k, prevLogTerm: 1, commit: 0, entries: [{ index: k + 1, term: 1, data }] });
    a.flush();
    most = Math.max(most, a.bufferedBytes(1));
    await new Promise((r) => setImmediate(r));
  }
  t.ok(a.stats().droppedBatches > 0, `batches dropped (${a.stats().droppedBatches} of 200)`);
  t.ok(most <= max, `buffered at most ${most} bytes (bound ${max})`);
});

/** Commands applied, in order, as one string: every replica must hold the same. */
class Journal implements ByteStateMachine {
  applied: string[] = [];
  apply(command: Uint8Array): Uint8Array {
    this.applied.push(Buffer.from(command).toString());
    return Buffer.from(String(this.applied.length));
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify(this.applied));
  }
  restore(data: Uint8Array): void {
    this.applied = JSON.parse(Buffer.from(data).toString()) as string[];
  }
  query(): Uint8Array {
    return Buffer.from(String(this.applied.length));
  }
}

t.test('peer hosts elect a leader and replicate over it; with one peer gone the other two go on', async (t) => {
  const ts = await openCluster(3);
  const sms = ts.map(() => new Journal());
  const hosts = ts.map((tr, i) => {
    const h = new PeerHost({ id: i, peers: 3, seed: 11 + i, timing: { tickMs: 10, electionTicks: 10, heartbeatTicks: 2 } }, { storage: new MemoryStorage(), transport: tr, clock: realClock, stateMachine: sms[i]! });
    tr.onLost = (p) => h.unreachable(p);
    tr.listen((m) => h.receive(m));
    return h;
  });
  t.teardown(() => {
    hosts.forEach((h) => h.stop());
    ts.forEach((x) => x.close());
  });
  const leader = async (among: number[]) => {
    for (;;) {
      const l = among.find((i) => hosts[i]!.getState().isLeader);
      if (l !== undefined) return l;
      await sleep(10);
    }
  };
  const propose = (h: PeerHost, cmd: string) =>
    new Promise<Outcome>((resolve) => h.propose(Buffer.from(cmd), { timeoutMs: 2000 }, resolve));
  const first = await within(leader([0, 1, 2]), 'a leader');
  const done = await Promise.all(Array.from({ length: 50 }, (_, k) => propose(hosts[first]!, `a${k}`)));
  t.ok(done.every((o) => o.status === Status.Ok), '50 proposals applied on the leader');
  await within(until('every replica applied them', () => sms.every((m) => m.applied.length === 50)), 'replication');
  t.same(sms[1]!.applied, sms[0]!.applied, 'same order on every replica');
  t.same(sms[2]!.applied, sms[0]!.applied);
  hosts[first]!.stop();
  ts[first]!.close();
  const rest = [0, 1, 2].filter((i) => i !== first);
  const second = await within(leader(rest), 'a new leader among the two left', 10_000);
  const o = await propose(hosts[second]!, 'after');
  t.equal(o.status, Status.Ok, 'the two left commit a new proposal');
  await within(until('both applied it', () => rest.every((i) => sms[i]!.applied.at(-1) === 'after')), 'the last proposal');
  t.same(sms[rest[0]!]!.applied, sms[rest[1]!]!.applied, 'and agree');
});

t.test('bad options and bad TLS files are refused with errors that name the problem', async (t) => {
  const peers: TcpPeer[] = [{ name: 'peer-0', host: '127.0.0.1', port: 0 }, { name: 'peer-1', host: '127.0.0.1', port: 0 }];
  await t.rejects(TcpTransport.open({ id: 2, peers, tls: files('peer-0') }), { name: 'TcpTransportError', message: /id 2 is not one of the peers' \(0, 1\)/ });
  await t.rejects(TcpTransport.open({ id: 0, peers: [{ ...peers[0]!, id: 5 }, { ...peers[1]!, id: 5 }], tls: files('peer-0') }), { message: /id 5 is given to two peers/ });
  await t.rejects(TcpTransport.open({ id: 0, peers: [peers[0]!, { ...peers[1]!, name: 'peer-0' }], tls: files('peer-0') }), { message: /given to two peers/ });
  await t.rejects(TcpTransport.open({ id: 0, peers, tls: files('peer-1') }), { name: 'TcpTransportError', message: /certificate is for "peer-1", but peer 0 is "peer-0"/ });
  await t.rejects(TcpTransport.open({ id: 0, peers, tls: { ...files('peer-0'), key: certs.get('peer-1')!.key } }), TlsConfigError);
  await t.rejects(TcpTransport.open({ id: 1, peers, tls: files('peer-1', impostor) }), { name: 'TlsConfigError', message: /not signed by/ });
  const a = await TcpTransport.open({ id: 0, peers, tls: files('peer-0') });
  t.teardown(() => a.close());
  const taken = [peers[0]!, { ...peers[1]!, port: a.address().port }];
  await t.rejects(TcpTransport.open({ id: 1, peers: taken, tls: files('peer-1') }), { name: 'TcpTransportError', message: /is in use/ });
  t.ok(TcpTransportError);
});

t.test('the development CA writes files that readTlsFiles accepts, and never overwrites them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dev-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const written = await writeDevCertificates(dir, ['node-a', 'node-b']);
  t.equal(written.length, 6, 'ca.crt, ca.key and two pairs');
  const a = readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node-a.crt'), key: join(dir, 'node-a.key') });
  t.match(a.cert, /BEGIN CERTIFICATE/);
  await writeDevCertificates(dir, ['client']);
  t.doesNotThrow(() => readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') }), 'a later name is signed by the same CA');
  await t.rejects(writeDevCertificates(dir, ['node-a']), /exists already/);
  await t.rejects(writeDevCertificates(dir, ['bad name']), TypeError);
  t.throws(() => readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'missing.crt'), key: join(dir, 'node-a.key') }), { name: 'TlsConfigError', message: /cannot read the cert file .*missing\.crt/ });
  writeFileSync(join(dir, 'junk.crt'), 'not a certificate');
  t.throws(() => readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'junk.crt'), key: join(dir, 'node-a.key') }), { message: /junk\.crt is not a PEM certificate/ });
  t.throws(() => readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'node-a.crt'), key: join(dir, 'node-b.key') }), { message: /does not belong to/ });
});
