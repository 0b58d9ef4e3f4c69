export {
  KvStateMachine,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  isCommand,
  parseCommand,
  type KvCommand,
  type KvErr,
  type KvOpName,
  type KvResult,
} from './state-machine.js';
export { Clerk, KvRequestError, type ClientLink, type EndUpdate } from './clerk.js';
export { KvServer, type KvServerOptions, type RaftHandle } from './server.js';
export { decodeCommand, encodeCommand } from './protocol.js';
