import { MAXLOGSIZE, SnapShotInterval, type Config } from '../../lib/testing/index.js';
import { labTest } from './lab.js';

async function snapcommon(cfg: Config, disconnect: boolean, crash: boolean): Promise<void> {
  const iters = 30;
  const servers = 3;

  await cfg.one(cfg.randomInt(), servers, true);
  let leader1 = await cfg.checkOneLeader();

  for (let i = 0; i < iters; i++) {
    let victim = (leader1 + 1) % servers;
    let sender = leader1;
    if (i % 3 === 1) {
      sender = (leader1 + 1) % servers;
      victim = leader1;
    }

    if (disconnect) {
      cfg.disconnect(victim);
      await cfg.one(cfg.randomInt(), servers - 1, true);
    }
    if (crash) {
      await cfg.crash1(victim);
      await cfg.one(cfg.randomInt(), servers - 1, true);
    }

    // perhaps send enough to get a snapshot
    const nn = SnapShotInterval / 2 + (cfg.randomInt() % SnapShotInterval);
    // Go's Start returns without a round trip, so the original's loop hands
    // the peer its nn commands back to back; issuing the calls without
    // waiting on each answer does the same (one port keeps them in order).
    const starts: Promise<unknown>[] = [];
    for (let k = 0; k < nn; k++) starts.push(cfg.start(sender, cfg.randomInt()).catch(() => undefined));
    await Promise.all(starts);

    // let applier threads catch up with the Start()'s
    if (!disconnect && !crash) {
      // make sure all followers have caught up, so that
      // an InstallSnapshot RPC isn't required for
      // TestSnapshotBasic2D().
      await cfg.one(cfg.randomInt(), servers, true);
    } else {
      await cfg.one(cfg.randomInt(), servers - 1, true);
    }

    if (cfg.logSize() >= MAXLOGSIZE) cfg.fatal('Log size too large');

    if (disconnect) {
      // reconnect a follower, who maybe behind and
      // needs to receive a snapshot to catch up.
      cfg.connect(victim);
      await cfg.one(cfg.randomInt(), servers, true);
      leader1 = await cfg.checkOneLeader();
    }
    if (crash) {
      await cfg.start1(victim);
      cfg.connect(victim);
      await cfg.one(cfg.randomInt(), servers, true);
      leader1 = await cfg.checkOneLeader();
    }
  }
}

labTest('Test (2D): snapshots basic', 3, { snapshot: true }, (cfg) => snapcommon(cfg, false, false));

labTest('Test (2D): install snapshots (disconnect)', 3, { snapshot: true }, (cfg) => snapcommon(cfg, true, false));

labTest('Test (2D): install snapshots (disconnect+unreliable)', 3, { snapshot: true, unreliable: true }, (cfg) =>
  snapcommon(cfg, true, false),
);

labTest('Test (2D): install snapshots (crash)', 3, { snapshot: true }, (cfg) => snapcommon(cfg, false, true));

labTest('Test (2D): install snapshots (unreliable+crash)', 3, { snapshot: true, unreliable: true }, (cfg) =>
  snapcommon(cfg, false, true),
);

// do the servers persist the snapshots, and
// restart using snapshot along with the
// tail of the log?
labTest('Test (2D): crash and restart all servers', 3, { snapshot: true }, async (cfg) => {
  const servers = 3;
  await cfg.one(cfg.randomInt(), servers, true);

  for (let i = 0; i < 5; i++) {
    // perhaps enough to get a snapshot
    const nn = SnapShotInterval / 2 + (cfg.randomInt() % SnapShotInterval);
    for (let j = 0; j < nn; j++) await cfg.one(cfg.randomInt(), servers, true);

    const index1 = await cfg.one(cfg.randomInt(), servers, true);

    // crash all
    for (let k = 0; k < servers; k++) await cfg.crash1(k);

    // revive all
    for (let k = 0; k < servers; k++) {
      await cfg.start1(k);
      cfg.connect(k);
    }

    const index2 = await cfg.one(cfg.randomInt(), servers, true);
    if (index2 < index1 + 1) cfg.fatal(`index decreased from ${index1} to ${index2}`);
  }
});

// do servers correctly initialize their in-memory copy of the snapshot, making
// sure that future writes to persistent state don't lose state?
labTest('Test (2D): snapshot initialization after crash', 3, { snapshot: true }, async (cfg) => {
  const servers = 3;
  await cfg.one(cfg.randomInt(), servers, true);

  // enough ops to make a snapshot
  const nn = SnapShotInterval + 1;
  for (let i = 0; i < nn; i++) await cfg.one(cfg.randomInt(), servers, true);

  // crash all
  for (let i = 0; i < servers; i++) await cfg.crash1(i);
  // revive all
  for (let i = 0; i < servers; i++) {
    await cfg.start1(i);
    cfg.connect(i);
  }

  // a single op, to get something to be written back to persistent storage.
  await cfg.one(cfg.randomInt(), servers, true);

  // crash all
  for (let i = 0; i < servers; i++) await cfg.crash1(i);
  // revive all
  for (let i = 0; i < servers; i++) {
    await cfg.start1(i);
    cfg.connect(i);
  }

  // do another op to trigger potential bug
  await cfg.one(cfg.randomInt(), servers, true);
});
