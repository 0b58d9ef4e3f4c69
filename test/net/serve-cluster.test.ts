// Three `actor-raft serve` processes on loopback, reached over TCP with
// mutual TLS: a node SIGKILLed under client load and restarted from its
// files loses no acknowledged write and the history is linearizable; the
// command-line client's commands; connections without a certificate or
// with another CA's refused and counted; garbage closes only its own
// connection; bad configurations refused with the files left as they were.
import t from 'tap';
import { connect } from 'node:tls';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LinearizabilityChecker } from '../../lib/check/checker.js';
import { readBack, startKvLoad } from '../fixtures/kv-load.js';
import { createDevCa, issueCertificate } from '../../lib/tls/dev-ca.js';
import { ProcessCluster, sleep, within } from './node-processes.js';
import type { NodeReport } from '../../lib/net/admin.js';

const nowNs = () => Number(process.hrtime.bigint());

const cluster = await ProcessCluster.create();
t.teardown(() => cluster.close());
await cluster.startAll();
const remote = cluster.remote();
t.teardown(() => remote.close());

async function reports(): Promise<Map<string, NodeReport>> {
  const out = new Map<string, NodeReport>();
  for (const s of await remote.statusAll(2000)) if (s.report) out.set(s.report.name, s.report);
  return out;
}

t.test('SIGKILL a node under client load, restart it from its files: no acknowledged write lost, history linearizable', async (t) => {
  const clerks = Array.from({ length: 8 }, () => remote.clerk());
  const load = startKvLoad(clerks);
  const history = load.history;
  await sleep(1500);
  const victim = await cluster.leader(remote);
  const beforeKill = history.length;
  await cluster.kill(victim);
  const killedAt = nowNs();
  await sleep(2000);
  const servedWhileDown = history.filter((op) => op.call > killedAt).length;
  await cluster.start(victim);
  await sleep(1500);
  await within(load.stop(), 'the clients to finish', 30_000);
  t.ok(beforeKill > 50, `operations before the kill (${beforeKill})`);
  t.ok(servedWhileDown > 50, `operations served after the leader ${victim} was killed (${servedWhileDown})`);

  const { wrong, appends } = await readBack(clerks[0]!, load);
  for (const ck of clerks) ck.close();
  t.equal(wrong, 0, `every acknowledged Append read back, in order, once (${appends} Appends)`);

  const checker = new LinearizabilityChecker();
  try {
    const report = await checker.checkKv(history, { timeoutMs: 60_000 });
    t.equal(report.result, 'ok', `${history.length} operations linearizable (${report.ms.toFixed(0)} ms, ${report.partitions} keys)`);
  } finally {
    await checker.close();
  }

  // The restarted node caught up from its store and the leader.
  const end = Date.now() + 10_000;
  let caught = false;
  while (!caught && Date.now() < end) {
    const rs = await reports();
    const leader = [...rs.values()].find((r) => r.role === 'leader');
    const back = rs.get(victim);
    caught = leader !== undefined && back !== undefined && back.appliedIndex >= leader.commitIndex && back.term === leader.term;
    if (!caught) await sleep(50);
  }
  t.ok(caught, `node ${victim} caught up after its restart`);

  // Every node at once: what was acknowledged must come back from the stores alone.
  for (const n of cluster.names) await cluster.kill(n);
  await cluster.startAll();
  const after = remote.clerk();
  let lost = 0;
  for (const own of load.expected) for (const [key, want] of own) if ((await after.get(key)) !== want) lost++;
  after.close();
  t.equal(lost, 0, 'after every node was SIGKILLed and restarted, every acknowledged Append is still there');
});

t.test('the command-line client: put, append, get, status, members, transfer-leader, with exit codes', async (t) => {
  const c = cluster.clientArgs();
  let r = await cluster.run(['put', 'greeting', 'hello', ...c]);
  t.same([r.code, r.stdout], [0, 'OK\n'], 'put');
  r = await cluster.run(['append', 'greeting', ', world', ...c]);
  t.same([r.code, r.stdout], [0, 'OK\n'], 'append');
  r = await cluster.run(['get', 'greeting', ...c]);
  t.same([r.code, r.stdout], [0, 'hello, world\n'], 'get');
  r = await cluster.run(['get', 'nobody-wrote-this', ...c]);
  t.same([r.code, r.stdout], [0, '\n'], 'get of a missing key prints ""');

  r = await cluster.run(['status', ...c]);
  t.equal(r.code, 0, 'status');
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 4, 'a header and one line per endpoint');
  t.equal(lines.filter((l) => / leader /.test(l)).length, 1, 'exactly one endpoint leads');

  r = await cluster.run(['members', ...c]);
  t.equal(r.code, 0, 'members');
  for (const n of cluster.names) t.match(r.stdout, new RegExp(`^\\d+\\s+${n}\\s+127\\.0\\.0\\.1:\\d+`, 'm'), `members lists ${n}`);
  t.equal((r.stdout.match(/ yes$/gm) ?? []).length, 1, 'members marks one leader');

  const leader = await cluster.leader(remote);
  const target = cluster.names.find((n) => n !== leader)!;
  r = await cluster.run(['transfer-leader', target, ...c]);
  t.same([r.code, r.stdout], [0, `${target} leads\n`], `transfer-leader ${target}`);
  t.equal(await cluster.leader(remote), target, `${target} leads after the transfer`);
  r = await cluster.run(['transfer-leader', 'nobody', ...c]);
  t.equal(r.code, 1, 'transfer to a name not in the cluster: exit 1');
  t.match(r.stderr, /no member "nobody"/, 'and the message says so');

  // A dead endpoint first in the list: the client moves on.
  const dead = c.slice();
  dead[1] = `127.0.0.1:1,${dead[1]}`;
  r = await cluster.run(['get', 'greeting', ...dead]);
  t.same([r.code, r.stdout], [0, 'hello, world\n'], 'a dead endpoint is skipped');
  r = await cluster.run(['get', 'greeting', '--endpoints', '127.0.0.1:1', ...c.slice(2), '--timeout-ms', '1500']);
  t.equal(r.code, 1, 'only dead endpoints: exit 1');
  t.match(r.stderr, /no answer within 1500 ms/, 'saying nothing answered in time');
  r = await cluster.run(['put', 'k', ...c]);
  t.equal(r.code, 2, 'a usage error: exit 2');
});

/** The value of one sample in Prometheus text (first match), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

t.test('metrics on /metrics and JSON log lines with the node and its term', async (t) => {
  const leader = await cluster.leader(remote);
  const before = await cluster.metrics(leader);
  const okBefore = sample(before, 'actor_raft_proposals_total', { outcome: 'Ok' }) ?? 0;
  const ck = remote.clerk();
  for (let i = 0; i < 20; i++) await ck.put('metered', String(i));
  ck.close();
  const text = await cluster.metrics(leader);
  t.equal(sample(text, 'actor_raft_role', { node: leader, role: 'leader' }), 1, 'the leader reports role leader');
  t.ok((sample(text, 'actor_raft_proposals_total', { outcome: 'Ok' }) ?? 0) - okBefore >= 20, 'its Ok proposals grew by the 20 Puts');
  t.ok((sample(text, 'actor_raft_proposal_duration_seconds_count') ?? 0) >= 20, 'the proposal latency histogram counted them');
  t.ok((sample(text, 'actor_raft_storage_save_duration_seconds_count') ?? 0) > 0, 'durable writes are timed');
  t.ok((sample(text, 'actor_raft_messages_sent_total', { type: 'Append' }) ?? 0) > 0, 'Append messages sent are counted');
  t.ok((sample(text, 'actor_raft_message_bytes_received_total', { type: 'AppendResponse' }) ?? 0) > 0, 'and the bytes of their answers received');
  t.equal(sample(text, 'actor_raft_term'), (await reports()).get(leader)!.term, 'the term matches the node\'s status');
  t.ok((sample(text, 'actor_raft_commit_index') ?? 0) > 0, 'the commit index');
  t.ok(sample(text, 'process_resident_memory_bytes') !== undefined, 'and the process\'s own metrics');
  const follower = cluster.names.find((n) => n !== leader)!;
  t.equal(sample(await cluster.metrics(follower), 'actor_raft_role', { role: 'follower' }), 1, 'a follower reports role follower');

  const lines = cluster.names.flatMap((n) => cluster.logs(n));
  t.ok(lines.length > 0, 'the nodes log JSON lines');
  t.ok(lines.every((l) => typeof l.node === 'string' && typeof l.id === 'number' && typeof l.term === 'number'), 'every line has the node, its id and the term');
  t.ok(lines.some((l) => l.msg === 'became leader'), 'an election is logged');
  t.ok(lines.some((l) => l.msg === 'serving'), 'so is the start');
});

/** Open a TLS connection with the given material; resolves once the server has closed it (or after ms). */
function connectAndWait(port: number, opts: { ca: string; cert?: string; key?: string }, send?: Buffer, ms = 3000): Promise<{ closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closedByServer: false });
    }, ms);
    s.on('error', () => {});
    s.once('secureConnect', () => {
      if (send) s.write(send);
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ closedByServer: true });
    });
  });
}

t.test('connections without a certificate or with another CA\'s are refused and counted, on both ports', async (t) => {
  const other = await createDevCa({ name: 'another CA' });
  const impostor = await issueCertificate(other, 'client');
  const ca = readFileSync(cluster.tlsPaths('client').ca, 'utf8');
  const before = (await reports()).get('a')!;
  const metricsBefore = await cluster.metrics('a');
  for (const [what, port] of [['client', cluster.clientPorts[0]!], ['peer', cluster.peerPorts[0]!]] as const) {
    const none = await connectAndWait(port, { ca });
    t.ok(none.closedByServer, `${what} port: no certificate, closed`);
    const foreign = await connectAndWait(port, { ca, cert: impostor.cert, key: impostor.key });
    t.ok(foreign.closedByServer, `${what} port: another CA's certificate, closed`);
  }
  const after = (await reports()).get('a')!;
  t.equal(after.refusedConnections.client - before.refusedConnections.client, 2, 'two refusals counted on the client port');
  t.equal(after.refusedConnections.peer - before.refusedConnections.peer, 2, 'two refusals counted on the peer port');
  const metricsAfter = await cluster.metrics('a');
  for (const port of ['client', 'peer']) {
    const grew = (sample(metricsAfter, 'actor_raft_refused_connections_total', { port }) ?? 0) - (sample(metricsBefore, 'actor_raft_refused_connections_total', { port }) ?? 0);
    t.equal(grew, 2, `and in the metrics (${port} port)`);
  }
  const r = await cluster.run(['get', 'greeting', ...cluster.clientArgs()]);
  t.equal(r.code, 0, 'the cluster serves on');
});

t.test('a corrupt length or garbage bytes closes that connection and nothing else', async (t) => {
  const client = cluster.clientTls;
  const member = { ca: client.ca, ...(() => { const p = cluster.tlsPaths('b'); return { cert: readFileSync(p.cert, 'utf8'), key: readFileSync(p.key, 'utf8') }; })() };
  const badLength = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
  const garbage = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from([0xc1, 0xc1, 0xc1, 0xc1, 0xc1])]);
  const before = (await reports()).get('a')!;
  // A long-lived clerk keeps its connection through all of it.
  const ck = remote.clerk();
  await ck.put('steady', '1');
  for (const [what, port, tls] of [['client', cluster.clientPorts[0]!, client], ['peer', cluster.peerPorts[0]!, member]] as const) {
    t.ok((await connectAndWait(port, tls, badLength)).closedByServer, `${what} port: a corrupt length closes the connection`);
    t.ok((await connectAndWait(port, tls, garbage)).closedByServer, `${what} port: undecodable bytes close the connection`);
  }
  const after = (await reports()).get('a')!;
  t.equal(after.garbageConnections.client - before.garbageConnections.client, 2, 'two garbage connections counted on the client port');
  t.equal(after.garbageConnections.peer - before.garbageConnections.peer, 2, 'two on the peer port');
  await ck.put('steady', '2');
  t.equal(await ck.get('steady'), '2', 'the other connections carry on');
  ck.close();
  const rs = await reports();
  t.equal(rs.size, 3, 'every node still answers');
});

/** Every file under dir with its size and a digest of its bytes. */
function snapshotDir(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((f) => `${f} ${statSync(join(dir, f)).size} ${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex').slice(0, 12)}`)
    .join('\n');
}

t.test('a node refuses to start on bad configuration, naming the problem, files untouched', async (t) => {
  // Stop c so that its files hold still while they are compared.
  await cluster.kill('c');
  const cDir = cluster.dataDir('c');
  const before = snapshotDir(cDir);
  const base = cluster.serveArgs('c');
  const withFlag = (flag: string, value: string) => {
    const a = base.slice();
    const k = a.indexOf(flag);
    if (k < 0) a.push(flag, value);
    else a[k + 1] = value;
    return a;
  };
  const cases: [string, string[], RegExp][] = [
    ['a name not in the initial cluster', withFlag('--name', 'zed'), /--name zed is not in --initial-cluster/],
    ['a certificate for another member', [...withFlag('--cert', cluster.tlsPaths('a').cert).slice(0, -2), '--key', cluster.tlsPaths('a').key], /is for "a", not for --name c/],
    ['a key that does not belong to the certificate', withFlag('--key', cluster.tlsPaths('a').key), /does not belong to/],
    ['a missing CA file', withFlag('--ca', join(cluster.dir, 'missing.crt')), /cannot read the ca file/],
    ['another member\'s data directory', withFlag('--data-dir', cluster.dataDir('a')), /belongs to member "a"/],
    ['another cluster\'s data directory', [...base, '--initial-cluster-token', 'other'], /belongs to another cluster/],
    ['a listen address in use', withFlag('--listen-client', `127.0.0.1:${cluster.clientPorts[0]}`), /is in use/],
    ['a directory that is not a node\'s', withFlag('--data-dir', join(cluster.dir)), /not a node's/],
  ];
  for (const [what, args, message] of cases) {
    const r = await cluster.run(args);
    t.equal(r.code, 1, `${what}: exit 1`);
    t.match(r.stderr, message, `${what}: says so`);
  }
  t.equal(snapshotDir(cDir), before, 'c\'s files are as they were');
  t.equal(snapshotDir(cluster.dataDir('a')).length > 0, true, 'a\'s directory is still there');
  await cluster.start('c');
  const r = await cluster.run(['get', 'greeting', ...cluster.clientArgs()]);
  t.same([r.code, r.stdout], [0, 'hello, world\n'], 'c restarts from its files and the cluster serves');
});
