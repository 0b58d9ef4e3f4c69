/**
 * Three `actor-raft serve` processes on loopback for bench/versus-etcd.ts
 * (--ours nodes): a development CA and certificates in the cluster's
 * directory, free ports, each node started and waited for, their CPU read
 * from /proc, and every process stopped again (SIGTERM, then SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDevCa, issueCertificate } from '../lib/tls/dev-ca.js';
import { readTlsFiles } from '../lib/tls/tls-files.js';
import { RemoteCluster } from '../lib/net/remote-cluster.js';
import { freePorts, processTicks } from './etcd-cluster.js';

const CLI = fileURLToPath(new URL('../lib/cli/actor-raft.js', import.meta.url));
const live = new Set<ChildProcess>();

export class NodeCluster {
  private constructor(
    readonly dir: string,
    readonly procs: ChildProcess[],
    readonly clientPorts: number[],
    private readonly clientTls: ReturnType<typeof readTlsFiles>,
  ) {}

  /** Start `n` nodes with their data under `dir`; resolves once every one serves. */
  static async start(dir: string, n: number, snapshotThreshold: number): Promise<NodeCluster> {
    mkdirSync(dir, { recursive: true });
    const names = Array.from({ length: n }, (_, k) => `node-${k + 1}`);
    const ca = await createDevCa();
    for (const name of [...names, 'client']) {
      const pem = await issueCertificate(ca, name);
      writeFileSync(join(dir, `${name}.crt`), pem.cert);
      writeFileSync(join(dir, `${name}.key`), pem.key);
    }
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    const ports = await freePorts(2 * n);
    const initial = names.map((name, k) => `${name}=127.0.0.1:${ports[k]}`).join(',');
    const procs: ChildProcess[] = [];
    await Promise.all(
      names.map(
        (name, k) =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(
              process.execPath,
              [CLI, 'serve', '--name', name, '--initial-cluster', initial, '--listen-client', `127.0.0.1:${ports[n + k]}`, '--data-dir', join(dir, name),
                '--snapshot-threshold', String(snapshotThreshold), '--ca', join(dir, 'ca.crt'), '--cert', join(dir, `${name}.crt`), '--key', join(dir, `${name}.key`)],
              { stdio: ['ignore', 'pipe', 'pipe'] },
            );
            live.add(child);
            procs.push(child);
            let out = '';
            const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s: ${out}`)), 30_000);
            child.stdout!.on('data', (d) => {
              out += d;
              if (out.includes('"msg":"serving"')) {
                clearTimeout(timer);
                resolve();
              }
            });
            child.stderr!.on('data', (d) => (out += d));
            child.once('exit', (code) => {
              live.delete(child);
              clearTimeout(timer);
              reject(new Error(`${name} exited with ${code}: ${out}`));
            });
          }),
      ),
    );
    return new NodeCluster(dir, procs, ports.slice(n), readTlsFiles({ ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') }));
  }

  remote(): RemoteCluster {
    return new RemoteCluster({ endpoints: this.clientPorts.map((port) => ({ host: '127.0.0.1', port })), tls: this.clientTls });
  }

  /** utime + stime of the node processes (all their threads), in clock ticks. */
  cpuTicks(): number {
    return this.procs.reduce((sum, p) => sum + processTicks(p.pid!), 0);
  }

  exited(): boolean {
    return this.procs.some((p) => p.exitCode !== null || p.signalCode !== null);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const kill = setTimeout(() => p.kill('SIGKILL'), 5000);
            p.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
  }

  /** Last resort on exit: whatever still runs is killed. */
  static killAll(): void {
    for (const p of live) p.kill('SIGKILL');
  }
}
