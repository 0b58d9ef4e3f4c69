/**
 * comlink publishes a UMD main and an ESM build without an exports map; load
 * the ESM build directly and type it with the package's own declarations.
 */
import type * as ComlinkTypes from 'comlink';
// @ts-ignore: the ESM build has no adjacent declaration file
import * as esm from 'comlink/dist/esm/comlink.mjs';
// @ts-ignore: the ESM build has no adjacent declaration file
import nodeEndpointEsm from 'comlink/dist/esm/node-adapter.mjs';

export const Comlink = esm as typeof ComlinkTypes;
export type Remote<T> = ComlinkTypes.Remote<T>;
export const nodeEndpoint = nodeEndpointEsm as (nep: unknown) => ComlinkTypes.Endpoint;
