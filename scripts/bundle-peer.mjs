#!/usr/bin/env node
// Bundles the compiled peer worker (dist/workers/peer.js and everything it
// imports) into one CommonJS file, dist/workers/peer.cjs, which is what
// Cluster starts. Every crash and restart boots a fresh worker, and loading
// some thirty ES modules one by one (resolve, read, link, plus the ES module
// loader's own start-up in each thread) cost about half of a peer's start-up
// CPU; one CommonJS file loads in a few milliseconds.
// better-sqlite3 stays outside: it finds its native addon relative to its
// own package directory.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

try {
  await build({
    entryPoints: [`${root}dist/workers/peer.js`],
    outfile: `${root}dist/workers/peer.cjs`,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['better-sqlite3', 'msgpackr-extract'],
    sourcemap: true,
    logLevel: 'warning',
  });
} catch (e) {
  console.error(`bundle-peer: could not bundle the peer worker: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
