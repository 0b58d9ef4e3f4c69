import { decodeValue, encodeValue } from '../api/state-machine.js';
import type { Role } from '../raft/types.js';

/**
 * Admin requests on a node's client port (request kind 3): the payload is
 * [op, ...args] in msgpack, the answer a msgpack value.
 *   ['status']                       -> NodeReport
 *   ['transfer', name, timeoutMs]    -> the new leader's name
 */
export type AdminRequest =
  | ['status']
  | ['transfer', string, number]
  | ['add', string, string, number]
  | ['promote', string, number]
  | ['remove', string, number];

/** What ['add', ...] answers: the new member's id and how the new node is to be started. */
export interface AddedMember {
  id: number;
  clusterId: string;
  /** Every member as --members takes it: "id:name=host:port,...", the new one included. */
  members: string;
}

export interface MemberReport {
  id: number;
  name: string;
  /** Where its peers dial it. */
  peer: string;
  role: 'voter' | 'learner';
}

/** One node's view of itself and the cluster, as `actor-raft status` prints it. */
export interface NodeReport {
  name: string;
  id: number;
  clusterId: string;
  /** Where this node serves clients. */
  client: string;
  term: number;
  role: Role;
  /** The leader's name as this node knows it, '' for none. */
  leader: string;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  members: MemberReport[];
  /** Whether the configuration in `members` is committed (no change in flight). */
  membersCommitted: boolean;
  /** Connections refused at the handshake (no certificate, another CA's, a name not in the cluster), peer and client ports. */
  refusedConnections: { peer: number; client: number };
  /** Connections closed for a bad length or undecodable bytes. */
  garbageConnections: { peer: number; client: number };
}

export function encodeAdmin(r: AdminRequest): Uint8Array {
  return encodeValue(r);
}

/** The request, or why it is not one. */
export function decodeAdmin(payload: Uint8Array): AdminRequest | string {
  let v: unknown;
  try {
    v = decodeValue(payload);
  } catch {
    return 'an admin request must be msgpack';
  }
  if (!Array.isArray(v)) return 'an admin request is [op, ...args]';
  if (v[0] === 'status' && v.length === 1) return ['status'];
  const timeout = (x: unknown) => Number.isSafeInteger(x) && (x as number) > 0;
  if (v[0] === 'transfer' && typeof v[1] === 'string' && timeout(v[2])) return ['transfer', v[1], v[2] as number];
  if (v[0] === 'add' && typeof v[1] === 'string' && typeof v[2] === 'string' && timeout(v[3])) return ['add', v[1], v[2], v[3] as number];
  if ((v[0] === 'promote' || v[0] === 'remove') && typeof v[1] === 'string' && timeout(v[2])) return [v[0], v[1], v[2] as number];
  return `unknown admin request ${JSON.stringify(v[0])}`;
}
