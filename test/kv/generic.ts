import { checkKvHistory } from '../../lib/check/index.js';
import { KvConfig, OpLog, electionTimeout, linearizabilityCheckTimeout, sleep, type KvClient } from '../../lib/testing/index.js';

/** checkClntAppends: every "x c j y" for j < count, once each, in order. */
export function checkClntAppends(cfg: KvConfig, clnt: number, v: string, count: number): void {
  let lastoff = -1;
  for (let j = 0; j < count; j++) {
    const wanted = `x ${clnt} ${j} y`;
    const off = v.indexOf(wanted);
    if (off < 0) cfg.fatal(`${clnt} missing element ${wanted} in Append result ${v}`);
    const off1 = v.lastIndexOf(wanted);
    if (off1 !== off) cfg.fatal(`duplicate element ${wanted} in Append result`);
    if (off <= lastoff) cfg.fatal(`wrong order for element ${wanted} in Append result`);
    lastoff = off;
  }
}

/** checkConcurrentAppends: the same checks for every client i with counts[i]. */
export function checkConcurrentAppends(cfg: KvConfig, v: string, counts: number[]): void {
  counts.forEach((m, i) => checkClntAppends(cfg, i, v, m));
}

/**
 * spawn_clients_and_wait: n client tasks (0..n-1), each with a fresh clerk
 * connected to all servers, deleted when the body returns. A body that
 * fails fails the whole test (cfg.fatal) at once.
 */
export async function spawnClientsAndWait(cfg: KvConfig, n: number, body: (cli: number, ck: KvClient) => Promise<void>): Promise<void> {
  const runs = Array.from({ length: n }, async (_, cli) => {
    const ck = cfg.makeClient(cfg.all());
    try {
      await body(cli, ck);
    } finally {
      cfg.deleteClient(ck);
    }
  });
  const results = await Promise.allSettled(runs);
  const bad = results.find((r) => r.status === 'rejected');
  if (bad) {
    if (cfg.finished) return;
    cfg.fatal(`failure: ${String((bad as PromiseRejectedResult).reason)}`);
  }
}

/** The partitioner: random halves every electionTimeout + U[0,199] ms until told to stop. */
async function partitioner(cfg: KvConfig, stop: { done: boolean }): Promise<void> {
  while (!stop.done) {
    const a: number[][] = [[], []];
    for (let i = 0; i < cfg.n; i++) a[cfg.randint(0, 1)]!.push(i);
    cfg.partition(a[0]!, a[1]!);
    await sleep(electionTimeout + cfg.randint(0, 199));
  }
}

export interface GenericParams {
  part: string;
  nclients: number;
  nservers: number;
  unreliable: boolean;
  crash: boolean;
  partitions: boolean;
  maxraftstate: number;
  randomkeys: boolean;
}

export function genericTitle(p: GenericParams): string {
  let title = 'Test: ';
  if (p.unreliable) title += 'unreliable net, ';
  if (p.crash) title += 'restarts, ';
  if (p.partitions) title += 'partitions, ';
  if (p.maxraftstate !== -1) title += 'snapshots, ';
  if (p.randomkeys) title += 'random keys, ';
  title += p.nclients > 1 ? 'many clients' : 'one client';
  return `${title} (${p.part})`;
}

/** GenericTest: three iterations of clients, faults and checks, then one linearizability check. */
export async function genericTest(cfg: KvConfig, p: GenericParams): Promise<void> {
  cfg.begin(genericTitle(p));
  const opLog = new OpLog();
  const ck = cfg.makeClient(cfg.all());

  for (let iter = 0; iter < 3; iter++) {
    const stop = { done: false };
    const pstop = { done: false };
    const finals: number[] = new Array(p.nclients).fill(0);
    const clients = spawnClientsAndWait(cfg, p.nclients, async (cli, myck) => {
      let j = 0;
      let last = '';
      try {
        if (!p.randomkeys) await cfg.put(myck, String(cli), '', opLog, cli);
        while (!stop.done && !cfg.finished) {
          const key = p.randomkeys ? String(cfg.randint(0, p.nclients - 1)) : String(cli);
          const nv = `x ${cli} ${j} y`;
          if (cfg.randint(0, 999) < 500) {
            await cfg.append(myck, key, nv, opLog, cli);
            if (!p.randomkeys) last += nv;
            j++;
          } else if (p.randomkeys && cfg.randint(0, 999) < 100) {
            await cfg.put(myck, key, nv, opLog, cli);
            j++;
          } else {
            const v = await cfg.get(myck, key, opLog, cli);
            if (!p.randomkeys && v !== last) cfg.fatal(`get wrong value, key ${key}, wanted:\n${last}\n, got\n${v}\n`);
          }
        }
      } finally {
        finals[cli] = j;
      }
    });

    let parts: Promise<void> | undefined;
    if (p.partitions) {
      // Let the clients run undisturbed for a moment before the partitions begin.
      await sleep(1000);
      parts = partitioner(cfg, pstop);
    }
    await sleep(5000);
    stop.done = true;
    pstop.done = true;

    if (parts) {
      await parts;
      cfg.connectAll();
      // A request stranded at a minority leader needs a new term to fail over.
      await sleep(electionTimeout);
    }
    if (p.crash) {
      for (let i = 0; i < cfg.n; i++) await cfg.shutdownServer(i);
      await sleep(electionTimeout);
      for (let i = 0; i < cfg.n; i++) await cfg.startServer(i);
      cfg.connectAll();
    }

    await clients;
    for (let i = 0; i < p.nclients; i++) {
      const key = String(i);
      const v = await cfg.get(ck, key, opLog, 0);
      if (!p.randomkeys) checkClntAppends(cfg, i, v, finals[i]!);
    }

    if (p.maxraftstate > 0) {
      const sz = cfg.logSize();
      if (sz > 8 * p.maxraftstate) cfg.fatal(`logs were not trimmed (${sz} > 8*${p.maxraftstate})`);
    }
    if (p.maxraftstate < 0) {
      const ssz = cfg.snapshotSize();
      if (ssz > 0) cfg.fatal(`snapshot too large (${ssz}), should not be used when maxraftstate = ${p.maxraftstate}`);
    }
  }

  const history = opLog.read();
  const r = await checkKvHistory(history, { timeoutMs: linearizabilityCheckTimeout });
  cfg.log(`linearizability check: ${r.result}, ${history.length} operations over ${r.partitions} keys (${r.decided} decided) in ${r.ms.toFixed(0)} ms`);
  if (r.result === 'illegal') cfg.fatal(`history is not linearizable (keys ${r.illegalKeys.join(', ')})`);
  if (r.result === 'unknown') cfg.log('info: linearizability check timed out, assuming history is ok');
  cfg.end();
}

/** GenericTestSpeed: 1000 sequential appends must average under 100 ms / 3 each. */
export async function genericTestSpeed(cfg: KvConfig, part: string, maxraftstate: number): Promise<void> {
  const numOps = 1000;
  const ck = cfg.makeClient(cfg.all());
  cfg.begin(`Test: ops complete fast enough (${part})`);
  // Wait until the service is ready (a leader exists).
  await ck.clerk.get('x');
  const start = process.hrtime.bigint();
  for (let i = 0; i < numOps; i++) await ck.clerk.append('x', `x 0 ${i} y`);
  const dur = process.hrtime.bigint() - start;
  const v = await ck.clerk.get('x');
  checkClntAppends(cfg, 0, v, numOps);
  const heartbeatInterval = 100_000_000n;
  const opsPerInterval = 3n;
  const timePerOp = heartbeatInterval / opsPerInterval;
  if (dur > BigInt(numOps) * timePerOp) {
    cfg.fatal(`Operations completed too slowly ${dur / BigInt(numOps)}ns/op > ${timePerOp}ns/op`);
  }
  cfg.log(`  ${(Number(dur) / numOps / 1e6).toFixed(2)} ms per operation (maxraftstate ${maxraftstate})`);
  cfg.end();
}
