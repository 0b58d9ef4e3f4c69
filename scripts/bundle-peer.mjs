#!/usr/bin/env node
// Bundles the compiled peer worker (dist/workers/peer.js and everything it
// imports) into one CommonJS file, dist/workers/peer.cjs, which is what
// Cluster starts. Every crash and restart boots a fresh worker, and loading
// some thirty ES modules one by one (resolve, read, link, plus the ES module
// loader's own start-up in each thread) cost about half of a peer's start-up
// CPU; one CommonJS file loads in a few milliseconds.
// better-sqlite3's JavaScript is bundled too; its native addon is loaded by
// path (storage/sqlite.ts resolves it from `import.meta.url`, which the
// bundle defines as its own file's URL).
// Its entry point, dist/workers/peer-boot.cjs (from scripts/peer-boot.cjs),
// runs the bundle from a V8 code cache named after the bundle's hash.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
    external: ['msgpackr-extract'],
    banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
    define: { 'import.meta.url': '__bundleUrl' },
    sourcemap: true,
    // Less source for every boot to read and compile (about 7 ms of CPU per
    // worker here). Identifiers are left as written, so stack traces still
    // say what ran, rather than minified and their names kept by esbuild's
    // keepNames: that wraps every function expression in a __name() call
    // (an Object.defineProperty) each time it is created, and the peer
    // creates closures per request (1-3% of a leader's CPU under load).
    // PEER_BUNDLE_MINIFY=0 keeps the source as written, for CPU profiles
    // whose lines should point at something readable.
    minifyWhitespace: process.env.PEER_BUNDLE_MINIFY !== '0',
    minifySyntax: process.env.PEER_BUNDLE_MINIFY !== '0',
    minifyIdentifiers: false,
    logLevel: 'warning',
  });
  const out = `${root}dist/workers/`;
  const hash = createHash('sha256').update(readFileSync(`${out}peer.cjs`)).digest('hex').slice(0, 16);
  // Caches of earlier bundles can never be used again.
  for (const f of readdirSync(out)) if (/^peer\.[0-9a-f]+\.cache$/.test(f)) rmSync(`${out}${f}`, { force: true });
  const boot = readFileSync(`${root}scripts/peer-boot.cjs`, 'utf8');
  if (!boot.includes('__BUNDLE_HASH__')) throw new Error('scripts/peer-boot.cjs lost its __BUNDLE_HASH__ placeholder');
  writeFileSync(`${out}peer-boot.cjs`, boot.replace('__BUNDLE_HASH__', hash));
} catch (e) {
  console.error(`bundle-peer: could not bundle the peer worker: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
