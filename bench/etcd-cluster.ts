/**
 * A 3-member etcd cluster on loopback for bench/versus-etcd.ts: find the
 * binary, start the members on free 127.0.0.1 ports, wait until every
 * member reports healthy, read their CPU from /proc, stop them (SIGTERM,
 * then SIGKILL after a bound) and delete their data. Every process it
 * starts is its own and is also bounded in lifetime by coreutils `timeout`,
 * so even a bench killed with SIGKILL leaves no etcd running for long.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

/** The first executable called `name` on PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** "3.4.23" from `etcd --version`. */
export function etcdVersion(bin: string): string {
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000, env: cleanEnv() });
  return /etcd Version:\s*(\S+)/.exec(out)?.[1] ?? out.trim().split('\n')[0] ?? 'unknown';
}

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
export function clockTicks(): number {
  const t = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 10_000 }).trim());
  if (!Number.isInteger(t) || t <= 0) throw new Error(`getconf CLK_TCK gave ${t}`);
  return t;
}

/** utime + stime of a process (all its threads), in clock ticks. */
export function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (field 14) is fields[11] and stime (15) fields[12].
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * `count` ports that were free on 127.0.0.1 a moment ago: each bound with
 * port 0 (the kernel picks an unused one) and all released together, so no
 * two are equal. Another process could take one before etcd binds it; etcd
 * then fails to start and the row says so.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** The environment without ETCD_* variables, which etcd reads as flags. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The last `lines` lines of a file, for error messages. */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (e) {
    return `(no log: ${(e as Error).message})`;
  }
}

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  log: string;
  /** The process we spawned: `timeout` wrapping etcd, or etcd itself. */
  child: ChildProcess;
  /** etcd's own pid (the child of `timeout`), for /proc and SIGKILL. */
  pid: number;
  exited: boolean;
  exitStatus?: number | string | null;
}

export interface ClusterOptions {
  bin: string;
  /** Data directories go here (one per member); deleted by stop(). */
  dataDir: string;
  /** Member logs go here; kept, so that a failure can show them. */
  logDir: string;
  /** Unique per cluster, so that members of an old cluster can never join this one. */
  token: string;
  /** Longest the members may live, in seconds (a safety net; stop() is the normal end). */
  lifetimeSeconds: number;
  /** The backend's size limit (etcd's default is 2 GiB). */
  quotaBackendBytes?: number;
}

/** The pid of the only child of `parent`, once it has one (bounded wait; throws if `parent` exits first). */
async function childPid(parent: number, exited: () => boolean, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited()) throw new Error(`process ${parent} exited`);
    try {
      // /proc/<pid>/task/<pid>/children lists the children of the main thread (timeout is single-threaded).
      const kids = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim();
      if (kids) return Number(kids.split(/\s+/)[0]);
    } catch {
      // Kernels without CONFIG_PROC_CHILDREN: scan /proc for a process whose parent is `parent`.
      for (const d of readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
          const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
          if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) return Number(d);
        } catch {
          // gone
        }
      }
    }
    if (Date.now() > deadline) throw new Error(`process ${parent} started no child within ${timeoutMs} ms`);
    await sleep(5);
  }
}

function hardKill(m: Member): void {
  try {
    if (m.pid > 0) process.kill(m.pid, 'SIGKILL');
    else m.child.kill('SIGTERM');
  } catch {
    // already gone
  }
}

export class EtcdCluster {
  /** Clusters started and not yet stopped, starting ones included: what a last-resort 'exit' handler must kill (killAll). */
  private static readonly live = new Set<EtcdCluster>();
  private stopped = false;
  private constructor(
    readonly members: Member[],
    private readonly dataDir: string,
  ) {
    EtcdCluster.live.add(this);
  }

  /** Synchronous, for process 'exit': SIGKILL every member of every cluster not stopped yet. */
  static killAll(): void {
    for (const c of EtcdCluster.live) c.killNow();
  }

  /** The members' client URLs, for the etcd3 client. */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  get logs(): string[] {
    return this.members.map((m) => m.log);
  }

  /**
   * Start three members and wait until all are healthy (at most
   * `healthTimeoutMs`); on failure, stop what was started and throw with
   * the logs' tails.
   */
  static async start(opts: ClusterOptions, healthTimeoutMs = 30_000): Promise<EtcdCluster> {
    const ports = await freePorts(6);
    const names = ['m0', 'm1', 'm2'];
    const peerUrls = names.map((_, i) => `http://127.0.0.1:${ports[3 + i]}`);
    const initialCluster = names.map((n, i) => `${n}=${peerUrls[i]}`).join(',');
    mkdirSync(opts.dataDir, { recursive: true });
    mkdirSync(opts.logDir, { recursive: true });
    const timeoutBin = findOnPath('timeout');
    const members: Member[] = [];
    const cluster = new EtcdCluster(members, opts.dataDir);
    try {
      for (const [i, name] of names.entries()) {
        const clientUrl = `http://127.0.0.1:${ports[i]}`;
        const args = [
          `--name=${name}`,
          `--data-dir=${join(opts.dataDir, name)}`,
          `--listen-client-urls=${clientUrl}`,
          `--advertise-client-urls=${clientUrl}`,
          `--listen-peer-urls=${peerUrls[i]}`,
          `--initial-advertise-peer-urls=${peerUrls[i]}`,
          `--initial-cluster=${initialCluster}`,
          '--initial-cluster-state=new',
          `--initial-cluster-token=${opts.token}`,
          `--quota-backend-bytes=${opts.quotaBackendBytes ?? 8 * 2 ** 30}`,
          // The structured logger; 3.4's default (capnslog) is deprecated and warns.
          '--logger=zap',
          '--log-outputs=stderr',
        ];
        const log = join(opts.logDir, `${opts.token}-${name}.log`);
        const fd = openSync(log, 'a');
        // timeout forwards SIGTERM to etcd and kills it with SIGKILL 5 s after its own deadline.
        const [cmd, argv] = timeoutBin
          ? [timeoutBin, ['--kill-after=5', String(Math.ceil(opts.lifetimeSeconds)), opts.bin, ...args]]
          : [opts.bin, args];
        const child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], env: cleanEnv() });
        closeSync(fd);
        const m: Member = { name, clientUrl, peerUrl: peerUrls[i]!, log, child, pid: -1, exited: false };
        members.push(m);
        child.once('exit', (code, signal) => {
          m.exited = true;
          m.exitStatus = signal ?? code;
        });
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', resolve);
          child.once('error', reject);
        });
        m.pid = timeoutBin ? await childPid(child.pid!, () => m.exited, 5000).catch((e: Error) => {
          throw new Error(m.exited ? `member ${name} exited at once (${String(m.exitStatus)})` : e.message);
        }) : child.pid!;
      }
      await cluster.waitHealthy(healthTimeoutMs);
      return cluster;
    } catch (e) {
      await cluster.stop();
      const logs = members.map((m) => `--- ${m.log} (last lines)\n${tail(m.log)}`).join('\n');
      throw new Error(`etcd cluster did not start: ${(e as Error).message}\n${logs}`);
    }
  }

  /** Every member answers /health with "true" (a leader and a quorum read); bounded. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const dead = this.members.find((m) => m.exited);
      if (dead) throw new Error(`member ${dead.name} exited (${String(dead.exitStatus)})`);
      const states = await Promise.all(
        this.members.map(async (m) => {
          try {
            const r = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
            const body = (await r.json()) as { health?: string };
            return body.health === 'true' ? '' : `${m.name}: ${JSON.stringify(body)}`;
          } catch (e) {
            return `${m.name}: ${(e as Error).message}`;
          }
        }),
      );
      last = states.filter(Boolean).join('; ');
      if (!last) return;
      if (Date.now() > deadline) throw new Error(`not healthy within ${timeoutMs} ms (${last})`);
      await sleep(100);
    }
  }

  /** utime + stime of the three etcd processes, in clock ticks. */
  cpuTicks(): number {
    return this.members.reduce((s, m) => s + processTicks(m.pid), 0);
  }

  /**
   * Synchronous last resort (process 'exit'): SIGKILL every member still
   * running. etcd itself, not `timeout` around it: a killed `timeout`
   * would leave its etcd running with no deadline. Only when etcd's pid
   * is not known yet, SIGTERM to `timeout`, which passes it on.
   */
  killNow(): void {
    for (const m of this.members) if (!m.exited) hardKill(m);
  }

  /**
   * Each member in turn: SIGTERM, SIGKILL if it has not exited within
   * `graceMs`; then delete the data. Idempotent. One at a time because a
   * stopping leader first hands its leadership to a member it is connected
   * to, and waits up to etcd's request timeout (about 7 s here) for that
   * member to take over: with all three stopped at once the hand-over
   * cannot succeed and the last leader took 7 s to exit. In turn, each
   * hand-over goes to a member still running, and the last member finds
   * no connected peer and gives up at once ("unhealthy cluster"): about
   * 0.2 s for the three.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const m of this.members) {
      if (m.exited) continue;
      const exit = new Promise<void>((r) => (m.exited ? r() : m.child.once('exit', () => r())));
      try {
        // To etcd itself (timeout then exits with it); to the spawned process if etcd's pid is not known yet.
        if (m.pid > 0) process.kill(m.pid, 'SIGTERM');
        else m.child.kill('SIGTERM');
      } catch {
        // already gone
      }
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([exit.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), graceMs)))]);
      clearTimeout(timer);
      if (!inTime) {
        hardKill(m);
        await Promise.race([exit, sleep(5000)]);
      }
    }
    EtcdCluster.live.delete(this);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
