import type { StateMachineFactory } from '../api/state-machine.js';
import { createStateMachine as keyValue } from '../kv/service.js';
import { createStateMachine as applyStream } from '../testing/apply-stream.js';
import { createStateMachine as shardController } from '../shard/controller.js';
import { createStateMachine as shardKv } from '../shard/shardkv-service.js';

/**
 * The state machines the project ships, compiled into the peer worker's
 * bundle: a peer that runs one of them loads no module graph at start (the
 * crash-heavy tests restart peers hundreds of times). Each is named by the
 * URL of the module it comes from, which is what a group's options name;
 * `workerUrl` is the worker file's own URL (dist/workers/).
 */
export function bundledStateMachines(workerUrl: string): Map<string, StateMachineFactory> {
  return new Map<string, StateMachineFactory>([
    [new URL('../lib/kv/service.js', workerUrl).href, keyValue as StateMachineFactory],
    [new URL('../lib/testing/apply-stream.js', workerUrl).href, applyStream as unknown as StateMachineFactory],
    [new URL('../lib/shard/controller.js', workerUrl).href, shardController as StateMachineFactory],
    [new URL('../lib/shard/shardkv-service.js', workerUrl).href, shardKv as StateMachineFactory],
  ]);
}
