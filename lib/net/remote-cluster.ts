import { RequestKind } from '../api/client-protocol.js';
import type { CallResult } from '../api/client.js';
import { decodeValue } from '../api/state-machine.js';
import { Clerk, type KvEnds } from '../kv/clerk.js';
import { Status } from '../node/outcome.js';
import type { TlsFiles } from '../tls/tls-files.js';
import { encodeAdmin, type AddedMember, type AdminRequest, type NodeReport } from './admin.js';
import { formatHostPort, type HostPort } from './host-port.js';
import { NodeConnection, type ConnectionOptions } from './node-connection.js';

/** No endpoint answered, or the cluster refused an admin request; the message says which and why. */
export class RemoteError extends Error {
  override name = 'RemoteError';
}

export interface RemoteClusterOptions extends Omit<ConnectionOptions, 'tls'> {
  /** The nodes' client addresses: any of them, in any order; dead ones are skipped. */
  endpoints: HostPort[];
  tls: TlsFiles;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A cluster of node processes as a client sees it: one connection per
 * endpoint, shared by every Clerk made from it. Clerks find the leader by
 * asking around (a node that does not lead answers NotLeader and the
 * Clerk moves on), skip endpoints that are down, and retry; Puts and
 * Appends are applied exactly once across retries. Admin calls (status,
 * leadership transfer) go to the endpoint that can answer them.
 */
export class RemoteCluster {
  private readonly conns: NodeConnection[];
  private closed = false;

  constructor(options: RemoteClusterOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) throw new RemoteError('name at least one endpoint');
    this.conns = options.endpoints.map((e) => new NodeConnection(e, options));
  }

  /** The endpoints as a Clerk's ends (list position k is endpoint k). */
  ends(): KvEnds {
    return {
      size: this.conns.length,
      call: (k, kind, flags, timeoutMs, payload, onWait) => this.conns[k]!.call(kind, flags, timeoutMs, payload, onWait),
      closed: () => this.closed,
      release: () => {},
    };
  }

  /** A key/value client on this cluster (one operation at a time; make one per concurrent caller). */
  clerk(): Clerk {
    return new Clerk(this.ends());
  }

  /** Each endpoint's report, or why it gave none. */
  async statusAll(timeoutMs = 2000): Promise<{ endpoint: string; report?: NodeReport; error?: string }[]> {
    return Promise.all(
      this.conns.map(async (c) => {
        const endpoint = formatHostPort(c.endpoint);
        const r = await this.admin(c, ['status'], timeoutMs);
        return typeof r === 'string' ? { endpoint, error: r } : { endpoint, report: decodeValue(r) as NodeReport };
      }),
    );
  }

  /**
   * The leader's report (of the highest term any endpoint reports), else
   * the newest one: a removed node, or one cut off, may not know the
   * configuration has changed.
   */
  async status(timeoutMs = 5000): Promise<NodeReport> {
    const deadline = performance.now() + timeoutMs;
    let why = '';
    while (performance.now() < deadline) {
      const all = await this.statusAll(Math.max(1, Math.min(2000, deadline - performance.now())));
      const reports = all.flatMap((s) => (s.report ? [s.report] : []));
      const top = Math.max(0, ...reports.map((r) => r.term));
      const best = reports.find((r) => r.role === 'leader' && r.term === top) ?? [...reports].sort((a, b) => b.commitIndex - a.commitIndex)[0];
      if (best) return best;
      why = all.map((s) => `${s.endpoint}: ${s.error}`).join('; ');
      await sleep(50);
    }
    throw new RemoteError(`no endpoint answered within ${timeoutMs} ms (${why})`);
  }

  /** Hand leadership to member `name`; resolves once it leads. */
  async transferLeader(name: string, timeoutMs = 5000): Promise<void> {
    await this.atLeader((left) => ['transfer', name, left], timeoutMs, `the leadership did not move to ${name}`);
  }

  /**
   * Add member `name`, reached by its peers at `address`, as a learner:
   * resolves with its id and what its node is to be started with (serve
   * --join CLUSTER-ID --members LIST). Promote it once it runs.
   */
  async addMember(name: string, address: string, timeoutMs = 10_000): Promise<AddedMember> {
    return decodeValue(await this.atLeader((left) => ['add', name, address, left], timeoutMs, `${name} was not added`)) as AddedMember;
  }

  /** Make learner `name` a voter once it has caught up. */
  async promoteMember(name: string, timeoutMs = 10_000): Promise<void> {
    await this.atLeader((left) => ['promote', name, left], timeoutMs, `${name} was not promoted`);
  }

  /** Remove member `name` (the leader too: it steps down once the change commits). Its node should be stopped then. */
  async removeMember(name: string, timeoutMs = 10_000): Promise<void> {
    await this.atLeader((left) => ['remove', name, left], timeoutMs, `${name} was not removed`);
  }

  /** Send an admin request to the node that leads (found by asking every endpoint), again while the leader changes. */
  private async atLeader(req: (leftMs: number) => AdminRequest, timeoutMs: number, what: string): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    let why = 'no leader found';
    while (performance.now() < deadline) {
      const reports = (await this.statusAll(Math.min(2000, timeoutMs))).filter((s) => s.report);
      const top = Math.max(0, ...reports.map((s) => s.report!.term));
      const at = reports.find((s) => s.report!.role === 'leader' && s.report!.term === top);
      if (!at) {
        await sleep(50);
        continue;
      }
      const conn = this.conns.find((c) => formatHostPort(c.endpoint) === at.endpoint)!;
      const r = await this.admin(conn, req(Math.max(1, Math.ceil(deadline - performance.now()))), timeoutMs);
      if (typeof r !== 'string') return r;
      if (r.startsWith('rejected:')) throw new RemoteError(r.slice('rejected: '.length));
      why = r;
      await sleep(50);
    }
    throw new RemoteError(`${what} within ${timeoutMs} ms (${why})`);
  }

  close(): void {
    this.closed = true;
    for (const c of this.conns) c.close();
  }

  /** The answer's bytes, or a string saying why there is none ("rejected: ..." when the node refused the request itself). */
  private async admin(c: NodeConnection, req: AdminRequest, timeoutMs: number): Promise<Uint8Array | string> {
    const r: CallResult = await c.call(RequestKind.Admin, 0, timeoutMs, encodeAdmin(req));
    if (r === 'down') return 'cannot connect';
    if (r === 'lost') return 'the connection was lost';
    if (r.status === Status.Ok) return r.payload ?? new Uint8Array(0);
    if (r.status === Status.Rejected) return `rejected: ${r.message ?? 'refused'}`;
    return r.message ?? `status ${r.status}`;
  }
}
