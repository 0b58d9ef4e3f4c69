import { NSHARDS } from './config.js';

/**
 * The shard controller's commands, as they travel through its Raft log:
 *   [op, argument, clientId, seq]
 * with op and argument
 *   'join'   [[gid, [server, ...]], ...]   new groups and their servers
 *   'leave'  [gid, ...]
 *   'move'   [shard, gid]
 * A Query is a read (ReadIndex, no log entry) of a configuration number.
 * Every result or answer is [err] or [err, detail-or-config].
 */
export type CtrlerOp = 'join' | 'leave' | 'move';

export type CtrlerErr =
  | 'OK'
  /** Not a well-formed request (wrong types, empty lists, repeats). */
  | 'ErrBadRequest'
  /** GID 0, negative or not an integer. */
  | 'ErrBadGid'
  /** Join of a GID already in the latest configuration. */
  | 'ErrGidInUse'
  /** Leave or Move naming a GID not in the latest configuration. */
  | 'ErrUnknownGid'
  /** Move of a shard outside 0..NSHARDS-1. */
  | 'ErrBadShard'
  /** Query of a negative number other than -1, or beyond the latest. */
  | 'ErrNoConfig';

export type CtrlerReply = [CtrlerErr] | [CtrlerErr, unknown];

/** Bounds on a Join, so that one request cannot grow the state without limit. */
export const MAX_GROUPS_PER_JOIN = 1000;
export const MAX_SERVERS_PER_GROUP = 64;
export const MAX_SERVER_NAME_BYTES = 256;

export interface JoinArg {
  op: 'join';
  groups: [number, string[]][];
}
export interface LeaveArg {
  op: 'leave';
  gids: number[];
}
export interface MoveArg {
  op: 'move';
  shard: number;
  gid: number;
}
export type CtrlerCommand = (JoinArg | LeaveArg | MoveArg) & { clientId: number; seq: number };

export class CtrlerRefusal {
  constructor(
    readonly err: CtrlerErr,
    readonly detail: string,
  ) {}
}

const isGid = (g: unknown): g is number => Number.isSafeInteger(g) && (g as number) > 0;

function checkGids(list: unknown[], what: string): CtrlerRefusal | undefined {
  for (const g of list) if (!isGid(g)) return new CtrlerRefusal('ErrBadGid', `${what}: GID ${String(g)} is not a positive integer (GID 0 means no group)`);
  if (new Set(list).size !== list.length) return new CtrlerRefusal('ErrBadRequest', `${what}: a GID appears twice`);
  return undefined;
}

/**
 * A command's shape checked (everything that does not depend on the
 * configurations): the command, or why it is refused. The state machine
 * checks again when it applies, with the latest configuration.
 */
export function parseCtrlerCommand(raw: unknown): CtrlerCommand | CtrlerRefusal {
  if (!Array.isArray(raw) || raw.length !== 4) return new CtrlerRefusal('ErrBadRequest', 'a controller command is [op, argument, clientId, seq]');
  const [op, arg, clientId, seq] = raw as unknown[];
  if (!Number.isSafeInteger(clientId) || (clientId as number) < 0) return new CtrlerRefusal('ErrBadRequest', 'clientId must be a non-negative integer');
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) return new CtrlerRefusal('ErrBadRequest', 'seq must be a positive integer');
  const ids = { clientId: clientId as number, seq: seq as number };
  switch (op) {
    case 'join': {
      if (!Array.isArray(arg) || arg.length === 0) return new CtrlerRefusal('ErrBadRequest', 'Join: name at least one group');
      if (arg.length > MAX_GROUPS_PER_JOIN) return new CtrlerRefusal('ErrBadRequest', `Join: at most ${MAX_GROUPS_PER_JOIN} groups at once`);
      const groups: [number, string[]][] = [];
      for (const row of arg) {
        if (!Array.isArray(row) || row.length !== 2) return new CtrlerRefusal('ErrBadRequest', 'Join: each group is [gid, servers]');
        const [gid, servers] = row as unknown[];
        if (!isGid(gid)) return new CtrlerRefusal('ErrBadGid', `Join: GID ${String(gid)} is not a positive integer (GID 0 means no group)`);
        if (!Array.isArray(servers) || servers.length === 0) return new CtrlerRefusal('ErrBadRequest', `Join: group ${gid} needs a non-empty list of server names`);
        if (servers.length > MAX_SERVERS_PER_GROUP) return new CtrlerRefusal('ErrBadRequest', `Join: group ${gid} has more than ${MAX_SERVERS_PER_GROUP} servers`);
        for (const s of servers) {
          if (typeof s !== 'string' || s === '') return new CtrlerRefusal('ErrBadRequest', `Join: group ${gid}: server names are non-empty strings`);
          if (Buffer.byteLength(s, 'utf8') > MAX_SERVER_NAME_BYTES) return new CtrlerRefusal('ErrBadRequest', `Join: group ${gid}: a server name is longer than ${MAX_SERVER_NAME_BYTES} bytes`);
        }
        groups.push([gid, (servers as string[]).slice()]);
      }
      const bad = checkGids(groups.map((g) => g[0]), 'Join');
      if (bad) return bad;
      return { op, groups, ...ids };
    }
    case 'leave': {
      if (!Array.isArray(arg) || arg.length === 0) return new CtrlerRefusal('ErrBadRequest', 'Leave: name at least one GID');
      const bad = checkGids(arg, 'Leave');
      if (bad) return bad;
      return { op, gids: (arg as number[]).slice(), ...ids };
    }
    case 'move': {
      if (!Array.isArray(arg) || arg.length !== 2) return new CtrlerRefusal('ErrBadRequest', 'Move: the argument is [shard, gid]');
      const [shard, gid] = arg as unknown[];
      if (!Number.isSafeInteger(shard) || (shard as number) < 0 || (shard as number) >= NSHARDS) {
        return new CtrlerRefusal('ErrBadShard', `Move: shard ${String(shard)} is not in 0..${NSHARDS - 1}`);
      }
      if (!isGid(gid)) return new CtrlerRefusal('ErrBadGid', `Move: GID ${String(gid)} is not a positive integer (GID 0 means no group)`);
      return { op, shard: shard as number, gid: gid as number, ...ids };
    }
    default:
      return new CtrlerRefusal('ErrBadRequest', `op must be "join", "leave" or "move", got ${JSON.stringify(op)}`);
  }
}

export function ctrlerCommandToWire(c: CtrlerCommand): unknown[] {
  const arg = c.op === 'join' ? c.groups : c.op === 'leave' ? c.gids : [c.shard, c.gid];
  return [c.op, arg, c.clientId, c.seq];
}
