/**
 * npm run bench:storage: what writing one Ready costs a peer, on its own
 * thread: SqliteStorage.save of Readies of 16 and 256 entries (20-byte
 * commands, as the counter's), with fsync on and off, 2,000 Readies per
 * row in a fresh file under ./data/ (the peers' own file system). CPU per
 * save is the thread's (the process runs nothing else; V8's helper
 * threads' share is in it); wall time per save is the mean, with p50 and
 * p99. Prints a table; writes bench/results/storage-write-<time>.json.
 *   options: --readies N (per row, default 2000)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry, Ready } from '../lib/raft/types.js';
import { SqliteStorage } from '../storage/sqlite.js';
import { commit, machineInfo } from './run-info.js';

const { values } = parseArgs({ options: { readies: { type: 'string', default: '2000' } } });
const READIES = Number(values.readies);
if (!Number.isSafeInteger(READIES) || READIES < 100) throw new Error(`--readies must be an integer of at least 100, got ${values.readies}`);

interface Row {
  entries: number;
  fsync: boolean;
  cpuMsPerSave: number;
  cpuUsPerEntry: number;
  wallMsPerSave: number;
  p50ms: number;
  p99ms: number;
}

const at = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const r3 = (x: number) => Number(x.toFixed(3));

function row(dir: string, entries: number, fsync: boolean): Row {
  const file = join(dir, `w-${entries}-${fsync}.sqlite`);
  const st = new SqliteStorage(file, { peer: 0, fsync });
  st.load();
  const data = new Uint8Array(20).fill(7);
  let index = 0;
  const walls: number[] = [];
  const readies: Ready[] = [];
  for (let r = 0; r < READIES; r++) {
    const es: Entry[] = [];
    for (let k = 0; k < entries; k++) es.push({ index: ++index, term: 1, data });
    readies.push({ entries: es, lastIndex: index, hardState: r === 0 ? { term: 1, vote: 0 } : undefined, messages: [], earlyCount: 0, committed: [], readStates: [] });
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const rd of readies) {
    const s = performance.now();
    st.save(rd);
    walls.push(performance.now() - s);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  st.close();
  walls.sort((a, b) => a - b);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { entries, fsync, cpuMsPerSave: r3(cpuMs / READIES), cpuUsPerEntry: r3((cpuMs * 1000) / READIES / entries), wallMsPerSave: r3(wall / READIES), p50ms: r3(at(walls, 0.5)), p99ms: r3(at(walls, 0.99)) };
}

mkdirSync('data', { recursive: true });
const dir = mkdtempSync(join('data', 'bench-storage-'));
const rows: Row[] = [];
try {
  console.log(`SqliteStorage.save, ${READIES} Readies per row, 20-byte entries; commit ${commit() ?? 'unknown'}`);
  console.log('');
  console.log('| entries/Ready | fsync | CPU ms/save | CPU µs/entry | wall ms/save | p50 ms | p99 ms |');
  console.log('|---:|---|---:|---:|---:|---:|---:|');
  for (const entries of [16, 256]) {
    for (const fsync of [true, false]) {
      const r = row(dir, entries, fsync);
      rows.push(r);
      console.log(`| ${r.entries} | ${r.fsync ? 'on' : 'off'} | ${r.cpuMsPerSave} | ${r.cpuUsPerEntry} | ${r.wallMsPerSave} | ${r.p50ms} | ${r.p99ms} |`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const date = new Date().toISOString();
const out = new URL('./results/', new URL('../../bench/', import.meta.url));
mkdirSync(out, { recursive: true });
const file = new URL(`storage-write-${date.replace(/[:.]/g, '-')}.json`, out);
writeFileSync(file, JSON.stringify({ benchmark: 'storage-write', date, commit: commit() ?? null, machine: machineInfo(), readies: READIES, rows }, null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
