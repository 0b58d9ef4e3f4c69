import { connect, type TLSSocket } from 'node:tls';
import { decodeReplies, queueRequest, type ClientReply, type RequestKind } from '../api/client-protocol.js';
import type { CallResult } from '../api/client.js';
import type { TlsFiles } from '../tls/tls-files.js';
import { FrameError, FrameReader, lengthPrefixed } from '../transport/length-frames.js';
import { TurnBatches } from '../transport/turn-batches.js';
import type { HostPort } from './host-port.js';

export interface ConnectionOptions {
  tls: TlsFiles;
  /** How long a handshake may take before the endpoint counts as down. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** How long past a request's own timeout to wait for its answer before giving it up as lost. Default 1000 ms. */
  answerGraceMs?: number;
}

/** Requests leave once per turn per connection, together. */
const outgoing = new TurnBatches<TLSSocket>((s, batch) => {
  if (!s.destroyed) s.write(lengthPrefixed(batch));
});

/**
 * A client's connection to one node's client port, over mutual TLS. It
 * connects on first use and again after it drops; an endpoint that
 * refused or timed out is left alone for a while (from 100 ms, doubling
 * to 2 s), its calls answered 'down' at once (nothing was sent), so a
 * client moves on to the next endpoint without waiting.
 */
export class NodeConnection {
  private socket: TLSSocket | undefined;
  private ready: Promise<boolean> | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ClientReply | 'lost') => void>();
  private downUntil = 0;
  private downWaitMs = 100;
  private closed = false;

  constructor(
    readonly endpoint: HostPort,
    private readonly options: ConnectionOptions,
  ) {}

  /** One request; resolves with its reply, 'down' (nothing was sent) or 'lost' (sent, and no answer will come). */
  async call(kind: RequestKind, flags: number, timeoutMs: number, payload: Uint8Array, onWait?: (cancel: () => void) => void): Promise<CallResult> {
    const s = await this.connected();
    if (!s) return 'down';
    const id = this.nextId++;
    const ms = Math.max(1, Math.ceil(timeoutMs));
    return new Promise<CallResult>((resolve) => {
      // A node that stopped answering (frozen, cut off without a reset) must not hold the caller forever.
      const timer = setTimeout(() => finish('lost'), ms + (this.options.answerGraceMs ?? 1000));
      const finish = (r: ClientReply | 'lost') => {
        if (!this.waiting.delete(id)) return;
        clearTimeout(timer);
        resolve(r);
      };
      this.waiting.set(id, finish);
      onWait?.(() => finish('lost'));
      queueRequest(outgoing, s, id, kind, flags, ms, payload);
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.fail();
  }

  private fail(): void {
    for (const finish of [...this.waiting.values()]) finish('lost');
  }

  private connected(): Promise<TLSSocket | undefined> {
    if (this.closed || performance.now() < this.downUntil) return Promise.resolve(undefined);
    if (this.socket && this.ready) return this.ready.then((ok) => (ok ? this.socket : undefined));
    const { tls } = this.options;
    const s = connect({ host: this.endpoint.host, port: this.endpoint.port, ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3' });
    this.socket = s;
    s.setNoDelay(true);
    const reader = new FrameReader(64 << 20);
    s.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        if (e instanceof FrameError) return void s.destroy();
        throw e;
      }
      for (const f of frames) for (const r of decodeReplies(f)) this.waiting.get(r.id)?.(r);
    });
    this.ready = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => s.destroy(), this.options.connectTimeoutMs ?? 2000);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        this.downWaitMs = 100;
        resolve(true);
      });
      s.on('error', () => {});
      s.once('close', () => {
        clearTimeout(timer);
        if (this.socket === s) {
          this.socket = undefined;
          this.ready = undefined;
        }
        resolve(false);
        this.fail();
      });
    }).then((ok) => {
      if (!ok) {
        this.downUntil = performance.now() + this.downWaitMs;
        this.downWaitMs = Math.min(this.downWaitMs * 2, 2000);
      }
      return ok;
    });
    return this.ready.then((ok) => (ok ? s : undefined));
  }
}
