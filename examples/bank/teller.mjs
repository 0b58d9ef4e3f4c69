// A bank client: every command carries this teller's name and a sequence
// number, so that a retry after an "outcome unknown" error is applied once.
import { NotLeaderError, OutcomeUnknownError } from 'actor-raft';

export class Refused extends Error {
  name = 'Refused';
}

export class Teller {
  /** `client` is a GroupClient (or a RaftGroup): anything with propose() and read(). */
  constructor(client, name) {
    this.client = client;
    this.name = name;
    this.seq = 0;
    /** Proposals whose outcome was unknown and were sent again. */
    this.retries = 0;
  }

  async command(cmd) {
    const c = { ...cmd, client: this.name, seq: ++this.seq };
    for (;;) {
      let r;
      try {
        r = await this.client.propose(c, { timeoutMs: 3000 });
      } catch (e) {
        // Not applied (no leader took it), or maybe applied: the same
        // sequence number makes sending it again safe either way.
        if (e instanceof OutcomeUnknownError || e instanceof NotLeaderError) {
          this.retries++;
          continue;
        }
        throw e;
      }
      if (r.refused) throw new Refused(r.refused);
      return r.ok;
    }
  }

  open(account) {
    return this.command({ op: 'open', account });
  }

  deposit(account, amount) {
    return this.command({ op: 'deposit', account, amount });
  }

  transfer(from, to, amount) {
    return this.command({ op: 'transfer', from, to, amount });
  }

  /** A linearizable read: it sees every transfer acknowledged before it. */
  balance(account) {
    return this.client.read({ balance: account });
  }

  total() {
    return this.client.read({ total: true });
  }
}
