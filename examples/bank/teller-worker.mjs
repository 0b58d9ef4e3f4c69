// A worker thread of tellers: random transfers between the accounts for a
// while, through a handle on the group posted by the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { GroupClient } from 'actor-raft';
import { Refused, Teller } from './teller.mjs';

const { handle, accounts, seconds, name, tellers } = workerData;
const client = GroupClient.connect(handle);
const until = Date.now() + seconds * 1000;
const counts = { transfers: 0, refused: 0, retries: 0 };

await Promise.all(
  Array.from({ length: tellers }, async (_, k) => {
    const teller = new Teller(client, `${name}-${k}`);
    while (Date.now() < until) {
      const from = accounts[Math.floor(Math.random() * accounts.length)];
      const to = accounts[Math.floor(Math.random() * accounts.length)];
      if (from === to) continue;
      try {
        await teller.transfer(from, to, 1 + Math.floor(Math.random() * 400));
        counts.transfers++;
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        counts.refused++;
      }
    }
    counts.retries += teller.retries;
  }),
);
client.close();
parentPort.postMessage(counts);
