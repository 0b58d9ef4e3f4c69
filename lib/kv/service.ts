import type { StateMachine } from '../api/state-machine.js';
import { toReply, wireToCommand, type KvReply } from './protocol.js';
import { KvStateMachine, isCommand, isWellFormedString, MAX_KEY_BYTES } from './state-machine.js';

/**
 * The key/value service as a state machine module for the engine: every
 * peer's worker builds one. Puts and Appends are commands (applied
 * exactly once per client and sequence number); a Get is a query, served
 * by ReadIndex without a log entry. Name this module in a group's options
 * (`kvStateMachine` from actor-raft/kv does).
 */
export function createStateMachine(): StateMachine<unknown, KvReply, unknown, KvReply> {
  const sm = new KvStateMachine();
  return {
    apply(raw: unknown): KvReply {
      // Checked here too, deterministically: a command that reached the log
      // from a client other than the Clerk is refused the same way everywhere.
      const cmd = wireToCommand(raw);
      return toReply(isCommand(cmd) ? sm.apply(cmd) : cmd);
    },
    query(key: unknown): KvReply {
      if (typeof key !== 'string') return ['ErrBadRequest', '', 'a Get names its key as a string'];
      if (!isWellFormedString(key)) return ['ErrBadRequest', '', 'key is not well-formed Unicode (it has a lone surrogate)'];
      if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) return ['ErrTooLarge', '', `key longer than ${MAX_KEY_BYTES} bytes`];
      return toReply(sm.read(key));
    },
    snapshot: () => sm.snapshot(),
    beginSnapshot: () => sm.beginSnapshot(),
    restore: (data: Uint8Array) => sm.restore(data),
  };
}

export default createStateMachine;
