export {
  KvStateMachine,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  isCommand,
  isWellFormedString,
  parseCommand,
  type KvCommand,
  type KvErr,
  type KvOpName,
  type KvResult,
} from './state-machine.js';
export { Clerk, KvRequestError, plainEnds, type KvEnds } from './clerk.js';
export { CallerClosedError } from './leader-calls.js';
export { commandToWire, wireToCommand, wireOf, toReply, fromReply, type KvReply } from './protocol.js';

/** The key/value service as a group's state machine: `RaftGroup.open({ peers: 3, stateMachine: kvStateMachine })`. */
export const kvStateMachine = { module: new URL('./service.js', import.meta.url).href } as const;
