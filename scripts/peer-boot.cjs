'use strict';
// The peer worker's entry point (copied to dist/workers/peer-boot.cjs by
// scripts/bundle-peer.mjs). It runs the bundled peer, peer.cjs, from V8's
// code cache when one is there: every crash and restart boots a new worker,
// and each would otherwise compile the same bundle, and then each function
// it calls, afresh. Node 20 has no built-in compile cache for user code
// (module.enableCompileCache() came in Node 22), so this keeps its own:
// a file next to the bundle, written by a worker once it has booted and
// served for a moment (so the functions it used are in it). V8 checks a
// cache against its own version and flags, but against the source only by
// length, so the cache's name carries a hash of the bundle's content, set
// by the build; a cache that V8 rejects is rewritten. Failing to write it
// (say, a read-only install) only means no cache.
const { readFileSync, writeFileSync, renameSync, unlinkSync } = require('node:fs');
const { join } = require('node:path');
const { createRequire, wrap } = require('node:module');
const { Script } = require('node:vm');
const { threadId } = require('node:worker_threads');

// Code run from a vm.Script has no import() of its own (it throws
// ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING); the peer loads the user's state
// machine module through this one, which belongs to this real CommonJS file.
globalThis.__peerImport = (url) => import(url);

const file = join(__dirname, 'peer.cjs');
const cacheFile = join(__dirname, 'peer.__BUNDLE_HASH__.cache');
const CACHE_AFTER_MS = 1000;

let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new Script(wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
const peerModule = { exports: {} };
script.runInThisContext()(peerModule.exports, createRequire(file), peerModule, file, __dirname);

if (cachedData === undefined || script.cachedDataRejected) {
  setTimeout(() => {
    const tmp = `${cacheFile}.${process.pid}.${threadId}`;
    try {
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, cacheFile);
    } catch {
      try {
        unlinkSync(tmp);
      } catch {
        // nothing was written
      }
    }
  }, CACHE_AFTER_MS).unref();
}
