import { RaftElectionTimeout, sleep } from '../../lib/testing/index.js';
import { labTest } from './lab.js';

labTest('Test (2A): initial election', 3, {}, async (cfg) => {
  // is a leader elected?
  await cfg.checkOneLeader();

  // sleep a bit to avoid racing with followers learning of the
  // election, then check that all peers agree on the term.
  await sleep(50);
  const term1 = await cfg.checkTerms();
  if (term1 < 1) cfg.fatal(`term is ${term1}, but should be at least 1`);

  // does the leader+term stay the same if there is no network failure?
  await sleep(2 * RaftElectionTimeout);
  const term2 = await cfg.checkTerms();
  if (term1 !== term2) cfg.log('warning: term changed even though there were no failures');

  // there should still be a leader.
  await cfg.checkOneLeader();
});

labTest('Test (2A): election after network failure', 3, {}, async (cfg) => {
  const servers = 3;
  const leader1 = await cfg.checkOneLeader();

  // if the leader disconnects, a new one should be elected.
  cfg.disconnect(leader1);
  await cfg.checkOneLeader();

  // if the old leader rejoins, that shouldn't disturb the new leader.
  cfg.connect(leader1);
  const leader2 = await cfg.checkOneLeader();

  // if there's no quorum, no new leader should be elected.
  cfg.disconnect(leader2);
  cfg.disconnect((leader2 + 1) % servers);
  await sleep(2 * RaftElectionTimeout);
  // check that the one connected server does not think it is the leader.
  await cfg.checkNoLeader();

  // if a quorum arises, it should elect a leader.
  cfg.connect((leader2 + 1) % servers);
  await cfg.checkOneLeader();

  // re-join of last node shouldn't prevent leader from existing.
  cfg.connect(leader2);
  await cfg.checkOneLeader();
});

labTest('Test (2A): multiple elections', 7, {}, async (cfg) => {
  const servers = 7;
  await cfg.checkOneLeader();

  const iters = 10;
  for (let ii = 1; ii < iters; ii++) {
    // disconnect three nodes
    const i1 = cfg.randint(0, servers - 1);
    const i2 = cfg.randint(0, servers - 1);
    const i3 = cfg.randint(0, servers - 1);
    cfg.disconnect(i1);
    cfg.disconnect(i2);
    cfg.disconnect(i3);

    // either the current leader should still be alive,
    // or the remaining four should elect a new one.
    await cfg.checkOneLeader();

    cfg.connect(i1);
    cfg.connect(i2);
    cfg.connect(i3);
  }
  await cfg.checkOneLeader();
});
