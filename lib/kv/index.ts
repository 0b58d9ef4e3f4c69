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
