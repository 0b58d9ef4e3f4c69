import { RaftElectionTimeout, sleep, type Config } from '../../lib/testing/index.js';
import { labTest } from './lab.js';

labTest('Test (2C): basic persistence', 3, {}, async (cfg) => {
  await cfg.one(11, 3, true);

  // crash and re-start all
  for (let i = 0; i < 3; i++) await cfg.start1(i);
  for (let i = 0; i < 3; i++) {
    cfg.disconnect(i);
    cfg.connect(i);
  }

  await cfg.one(12, 3, true);

  const leader1 = await cfg.checkOneLeader();
  cfg.disconnect(leader1);
  await cfg.start1(leader1);
  cfg.connect(leader1);

  await cfg.one(13, 3, true);

  const leader2 = await cfg.checkOneLeader();
  cfg.disconnect(leader2);
  await cfg.one(14, 2, true);
  await cfg.start1(leader2);
  cfg.connect(leader2);

  await cfg.wait(4, 3, -1); // wait for leader2 to join before killing i3

  const i3 = ((await cfg.checkOneLeader()) + 1) % 3;
  cfg.disconnect(i3);
  await cfg.one(15, 2, true);
  await cfg.start1(i3);
  cfg.connect(i3);

  await cfg.one(16, 3, true);
});

labTest('Test (2C): more persistence', 5, {}, async (cfg) => {
  const servers = 5;
  let index = 1;
  for (let iters = 0; iters < 5; iters++) {
    await cfg.one(10 + index, servers, true);
    index++;

    const leader1 = await cfg.checkOneLeader();

    cfg.disconnect((leader1 + 1) % servers);
    cfg.disconnect((leader1 + 2) % servers);

    await cfg.one(10 + index, servers - 2, true);
    index++;

    cfg.disconnect((leader1 + 0) % servers);
    cfg.disconnect((leader1 + 3) % servers);
    cfg.disconnect((leader1 + 4) % servers);

    await cfg.start1((leader1 + 1) % servers);
    await cfg.start1((leader1 + 2) % servers);
    cfg.connect((leader1 + 1) % servers);
    cfg.connect((leader1 + 2) % servers);

    await sleep(RaftElectionTimeout);

    await cfg.start1((leader1 + 3) % servers);
    cfg.connect((leader1 + 3) % servers);

    await cfg.one(10 + index, servers - 2, true);
    index++;

    cfg.connect((leader1 + 4) % servers);
    cfg.connect((leader1 + 0) % servers);
  }

  await cfg.one(1000, servers, true);
});

labTest('Test (2C): partitioned leader and one follower crash, leader restarts', 3, {}, async (cfg) => {
  await cfg.one(101, 3, true);

  const leader = await cfg.checkOneLeader();
  cfg.disconnect((leader + 2) % 3);

  await cfg.one(102, 2, true);

  await cfg.crash1((leader + 0) % 3);
  await cfg.crash1((leader + 1) % 3);
  cfg.connect((leader + 2) % 3);
  await cfg.start1((leader + 0) % 3);
  cfg.connect((leader + 0) % 3);

  await cfg.one(103, 2, true);

  await cfg.start1((leader + 1) % 3);
  cfg.connect((leader + 1) % 3);

  await cfg.one(104, 3, true);
});

labTest('Test (2C): Figure 8', 5, {}, async (cfg) => {
  const servers = 5;
  await cfg.one(cfg.randomInt(), 1, true);

  let nup = servers;
  for (let iters = 0; iters < 1000; iters++) {
    let leader = -1;
    for (let i = 0; i < servers; i++) {
      if (cfg.cluster.isRunning(i)) {
        const r = await cfg.start(i, cfg.randomInt());
        if (r.isLeader) leader = i;
      }
    }

    if (cfg.randint(0, 999) < 100) await sleep(cfg.randint(0, RaftElectionTimeout / 2 - 1));
    else await sleep(cfg.randint(0, 12));

    if (leader !== -1) {
      await cfg.crash1(leader);
      nup -= 1;
    }

    if (nup < 3) {
      const s = cfg.randint(0, servers - 1);
      if (!cfg.cluster.isRunning(s)) {
        await cfg.start1(s);
        cfg.connect(s);
        nup += 1;
      }
    }
  }

  for (let i = 0; i < servers; i++) {
    if (!cfg.cluster.isRunning(i)) {
      await cfg.start1(i);
      cfg.connect(i);
    }
  }

  await cfg.one(cfg.randomInt(), servers, true);
});

labTest('Test (2C): unreliable agreement', 5, { unreliable: true }, async (cfg) => {
  const servers = 5;
  const background: Promise<unknown>[] = [];
  for (let iters = 1; iters < 50; iters++) {
    for (let j = 0; j < 4; j++) background.push(cfg.one(100 * iters + j, 1, true));
    await cfg.one(iters, 1, true);
  }

  cfg.setunreliable(false);

  await Promise.all(background);

  await cfg.one(100, servers, true);
});

labTest('Test (2C): Figure 8 (unreliable)', 5, { unreliable: true }, async (cfg) => {
  const servers = 5;
  await cfg.one(cfg.randomInt() % 10000, 1, true);

  let nup = servers;
  for (let iters = 0; iters < 1000; iters++) {
    if (iters === 200) cfg.setlongreordering(true);
    let leader = -1;
    for (let i = 0; i < servers; i++) {
      const r = await cfg.start(i, cfg.randomInt() % 10000);
      if (r.isLeader && cfg.connected[i]) leader = i;
    }

    if (cfg.randint(0, 999) < 100) await sleep(cfg.randint(0, RaftElectionTimeout / 2 - 1));
    else await sleep(cfg.randint(0, 12));

    if (leader !== -1 && cfg.randint(0, 999) < RaftElectionTimeout / 2) {
      cfg.disconnect(leader);
      nup -= 1;
    }

    if (nup < 3) {
      const s = cfg.randint(0, servers - 1);
      if (!cfg.connected[s]) {
        cfg.connect(s);
        nup += 1;
      }
    }
  }

  for (let i = 0; i < servers; i++) if (!cfg.connected[i]) cfg.connect(i);

  await cfg.one(cfg.randomInt() % 10000, servers, true);
});

async function churn(cfg: Config): Promise<void> {
  const servers = 5;
  let stop = false;

  // create concurrent clients
  const client = async (me: number): Promise<number[]> => {
    const values: number[] = [];
    while (!stop) {
      const x = cfg.randomInt();
      let index = -1;
      let ok = false;
      for (let i = 0; i < servers; i++) {
        // try them all, maybe one of them is a leader
        if (!cfg.cluster.isRunning(i)) continue;
        const r = await cfg.start(i, x).catch(() => undefined);
        if (r?.isLeader) {
          ok = true;
          index = r.index;
        }
      }
      if (ok) {
        // maybe leader will commit our value, maybe not.
        // but don't wait forever.
        for (const to of [10, 20, 50, 100, 200]) {
          const [nd, cmd] = cfg.nCommitted(index);
          if (nd > 0) {
            if (typeof cmd !== 'number') cfg.fatal('wrong command type');
            if (cmd === x) values.push(x);
            break;
          }
          await sleep(to);
        }
      } else {
        await sleep(79 + me * 17);
      }
    }
    return values;
  };

  const ncli = 3;
  const clients = Array.from({ length: ncli }, (_, me) => client(me).then((v) => v, () => undefined));

  for (let iters = 0; iters < 20; iters++) {
    if (cfg.randint(0, 999) < 200) {
      const i = cfg.randint(0, servers - 1);
      cfg.disconnect(i);
    }

    if (cfg.randint(0, 999) < 500) {
      const i = cfg.randint(0, servers - 1);
      if (!cfg.cluster.isRunning(i)) await cfg.start1(i);
      cfg.connect(i);
    }

    if (cfg.randint(0, 999) < 200) {
      const i = cfg.randint(0, servers - 1);
      if (cfg.cluster.isRunning(i)) await cfg.crash1(i);
    }

    // Make crash/restart infrequent enough that the peers can often
    // keep up, but not so infrequent that everything has settled
    // down from one change to the next.
    await sleep((RaftElectionTimeout * 7) / 10);
  }

  await sleep(RaftElectionTimeout);
  cfg.setunreliable(false);
  for (let i = 0; i < servers; i++) {
    if (!cfg.cluster.isRunning(i)) await cfg.start1(i);
    cfg.connect(i);
  }

  stop = true;

  const values: number[] = [];
  for (const c of clients) {
    const vv = await c;
    if (vv === undefined) cfg.fatal('client failed');
    values.push(...vv);
  }

  await sleep(RaftElectionTimeout);

  const lastIndex = await cfg.one(cfg.randomInt(), servers, true);

  const really: unknown[] = [];
  for (let index = 1; index <= lastIndex; index++) {
    const v = await cfg.wait(index, servers, -1);
    if (typeof v !== 'number') cfg.fatal('not an int');
    really.push(v);
  }
  const seen = new Set(really);
  for (const v1 of values) if (!seen.has(v1)) cfg.fatal("didn't find a value");
}

labTest('Test (2C): churn', 5, {}, churn);

labTest('Test (2C): unreliable churn', 5, { unreliable: true }, churn);
