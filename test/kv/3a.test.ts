// The key/value lab's part 3A tests, ported (../shared/spec/kv-tester.md).
import { electionTimeout, sleep } from '../../lib/testing/index.js';
import { checkConcurrentAppends, genericTest, genericTestSpeed, spawnClientsAndWait, type GenericParams } from './generic.js';
import { kvLabTest } from './lab.js';

function generic(name: string, nclients: number, nservers: number, unreliable: boolean, crash: boolean, partitions: boolean, randomkeys: boolean): void {
  const p: GenericParams = { part: '3A', nclients, nservers, unreliable, crash, partitions, maxraftstate: -1, randomkeys };
  kvLabTest(name, nservers, unreliable, -1, (cfg) => genericTest(cfg, p));
}

generic('TestBasic3A', 1, 5, false, false, false, false);

kvLabTest('TestSpeed3A', 3, false, -1, (cfg) => genericTestSpeed(cfg, '3A', -1));

generic('TestConcurrent3A', 5, 5, false, false, false, false);
generic('TestUnreliable3A', 5, 5, true, false, false, false);

kvLabTest('TestUnreliableOneKey3A', 3, true, -1, async (cfg) => {
  const ck = cfg.makeClient(cfg.all());
  cfg.begin('Test: concurrent append to same key, unreliable (3A)');
  await cfg.put(ck, 'k', '');
  const nclient = 5;
  const upto = 10;
  await spawnClientsAndWait(cfg, nclient, async (me, myck) => {
    for (let n = 0; n < upto; n++) await cfg.append(myck, 'k', `x ${me} ${n} y`);
  });
  const counts = new Array(nclient).fill(upto);
  const vx = await cfg.get(ck, 'k');
  checkConcurrentAppends(cfg, vx, counts);
  cfg.end();
});

// Submit a request in the minority partition and check that the requests
// do not go through until the partition heals; the leader in the original
// majority may change.
kvLabTest('TestOnePartition3A', 5, false, -1, async (cfg) => {
  const ck = cfg.makeClient(cfg.all());
  await cfg.put(ck, '1', '13');

  cfg.begin('Test: progress in majority (3A)');
  const [p1, p2] = await cfg.makePartition();
  cfg.partition(p1, p2);
  const ckp1 = cfg.makeClient(p1); // connect ckp1 to p1
  const ckp2a = cfg.makeClient(p2); // connect ckp2a to p2
  const ckp2b = cfg.makeClient(p2); // connect ckp2b to p2
  await cfg.put(ckp1, '1', '14');
  await cfg.check(ckp1, '1', '14');
  cfg.end();

  let done0 = false;
  let done1 = false;
  cfg.begin('Test: no progress in minority (3A)');
  const put15 = cfg.put(ckp2a, '1', '15').then(() => {
    done0 = true;
  });
  const get1 = cfg.get(ckp2b, '1').then(() => {
    done1 = true;
  });
  put15.catch(() => {});
  get1.catch(() => {});
  await sleep(1000);
  if (done0) cfg.fatal('Put in minority completed');
  if (done1) cfg.fatal('Get in minority completed');
  await cfg.check(ckp1, '1', '14');
  await cfg.put(ckp1, '1', '16');
  await cfg.check(ckp1, '1', '16');
  cfg.end();

  cfg.begin('Test: completion after heal (3A)');
  cfg.connectAll();
  cfg.connectClient(ckp2a, cfg.all());
  cfg.connectClient(ckp2b, cfg.all());
  await sleep(electionTimeout);
  for (let k = 0; k < 30 && !done0; k++) await sleep(100);
  if (!done0) cfg.fatal('Put did not complete');
  // The original polls the Get without waiting for it.
  await cfg.check(ck, '1', '15');
  cfg.end();
});

generic('TestManyPartitionsOneClient3A', 1, 5, false, false, true, false);
generic('TestManyPartitionsManyClients3A', 5, 5, false, false, true, false);
generic('TestPersistOneClient3A', 1, 5, false, true, false, false);
generic('TestPersistConcurrent3A', 5, 5, false, true, false, false);
generic('TestPersistConcurrentUnreliable3A', 5, 5, true, true, false, false);
generic('TestPersistPartition3A', 5, 5, false, true, true, false);
generic('TestPersistPartitionUnreliable3A', 5, 5, true, true, true, false);
generic('TestPersistPartitionUnreliableLinearizable3A', 15, 7, true, true, true, true);

