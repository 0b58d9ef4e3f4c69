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

/** Run seeds [from, from+count) and keep only what a report needs. */
export function runBatch(task: BatchTask): BatchResult {
  const out: BatchResult = { seeds: 0, simulatedMs: 0, events: 0, committed: 0, installs: 0, steppedSnapshots: 0, cancelledWriters: 0, crashes: 0, reads: 0, transfers: 0, configChanges: 0, failures: [] };
  for (let seed = task.from; seed < task.from + task.count; seed++) {
    const r = simulate({ seed, peers: task.peers, faultMs: task.faultMs, bugs: task.bugs });
    out.seeds++;
    out.simulatedMs += r.simulatedMs;
    out.events += r.events;
    out.committed += r.committed;
    out.installs += r.installs;
    out.steppedSnapshots += r.steppedSnapshots;
    out.cancelledWriters += r.cancelledWriters;
    out.crashes += r.crashes;
    out.reads += r.reads;
    out.transfers += r.transfers;
    out.configChanges += r.configChanges;
    if (!r.ok) out.failures.push(r);
  }
  return out;
}

/** Entry point for the piscina pool. */
export default function (task: BatchTask): BatchResult {
  return runBatch(task);
}
