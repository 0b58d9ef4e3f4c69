// The key/value lab's part 3B tests (snapshots), ported (../shared/spec/kv-tester.md).
import { electionTimeout, sleep } from '../../lib/testing/index.js';
import { genericTest, genericTestSpeed, type GenericParams } from './generic.js';
import { kvLabTest } from './lab.js';

function generic(name: string, nclients: number, nservers: number, unreliable: boolean, crash: boolean, partitions: boolean, randomkeys: boolean): void {
  const p: GenericParams = { part: '3B', nclients, nservers, unreliable, crash, partitions, maxraftstate: 1000, randomkeys };
  kvLabTest(name, nservers, unreliable, 1000, (cfg) => genericTest(cfg, p));
}

kvLabTest('TestSnapshotRPC3B', 3, false, 1000, async (cfg) => {
  const maxraftstate = 1000;
  const ck = cfg.makeClient(cfg.all());
  cfg.begin('Test: InstallSnapshot RPC (3B)');
  await cfg.put(ck, 'a', 'A');
  await cfg.check(ck, 'a', 'A');

  // a bunch of puts into the majority partition.
  cfg.partition([0, 1], [2]);
  {
    const ck1 = cfg.makeClient([0, 1]);
    for (let i = 0; i < 50; i++) await cfg.put(ck1, String(i), String(i));
    await sleep(electionTimeout);
    await cfg.put(ck1, 'b', 'B');
  }

  // check that the majority partition has thrown away
  // most of its log entries.
  const sz = cfg.logSize();
  if (sz > 8 * maxraftstate) cfg.fatal(`logs were not trimmed (${sz} > 8*${maxraftstate})`);

  // now make group that requires participation of
  // lagging server, so that it has to catch up.
  cfg.partition([0, 2], [1]);
  {
    const ck1 = cfg.makeClient([0, 2]);
    await cfg.put(ck1, 'c', 'C');
    await cfg.put(ck1, 'd', 'D');
    await cfg.check(ck1, 'a', 'A');
    await cfg.check(ck1, 'b', 'B');
    await cfg.check(ck1, '1', '1');
    await cfg.check(ck1, '49', '49');
  }

  // now everybody
  cfg.partition([0, 1, 2], []);
  await cfg.put(ck, 'e', 'E');
  await cfg.check(ck, 'c', 'C');
  await cfg.check(ck, 'e', 'E');
  await cfg.check(ck, '1', '1');
  cfg.end();
});

// are the snapshots not too huge? 500 bytes is a generous bound for the
// operations we're doing here.
kvLabTest('TestSnapshotSize3B', 3, false, 1000, async (cfg) => {
  const maxraftstate = 1000;
  const maxsnapshotstate = 500;
  const ck = cfg.makeClient(cfg.all());
  cfg.begin('Test: snapshot size is reasonable (3B)');
  for (let i = 0; i < 200; i++) {
    await cfg.put(ck, 'x', '0');
    await cfg.check(ck, 'x', '0');
    await cfg.put(ck, 'x', '1');
    await cfg.check(ck, 'x', '1');
  }
  // check that servers have thrown away most of their log entries
  const sz = cfg.logSize();
  if (sz > 8 * maxraftstate) cfg.fatal(`logs were not trimmed (${sz} > 8*${maxraftstate})`);
  // check that the snapshots are not unreasonably large
  const ssz = cfg.snapshotSize();
  if (ssz > maxsnapshotstate) cfg.fatal(`snapshot too large (${ssz} > ${maxsnapshotstate})`);
  cfg.end();
});

kvLabTest('TestSpeed3B', 3, false, 1000, (cfg) => genericTestSpeed(cfg, '3B', 1000));

generic('TestSnapshotRecover3B', 1, 5, false, true, false, false);
generic('TestSnapshotRecoverManyClients3B', 20, 5, false, true, false, false);
generic('TestSnapshotUnreliable3B', 5, 5, true, false, false, false);
generic('TestSnapshotUnreliableRecover3B', 5, 5, true, true, false, false);
generic('TestSnapshotUnreliableRecoverConcurrentPartition3B', 5, 5, true, true, true, false);
generic('TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable3B', 15, 7, true, true, true, true);
