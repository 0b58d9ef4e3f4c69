import { createServer, type Server, type TLSSocket } from 'node:tls';
import { queueReply, decodeRequests } from '../api/client-protocol.js';
import { serveRequests, type ServeExtras } from '../node/client-service.js';
import type { PeerHost } from '../node/host.js';
import { Status, type Outcome } from '../node/outcome.js';
import type { TlsFiles } from '../tls/tls-files.js';
import { FrameError, FrameReader, lengthPrefixed } from '../transport/length-frames.js';
import { TurnBatches } from '../transport/turn-batches.js';
import { TcpTransportError } from '../transport/tcp-transport.js';
import type { HostPort } from './host-port.js';

export interface ClientServerOptions {
  listen: HostPort;
  tls: TlsFiles;
  /** The largest request frame accepted. Default 16 MiB (a command is at most 4 MiB by default). */
  maxFrameBytes?: number;
  /** A connection whose unsent replies pass this is closed: its client does not read. Default 64 MiB. */
  maxBufferedBytes?: number;
}

export interface ClientServerStats {
  connections: number;
  refusedConnections: number;
  garbageConnections: number;
  /** Connections closed because their client did not read its replies. */
  slowConnections: number;
}

/**
 * A node's client port: mutual TLS against the cluster's CA (any holder of
 * a certificate it signed may be a client), then the same requests and
 * replies as a client channel between threads, each batch one
 * length-prefixed frame. Runs on the peer's own thread, so a request costs
 * no hop between threads. Replies to one connection leave once per turn,
 * together.
 */
export class ClientServer {
  private readonly sockets = new Set<TLSSocket>();
  private readonly replies: TurnBatches<TLSSocket>;
  private readonly maxFrameBytes: number;
  private readonly maxBufferedBytes: number;
  private host: PeerHost | undefined;
  private extras: ServeExtras = {};
  private closed = false;
  private readonly counts: ClientServerStats = { connections: 0, refusedConnections: 0, garbageConnections: 0, slowConnections: 0 };

  private constructor(private readonly server: Server, options: ClientServerOptions) {
    this.maxFrameBytes = options.maxFrameBytes ?? 16 << 20;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 64 << 20;
    this.replies = new TurnBatches((s, batch) => {
      if (s.destroyed) return;
      if (s.writableLength + batch.length > this.maxBufferedBytes) {
        this.counts.slowConnections++;
        return void s.destroy();
      }
      s.write(lengthPrefixed(batch));
    });
  }

  /** Listen; rejects with TcpTransportError naming the address when it cannot. Requests wait for serve(). */
  static async open(options: ClientServerOptions): Promise<ClientServer> {
    const server = createServer({ ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    const cs = new ClientServer(server, options);
    server.on('secureConnection', (s) => cs.accept(s));
    server.on('tlsClientError', (_e, s) => {
      cs.counts.refusedConnections++;
      s.destroy();
    });
    const at = options.listen;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new TcpTransportError(e.code === 'EADDRINUSE' ? `the client address ${at.host}:${at.port} is in use` : `cannot listen for clients on ${at.host}:${at.port}: ${e.message}`)),
      );
      server.listen(at.port, at.host, () => {
        server.removeAllListeners('error');
        server.on('error', () => {});
        resolve();
      });
    });
    return cs;
  }

  /** Start answering: requests go to `host`, admin requests to `extras.admin`. Until then every request is answered NotLeader (nothing done). */
  serve(host: PeerHost, extras: ServeExtras): void {
    this.host = host;
    this.extras = extras;
    const previous = host.afterApply;
    // Answers leave as soon as they exist, not after the write the host does next.
    host.afterApply = () => {
      previous?.();
      this.replies.flush();
    };
  }

  address(): HostPort {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new TcpTransportError('not listening');
    return { host: a.address, port: a.port };
  }

  stats(): ClientServerStats {
    return { ...this.counts };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.replies.flush();
    this.server.close();
    for (const s of this.sockets) s.end();
    // Sockets that do not finish in a moment are cut.
    const cut = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 200);
    cut.unref();
  }

  private accept(s: TLSSocket): void {
    if (this.closed) return void s.destroy();
    this.sockets.add(s);
    this.counts.connections++;
    s.setNoDelay(true);
    const reader = new FrameReader(this.maxFrameBytes);
    s.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        this.counts.garbageConnections++;
        return void s.destroy();
      }
      for (const f of frames) {
        if (s.destroyed || this.closed) return;
        const push = (id: number, o: Outcome) => queueReply(this.replies, s, id, o);
        if (!this.host) {
          // Still starting: nothing can be done yet; the client tries again.
          for (const r of decodeRequests(f).requests) push(r.id, { status: Status.NotLeader, message: 'the node is starting', leader: -1 });
          continue;
        }
        if (serveRequests(this.host, f, push, this.extras) > 0) {
          // A frame with values that are not requests: the client is broken or hostile.
          this.counts.garbageConnections++;
          return void s.destroy();
        }
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      this.sockets.delete(s);
      this.replies.drop(s);
    });
  }
}
