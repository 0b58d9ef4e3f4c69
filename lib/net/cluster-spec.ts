import { createHash } from 'node:crypto';
import type { TcpPeer } from '../transport/tcp-transport.js';
import { AddressError, formatHostPort, parseHostPort } from './host-port.js';

/**
 * The initial cluster as `actor-raft serve --initial-cluster` names it:
 * "a=10.0.0.1:2380,b=10.0.0.2:2380,c=10.0.0.3:2380", each member's name (the
 * common name of its certificate) and the address its peers dial. Members
 * are numbered by name, not by where they stand in the flag, so every node
 * agrees on the numbering however each was told; the cluster's id is a
 * digest of the members and the cluster token, so a data directory can say
 * which cluster it belongs to.
 */
export interface ClusterSpec {
  /** Sorted by name; a member's id is its position here. */
  members: TcpPeer[];
  /** Hex digest of the token and the members. */
  clusterId: string;
}

export class ClusterSpecError extends Error {
  override name = 'ClusterSpecError';
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const MEMBER_NAME = NAME;

/** A member's entry in a configuration's context: "name=host:port". */
export function parseMemberContext(ctx: string): { name: string; host: string; port: number } | undefined {
  const eq = ctx.indexOf('=');
  if (eq < 1) return undefined;
  try {
    return { name: ctx.slice(0, eq), ...parseHostPort(ctx.slice(eq + 1), 'member') };
  } catch {
    return undefined;
  }
}

/**
 * A joining node's --members: "id:name=host:port,..." as `actor-raft
 * member add` prints it (every member of the cluster, the new one
 * included, with the ids the cluster gave them).
 */
export function parseMembers(text: string): TcpPeer[] {
  if (typeof text !== 'string' || text.trim() === '') throw new ClusterSpecError('--members is empty');
  const out: TcpPeer[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+):(.+)$/.exec(part.trim());
    const member = m ? parseMemberContext(m[2]!) : undefined;
    if (!m || !member || !NAME.test(member.name)) throw new ClusterSpecError(`--members: ${JSON.stringify(part)} is not id:name=host:port`);
    const id = Number(m[1]);
    if (!Number.isSafeInteger(id) || id > 2 ** 31 - 1) throw new ClusterSpecError(`--members: ${m[1]} is not a member id`);
    if (out.some((o) => o.id === id || o.name === member.name)) throw new ClusterSpecError(`--members names ${member.name} (or id ${id}) twice`);
    out.push({ id, ...member });
  }
  return out;
}

export function parseInitialCluster(text: string, token = ''): ClusterSpec {
  if (typeof text !== 'string' || text.trim() === '') throw new ClusterSpecError('--initial-cluster is empty: give name=host:port for every member, comma-separated');
  const members: TcpPeer[] = [];
  const seen = new Set<string>();
  const addresses = new Set<string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new ClusterSpecError(`--initial-cluster: ${JSON.stringify(part)} is not name=host:port`);
    const name = part.slice(0, eq).trim();
    if (!NAME.test(name)) throw new ClusterSpecError(`--initial-cluster: ${JSON.stringify(name)} is not a member name (letters, digits, '.', '_', '-'; at most 63)`);
    if (seen.has(name)) throw new ClusterSpecError(`--initial-cluster names ${name} twice`);
    seen.add(name);
    let at;
    try {
      at = parseHostPort(part.slice(eq + 1).trim(), `--initial-cluster member ${name}`);
    } catch (e) {
      throw new ClusterSpecError((e as AddressError).message);
    }
    if (at.port === 0) throw new ClusterSpecError(`--initial-cluster member ${name}: port 0 cannot be dialed`);
    const key = formatHostPort(at);
    if (addresses.has(key)) throw new ClusterSpecError(`--initial-cluster gives ${key} to two members`);
    addresses.add(key);
    members.push({ name, host: at.host, port: at.port });
  }
  members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  members.forEach((m, k) => (m.id = k));
  const digest = createHash('sha256').update(`actor-raft cluster\n${token}\n`);
  for (const m of members) digest.update(`${m.name}=${formatHostPort(m)}\n`);
  return { members, clusterId: digest.digest('hex').slice(0, 16) };
}
