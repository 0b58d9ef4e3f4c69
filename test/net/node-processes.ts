// A cluster of `actor-raft serve` processes on loopback for the tests:
// certificates from a development CA, free ports, every process started and
// stopped here, each wait bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDevCa, issueCertificate } from '../../lib/tls/dev-ca.js';
import { readTlsFiles, type TlsFiles } from '../../lib/tls/tls-files.js';
import { RemoteCluster } from '../../lib/net/remote-cluster.js';

export const CLI = fileURLToPath(new URL('../../lib/cli/actor-raft.js', import.meta.url));

export function within<T>(p: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Free loopback ports (bound, read, closed: another process could take one in between, which these tests would report). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface NodeProc {
  name: string;
  child: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

export class ProcessCluster {
  readonly dir: string;
  readonly names: string[];
  /** The members of the initial cluster (the first names); the others can join later. */
  readonly initial: string[];
  /** How joined nodes are started (their --join and --members). */
  private readonly joined = new Map<string, { clusterId: string; members: string }>();
  peerPorts: number[] = [];
  clientPorts: number[] = [];
  metricsPorts: number[] = [];
  readonly procs = new Map<string, NodeProc>();
  clientTls!: TlsFiles;

  private constructor(names: string[], initial: number) {
    this.dir = mkdtempSync(join(tmpdir(), 'actor-raft-nodes-'));
    this.names = names;
    this.initial = names.slice(0, initial);
  }

  static async create(names = ['a', 'b', 'c'], initial = names.length): Promise<ProcessCluster> {
    const c = new ProcessCluster(names, initial);
    const ca = await createDevCa();
    for (const name of [...names, 'client']) {
      const pem = await issueCertificate(ca, name);
      writeFileSync(join(c.dir, `${name}.crt`), pem.cert);
      writeFileSync(join(c.dir, `${name}.key`), pem.key);
    }
    writeFileSync(join(c.dir, 'ca.crt'), ca.cert);
    const ports = await freePorts(3 * names.length);
    c.peerPorts = ports.slice(0, names.length);
    c.clientPorts = ports.slice(names.length, 2 * names.length);
    c.metricsPorts = ports.slice(2 * names.length);
    c.clientTls = readTlsFiles(c.tlsPaths('client'));
    return c;
  }

  tlsPaths(name: string): { ca: string; cert: string; key: string } {
    return { ca: join(this.dir, 'ca.crt'), cert: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`) };
  }

  initialCluster(): string {
    return this.initial.map((n, i) => `${n}=127.0.0.1:${this.peerPorts[i]}`).join(',');
  }

  peerAddress(name: string): string {
    return `127.0.0.1:${this.peerPorts[this.names.indexOf(name)]}`;
  }

  /** From now on `name` starts as a node joining the cluster (what `member add` answered). */
  setJoined(name: string, added: { clusterId: string; members: string }): void {
    this.joined.set(name, added);
  }

  dataDir(name: string): string {
    return join(this.dir, `${name}.data`);
  }

  serveArgs(name: string): string[] {
    const i = this.names.indexOf(name);
    const t = this.tlsPaths(name);
    const how = this.joined.get(name);
    const cluster = how ? ['--join', how.clusterId, '--members', how.members, '--listen-peer', this.peerAddress(name)] : ['--initial-cluster', this.initialCluster()];
    return ['serve', '--name', name, ...cluster, '--listen-client', `127.0.0.1:${this.clientPorts[i]}`, '--listen-metrics', `127.0.0.1:${this.metricsPorts[i]}`, '--data-dir', this.dataDir(name), '--ca', t.ca, '--cert', t.cert, '--key', t.key];
  }

  /** Run the CLI once; resolves with its exit code and output. */
  run(args: string[], ms = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return within(
      new Promise((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      }),
      `actor-raft ${args[0]}`,
      ms,
    );
  }

  clientArgs(): string[] {
    const t = this.tlsPaths('client');
    return ['--endpoints', this.clientPorts.map((p) => `127.0.0.1:${p}`).join(','), '--ca', t.ca, '--cert', t.cert, '--key', t.key];
  }

  /** Start node `name`; resolves once it says it serves. */
  async start(name: string): Promise<NodeProc> {
    const child = spawn(process.execPath, [CLI, ...this.serveArgs(name)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p: NodeProc = { name, child, out: '', exited: new Promise((r) => child.once('exit', (code) => r(code))) };
    this.procs.set(name, p);
    child.stdout!.on('data', (d) => (p.out += d));
    child.stderr!.on('data', (d) => (p.out += d));
    await within(
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (p.out.includes('"msg":"serving"')) resolve();
        };
        child.stdout!.on('data', check);
        void p.exited.then((code) => reject(new Error(`node ${name} exited with ${code} while starting: ${p.out}`)));
      }),
      `node ${name} to start`,
      20_000,
    );
    return p;
  }

  /** Start every member of the initial cluster. */
  async startAll(): Promise<void> {
    await Promise.all(this.initial.map((n) => this.start(n)));
  }

  /** SIGTERM node `name` and wait for it to exit. */
  async stop(name: string): Promise<void> {
    const p = this.procs.get(name);
    if (!p) return;
    p.child.kill('SIGTERM');
    await within(p.exited, `node ${name} to stop`, 10_000);
    this.procs.delete(name);
  }

  /** SIGKILL node `name` and wait for it to be gone. */
  async kill(name: string): Promise<void> {
    const p = this.procs.get(name);
    if (!p) return;
    p.child.kill('SIGKILL');
    await within(p.exited, `node ${name} to die`, 10_000);
    this.procs.delete(name);
  }

  /** SIGTERM every node (SIGKILL past 5 s) and remove the files. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.procs.values()].map(async (p) => {
        p.child.kill('SIGTERM');
        const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    this.procs.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The node's /metrics text. */
  async metrics(name: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPorts[this.names.indexOf(name)]}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`/metrics of ${name} answered ${res.status}`);
    return res.text();
  }

  /** The node's log lines so far (JSON), parsed. */
  logs(name: string): Record<string, unknown>[] {
    const p = this.procs.get(name);
    if (!p) return [];
    return p.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  remote(): RemoteCluster {
    return new RemoteCluster({ endpoints: this.clientPorts.map((port) => ({ host: '127.0.0.1', port })), tls: this.clientTls });
  }

  /** The name of the node that leads, as a majority of reports say. */
  async leader(remote: RemoteCluster, ms = 10_000): Promise<string> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const all = await remote.statusAll(1000);
      // The leader of the highest term: one of an older term may not know yet that it was replaced.
      const top = Math.max(...all.map((s) => s.report?.term ?? 0));
      const leading = all.find((s) => s.report?.role === 'leader' && s.report.term === top);
      if (leading) return leading.report!.name;
      await sleep(20);
    }
    throw new Error(`no leader within ${ms} ms`);
  }
}
