/**
 * comlink publishes a UMD main and an ESM build without an exports map; load
 * the ESM build directly and type it with the package's own declarations.
 */
import type * as ComlinkTypes from 'comlink';
// @ts-ignore: the ESM build has no adjacent declaration file
import * as esm from 'comlink/dist/esm/comlink.mjs';
// @ts-ignore: the ESM build has no adjacent declaration file
import nodeEndpointEsm from 'comlink/dist/esm/node-adapter.mjs';

import { reviveError, serializeError, type SerializedError } from '../api/errors.js';

export const Comlink = esm as typeof ComlinkTypes;
export type Remote<T> = ComlinkTypes.Remote<T>;
export const nodeEndpoint = nodeEndpointEsm as (nep: unknown) => ComlinkTypes.Endpoint;

/**
 * comlink sends a thrown Error as its name, message and stack, and rebuilds
 * a plain Error: its class and fields (an OptionError's option, a
 * StorageError's code and file) would be lost. This handler sends them as
 * data and rebuilds the same class on the caller's side. Installed on both
 * sides (main thread and peer workers), keyed like comlink's own.
 */
const builtinThrow = Comlink.transferHandlers.get('throw')!;
Comlink.transferHandlers.set('throw', {
  canHandle: builtinThrow.canHandle,
  serialize(thrown: unknown) {
    return [{ typed: serializeError((thrown as { value: unknown }).value) }, []];
  },
  deserialize(data: unknown) {
    const typed = (data as { typed?: SerializedError }).typed;
    if (typed) throw reviveError(typed);
    return builtinThrow.deserialize(data);
  },
} as typeof builtinThrow);
