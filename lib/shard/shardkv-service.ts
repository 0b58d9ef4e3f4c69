import type { StateMachine } from '../api/state-machine.js';
import { toReply, wireToCommand } from '../kv/protocol.js';
import { MAX_KEY_BYTES, isCommand, isWellFormedString, type SessionRow } from '../kv/state-machine.js';
import { NSHARDS, configFromWire, configToWire } from './config.js';
import { ShardKvState, type ShardData, type StepReply } from './shardkv-state.js';
import { GroupCoordinator, type CoordinatorLinks } from './coordinator.js';
import { DirectoryClient } from './directory.js';
import type { MessagePort } from 'node:worker_threads';
import { plainEnds } from '../kv/clerk.js';
import type { ClientLink } from '../api/client.js';
import { labEnds, type LabClientLink } from '../testing/lab-ends.js';

/**
 * The factory's options. `gid` alone: the state machine, driven by nothing
 * (the unit tests drive it). With the links: this peer also runs its
 * group's coordinator, reaching the controller and the other groups
 * through them ('lab' links obey the lab's fault-injecting network).
 */
export interface ShardKvOptions {
  gid: number;
  me?: number;
  /** The lab's: links to everything, opened by the harness at each start. */
  links?: {
    kind: 'lab';
    own: ClientLink;
    controller: ClientLink;
    groups: [number, ClientLink][];
  };
  /** A deployment's: a GroupDirectory port; groups are named "group-<gid>", the controller "controller". */
  directory?: MessagePort;
}
/**
 * The sharded key/value service's log entries and reads, as msgpack values:
 *  - a Put or Append: the key/value service's command [op, key, value, clientId, seq]
 *  - ['config', configWire]              take the next configuration
 *  - ['install', num, shard, data, sessions]   a pulled shard's content
 *  - ['release', num, shard]             (old owner) the new owner has it: delete
 *  - ['released', num, shard]            (new owner) the old owner deleted it
 * Reads: a key (a Get); ['pull', num, shard] (a Sending shard's content);
 * ['state'] (what the group's coordinator needs: configurations and statuses).
 */
export type ShardKvStep = ['config', unknown] | ['install', number, number, [string, string][], SessionRow[]] | ['release', number, number] | ['released', number, number];

/** What ['state'] answers: [gid, current config, previous config, status per shard, source GID per shard]. */
export type GroupStateWire = [number, unknown, unknown, number[], number[]];

const isShard = (s: unknown): s is number => Number.isSafeInteger(s) && (s as number) >= 0 && (s as number) < NSHARDS;
const isNum = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
const bad = (detail: string): StepReply => ['ErrBadRequest', detail];

function isRows(x: unknown): x is [string, string][] {
  return Array.isArray(x) && x.every((r) => Array.isArray(r) && r.length === 2 && typeof r[0] === 'string' && typeof r[1] === 'string');
}
function isSessions(x: unknown): x is SessionRow[] {
  return Array.isArray(x) && x.every((r) => Array.isArray(r) && r.length >= 4 && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]) && typeof r[2] === 'string' && typeof r[3] === 'string');
}

function step(state: ShardKvState, raw: unknown[]): StepReply {
  const [kind, a, b, c, d] = raw;
  switch (kind) {
    case 'config': {
      const next = configFromWire(a);
      return next ? state.reconfigure(next) : bad('not a configuration');
    }
    case 'install':
      if (!isNum(a) || !isShard(b) || !isRows(c) || !isSessions(d)) return bad('install: [num, shard, rows, sessions]');
      return state.install(a, b, { data: c, sessions: d });
    case 'release':
      return isNum(a) && isShard(b) ? state.release(a, b) : bad('release: [num, shard]');
    case 'released':
      return isNum(a) && isShard(b) ? state.released(a, b) : bad('released: [num, shard]');
    default:
      return bad(`unknown step ${JSON.stringify(kind)}`);
  }
}

/**
 * The sharded key/value service as a state machine module: every peer of
 * one replica group builds one with `{ gid }`. See ShardKvState for the
 * rules, shardkv-coordinator for what drives the reconfiguration steps.
 */
export function createStateMachine(options: unknown): StateMachine {
  const o = (options ?? {}) as Partial<ShardKvOptions>;
  const state = new ShardKvState(o.gid as number);
  let coordinator: GroupCoordinator | undefined;
  let dir: DirectoryClient | undefined;
  if (o.links || o.directory) {
    if (!Number.isSafeInteger(o.me)) throw new RangeError('a coordinated shard group member needs its position `me`');
    let links: CoordinatorLinks;
    if (o.links) {
      const l = o.links;
      const groups = new Map(l.groups);
      links = {
        me: o.me!,
        own: async () => labEnds(l.own as LabClientLink),
        controller: async () => labEnds(l.controller as LabClientLink),
        group: async (g) => {
          const link = groups.get(g);
          return link ? labEnds(link as LabClientLink) : undefined;
        },
      };
    } else {
      const d = (dir = new DirectoryClient(o.directory!));
      links = {
        me: o.me!,
        own: async () => plainEnds(await d.link(`group-${state.gid}`)),
        controller: async () => plainEnds(await d.link('controller')),
        group: async (g) => plainEnds(await d.link(`group-${g}`)),
      };
    }
    coordinator = new GroupCoordinator(links);
  }
  return {
    apply(raw: unknown) {
      if (Array.isArray(raw) && typeof raw[0] === 'string') return step(state, raw);
      const cmd = wireToCommand(raw);
      return toReply(isCommand(cmd) ? state.apply(cmd) : cmd);
    },
    query(q: unknown) {
      if (typeof q === 'string') {
        if (!isWellFormedString(q)) return ['ErrBadRequest', '', 'key is not well-formed Unicode (it has a lone surrogate)'];
        if (Buffer.byteLength(q, 'utf8') > MAX_KEY_BYTES) return ['ErrTooLarge', '', `key longer than ${MAX_KEY_BYTES} bytes`];
        return toReply(state.read(q));
      }
      if (Array.isArray(q) && q[0] === 'pull') {
        if (!isNum(q[1]) || !isShard(q[2])) return bad('pull: [num, shard]');
        const r = state.handOver(q[1], q[2]);
        return Array.isArray(r) ? r : ['OK', (r as ShardData).data, (r as ShardData).sessions];
      }
      if (Array.isArray(q) && q[0] === 'state') {
        const status: number[] = [];
        const source: number[] = [];
        for (let s = 0; s < NSHARDS; s++) {
          status.push(state.statusOf(s));
          source.push(state.sourceOf(s));
        }
        const answer: GroupStateWire = [state.gid, configToWire(state.currentConfig()), configToWire(state.previousConfig()), status, source];
        return answer;
      }
      return ['ErrBadRequest', '', 'a read is a key, ["pull", num, shard] or ["state"]'];
    },
    snapshot: () => state.snapshot(),
    restore: (data: Uint8Array) => state.restore(data),
    close: () => {
      coordinator?.close();
      dir?.close();
    },
  };
}

export default createStateMachine;
