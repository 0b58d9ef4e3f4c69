import { Packr, Unpackr } from 'msgpackr';
import type { StateMachine } from '../api/state-machine.js';
import { configFromWire, configToWire, emptyConfig, type ConfigWire, type ShardConfig } from './config.js';
import { CtrlerRefusal, parseCtrlerCommand, type CtrlerCommand, type CtrlerReply } from './controller-protocol.js';
import { rebalance } from './rebalance.js';
import { Sessions } from '../kv/sessions.js';

const OK: CtrlerReply = Object.freeze(['OK']) as unknown as CtrlerReply;
const SNAPSHOT_VERSION = 1;
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false });

/**
 * The shard controller's replicated state: every configuration ever made
 * (number i at position i; configuration 0 has no groups) and the
 * duplicate table that makes a retried Join, Leave or Move take effect
 * once. Each command is checked against the latest configuration when it
 * is applied, on every replica alike; a refused one leaves the history as
 * it was.
 */
export class ControllerState {
  private readonly configs: ShardConfig[] = [emptyConfig()];
  private readonly sessions = new Sessions<CtrlerReply>();

  get latest(): ShardConfig {
    return this.configs[this.configs.length - 1]!;
  }

  apply(cmd: CtrlerCommand): CtrlerReply {
    const seen = this.sessions.seen(cmd.clientId, cmd.seq, OK);
    if (seen) return seen;
    const result = this.execute(cmd);
    this.sessions.record(cmd.clientId, cmd.seq, result);
    return result;
  }

  private execute(cmd: CtrlerCommand): CtrlerReply {
    const cur = this.latest;
    const groups = new Map<number, string[]>();
    for (const [g, servers] of cur.groups) groups.set(g, servers.slice());
    let shards: number[];
    switch (cmd.op) {
      case 'join':
        for (const [g] of cmd.groups) if (groups.has(g)) return ['ErrGidInUse', `Join: group ${g} is already in configuration ${cur.num}`];
        for (const [g, servers] of cmd.groups) groups.set(g, servers.slice());
        shards = rebalance(cur.shards, [...groups.keys()]);
        break;
      case 'leave':
        for (const g of cmd.gids) if (!groups.has(g)) return ['ErrUnknownGid', `Leave: group ${g} is not in configuration ${cur.num}`];
        for (const g of cmd.gids) groups.delete(g);
        shards = rebalance(cur.shards, [...groups.keys()]);
        break;
      case 'move':
        if (!groups.has(cmd.gid)) return ['ErrUnknownGid', `Move: group ${cmd.gid} is not in configuration ${cur.num}`];
        shards = cur.shards.slice();
        shards[cmd.shard] = cmd.gid;
        break;
    }
    this.configs.push({ num: cur.num + 1, shards, groups });
    return OK;
  }

  /** Configuration `num` (-1: the latest), or why there is none. */
  query(num: number): ShardConfig | CtrlerRefusal {
    if (num === -1) return this.latest;
    if (!Number.isSafeInteger(num) || num < -1) return new CtrlerRefusal('ErrNoConfig', `Query: ${String(num)} is not a configuration number (use -1 for the latest)`);
    if (num >= this.configs.length) return new CtrlerRefusal('ErrNoConfig', `Query: there is no configuration ${num} yet (the latest is ${this.latest.num})`);
    return this.configs[num]!;
  }

  snapshot(): Uint8Array {
    const sessions: [number, number, CtrlerReply][] = [];
    for (const [id, s] of this.sessions.entries()) sessions.push([id, s.seq, s.result]);
    return packr.pack([SNAPSHOT_VERSION, this.configs.map(configToWire), sessions]);
  }

  restore(bytes: Uint8Array): void {
    this.configs.length = 0;
    this.sessions.clear();
    if (bytes.length === 0) {
      this.configs.push(emptyConfig());
      return;
    }
    let decoded: unknown;
    try {
      decoded = unpackr.unpack(bytes);
    } catch {
      decoded = undefined;
    }
    if (!Array.isArray(decoded) || decoded[0] !== SNAPSHOT_VERSION || !Array.isArray(decoded[1]) || !Array.isArray(decoded[2])) {
      this.configs.push(emptyConfig());
      throw new Error('not a shard controller snapshot of a known version');
    }
    const [, configs, sessions] = decoded as [number, ConfigWire[], [number, number, CtrlerReply][]];
    for (const [i, w] of configs.entries()) {
      const c = configFromWire(w);
      if (!c || c.num !== i) {
        this.configs.length = 0;
        this.configs.push(emptyConfig());
        throw new Error(`shard controller snapshot: configuration ${i} is malformed`);
      }
      this.configs.push(c);
    }
    if (this.configs.length === 0) this.configs.push(emptyConfig());
    for (const [id, seq, result] of sessions) this.sessions.record(id, seq, result);
  }
}

/**
 * The shard controller as a state machine module for the engine: Join,
 * Leave and Move are commands; a Query is a read (ReadIndex), answered
 * with the configuration's wire form.
 */
export function createStateMachine(): StateMachine<unknown, CtrlerReply, unknown, CtrlerReply> {
  const state = new ControllerState();
  return {
    apply(raw: unknown): CtrlerReply {
      const cmd = parseCtrlerCommand(raw);
      return cmd instanceof CtrlerRefusal ? [cmd.err, cmd.detail] : state.apply(cmd);
    },
    query(num: unknown): CtrlerReply {
      if (typeof num !== 'number') return ['ErrBadRequest', 'a Query names a configuration number'];
      const c = state.query(num);
      return c instanceof CtrlerRefusal ? [c.err, c.detail] : ['OK', configToWire(c)];
    },
    snapshot: () => state.snapshot(),
    restore: (data: Uint8Array) => state.restore(data),
  };
}

export default createStateMachine;
