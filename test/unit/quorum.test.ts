import t from 'tap';
import { committedIndex, majority } from '../../lib/raft/quorum.js';
import { seededRng } from '../../lib/raft/index.js';

/** The k-th largest by a plain sorted copy: what committedIndex must agree with. */
function reference(values: number[]): number {
  return values.slice().sort((a, b) => b - a)[majority(values.length) - 1]!;
}

t.test('the commit index is what a majority has reached, for every configuration size', async (t) => {
  t.equal(committedIndex([5, 3, 9]), 5, 'three voters: the middle one');
  t.equal(committedIndex([7]), 7, 'one voter: its own');
  t.equal(committedIndex([4, 8]), 4, 'two voters: both must have it');
  t.equal(committedIndex([1, 1, 6, 6, 6]), 6, 'five voters, three at 6');
  t.equal(committedIndex([9, 9, 0, 0, 9, 0]), 0, 'six voters, three at 9 is not a majority');
  const rng = seededRng(42);
  let agree = 0;
  for (let round = 0; round < 2000; round++) {
    const n = 1 + Math.floor(rng() * 9);
    const values = Array.from({ length: n }, () => Math.floor(rng() * 20));
    // Values past n (a larger configuration's) must not count.
    const scratch = [...values, ...Array.from({ length: Math.floor(rng() * 4) }, () => 1000)];
    if (committedIndex(scratch, n) === reference(values)) agree++;
  }
  t.equal(agree, 2000, 'random configurations of 1 to 9 voters agree with a sorted copy, stale values past n ignored');
});
