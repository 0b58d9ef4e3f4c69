/**
 * The command-line client, in the style of etcdctl: it reaches a cluster
 * of `actor-raft serve` nodes from any process or machine, finds the
 * leader among --endpoints, skips dead ones and retries.
 *
 *   actor-raft get KEY | put KEY VALUE | append KEY VALUE
 *   actor-raft status | members | transfer-leader NAME
 *
 * each with --endpoints HOST:PORT,... --ca FILE --cert FILE --key FILE
 * [--timeout-ms MS]. Exit 0 on success, 1 when the cluster could not do
 * it (the message says why), 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { readTlsFiles, TlsConfigError } from '../tls/tls-files.js';
import { AddressError, parseHostPort } from '../net/host-port.js';
import { RemoteCluster, RemoteError } from '../net/remote-cluster.js';
import { KvRequestError } from '../kv/clerk.js';

export const CLIENT_USAGE = `usage: actor-raft COMMAND --endpoints HOST:PORT,... --ca FILE --cert FILE --key FILE [--timeout-ms MS]
  get KEY                 print the value of KEY ("" if it has none)
  put KEY VALUE           set KEY to VALUE
  append KEY VALUE        append VALUE to KEY's value
  status                  each endpoint's view: member, role, term, leader, indexes
  members                 the cluster's members, and which one leads
  transfer-leader NAME    hand the leadership to member NAME
  member add NAME HOST:PORT
                          add NAME (its peers dial HOST:PORT) as a learner; prints how to start its node
  member promote NAME     make learner NAME a voter (once it has caught up)
  member remove NAME      remove NAME (the leader too); stop its node afterwards
  --endpoints             the nodes' client addresses (any of them; dead ones are skipped)
  --timeout-ms            give up after this long (default 10000)`;

export const CLIENT_COMMANDS: Record<string, number> = { get: 1, put: 2, append: 2, status: 0, members: 0, 'transfer-leader': 1, member: -1 };

class UsageError extends Error {}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new RemoteError(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function run(command: string, args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { endpoints: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, 'timeout-ms': { type: 'string' } },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  let want = CLIENT_COMMANDS[command]!;
  if (command === 'member') {
    const sub = parsed.positionals[0];
    if (sub !== 'add' && sub !== 'promote' && sub !== 'remove') throw new UsageError('member takes add, promote or remove');
    want = sub === 'add' ? 3 : 2;
  }
  if (parsed.positionals.length !== want) throw new UsageError(`${command} takes ${want === 0 ? 'no arguments' : want === 1 ? 'one argument' : `${want} arguments`}`);
  if (!v.endpoints) throw new UsageError('--endpoints is required');
  let endpoints;
  try {
    endpoints = v.endpoints.split(',').map((e) => parseHostPort(e.trim(), '--endpoints'));
  } catch (e) {
    throw new UsageError((e as AddressError).message);
  }
  const timeoutMs = v['timeout-ms'] === undefined ? 10_000 : Number(v['timeout-ms']);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new UsageError(`--timeout-ms must be a positive integer, got ${v['timeout-ms']}`);
  const tls = readTlsFiles({ ca: v.ca ?? '', cert: v.cert ?? '', key: v.key ?? '' });
  const cluster = new RemoteCluster({ endpoints, tls });
  const [a, b] = parsed.positionals as [string, string];
  try {
    if (command === 'get' || command === 'put' || command === 'append') {
      const clerk = cluster.clerk();
      try {
        const done = command === 'get' ? clerk.get(a) : command === 'put' ? clerk.put(a, b).then(() => 'OK') : clerk.append(a, b).then(() => 'OK');
        console.log(await within(done, timeoutMs, command));
      } finally {
        clerk.close();
      }
    } else if (command === 'status') {
      const all = await cluster.statusAll(timeoutMs);
      const rows = [['ENDPOINT', 'MEMBER', 'ID', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAST', 'SNAPSHOT']];
      for (const s of all) {
        const r = s.report;
        rows.push(r ? [s.endpoint, r.name, String(r.id), r.role, String(r.term), r.leader || '-', String(r.commitIndex), String(r.appliedIndex), String(r.lastIndex), String(r.snapshotIndex)] : [s.endpoint, `(${s.error})`, '', '', '', '', '', '', '', '']);
      }
      console.log(pad(rows));
      if (all.every((s) => !s.report)) throw new RemoteError('no endpoint answered');
    } else if (command === 'members') {
      const r = await cluster.status(timeoutMs);
      const rows = [['ID', 'NAME', 'PEER ADDRESS', 'ROLE', 'LEADER']];
      for (const m of r.members) rows.push([String(m.id), m.name, m.peer, m.role, m.name === r.leader ? 'yes' : '']);
      console.log(`cluster ${r.clusterId}${r.membersCommitted ? '' : ' (a membership change is in flight)'}`);
      console.log(pad(rows));
    } else if (command === 'member') {
      const [sub, name, address] = parsed.positionals as [string, string, string];
      if (sub === 'add') {
        const added = await cluster.addMember(name, address, timeoutMs);
        console.log(`added ${name} as member ${added.id} (a learner); start its node with:`);
        console.log(`  actor-raft serve --name ${name} --join ${added.clusterId} --members ${added.members} --listen-peer ${address} --listen-client HOST:PORT --ca FILE --cert FILE --key FILE`);
        console.log(`then make it a voter: actor-raft member promote ${name}`);
      } else if (sub === 'promote') {
        await cluster.promoteMember(name, timeoutMs);
        console.log(`${name} is a voter`);
      } else {
        await cluster.removeMember(name, timeoutMs);
        console.log(`removed ${name}; stop its node`);
      }
    } else {
      await cluster.transferLeader(a, timeoutMs);
      console.log(`${a} leads`);
    }
  } finally {
    cluster.close();
  }
}

/** Run one client command; resolves with the exit code. */
export async function clientCommand(command: string, args: string[]): Promise<number> {
  try {
    await run(command, args);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`actor-raft ${command}: ${e.message}\n${CLIENT_USAGE}`);
      return 2;
    }
    if (e instanceof TlsConfigError || e instanceof RemoteError || e instanceof KvRequestError) {
      console.error(`actor-raft ${command}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
