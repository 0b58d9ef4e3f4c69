import { connect, createServer, checkServerIdentity, type Server, type TLSSocket } from 'node:tls';
import type { WireMessage } from '../node/messages.js';
import type { Transport } from '../node/seams.js';
import { checkTlsFiles, peerName, type TlsFiles } from '../tls/tls-files.js';
import { MAX_PEER_ID } from '../raft/types.js';
import { BatchBuffer, decodeFrame, encodeFrame, unpackBatchSized } from './codec.js';
import { FrameError, FrameReader, lengthPrefixed } from './length-frames.js';

/** One member of the cluster as the transport knows it: its id (default: its position in the list), its certificate's name, where it listens. */
export interface TcpPeer {
  id?: number;
  name: string;
  host: string;
  port: number;
}

export interface TcpTransportOptions {
  /** This peer's id (a position in `peers` when they carry no ids). */
  id: number;
  peers: TcpPeer[];
  tls: TlsFiles;
  /** Where to listen; default the peer's own host and port from `peers` (port 0 picks a free one). */
  listen?: { host: string; port: number };
  /** The largest frame accepted (a frame carries one turn's messages to one peer). Default 80 MiB. */
  maxFrameBytes?: number;
  /** Bytes a connection may hold unsent before batches for it are dropped (Raft resends). Default 16 MiB. */
  maxBufferedBytes?: number;
  /** Reconnection backoff: the first wait and the cap, in ms; each failure doubles it, with jitter. Default 50 and 2000. */
  backoffMs?: { min: number; max: number };
}

/** Counters of one transport, all since it opened. */
export interface TcpTransportStats {
  /** Messages and bytes handed to sockets and read from them, by message type. */
  sent: Record<number, { messages: number; bytes: number }>;
  received: Record<number, { messages: number; bytes: number }>;
  /** Handshakes refused: no certificate, another CA's, an expired one, or a name not in the cluster. */
  refusedConnections: number;
  /** Connections closed because they sent a bad length, undecodable bytes or a misaddressed message. */
  garbageConnections: number;
  /** Batches dropped because the destination was not connected or its send buffer was full. */
  droppedBatches: number;
  /** Outbound connections established (the first and every reconnection). */
  connects: number;
  /** Well-formed messages the host refused. */
  refusedMessages: number;
  /** Frames written (one per destination per flush that had something for it). */
  framesWritten: number;
  /** Messages that arrived before listen() past the MAX_EARLY held. */
  droppedEarly: number;
}

export class TcpTransportError extends Error {
  override name = 'TcpTransportError';
}

const DEFAULT_MAX_FRAME = 80 << 20;
const DEFAULT_MAX_BUFFERED = 16 << 20;
/** A connection that stayed up this long was accepted: its loss is redialed at the shortest wait again. */
const STABLE_CONNECTION_MS = 1000;
/** Messages held for a host that has not called listen() yet. */
const MAX_EARLY = 4096;

/** An outbound connection to one peer: ours to write on; what it sends back is ignored. */
interface Link {
  peer: number;
  socket: TLSSocket | undefined;
  connected: boolean;
  waitMs: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The network between processes or machines: mutual TLS over TCP, behind
 * the same Transport seam as the MessagePort one, run by the peer's own
 * thread (its worker owns the sockets; nothing hops through another
 * thread). Each peer dials every other peer and writes its messages on that
 * connection; it reads the connections the others dialed to it. So each
 * direction of a pair has its own connection, and nobody has to settle who
 * dials whom.
 *
 * Every connection is authenticated both ways against the cluster's CA
 * before a byte of Raft is read, and the certificate's name says which peer
 * is on the other end: a message on that connection must come from it and
 * be addressed to us, or the connection is closed. One turn's messages to a
 * peer go as one frame in one write. A slow or dead peer costs at most
 * `maxBufferedBytes`: past that its batches are dropped, which Raft treats
 * like any lost message.
 */
export class TcpTransport implements Transport {
  readonly id: number;
  /** The members by id (this peer included), and their ids by certificate name. */
  private readonly peers = new Map<number, TcpPeer>();
  private readonly ids = new Map<string, number>();
  private readonly tls: TlsFiles;
  private readonly maxFrameBytes: number;
  private readonly maxBufferedBytes: number;
  private readonly backoff: { min: number; max: number };
  private readonly server: Server;
  private readonly links = new Map<number, Link>();
  private readonly inbound = new Map<TLSSocket, number>();
  private readonly out = new Map<number, BatchBuffer>();
  private handler: ((m: WireMessage) => boolean | void) | undefined;
  private early: WireMessage[] = [];
  private closed = false;
  private readonly counts: TcpTransportStats = { sent: {}, received: {}, refusedConnections: 0, garbageConnections: 0, droppedBatches: 0, connects: 0, refusedMessages: 0, framesWritten: 0, droppedEarly: 0 };
  /** Told when an established connection to `peer` goes down. */
  onLost: ((peer: number) => void) | undefined;

  private constructor(options: TcpTransportOptions, server: Server) {
    this.id = options.id;
    options.peers.forEach((p, k) => {
      const id = p.id ?? k;
      this.peers.set(id, { ...p, id });
      this.ids.set(p.name, id);
    });
    this.tls = options.tls;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    this.backoff = options.backoffMs ?? { min: 50, max: 2000 };
    this.server = server;
  }

  /**
   * Listen and start dialing the other peers. Rejects with TcpTransportError
   * on bad options and when the address cannot be listened on (in use, not
   * ours), with TlsConfigError on bad TLS material; each names the problem.
   */
  static async open(options: TcpTransportOptions): Promise<TcpTransport> {
    validate(options);
    // Bad TLS material is a TlsConfigError naming what is wrong.
    const ownName = checkTlsFiles(options.tls);
    const self = options.peers.find((p, k) => (p.id ?? k) === options.id)!;
    if (ownName !== self.name) throw new TcpTransportError(`the certificate is for ${JSON.stringify(ownName)}, but peer ${options.id} is ${JSON.stringify(self.name)}`);
    const server = createServer({
      ca: options.tls.ca,
      cert: options.tls.cert,
      key: options.tls.key,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    const t = new TcpTransport(options, server);
    server.on('secureConnection', (s) => t.accept(s));
    // A handshake that fails (no certificate, another CA's): nothing was read from it.
    server.on('tlsClientError', (_e, s) => {
      t.counts.refusedConnections++;
      s.destroy();
    });
    const at = options.listen ?? { host: self.host, port: self.port };
    await new Promise<void>((resolve, reject) => {
      const fail = (e: NodeJS.ErrnoException) => {
        reject(new TcpTransportError(e.code === 'EADDRINUSE' ? `${at.host}:${at.port} is in use` : `cannot listen on ${at.host}:${at.port}: ${e.message}`));
      };
      server.once('error', fail);
      server.listen(at.port, at.host, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', () => {
      // After listening, a server error concerns one connection attempt; the connection's own handlers deal with it.
    });
    for (const p of t.peers.keys()) if (p !== t.id) t.addLink(p);
    return t;
  }

  private addLink(p: number): void {
    const link: Link = { peer: p, socket: undefined, connected: false, waitMs: this.backoff.min, timer: undefined };
    this.links.set(p, link);
    this.dial(link);
  }

  /**
   * A member joined (or changed its name or address): dial it from now on,
   * and accept its connections. Throws TcpTransportError for a name that
   * another member has.
   */
  setPeer(id: number, peer: { name: string; host: string; port: number }): void {
    if (this.closed || id === this.id) return;
    const owner = this.ids.get(peer.name);
    if (owner !== undefined && owner !== id) throw new TcpTransportError(`the name ${JSON.stringify(peer.name)} is member ${owner}'s, not ${id}'s`);
    const known = this.peers.get(id);
    if (known && known.name === peer.name && known.host === peer.host && known.port === peer.port) return;
    if (known) this.ids.delete(known.name);
    this.peers.set(id, { id, ...peer });
    this.ids.set(peer.name, id);
    if (!this.links.has(id)) this.addLink(id);
    else this.setPeerAddress(id, peer.host, peer.port);
  }

  /** A member left: stop dialing it and close its connections (its certificate no longer admits it). */
  removePeer(id: number): void {
    const p = this.peers.get(id);
    if (!p || id === this.id) return;
    this.peers.delete(id);
    this.ids.delete(p.name);
    const link = this.links.get(id);
    this.links.delete(id);
    if (link) {
      clearTimeout(link.timer);
      const s = link.socket;
      link.socket = undefined;
      s?.destroy();
    }
    this.out.delete(id);
    for (const [s, from] of this.inbound) if (from === id) s.destroy();
  }

  /** The members this transport knows, by id. */
  members(): TcpPeer[] {
    return [...this.peers.values()];
  }

  /** The address the server listens on (its port when 0 was asked for). */
  address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new TcpTransportError('not listening');
    return { host: a.address, port: a.port };
  }

  /** Where delivered messages go. Messages that arrive before this are held (up to MAX_EARLY), as the MessagePort transport holds them. */
  listen(handler: (m: WireMessage) => boolean | void): void {
    this.handler = handler;
    const held = this.early;
    this.early = [];
    for (const m of held) this.deliver(m);
  }

  /** The address of `peer` changed (the cluster's configuration says so): reconnect there. */
  setPeerAddress(peer: number, host: string, port: number): void {
    const p = this.peers.get(peer);
    const link = this.links.get(peer);
    if (!p || !link) throw new TcpTransportError(`no peer ${peer}`);
    p.host = host;
    p.port = port;
    link.waitMs = this.backoff.min;
    // Connected or connecting: closing it redials after the shortest wait. Waiting to retry: dial now.
    if (link.socket) link.socket.destroy();
    else if (!this.closed) {
      clearTimeout(link.timer);
      this.dial(link);
    }
  }

  /** Bytes written to `peer`'s connection that the kernel has not taken yet (at most maxBufferedBytes). */
  bufferedBytes(peer: number): number {
    return this.links.get(peer)?.socket?.writableLength ?? 0;
  }

  reachable(peer: number): boolean {
    return this.links.get(peer)?.connected === true;
  }

  stats(): TcpTransportStats {
    return structuredClone(this.counts);
  }

  send(m: WireMessage): void {
    if (this.closed || m.to === this.id || !this.links.has(m.to)) return;
    const frame = encodeFrame({ fromInc: 0, toInc: 0, msg: m });
    let b = this.out.get(m.to);
    if (!b) this.out.set(m.to, (b = new BatchBuffer()));
    b.push(frame);
    count(this.counts.sent, m.type, frame.length);
  }

  /** Write everything queued: one frame, in one write, per destination. */
  flush(): void {
    for (const [to, b] of this.out) {
      if (b.empty) continue;
      const batch = b.take();
      const link = this.links.get(to);
      const s = link?.socket;
      if (!link?.connected || !s || s.writableLength + batch.length > this.maxBufferedBytes) {
        this.counts.droppedBatches++;
        continue;
      }
      s.write(lengthPrefixed(batch));
      this.counts.framesWritten++;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    for (const link of this.links.values()) {
      clearTimeout(link.timer);
      link.socket?.destroy();
    }
    for (const s of this.inbound.keys()) s.destroy();
    this.inbound.clear();
  }

  private dial(link: Link): void {
    if (this.closed || this.links.get(link.peer) !== link) return;
    const p = this.peers.get(link.peer)!;
    const s = connect({
      host: p.host,
      port: p.port,
      ca: this.tls.ca,
      cert: this.tls.cert,
      key: this.tls.key,
      minVersion: 'TLSv1.3',
      // The chain is checked against the CA as usual; on top, the peer must be the one we dialed.
      checkServerIdentity: (host, cert) => {
        const name = peerName(cert);
        if (name !== p.name) return new Error(`${host}:${p.port} presented ${JSON.stringify(name)}, expected ${JSON.stringify(p.name)}`);
        return checkServerIdentity(host, cert);
      },
    });
    link.socket = s;
    s.setNoDelay(true);
    let connectedAt = -Infinity;
    s.on('secureConnect', () => {
      link.connected = true;
      connectedAt = performance.now();
      this.counts.connects++;
    });
    // Nothing meaningful comes back on our own connection; reading keeps the socket from stalling.
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      const was = link.connected;
      link.connected = false;
      if (link.socket !== s) return;
      link.socket = undefined;
      if (this.closed || this.links.get(link.peer) !== link) return;
      if (was) this.onLost?.(link.peer);
      // With TLS 1.3 the client's handshake ends before the server has
      // checked its certificate: a peer that refuses us closes right after
      // "connect". Only a connection that lasted resets the backoff, so a
      // refused one is retried at the slowing pace, not 20 times a second.
      if (performance.now() - connectedAt >= STABLE_CONNECTION_MS) link.waitMs = this.backoff.min;
      const wait = link.waitMs * (0.5 + Math.random() / 2);
      link.waitMs = Math.min(link.waitMs * 2, this.backoff.max);
      link.timer = setTimeout(() => this.dial(link), wait);
    });
  }

  private accept(s: TLSSocket): void {
    if (this.closed) return void s.destroy();
    const name = peerName(s.getPeerCertificate());
    const from = name === undefined ? undefined : this.ids.get(name);
    if (from === undefined || from === this.id) {
      this.counts.refusedConnections++;
      return void s.destroy();
    }
    this.inbound.set(s, from);
    s.setNoDelay(true);
    const reader = new FrameReader(this.maxFrameBytes);
    const garbage = () => {
      this.counts.garbageConnections++;
      s.destroy();
    };
    s.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        if (e instanceof FrameError) return garbage();
        throw e;
      }
      for (const f of frames) {
        if (s.destroyed) return;
        if (!this.receive(f, from)) return garbage();
      }
    });
    s.on('error', () => {});
    s.on('close', () => this.inbound.delete(s));
  }

  /** Deliver one frame's messages from `from`; false if any of it is not something that peer could have sent us. */
  private receive(batch: Uint8Array, from: number): boolean {
    let raws: { raw: unknown; bytes: number }[];
    try {
      raws = unpackBatchSized(batch);
    } catch {
      return false;
    }
    const msgs: { m: WireMessage; bytes: number }[] = [];
    for (const { raw, bytes } of raws) {
      let m: WireMessage;
      try {
        m = decodeFrame(raw, MAX_PEER_ID + 1).msg;
      } catch {
        return false;
      }
      if (m.from !== from || m.to !== this.id) return false;
      msgs.push({ m, bytes });
    }
    // Only a frame that is good throughout is delivered: a bad one closes its connection and delivers nothing.
    for (const { m, bytes } of msgs) {
      count(this.counts.received, m.type, bytes);
      this.deliver(m);
    }
    return true;
  }

  private deliver(m: WireMessage): void {
    if (this.closed) return;
    if (!this.handler) {
      // Held for the host that is still loading, within a bound: Raft resends what is lost.
      if (this.early.length < MAX_EARLY) this.early.push(m);
      else this.counts.droppedEarly++;
      return;
    }
    // The host refused it (no valid peer could have sent it): counted, and the connection kept, as the MessagePort transport does.
    if (this.handler(m) === false) this.counts.refusedMessages++;
  }
}

function count(table: Record<number, { messages: number; bytes: number }>, type: number, bytes: number): void {
  const c = (table[type] ??= { messages: 0, bytes: 0 });
  c.messages++;
  c.bytes += bytes;
}

function validate(o: TcpTransportOptions): void {
  if (!Array.isArray(o.peers) || o.peers.length < 1) throw new TcpTransportError('peers must list at least one peer');
  const ids = new Set<number>();
  o.peers.forEach((p, k) => {
    const id = p?.id ?? k;
    if (!Number.isInteger(id) || id < 0 || id > MAX_PEER_ID) throw new TcpTransportError(`peer ${k} has id ${String(id)}, not a peer id`);
    if (ids.has(id)) throw new TcpTransportError(`the id ${id} is given to two peers`);
    ids.add(id);
  });
  if (!ids.has(o.id)) throw new TcpTransportError(`id ${String(o.id)} is not one of the peers' (${[...ids].join(', ')})`);
  const names = new Set<string>();
  o.peers.forEach((p, i) => {
    if (typeof p?.name !== 'string' || p.name === '') throw new TcpTransportError(`peer ${i} has no name`);
    if (names.has(p.name)) throw new TcpTransportError(`the name ${JSON.stringify(p.name)} is given to two peers`);
    names.add(p.name);
    if (typeof p.host !== 'string' || p.host === '') throw new TcpTransportError(`peer ${p.name} has no host`);
    if (!Number.isInteger(p.port) || p.port < 0 || p.port > 65535) throw new TcpTransportError(`peer ${p.name} has port ${String(p.port)}, not 0-65535`);
  });
  const positive = (v: number | undefined, what: string) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new TcpTransportError(`${what} must be a positive integer, got ${String(v)}`);
  };
  positive(o.maxFrameBytes, 'maxFrameBytes');
  positive(o.maxBufferedBytes, 'maxBufferedBytes');
  if (o.backoffMs && !(o.backoffMs.min > 0 && o.backoffMs.max >= o.backoffMs.min)) throw new TcpTransportError('backoffMs needs 0 < min <= max');
}
