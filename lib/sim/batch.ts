import type { PlantedBugs } from '../raft/core.js';
import { simulate, type SimResult } from './simulator.js';

export interface BatchTask {
  from: number;
  count: number;
  peers?: number;
  faultMs?: number;
  bugs?: PlantedBugs;
}

export interface BatchResult {
  seeds: number;
  simulatedMs: number;
  events: number;
  committed: number;
  installs: number;
  steppedSnapshots: number;
  cancelledWriters: number;
  crashes: number;
  reads: number;
  transfers: number;
  configChanges: number;
  failures: SimResult[];
}

/** The figures a batch adds up, seed by seed and batch by batch. */
const COUNTED = ['simulatedMs', 'events', 'committed', 'installs', 'steppedSnapshots', 'cancelledWriters', 'crashes', 'reads', 'transfers', 'configChanges'] as const;
type Counted = Pick<BatchResult, (typeof COUNTED)[number]>;

export function emptyBatch(): BatchResult {
  const out = { seeds: 0, failures: [] } as unknown as BatchResult;
  for (const k of COUNTED) out[k] = 0;
  return out;
}

/** Add `r`'s figures into `into` (a seed's result or another batch's). */
export function addCounts(into: BatchResult, r: Counted): void {
  for (const k of COUNTED) into[k] += r[k];
}

/** Run seeds [from, from+count) and keep only what a report needs. */
export function runBatch(task: BatchTask): BatchResult {
  const out = emptyBatch();
  for (let seed = task.from; seed < task.from + task.count; seed++) {
    const r = simulate({ seed, peers: task.peers, faultMs: task.faultMs, bugs: task.bugs });
    out.seeds++;
    addCounts(out, r);
    if (!r.ok) out.failures.push(r);
  }
  return out;
}

/** Entry point for the piscina pool. */
export default function (task: BatchTask): BatchResult {
  return runBatch(task);
}
