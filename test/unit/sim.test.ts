import t from 'tap';
import type { PlantedBugs } from '../../lib/raft/index.js';
import { runBatch } from '../../lib/sim/batch.js';
import { simulate } from '../../lib/sim/simulator.js';

const CI_SEEDS = 500;
/** Each planted bug must be caught within this many seeds. */
const BUG_SEED_BUDGET = 1000;

t.test(`the simulator finds no violation in ${CI_SEEDS} seeds`, async (t) => {
  const t0 = Date.now();
  const r = runBatch({ from: 1, count: CI_SEEDS });
  const secs = (Date.now() - t0) / 1000;
  for (const f of r.failures.slice(0, 3)) t.comment(`seed ${f.seed}: ${f.violation}\n${f.trace.join('\n')}`);
  t.equal(r.failures.length, 0, 'no invariant or liveness violation');
  t.equal(r.seeds, CI_SEEDS, 'every seed ran');
  t.ok(r.committed > CI_SEEDS * 10, `commands were committed (${r.committed})`);
  t.ok(r.crashes > CI_SEEDS, `peers crashed and restarted (${r.crashes})`);
  t.ok(r.installs > 0, `lagging peers caught up by InstallSnapshot (${r.installs})`);
  t.ok(r.steppedSnapshots > CI_SEEDS, `snapshots were written a step at a time (${r.steppedSnapshots})`);
  t.comment(`writers cancelled part-way: ${r.cancelledWriters}`);
  t.ok(r.reads > CI_SEEDS, `linearizable and lease reads were answered and checked (${r.reads})`);
  t.ok(r.transfers > 0, `leadership transfers completed (${r.transfers})`);
  t.ok(r.configChanges > CI_SEEDS / 2, `membership changes committed (${r.configChanges})`);
  t.comment(`${CI_SEEDS} seeds in ${secs.toFixed(1)} s, ${(r.simulatedMs / 1000 / secs).toFixed(0)} simulated s per wall s`);
});

t.test('a seed replays exactly', async (t) => {
  for (const seed of [7, 1234]) {
    const a = simulate({ seed, traceSize: 200 });
    const b = simulate({ seed, traceSize: 200 });
    t.same(b, a, `seed ${seed}: same events, commits and trace`);
  }
  const x = simulate({ seed: 7 });
  const y = simulate({ seed: 8 });
  t.not(JSON.stringify(x.trace), JSON.stringify(y.trace), 'different seeds take different paths');
});

/**
 * Each bug with the violation it must cause, and the election modes it can
 * show in. Violations matching the optional last pattern are passed over in
 * the hunt (a membership bug also stalls clusters, but a stall proves less
 * than the split brain it can cause).
 */
const planted: [string, PlantedBugs, RegExp, boolean[]?, RegExp?][] = [
  ['granting a vote without the up-to-date check', { voteWithoutLogCheck: true }, /leader completeness|state machine safety/],
  ['committing a previous-term entry by counting replicas', { commitPreviousTerm: true }, /leader completeness|state machine safety/],
  ['not truncating a conflicting suffix', { keepConflictingSuffix: true }, /log matching|state machine safety|leader completeness/],
  ['forgetting to persist the vote', { forgetVote: true }, /election safety|leader completeness|state machine safety/],
  ['sending votes and responses before they are written', { everythingEarly: true }, /election safety|leader completeness|state machine safety/],
  ['a leader answering a ReadIndex read without the round that confirms it leads', { readWithoutRound: true }, /linearizable read/],
  ['a transfer target told to campaign before it is caught up', { transferWithoutCatchUp: true }, /transfer: peer \d+ was told to campaign/],
  // Leases rest on pre-vote (without it every lease read is a ReadIndex read).
  ['a lease that never expires', { leaseWithoutExpiry: true }, /linearizable read/, [true]],
  ['two single-server membership changes in flight at once', { concurrentConfigChanges: true }, /election safety|leader completeness|state machine safety|log matching|linearizable read/, undefined, /liveness/],
  ['a snapshot written in steps stored at the index applied when it finished', { snapshotAtFinish: true }, /state machine safety/],
];

// Each bug is hunted under both election modes: plain Figure 2 and pre-vote.
for (const [name, bugs, kind, modes, passOver] of planted) {
  for (const preVote of modes ?? [false, true]) {
    const mode = preVote ? 'pre-vote elections' : 'plain elections';
    t.test(`the simulator catches a planted bug: ${name} (${mode})`, async (t) => {
      let found;
      for (let seed = 1; seed <= BUG_SEED_BUDGET && !found; seed++) {
        const r = simulate({ seed, bugs, preVote });
        if (!r.ok && !(passOver && passOver.test(r.violation!))) found = r;
      }
      t.ok(found, `a violation within ${BUG_SEED_BUDGET} seeds`);
      if (!found) return;
      t.match(found.violation, kind, `the violation is of the expected kind: ${found.violation}`);
      t.comment(`first failing seed ${found.seed}: ${found.violation}`);
      const again = simulate({ seed: found.seed, bugs, preVote });
      t.same(again, found, 'the failing seed replays to the same violation and trace');
      t.ok(simulate({ seed: found.seed, preVote }).ok, 'the same seed passes without the bug');
    });
  }
}
